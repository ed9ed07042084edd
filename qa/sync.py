"""Bring an index in line with its corpus without embedding again what it already holds.

A sync reads the corpus (an article is a .txt/.md file or one JSONL line), compares each
article's fingerprint with the live generation's, and writes a new generation atomically, as a
build does (`index.write_generation`). A file whose checksum the live index recorded is not
parsed again: its articles are the indexed ones.

- an unchanged article keeps its rows: chunk records, vectors and term counts are copied (its
  Document record is replaced when only that changed: title, date, source);
- a new or changed article is chunked; a chunk whose text (sha256) the live index holds reuses
  that vector bit for bit, the others are embedded; their terms are analysed;
- BM25 is weighed again from the term counts of every chunk, exactly as a fresh build weighs it
  (idf and average length change with every article; BENCHMARKS.md, "Sync");
- a flat dense index is rebuilt from the vectors (cheap); an HNSW graph is kept: new vectors are
  inserted and removed chunks' nodes masked, until masked nodes pass dense.MAX_MASKED_SHARE.

Vectors are reused only while the model identity and the chunking settings equal the live
index's; otherwise every chunk is embedded again, and the report says why (`rebuilt`). A build is
a sync that reuses nothing. The index's write lock is held from reading the live generation to
swapping in the new one, so concurrent syncs, adds and removes never undo each other.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import store
from .chunking import ChunkSettings
from .corpus import Corpus, CorpusWarning, as_list, scan_corpus
from .dense import HNSW_EF_CONSTRUCTION, HNSW_EF_SEARCH, HNSW_M, HNSW_STORAGE, HNSW_THRESHOLD, KINDS, MAX_MASKED_SHARE, DenseIndex
from .embedding import Embedder, load_embedder
from .errors import IndexCorruptError, IndexFormatError, IndexMissingError, QAError, RebuildWarning, SyncError
from .index import LiveRows, has_sentences, open_rows, write_generation
from .lexical import Analyzer
from .rows import Keep, New, NewRows


@dataclass(frozen=True)
class SyncReport:
    """What a sync, add or remove did (`qa sync --json` prints `to_dict()`)."""

    documents: dict[str, int]   # added, changed, removed, unchanged, kept (unreadable now, kept as they were)
    chunks: dict[str, int]      # embedded, reused, removed, total, analysed
    seconds: float
    index: str                  # the generation now live
    rebuilt: str | None = None  # why no vector could be reused (a full rebuild), else None
    dense: str = ""             # what happened to the dense index
    written: bool = True        # False: the index was up to date, nothing was written
    # Articles read by this sync whose date could not be read: (doc_id, the date as given).
    bad_dates: tuple[tuple[str, str], ...] = ()
    sentences: dict[str, int] | None = None   # stored sentence vectors: embedded, total (None: none kept)

    def to_dict(self) -> dict:
        return {"documents": dict(self.documents), "chunks": dict(self.chunks), "seconds": round(self.seconds, 3),
                "index": self.index, "rebuilt": self.rebuilt, "dense": self.dense, "written": self.written,
                "bad_dates": [{"doc_id": d, "date": v} for d, v in self.bad_dates], "sentences": self.sentences}

    def summary(self) -> str:
        """One line for people."""
        d, c = self.documents, self.chunks
        if not self.written:
            return f"up to date: {d['unchanged']} documents, {c['total']} chunks ({self.seconds:.1f} s)"
        kept = f", {d['kept']} kept (unreadable now)" if d["kept"] else ""
        why = f"; full rebuild: {self.rebuilt}" if self.rebuilt else ""
        dates = ""
        if self.bad_dates:
            shown = ", ".join(f"{d} ({v!r})" for d, v in self.bad_dates[:5])
            dates = (f"; {len(self.bad_dates)} with a date that cannot be read, left out of date filters: {shown}"
                     + (" …" if len(self.bad_dates) > 5 else ""))
        sentences = (f"; sentence vectors: {self.sentences['embedded']} embedded, {self.sentences['total']} in all"
                     if self.sentences else "")
        return (f"documents: {d['added']} added, {d['changed']} changed, {d['removed']} removed, {d['unchanged']} "
                f"unchanged{kept}; chunks: {c['embedded']} embedded, {c['reused']} reused, {c['removed']} removed, "
                f"{c['total']} in all{sentences} ({self.seconds:.1f} s){why}{dates}")


class _Live:
    """The live generation as a sync sees it: its rows and documents, or None and why they
    cannot be reused."""

    def __init__(self, index_dir: Path, *, rebuild: bool, model: str | None, embedder: Embedder | None,
                 chunking: ChunkSettings | None):
        self.name: str | None = None
        self.model = model  # the model to embed with: as asked, else the live index's
        self.why_not: str | None = "asked to rebuild" if rebuild else None
        self.dense_request = "auto"
        self.sentences = False  # the live index keeps sentence vectors (sentences.py)
        try:
            rows = open_rows(index_dir)
        except IndexMissingError:
            rows, self.why_not = None, self.why_not or "no index yet"
        except (IndexCorruptError, IndexFormatError) as exc:
            rows, self.why_not = None, self.why_not or f"the live index cannot be reused ({exc})"
            self.sentences = _keeps_sentences(index_dir)
        if rows is not None:
            recorded = rows.manifest
            self.sentences = has_sentences(recorded)
            self.name = rows.folder.name
            self.model = model or recorded["model"]["name"]
            self.dense_request = recorded.get("derived", {}).get("dense", "auto")
            chunking = chunking or ChunkSettings(**recorded["chunking"])
            wanted = embedder.identity.to_dict() if embedder else {"name": model} if model else None
            if chunking.to_dict() != recorded["chunking"]:
                self.why_not = self.why_not or f"chunking changed from {recorded['chunking']} to {chunking.to_dict()}"
            elif wanted and (wanted != recorded["model"] if embedder else model != recorded["model"]["name"]):
                self.why_not = self.why_not or f"model changed from {recorded['model']} to {wanted}"
        self.chunking = chunking or ChunkSettings()
        self.rows: LiveRows | None = None
        self.docs: list = []
        if rows is not None and self.why_not is None:
            self.rows, self.docs = rows, rows.docs.all()
        self.ids = [d.doc_id for d in self.docs]
        self.number = {doc_id: i for i, doc_id in enumerate(self.ids)}

    def refuse(self, why: str) -> None:
        """Reuse nothing after all (the loaded model is not the one the index was built with)."""
        self.why_not, self.rows, self.docs, self.ids, self.number = why, None, [], [], {}
        self.warn()

    def warn(self) -> None:
        """Say before the slow part that an existing index is not reused (a rebuild can take hours)."""
        if self.name is not None and self.why_not is not None and self.why_not != "asked to rebuild":
            warnings.warn(f"the index cannot be reused, so every chunk is embedded again: {self.why_not}",
                          RebuildWarning)

    def known_files(self) -> dict[str, tuple[str, list[str]]] | None:
        """path -> (sha256, doc ids) of the recorded corpus files a sync need not parse again."""
        if self.rows is None or self.rows.doc_rows is None:
            return None
        ids: dict[str, list[str]] = {}
        for i in self.in_row_order():
            ids.setdefault(self.docs[i].source, []).append(self.ids[i])
        return {f["path"]: (f["sha256"], ids.get(f["path"], [])) for f in self.rows.manifest["corpus"].get("files", [])
                if not f.get("skipped") and not f.get("edited") and f["path"] in ids}

    def edited(self, doc_ids: Iterable[str]) -> dict:
        """The live corpus record, with the files these articles came from marked "edited": an
        add or remove changed what the index holds of them, so a sync must read them again."""
        sources = {self.docs[self.number[d]].source for d in doc_ids if d in self.number}
        record = self.rows.manifest["corpus"]
        return {**record, "files": [{**f, "edited": True} if f["path"] in sources else f for f in record.get("files", [])]}

    def in_row_order(self) -> list[int]:
        """The live documents (rows of its docs table) in the order of their chunks."""
        if self.rows is None or self.rows.doc_rows is None:
            return []
        return np.argsort(self.rows.doc_rows[:, 0], kind="stable").tolist()

    def item(self, article) -> Keep | New:
        """What to do with an article of the corpus."""
        i = self.number.get(article.doc_id)
        if i is None or self.rows.doc_sha256 is None or bytes(self.rows.doc_sha256[i]) != article.fingerprint:
            return New(article)
        return Keep(i) if self.docs[i] == article.document else Keep(i, record=article.document)


def sync(paths: Iterable[str | Path], index_dir: str | Path = "index", *, model: str | None = None,
         embedder: Embedder | None = None, chunking: ChunkSettings | None = None, dense: str | None = None,
         skip_bad: bool = False, progress: bool = False, rebuild: bool = False,
         sentence_vectors: bool | None = None) -> SyncReport:
    """Make the index hold exactly the articles under `paths`, reusing what it can.

    Args:
        paths: files or folders with .txt/.md/.jsonl news texts.
        index_dir: the index folder (created when missing).
        model: the embedding model (default: the index's, or the bundled one for a new index);
            another model than the index's embeds everything again.
        embedder: an already loaded embedder (overrides `model`); loaded only when needed.
        chunking: chunk settings (default: the index's); other settings chunk and embed everything again.
        dense: "flat", "hnsw" or "auto" (default: what the index was made with, else "auto").
        skip_bad: skip unreadable files and lines with a warning; the indexed articles of a file
            that cannot be read completely are kept as they were (`documents["kept"]`).
        progress: show a progress bar while embedding.
        rebuild: reuse nothing (what `QA.build` does).
        sentence_vectors: keep every sentence's vector, so answers need no embedding for their
            highlights (sentences.py); default: as the index does (a new index: no).

    Returns:
        The report; `QA.load(index_dir)` serves the result.

    Raises:
        CorpusError: a corpus file is unreadable (without skip_bad), or there is no article.
        ModelError: the model is needed and cannot be loaded.
        IndexWriteError: the new generation cannot be written (the live index is unchanged).
    """
    start = time.perf_counter()
    paths = [Path(p) for p in as_list(paths)]
    if dense not in (None, *KINDS):
        raise ValueError(f"dense must be one of {', '.join(KINDS)}, got {dense!r}")
    with store.locked(index_dir):
        live = _Live(Path(index_dir), rebuild=rebuild, model=model, embedder=embedder, chunking=chunking)
        live.warn()
        corpus = scan_corpus(paths, skip_bad=skip_bad, known=live.known_files())
        scanned = [corpus]

        def plan(live: _Live) -> list[Keep | New]:
            if live.rows is None and scanned[0].unread:  # nothing to reuse after all: read everything
                scanned[0] = scan_corpus(paths, skip_bad=skip_bad)
            return _plan(scanned[0], live)

        record = {"paths": [str(p) for p in paths], "files": corpus.files}
        report = _update(Path(index_dir), live, plan, record=record, by="build" if rebuild else "sync",
                         embedder=embedder, dense=dense, sentence_vectors=sentence_vectors, progress=progress,
                         start=start)
    if corpus.skipped and report.rebuilt and not rebuild and live.name is not None:
        warnings.warn("the index was rebuilt, so indexed articles of files that could not be read were not kept: "
                      f"{', '.join(sorted(corpus.skipped)[:5])}", CorpusWarning)
    return report


def _plan(corpus: Corpus, live: _Live) -> list[Keep | New]:
    """The articles of the corpus in its order, as Keep or New; then those of files that cannot
    be read now (skip_bad), kept as they were."""
    by_file: dict[str, list] = {}
    for article in corpus.articles:
        by_file.setdefault(article.source, []).append(article)
    unread: dict[str, list[int]] = {}
    if corpus.unread or corpus.skipped:
        for i in live.in_row_order():
            unread.setdefault(live.docs[i].source, []).append(i)
    items: list[Keep | New] = []
    for f in corpus.files:
        if f["path"] in corpus.unread:
            items += [Keep(i) for i in unread.get(f["path"], [])]
        else:
            items += [live.item(a) for a in by_file.pop(f["path"], [])]
    items += [live.item(a) for rest in by_file.values() for a in rest]  # (none: every file is listed)
    present = {live.ids[i.doc] if isinstance(i, Keep) else i.article.doc_id for i in items}
    items += [Keep(i, kept=True) for path in sorted(corpus.skipped) for i in unread.get(path, [])
              if live.ids[i] not in present]
    return items


def add(files: Iterable[str | Path], index_dir: str | Path = "index", *, embedder: Embedder | None = None,
        skip_bad: bool = False, progress: bool = False) -> SyncReport:
    """Add the articles of these files to the index, replacing articles with the same ids.

    For corpora that are not one folder to re-scan; `sync` of a folder later makes the index
    equal to that folder again (articles added here and not in it are removed).

    Raises:
        CorpusError: a file is unreadable (without skip_bad).
        SyncError: the index was made with other settings or by an older version: sync it.
        IndexWriteError: the new generation cannot be written (the live index is unchanged).
    """
    start = time.perf_counter()
    files = [Path(p) for p in as_list(files)]
    with store.locked(index_dir):
        live = _editable(Path(index_dir), embedder)
        corpus = scan_corpus(files, skip_bad=skip_bad)

        def plan(live: _Live) -> list[Keep | New]:
            added = {a.doc_id: a for a in corpus.articles}
            items = [live.item(added.pop(live.ids[i])) if live.ids[i] in added else Keep(i)
                     for i in live.in_row_order()]
            return items + [New(a) for a in added.values()]

        replaced = [a.doc_id for a in corpus.articles if live.item(a) != Keep(live.number.get(a.doc_id, -1))]
        record = live.edited(replaced) if live.rows else {"paths": [str(p) for p in files], "files": corpus.files}
        return _update(Path(index_dir), live, plan, record=record, by="add", embedder=embedder, progress=progress,
                       start=start, files=corpus.files)


def remove(doc_ids: Iterable[str], index_dir: str | Path = "index") -> SyncReport:
    """Remove these articles (by doc_id) from the index.

    Raises:
        SyncError: an id is not in the index (nothing is removed), or the index cannot be edited.
        IndexWriteError: the new generation cannot be written (the live index is unchanged).
    """
    start = time.perf_counter()
    doc_ids = list(dict.fromkeys(as_list(doc_ids)))
    with store.locked(index_dir):
        live = _editable(Path(index_dir), None, must_exist=True)
        unknown = sorted(set(doc_ids) - set(live.ids))
        if unknown:
            raise SyncError(f"no article with id {', '.join(map(repr, unknown[:5]))} in the index in {index_dir}; "
                            "nothing was removed (`qa info` shows what is there)")
        gone = set(doc_ids)

        def plan(live: _Live) -> list[Keep | New]:
            return [Keep(i) for i in live.in_row_order() if live.ids[i] not in gone]

        return _update(Path(index_dir), live, plan, record=live.edited(doc_ids), by="remove", start=start,
                       ids=doc_ids[:100], removed_ids=len(doc_ids))


def _editable(index_dir: Path, embedder: Embedder | None, *, must_exist: bool = False) -> _Live:
    live = _Live(index_dir, rebuild=False, model=None, embedder=embedder, chunking=None)
    if live.rows is None and (must_exist or live.name is not None):
        raise SyncError(f"the index in {index_dir} cannot be edited ({live.why_not}); sync it with its corpus first "
                        f"(`qa sync PATH --index {index_dir}`) or rebuild it with `qa build`")
    if live.rows is not None and live.rows.doc_rows is None:
        raise SyncError(f"the index in {index_dir} was written by an older version; sync it with its corpus once "
                        f"(`qa sync PATH --index {index_dir}`: no vector is embedded again)")
    return live


def _update(index_dir: Path, live: _Live, plan: Callable[[_Live], list], *, record: dict, by: str, start: float,
            embedder: Embedder | None = None, dense: str | None = None, sentence_vectors: bool | None = None,
            progress: bool = False, **details) -> SyncReport:
    """Plan, embed what is new, and write the generation (or nothing, when nothing changed)."""
    keep_sentences = live.sentences if sentence_vectors is None else sentence_vectors
    rows = NewRows(plan(live), live.rows, live.ids, live.chunking)
    missing = rows.sentences_missing() if keep_sentences else []
    if (rows.texts_to_embed or missing) and embedder is None:
        embedder = load_embedder(live.model)
        if live.rows is not None and embedder.identity.to_dict() != live.rows.manifest["model"]:
            live.refuse(f"model changed from {live.rows.manifest['model']} to {embedder.identity.to_dict()}")
            rows = NewRows(plan(live), None, [], live.chunking)
            missing = rows.sentences_missing() if keep_sentences else []
    request = dense or live.dense_request
    documents, chunks = rows.documents(), rows.counts()
    if (rows.unchanged() and record == live.rows.manifest["corpus"] and keep_sentences == (live.rows.sentences is not None)
            and request == live.dense_request and _kind(request, rows.n) == live.rows.manifest["dense"]["kind"]):
        kept = live.rows.sentences
        store.tidy(index_dir)  # what a sync killed after its swap left behind
        return SyncReport(documents, chunks, time.perf_counter() - start, str(live.rows.folder), dense="unchanged",
                          written=False, sentences={"embedded": 0, "total": len(kept)} if kept is not None else None)
    vectors = rows.vectors(embedder, progress)
    sentences = rows.sentences(embedder, missing, progress) if keep_sentences else None
    terms = rows.terms().renumbered()
    dense_index, dense_note = _dense(live.rows, request, vectors, rows)
    folder = write_generation(
        index_dir, chunks=rows.records(), docs=rows.docs, vectors=vectors, chunk_sha256=rows.sha, terms=terms,
        dense=dense_index, bm25=terms.bm25(), model=embedder.identity.to_dict() if embedder else live.rows.manifest["model"],
        chunking=live.chunking, analyzer=Analyzer(), corpus=record, text_of=rows.text_of,
        derived={"from": live.name, "by": by, "dense": request, **details, "documents": documents, "chunks": chunks},
        sentences=sentences,
    )
    return SyncReport(documents, chunks, time.perf_counter() - start, str(folder), live.why_not, dense_note,
                      bad_dates=rows.bad_dates(),
                      sentences={"embedded": len(missing), "total": len(sentences)} if sentences is not None else None)


def _keeps_sentences(index_dir: Path) -> bool:
    """Whether a live index that cannot be reused kept sentence vectors, as its manifest says (if
    that can be read): a sync that embeds everything again keeps them too."""
    try:
        return has_sentences(store.open_index(index_dir, verify=False)[1])
    except QAError:
        return False


def _kind(request: str, n: int) -> str:
    return ("hnsw" if n > HNSW_THRESHOLD else "flat") if request == "auto" else request


_GRAPH = {"M": HNSW_M, "efConstruction": HNSW_EF_CONSTRUCTION, "efSearch": HNSW_EF_SEARCH, "storage": HNSW_STORAGE}


def _dense(live: LiveRows | None, request: str, vectors: np.ndarray, rows: NewRows) -> tuple[DenseIndex, str]:
    """The dense index of the new rows: the live HNSW graph grown, or one built from the vectors."""
    kind = _kind(request, len(vectors))
    recorded = live.manifest["dense"] if live is not None else {}
    if kind == "hnsw" and recorded.get("kind") == "hnsw" and recorded.get("params") == _GRAPH:
        insert = rows.new_rows[rows.node_needed]
        masked = recorded.get("masked", 0) + rows.removed
        nodes = recorded["count"] + recorded.get("masked", 0) + len(insert)
        if masked > MAX_MASKED_SHARE * nodes:
            return DenseIndex.build(vectors, kind=kind), f"hnsw built again ({masked} of {nodes} nodes would be masked)"
        try:
            graph = live.dense().updated(rows.row_of, vectors[insert], insert)
        except IndexCorruptError as exc:  # the vectors are intact (checksummed): build it from them
            return DenseIndex.build(vectors, kind=kind), f"hnsw built again (the live graph cannot be read: {exc})"
        return graph, f"hnsw graph kept: {len(insert)} nodes inserted, {graph.masked} masked"
    return DenseIndex.build(vectors, kind=kind), f"{kind} built"
