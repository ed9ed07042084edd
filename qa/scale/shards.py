"""A sharded index: date-range shards, each a normal index folder, plus what makes them one index.

Layout of a shard root (`qa build PATH --index ROOT --shards N`)::

    ROOT/shards.json                 written last: the shards, their date ranges and live generations,
                                     the collection's BM25 statistics, the global wire-copy clusters
    ROOT/shard-00/ … shard-NN/       normal index folders (CURRENT, generations; `QA.load` serves one
                                     alone, with its own BM25 statistics)
    ROOT/bm25-df-shard-00-<gen>.npy  the collection's document frequency of each term of that shard
                                     generation's BM25 vocabulary (int64, aligned with its columns)
    ROOT/rows-shard-00-<gen>.npy     the row each of its chunks has in one index over the corpus
                                     (int64, increasing: a shard keeps the corpus order)

Articles go to shards by date: shard i holds the articles whose first day lies in its range; the
ranges are cut at build time so that shards hold about as much text each, the first range is
open to the past and also takes the undated articles, and the last is open to the future, so new
days go to the newest shard. A shard is written by the sync machinery (a sync whose plan is the
shard's articles), so a sync of the root reuses every unchanged chunk's vector, shard by shard.

BM25's idf, average length and idf floor depend on the whole collection: a shard's own index
(written by the sync) uses its own, and a shard served as part of the root (`searcher.py`) is
weighed again from its stored term counts with the collection's statistics recorded here, so its
scores equal those of one index over every article. The wire-copy clusters are found over all
articles' signatures (wire.clusters, as one index finds them), since copies of a story may lie on
both sides of a shard boundary. And each chunk's row in one index over the corpus is recorded, so
that the router orders exactly equal scores (identical paragraphs of wire copies) as one index
does, by row, and cuts each leg's top-k among them at the same place.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import numpy as np

from .. import store, wire
from ..chunking import ChunkSettings
from ..corpus import Article, as_list, scan_corpus
from ..embedding import Embedder, load_embedder
from ..errors import IndexCorruptError, IndexFormatError, IndexMissingError, QAError, SyncError
from ..index import open_rows
from ..lexical import BM25Index, Collection, idf
from ..news import days_of, wire_copies
from ..rows import Keep, New
from ..sync import SyncReport, _Live, _update
from ..terms import TermCounts

LAYOUT_FILE = "shards.json"
FORMAT = 1
_DF_PREFIX, _ROWS_PREFIX = "bm25-df-", "rows-"


@dataclass(frozen=True)
class Shard:
    """One shard of a layout: its folder name, the first days it holds (None: open), its live
    generation when the layout was written, and its size."""

    name: str
    since: date | None
    until: date | None
    generation: str = ""
    documents: int = 0
    chunks: int = 0

    def holds(self, day: int) -> bool:
        """Whether an article whose first day is this ordinal (0: undated) belongs here."""
        if day == 0:
            return self.since is None
        return ((self.since is None or day >= self.since.toordinal())
                and (self.until is None or day <= self.until.toordinal()))

    def label(self) -> str:
        """The shard's date range as people read it ("2022-05-01 .. 2022-08-31", "… .. 2022-04-30")."""
        return f"{self.since or '…'} .. {self.until or '…'}"

    def to_dict(self) -> dict:
        return {"name": self.name, "since": self.since and self.since.isoformat(),
                "until": self.until and self.until.isoformat(), "generation": self.generation,
                "documents": self.documents, "chunks": self.chunks}


@dataclass(frozen=True)
class Layout:
    """A shard root as `shards.json` describes it."""

    root: Path
    shards: tuple[Shard, ...]
    model: dict = field(default_factory=dict)
    bm25: dict = field(default_factory=dict)          # n_docs, total_length, average_idf
    # doc_id -> [representative doc_id, shard number, {"date", "publisher", "url"}]: the members of
    # every wire cluster, with what a citation says of its other copies
    wire: dict = field(default_factory=dict)

    @classmethod
    def load(cls, root: str | Path) -> Layout:
        """Read ROOT/shards.json.

        Raises:
            IndexMissingError: there is none (not a shard root).
            IndexCorruptError: it cannot be read.
        """
        root = Path(root)
        try:
            data = json.loads((root / LAYOUT_FILE).read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise IndexMissingError(f"{root} holds no shards ({LAYOUT_FILE} is missing); build them with "
                                    f"`qa build PATH --index {root} --shards N`") from None
        except (OSError, ValueError) as exc:
            raise IndexCorruptError(f"cannot read {root / LAYOUT_FILE} ({exc}); build the shards again") from exc
        if data.get("format") != FORMAT:
            raise IndexFormatError(f"{root / LAYOUT_FILE} has format {data.get('format')!r}, this version reads "
                                   f"{FORMAT}; build the shards again with `qa build --shards`")
        try:
            shards = tuple(Shard(s["name"], _day(s["since"]), _day(s["until"]), s.get("generation", ""),
                                 s.get("documents", 0), s.get("chunks", 0)) for s in data["shards"])
            return cls(root, shards, data.get("model", {}), data.get("bm25", {}), data.get("wire", {}))
        except (KeyError, TypeError, ValueError) as exc:
            raise IndexCorruptError(f"{root / LAYOUT_FILE} is malformed ({exc}); build the shards again") from exc

    def folder(self, i: int) -> Path:
        return self.root / self.shards[i].name

    def shard_of(self, day: int) -> int:
        """The shard an article with this first day (ordinal, 0: undated) goes to."""
        for i, shard in enumerate(self.shards):
            if shard.holds(day):
                return i
        raise ValueError(f"no shard holds day {day}")  # (the ranges cover every day)

    def collection(self, i: int, generation: str, terms: list[str]) -> Collection:
        """The collection's BM25 statistics for shard i's live generation and its vocabulary.

        Raises:
            IndexFormatError: the statistics were computed for another generation of the shard
                (it was synced alone since): sync the root again.
            IndexCorruptError: the statistics cannot be read or do not fit the vocabulary.
        """
        df = self._array(i, generation, _DF_PREFIX, len(terms))
        b = self.bm25
        return Collection(int(b["n_docs"]), int(b["total_length"]), float(b["average_idf"]), df)

    def rows(self, i: int, generation: str, n: int) -> np.ndarray:
        """The row of each chunk of shard i's live generation in one index over the corpus
        (errors as for `collection`)."""
        return self._array(i, generation, _ROWS_PREFIX, n)

    def _array(self, i: int, generation: str, prefix: str, n: int) -> np.ndarray:
        shard = self.shards[i]
        if generation != shard.generation:
            raise IndexFormatError(
                f"the collection statistics in {self.root / LAYOUT_FILE} were computed for generation "
                f"{shard.generation!r} of {shard.name}, which now serves {generation!r}; sync the shards together "
                f"(`qa sync PATH --index {self.root}`) so BM25 scores stay those of one index")
        path = self.root / _name(prefix, shard.name, generation)
        try:
            array = np.load(path, allow_pickle=False)
        except (OSError, ValueError, EOFError) as exc:
            raise IndexCorruptError(f"cannot read {path} ({exc}); sync the shards again") from exc
        if array.shape != (n,) or array.dtype != np.int64:
            raise IndexCorruptError(f"{path} does not fit {shard.name}; sync the shards again")
        return array

    def members(self) -> dict[str, tuple[str, ...]]:
        """Wire clusters: representative doc_id -> every member's doc_id, sorted (documents order)."""
        out: dict[str, list[str]] = {}
        for doc_id, (rep, *_) in self.wire.items():
            out.setdefault(rep, []).append(doc_id)
        return {rep: tuple(sorted(m)) for rep, m in out.items()}


def is_shard_root(folder: str | Path) -> bool:
    return (Path(folder) / LAYOUT_FILE).is_file()


@dataclass(frozen=True)
class ShardsReport:
    """What a sharded build or sync did: one SyncReport per shard."""

    root: str
    shards: tuple[tuple[Shard, SyncReport], ...]
    seconds: float

    def to_dict(self) -> dict:
        return {"index": self.root, "seconds": round(self.seconds, 3),
                "shards": [{**s.to_dict(), "report": r.to_dict()} for s, r in self.shards]}

    def summary(self) -> str:
        lines = [f"{len(self.shards)} shards ({self.seconds:.1f} s)"]
        lines += [f"{s.name} [{s.label()}]: {r.summary()}" for s, r in self.shards]
        return "\n".join(lines)


def date_ranges(articles: list[Article], n: int) -> list[Shard]:
    """Cut the articles' days into n ranges holding about as much text each (cuts fall between
    days; undated articles count for the first range).

    Raises:
        QAError: there are fewer distinct days (plus one for undated articles) than shards.
    """
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"the number of shards must be an integer >= 1, got {n!r}")
    weight: dict[int, int] = {}
    for a in articles:
        day = days_of(a.date)[0]
        weight[day] = weight.get(day, 0) + len(a.text) + 1
    days = sorted(weight)
    if len(days) < n:
        raise QAError(f"cannot cut {len(articles)} articles on {len(days)} distinct days into {n} date-range shards; "
                      "use fewer shards")
    total, seen, cuts = sum(weight.values()), 0, []
    for j, day in enumerate(days[:-1]):
        seen += weight[day]
        need = n - 1 - len(cuts)  # cuts still to make
        if need == 0:
            break
        # Cut after this day when the next share of the text is reached, or when every day left must start a shard.
        if seen >= total * (len(cuts) + 1) / n or len(days) - j - 1 == need:
            cuts.append(days[j + 1])
    starts = [None, *cuts]
    shards = []
    for i, start in enumerate(starts):
        end = starts[i + 1] - 1 if i + 1 < len(starts) else None
        since = date.fromordinal(start) if start else None
        until = date.fromordinal(end) if end else None
        shards.append(Shard(f"shard-{i:02d}", since, until))
    return shards


def sync_shards(paths: Iterable[str | Path], root: str | Path, *, shards: int | None = None,
                embedder: Embedder | None = None, model: str | None = None, chunking: ChunkSettings | None = None,
                dense: str | None = None, skip_bad: bool = False, progress: bool = False) -> ShardsReport:
    """Build (`shards` given) or sync (the root's own shards) a sharded index of the articles under `paths`.

    A build cuts new date ranges and writes every shard from scratch; a sync keeps the ranges,
    sends each article to the shard of its date (new days to the newest), syncs each shard
    (unchanged chunks keep their vectors) and writes the layout again: the collection's BM25
    statistics and the wire clusters over all shards.

    Args:
        shards: the number of shards to build (None: sync the existing ones).
        embedder: the embedder (e.g. ingest.ray_embedder's); default: `model`, loaded when needed.
        model, chunking, dense, skip_bad, progress: as for `QA.build` / `QA.sync`, per shard.

    Raises:
        IndexMissingError: a sync of a root without shards.
        CorpusError, ModelError, IndexWriteError: as for a sync; shards written before the error
            stay live, and the layout keeps describing the generations it was written for (the
            shard servers refuse the newer ones until the sync is repeated).
    """
    start = time.perf_counter()
    root = Path(root)
    paths = [Path(p) for p in as_list(paths)]
    with store.locked(root):
        if (root / store.CURRENT).exists():
            raise SyncError(f"{root} holds a single index; give the shards another folder (--index)")
        rebuild = shards is not None
        if rebuild:
            corpus = scan_corpus(paths, skip_bad=skip_bad)
            ranges = date_ranges(corpus.articles, shards)
            embedder = embedder or load_embedder(model)
        else:
            ranges = list(Layout.load(root).shards)
            corpus = scan_corpus(paths, skip_bad=skip_bad)
        layout = Layout(root, tuple(ranges))
        parts: list[list[Article]] = [[] for _ in ranges]
        for article in corpus.articles:
            parts[layout.shard_of(days_of(article.date)[0])].append(article)
        empty = [s.name for s, p in zip(ranges, parts) if not p]
        if empty:
            raise SyncError(f"no article falls in {', '.join(empty)}; build the shards again with fewer of them")
        reports = []
        for shard, articles in zip(ranges, parts):
            where = {"name": shard.name, "since": shard.to_dict()["since"], "until": shard.to_dict()["until"]}
            # Only the files its articles come from: a file of other days does not make a new generation here.
            sources = {a.source for a in articles}
            record = {"paths": [str(p) for p in paths], "files": [f for f in corpus.files if f["path"] in sources],
                      "shard": where}
            reports.append(_sync_shard(root / shard.name, articles, record, rebuild=rebuild, embedder=embedder,
                                       model=model, chunking=chunking, dense=dense, progress=progress))
        written = write_layout(root, ranges, {a.doc_id: a.text for a in corpus.articles},
                               [a.doc_id for a in corpus.articles])
        for old in root.glob("shard-*"):
            if old.is_dir() and old.name not in {s.name for s in ranges}:
                shutil.rmtree(old, ignore_errors=True)  # shards of an earlier build with more of them
    return ShardsReport(str(root), tuple(zip(written.shards, reports)), time.perf_counter() - start)


def _sync_shard(folder: Path, articles: list[Article], record: dict, *, rebuild: bool, embedder: Embedder | None,
                model: str | None, chunking: ChunkSettings | None, dense: str | None, progress: bool) -> SyncReport:
    """Sync one shard's index folder to exactly these articles (sync.py's machinery, with the
    shard's articles as the plan)."""
    start = time.perf_counter()
    with store.locked(folder):
        live = _Live(folder, rebuild=rebuild, model=model, embedder=embedder, chunking=chunking)
        live.warn()

        def plan(live: _Live) -> list[Keep | New]:
            return [live.item(a) for a in articles]

        return _update(folder, live, plan, record=record, by="build" if rebuild else "sync", embedder=embedder,
                       dense=dense or ("auto" if rebuild else None), progress=progress, start=start)


def write_layout(root: Path, ranges: list[Shard], texts: dict[str, str], order: list[str]) -> Layout:
    """Compute the collection's BM25 statistics, wire clusters and rows over the shards' live
    generations and write ROOT/shards.json (last, atomically) and the per-shard arrays.

    Args:
        texts: doc_id -> article text of every article, for the exact check of wire-copy candidates.
        order: the doc_ids in corpus order, the order of one index's rows.
    """
    shards, vocabularies, models = [], [], []
    total: dict[str, int] = {}
    n_docs = total_length = 0
    ids, signatures, days, sources, where, spans, records = [], [], [], [], [], [], []
    for number, shard in enumerate(ranges):
        rows = open_rows(root / shard.name)
        models.append(rows.manifest["model"])
        if rows.terms is None or rows.news is None:
            raise SyncError(f"{root / shard.name} was written by an older version; sync the shards again")
        terms: TermCounts = rows.terms
        df = np.bincount(terms.ids, minlength=len(terms.vocabulary)).astype(np.int64)
        for term, d in zip(terms.vocabulary, df.tolist()):
            total[term] = total.get(term, 0) + d
        vocabularies.append(terms.vocabulary)
        n_docs += len(terms)
        total_length += int(terms.tf.sum(dtype=np.int64))
        documents = rows.docs.all()
        records += documents
        docs = [d.doc_id for d in documents]
        ids += docs
        signatures.append(np.asarray(rows.news.signatures))
        days += np.asarray(rows.news.days)[:, 0].tolist()
        sources += np.asarray(rows.news.sources).tolist()
        where += [number] * len(docs)
        spans += [(int(a), int(b)) for a, b in np.asarray(rows.doc_rows).tolist()]
        shards.append(Shard(shard.name, shard.since, shard.until, rows.folder.name, len(docs), len(terms)))
    if any(m != models[0] for m in models):
        raise SyncError(f"the shards in {root} were embedded with different models; build them again together")
    average_idf = sum(idf(np.fromiter(total.values(), np.int64, len(total)), n_docs).tolist()) / len(total) if total else 0.0
    # One index finds the clusters over its documents in doc_id order: the same input, the same clusters.
    by_id = sorted(range(len(ids)), key=ids.__getitem__)
    sig = np.concatenate(signatures)[by_id] if signatures else np.zeros((0, wire.NUM_PERM), np.uint32)
    found = wire_copies([ids[i] for i in by_id], sig, lambda d: texts.get(d, ""), [days[i] for i in by_id],
                        [sources[i] for i in by_id])
    shard_of = dict(zip(ids, where))
    # Each document's first row in one index over the corpus: documents in corpus order, chunks in a row.
    rank = {doc_id: k for k, doc_id in enumerate(order or [])}
    by_corpus = sorted(range(len(ids)), key=lambda k: (rank.get(ids[k], len(rank)), k))
    first = np.zeros(len(ids), np.int64)
    first[by_corpus] = np.cumsum([0] + [spans[k][1] for k in by_corpus])[:-1]
    for number, (shard, vocabulary) in enumerate(zip(shards, vocabularies)):
        df = np.array([total[t] for t in vocabulary], np.int64)
        _save(root / _name(_DF_PREFIX, shard.name, shard.generation), df)
        mine = [k for k in range(len(ids)) if where[k] == number]
        mine.sort(key=lambda k: spans[k][0])  # the shard's documents in row order
        offsets = np.array([first[k] - spans[k][0] for k in mine], np.int64)
        positions = np.repeat(offsets, [spans[k][1] for k in mine]) + np.arange(shard.chunks, dtype=np.int64)
        _save(root / _name(_ROWS_PREFIX, shard.name, shard.generation), positions)
    data = {"format": FORMAT, "by": "date", "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "shards": [s.to_dict() for s in shards], "model": models[0] if models else {},
            "bm25": {"n_docs": n_docs, "total_length": total_length, "average_idf": average_idf},
            "wire": {d: [rep, shard_of[d], _copy(records[k])] for k, d in sorted(enumerate(ids), key=lambda x: x[1])
                     if (rep := found.get(d)) is not None}}
    _write_atomically(root / LAYOUT_FILE, lambda path: path.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8"))
    keep = {_name(p, s.name, s.generation) for s in shards for p in (_DF_PREFIX, _ROWS_PREFIX)}
    for old in [*root.glob(f"{_DF_PREFIX}*.npy"), *root.glob(f"{_ROWS_PREFIX}*.npy")]:
        if old.name not in keep:
            old.unlink(missing_ok=True)
    return Layout.load(root)


def collection_bm25(layout: Layout, i: int, folder: Path, bm25: BM25Index, rows: int) -> BM25Index:
    """Shard i's BM25 index weighed with the collection's statistics (from its stored term counts)."""
    counts = TermCounts.load(folder, bm25.terms, rows)
    collection = layout.collection(i, folder.name, bm25.terms)
    return BM25Index.from_counts(counts.vocabulary, counts.indptr, counts.ids, counts.tf, collection=collection)


def _copy(doc) -> dict:
    """What a citation shows of an article's other copies (answer.Citation.duplicates)."""
    return {"date": doc.date, "publisher": doc.publisher, "url": doc.url}


def _name(prefix: str, shard: str, generation: str) -> str:
    return f"{prefix}{shard}-{generation}.npy"


def _save(path: Path, array: np.ndarray) -> None:
    _write_atomically(path, lambda tmp: np.save(tmp, array, allow_pickle=False))


def _write_atomically(path: Path, write) -> None:
    tmp = path.with_name(f".tmp-{secrets.token_hex(4)}-{path.name}")
    try:
        write(tmp)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _day(value: str | None) -> date | None:
    return date.fromisoformat(value) if value else None
