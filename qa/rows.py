"""The rows of the generation a sync writes, in corpus order: runs of the live generation's rows
(an unchanged article's chunk records, vectors and term counts, copied as they are) and the
chunks of new and changed articles (chunked; a vector reused when the live index holds a chunk
with the same text, else embedded; their terms analysed).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace

import numpy as np

from . import wire
from .chunking import Chunk, ChunkSettings, chunk_text
from .corpus import Article, Document
from .embedding import Embedder
from .index import DocEntry, LiveRows, chunk_sha256
from .language import detect_language
from .lexical import Analyzer
from .news import DocNews
from .sentences import SentenceStore, distinct_sentences
from .terms import TermCounts

# Texts per encode call, longest first: the embedder's lock is released between calls, so a
# sync inside the app lets questions through every ~1-2 s, and sorting all texts by length first
# keeps the batches as tightly padded as one big call would.
EMBED_GROUP = 64


@dataclass(frozen=True)
class Keep:
    """An indexed article whose chunks stay as they are."""

    doc: int                        # its row in the live docs table
    record: Document | None = None  # its new Document, when only that changed (title, date, source...)
    kept: bool = False              # its file cannot be read now (skip_bad): kept as it was


@dataclass(frozen=True)
class New:
    """An article to chunk (new, or its text changed)."""

    article: Article


class NewRows:
    """The new generation's rows for `items`, given the live generation.

    Args:
        items: the articles of the new generation in corpus order, each kept or new.
        live: the live generation (None: nothing to reuse; then every item is New).
        live_ids: the doc_id of each row of the live docs table.
        chunking: how new articles are chunked (the live index's settings when it is reused).
    """

    def __init__(self, items: list[Keep | New], live: LiveRows | None, live_ids: list[str], chunking: ChunkSettings):
        self.items, self.live, self.old_ids = items, live, set(live_ids)
        self.parts: list[tuple[str, int, int]] = []   # ("old", a, b): live rows a..b-1; ("new", a, b): new_chunks[a:b]
        self.docs: list[DocEntry] = []
        self.new_chunks: list[Chunk] = []
        self.new_text: dict[str, str] = {}                   # doc_id -> text, of new articles
        self.live_text: dict[str, tuple[int, int]] = {}      # doc_id -> live chunk rows, of kept ones
        if live is not None and live.doc_rows is not None:  # plain Python values: ~250k documents at 1M chunks
            doc_rows, fingerprints = live.doc_rows.tolist(), live.doc_sha256.tobytes()
        row = 0
        for item in items:
            if isinstance(item, Keep):
                first, count = doc_rows[item.doc]
                self._part("old", first, first + count)
                record = item.record or live.docs.raw_lines(item.doc, item.doc + 1)
                fingerprint = fingerprints[32 * item.doc:32 * item.doc + 32]
                self.docs.append(DocEntry(live_ids[item.doc], record, fingerprint, row, count,
                                          self._kept_news(item, first, count)))
                self.live_text[live_ids[item.doc]] = (first, count)
            else:
                article = item.article
                chunks = [replace(c, lang=article.lang or detect_language(c.text))
                          for c in chunk_text(article.doc_id, article.text, max_words=chunking.max_words,
                                              overlap=chunking.overlap)]
                count = len(chunks)
                self._part("new", len(self.new_chunks), len(self.new_chunks) + count)
                self.new_chunks.extend(chunks)
                self.docs.append(DocEntry(article.doc_id, article.document, article.fingerprint, row, count,
                                          DocNews.of(article.document, article.text)))
                self.new_text[article.doc_id] = article.text
            row += count
        self.n = row
        self.new_sha = [chunk_sha256(c.text) for c in self.new_chunks]
        self.source = self._reuse()   # per new chunk: the live row whose vector it reuses, or -1
        self.texts_to_embed = len({s for s, r in zip(self.new_sha, self.source.tolist()) if r < 0})
        self.sha = self._stack(lambda a, b: live.chunk_sha256[a:b],
                               lambda a, b: np.frombuffer(b"".join(self.new_sha[a:b]), np.uint8).reshape(-1, 32),
                               np.empty((self.n, 32), np.uint8))
        self._map_rows()

    def _kept_news(self, item: Keep, first: int, count: int) -> DocNews:
        stored = self.live.news
        if stored is not None and item.record is None:
            return stored.doc(item.doc)
        record = item.record or self.live.docs[item.doc]
        signature = (np.array(stored.signatures[item.doc]) if stored is not None
                     else wire.signature(self._live_text(first, count)))
        return DocNews.of(record, "", signature)

    def bad_dates(self) -> tuple[tuple[str, str], ...]:
        """The new and changed articles that give a date which cannot be read: (doc_id, date)."""
        return tuple((d.doc_id, d.record.date) for d in self.docs
                     if isinstance(d.record, Document) and d.record.date and d.news.days == (0, 0))

    def text_of(self, doc_id: str) -> str:
        """An article's text: a new one's as read, a kept one's put together from its live chunks."""
        if doc_id in self.new_text:
            return self.new_text[doc_id]
        return self._live_text(*self.live_text[doc_id])

    def _live_text(self, first: int, count: int) -> str:
        text = ""
        for chunk in sorted((self.live.chunks[r] for r in range(first, first + count)), key=lambda c: c.start):
            text = text.ljust(chunk.start) + chunk.text[max(len(text) - chunk.start, 0):]
        return text

    def _part(self, kind: str, a: int, b: int) -> None:
        if self.parts and self.parts[-1][0] == kind and self.parts[-1][2] == a:
            self.parts[-1] = (kind, self.parts[-1][1], b)
        elif b > a:
            self.parts.append((kind, a, b))

    def _stack(self, old, new, out: np.ndarray) -> np.ndarray:
        """`out` filled part by part with old(a, b) or new(a, b)."""
        row = 0
        for kind, a, b in self.parts:
            out[row:row + b - a] = old(a, b) if kind == "old" else new(a, b)
            row += b - a
        return out

    def _reuse(self) -> np.ndarray:
        source = np.full(len(self.new_chunks), -1, np.int64)
        if self.live is None or not self.new_chunks:
            return source
        # 8 bytes of every live checksum first (one vectorised pass), then the candidates in full.
        keys = np.ascontiguousarray(self.live.chunk_sha256[:, :8]).view("<u8").ravel()
        probe = np.frombuffer(b"".join(s[:8] for s in self.new_sha), "<u8")
        found: dict[bytes, int] = {}
        for r in np.flatnonzero(np.isin(keys, probe)).tolist():
            found.setdefault(bytes(self.live.chunk_sha256[r]), r)
        source[:] = [found.get(s, -1) for s in self.new_sha]
        return source

    def _map_rows(self) -> None:
        """row_of: live row -> new row (-1: gone); new_rows: the row of each new chunk;
        node_needed: the new chunks an HNSW graph must insert. A new chunk that reuses a live
        row's vector takes that row's place when nothing else did (so a changed article's
        unchanged chunks keep their graph nodes)."""
        self.new_rows = np.empty(len(self.new_chunks), np.int64)
        self.node_needed = np.ones(len(self.new_chunks), bool)
        self.row_of = np.full(len(self.live.chunks) if self.live is not None else 0, -1, np.int64)
        row = 0
        for kind, a, b in self.parts:
            (self.row_of if kind == "old" else self.new_rows)[a:b] = np.arange(row, row + b - a)
            row += b - a
        for j, r in enumerate(self.source.tolist()):
            if r >= 0 and self.row_of[r] < 0:
                self.row_of[r], self.node_needed[j] = self.new_rows[j], False
        self.removed = int(np.count_nonzero(self.row_of < 0))

    def documents(self) -> dict[str, int]:
        """Documents added, changed (text or record), removed, unchanged, and kept (unreadable now)."""
        keep = [i for i in self.items if isinstance(i, Keep)]
        new_ids = [i.article.doc_id for i in self.items if isinstance(i, New)]
        replaced = sum(doc_id in self.old_ids for doc_id in new_ids)
        relabelled = sum(i.record is not None for i in keep)
        kept = sum(i.kept for i in keep)
        return {"added": len(new_ids) - replaced, "changed": replaced + relabelled,
                "removed": len(self.old_ids) - len(keep) - replaced, "unchanged": len(keep) - relabelled - kept,
                "kept": kept}

    def counts(self) -> dict[str, int]:
        """Chunks embedded, reused (vector from the live index), removed, in all, and analysed."""
        reused = int(np.count_nonzero(self.source >= 0))
        old = self.n - len(self.new_chunks)
        again = old if self.live is not None and self.live.terms is None else 0
        return {"embedded": len(self.new_chunks) - reused, "reused": old + reused, "removed": self.removed,
                "total": self.n, "analysed": len(self.new_chunks) + again}

    def unchanged(self) -> bool:
        """Whether these rows and documents are exactly the live generation's."""
        return (self.live is not None and not self.new_chunks and not self.removed and self.live.terms is not None
                and self.live.news is not None
                and len(self.docs) == len(self.live.docs) and self.parts in ([], [("old", 0, self.n)])
                and all(i.record is None for i in self.items))

    def vectors(self, embedder: Embedder | None, progress: bool) -> np.ndarray:
        """Every row's vector: copied from the live index, or embedded (each distinct text once)."""
        todo: dict[bytes, int] = {}
        texts = []
        for chunk, sha, r in zip(self.new_chunks, self.new_sha, self.source.tolist()):
            if r < 0 and sha not in todo:
                todo[sha] = len(texts)
                texts.append(chunk.text)
        dim = embedder.dim if embedder is not None else self.live.vectors.shape[1]
        embedded = embed_texts(embedder, texts, progress) if texts else np.zeros((0, dim), np.float32)
        if len(texts) == len(self.new_chunks) == self.n:  # a build: every row embedded once, in order
            return embedded
        out = np.empty((self.n, dim), np.float32)
        row = 0
        for kind, a, b in self.parts:
            if kind == "old":
                out[row:row + b - a] = self.live.vectors[a:b]
            row += b - a
        reused = self.source >= 0
        out[self.new_rows[reused]] = self.live.vectors[self.source[reused]] if reused.any() else 0
        fresh = np.array([todo.get(sha, -1) for sha in self.new_sha], np.int64)[~reused]
        out[self.new_rows[~reused]] = embedded[fresh]
        return out

    def sentences_missing(self) -> list[str]:
        """The distinct sentences of the new rows the live generation has no stored vector of: those
        of new chunks, or of every chunk when the live index kept none."""
        kept = self.live.sentences if self.live is not None else None
        if kept is None:
            old = (self.live.chunks[i].text for kind, a, b in self.parts if kind == "old" for i in range(a, b))
            return distinct_sentences([*old, *(c.text for c in self.new_chunks)])
        return kept.missing(c.text for c in self.new_chunks)

    def sentences(self, embedder: Embedder | None, missing: list[str], progress: bool) -> SentenceStore:
        """The sentence vectors of the new generation: the live store plus `missing` embedded."""
        kept = self.live.sentences if self.live is not None else None
        if not missing:
            return kept if kept is not None else SentenceStore.empty(embedder.dim if embedder else self.live.vectors.shape[1])
        new = SentenceStore.of(missing, embed_texts(embedder, missing, progress, unit="sentence"))
        return kept.merged(new) if kept is not None else new

    def terms(self) -> TermCounts:
        """Every row's term counts: copied from the live index, or analysed (all of them, when the
        live index analysed its text another way)."""
        reuse = self.live is not None and self.live.terms is not None
        numbers = {term: i for i, term in enumerate(self.live.terms.vocabulary)} if reuse else {}
        analyzer = Analyzer()
        new = TermCounts.count((analyzer.analyze(c.text, c.lang) for c in self.new_chunks), numbers)
        old, offset, parts = self.live.terms if reuse else None, 0, []
        if not reuse and self.live is not None:
            runs = [(a, b) for kind, a, b in self.parts if kind == "old"]
            old = TermCounts.count((analyzer.analyze(c.text, c.lang) for a, b in runs for c in self.live.chunks[a:b]),
                                   numbers)
        for kind, a, b in self.parts:
            if kind == "new":
                parts.append((new, a, b))
            elif reuse:
                parts.append((old, a, b))
            else:  # the live rows analysed again, in the order of their runs
                parts.append((old, offset, offset + b - a))
                offset += b - a
        return TermCounts.join(parts, list(numbers))

    def records(self) -> Iterable:
        """The chunk records: live rows copied as their JSONL lines, new chunks as Chunks."""
        for kind, a, b in self.parts:
            if kind == "old":
                yield self.live.chunks.raw_lines(a, b)
            else:
                yield from self.new_chunks[a:b]


def embed_texts(embedder: Embedder, texts: list[str], progress: bool, *, unit: str = "chunk") -> np.ndarray:
    """Embed passages in groups of EMBED_GROUP, longest first (see EMBED_GROUP).

    Returns:
        One row per text, in the order given.
    """
    order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
    out = np.empty((len(texts), embedder.dim), np.float32)
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(texts), unit=unit, desc=f"embedding {unit}s")
    for g in range(0, len(order), EMBED_GROUP):
        group = order[g:g + EMBED_GROUP]
        out[group] = embedder.encode_passages([texts[i] for i in group])
        if bar is not None:
            bar.update(len(group))
    if bar is not None:
        bar.close()
    return out
