"""The index layout: one generation's files, how they are written, and how they are opened.

A generation folder (see store.py for generations, CURRENT and the manifest) holds::

    chunks.jsonl (+ .offsets.npy)   one `Chunk` per row, row-aligned with the two indexes
    docs.jsonl (+ .offsets.npy)     one `Document` per article, sorted by doc_id
    vectors.npy                     float32 embeddings, row i = chunk i
    dense.faiss (+ dense_rows.npy)  the FAISS index over the vectors (dense.py)
    bm25_*.npy, bm25_vocab.json     the BM25 weights (lexical.py)
    terms_*.npy                     each chunk's analysed terms as counts (terms.py)
    chunk_sha256.npy                sha256 of each chunk's text: a sync reuses vectors by it
    doc_sha256.npy, doc_rows.npy    per document (docs.jsonl order): `Article.fingerprint`, and
                                    the first chunk row and number of chunks
    doc_days.npy, doc_publisher.npy, publishers.json, doc_minhash.npy, doc_cluster.npy
                                    per document: its days, publisher, MinHash signature and
                                    wire-copy cluster (news.py)
    sentence_*.npy                  optional: every sentence's vector, by its text (sentences.py)
    manifest.json                   written last: model, chunking, analyzer, corpus, what the
                                    generation was derived from, checksums

Row i of the chunk table, the vectors, the term counts, the chunk checksums, the dense index and
the BM25 index is the same chunk. The last four kinds of files are what a sync reuses
(`LiveRows`); an index written before syncs existed lacks them and is still served.
"""

from __future__ import annotations

import hashlib
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import store
from .chunking import Chunk, ChunkSettings
from .corpus import Document, corpus_files
from .dense import ROWS_FILE, DenseIndex
from .errors import IndexCorruptError, IndexFormatError, QAError, RebuildWarning
from .lexical import Analyzer, BM25Index
from .news import FILES as NEWS_FILES
from .news import DocNews, News
from .news import write as write_news
from .records import Documents, RawLines, Records, write_records
from .sentences import FILES as SENTENCE_FILES
from .sentences import SentenceStore
from .terms import TermCounts

CHUNKS_FILE, DOCS_FILE, VECTORS_FILE = "chunks.jsonl", "docs.jsonl", "vectors.npy"
CHUNK_SHA_FILE, DOC_SHA_FILE, DOC_ROWS_FILE = "chunk_sha256.npy", "doc_sha256.npy", "doc_rows.npy"


@dataclass(frozen=True)
class Generation:
    """One opened index generation: its tables and both indexes (not the model).

    `chunks[i]` is a `Chunk` and `docs[doc_id]` a `Document`, both read from disk on demand.
    """

    folder: Path
    manifest: dict
    chunks: Records
    docs: Documents
    vectors: np.ndarray
    dense: DenseIndex
    bm25: BM25Index
    news: News | None = None   # None: written before the news tables existed (sync it to get them)
    sentences: SentenceStore | None = None   # None: built without sentence vectors

    @classmethod
    def open(cls, folder: Path, manifest: dict, *, index_dir: str | Path | None = None) -> Generation:
        """Open a generation's files (the manifest already read and checked by store.py).

        Raises:
            IndexFormatError: its analyzer is not the one this version analyzes questions with.
            IndexCorruptError: a file cannot be read, or the files disagree on the number of chunks.
        """
        where = index_dir or folder.parent
        analyzer_version = manifest.get("analyzer", {}).get("version")
        if analyzer_version != Analyzer.VERSION:
            raise IndexFormatError(
                f"the index in {where} was built with analyzer version {analyzer_version!r}, this version "
                f"of nieuws-qa analyzes text with version {Analyzer.VERSION!r}; update it with `qa sync PATH` (analyses "
                "the text again, keeps every vector) or rebuild with `qa build`"
            )
        chunks, docs = Records(folder / CHUNKS_FILE, Chunk), Documents(folder / DOCS_FILE, Document)
        try:
            vectors = np.load(folder / VECTORS_FILE, allow_pickle=False, mmap_mode="r")
        except (ValueError, OSError, EOFError) as exc:
            raise IndexCorruptError(f"cannot read the index in {folder} ({exc}); rebuild with `qa build`") from exc
        dense = DenseIndex.load(folder, rows=ROWS_FILE in manifest.get("files", {}))
        bm25 = BM25Index.load(folder)
        if not len(chunks) == len(vectors) == len(dense) == len(bm25):
            raise IndexCorruptError(f"the index files in {folder} disagree on the number of chunks; rebuild with `qa build`")
        news = None
        if has_news(manifest):
            news = News.load(folder, np.load(folder / DOC_ROWS_FILE, allow_pickle=False))
        return cls(folder, manifest, chunks, docs, vectors, dense, bm25, news, open_sentences(folder, manifest))

    @property
    def analyzer(self) -> Analyzer:
        """The analyzer the BM25 index was built with (questions are analysed the same way)."""
        return Analyzer(**self.manifest["analyzer"]["settings"])

    def summary(self, fusion: dict) -> dict:
        """What `qa info` prints; `fusion` is the query-time fusion the index is searched with."""
        m = self.manifest
        return {
            "index": str(self.folder), "format_version": m["format_version"], "created": m.get("created"),
            "model": m["model"], "documents": len(self.docs), "chunks": len(self.chunks),
            "chunking": m["chunking"], "analyzer": m["analyzer"], "fusion": fusion,
            "dense": self.dense.describe(), "corpus": m["corpus"], "derived": m.get("derived", {}),
            "news": self.news.summary(lambda i: self.docs.records[i].doc_id) if self.news else None,
            "sentences": m.get("sentences"),
        }


def open_live(index_dir: str | Path, *, verify: bool = True) -> Generation:
    """Open the live generation of an index folder (checksums verified unless `verify` is off).

    Raises:
        IndexMissingError, IndexCorruptError, IndexFormatError: the index cannot be used as is.
    """
    return store.read_live(Path(index_dir), lambda folder, manifest: Generation.open(folder, manifest, index_dir=index_dir),
                           verify=verify)


@dataclass(frozen=True)
class DocEntry:
    """One document of a generation being written: its record, fingerprint and chunk rows."""

    doc_id: str
    record: Document | RawLines   # RawLines: its line copied from the live docs table
    fingerprint: bytes            # Article.fingerprint
    first_row: int
    n_rows: int
    news: DocNews                 # its days, publisher and MinHash signature


def write_generation(index_dir: Path, *, chunks: Iterable[Chunk | RawLines], docs: Iterable[DocEntry],
                     vectors: np.ndarray, chunk_sha256: np.ndarray, terms: TermCounts, dense: DenseIndex,
                     bm25: BM25Index, model: dict, chunking: ChunkSettings, analyzer: Analyzer, corpus: dict,
                     text_of: Callable[[str], str], derived: dict | None = None,
                     sentences: SentenceStore | None = None) -> Path:
    """Write an index generation (tables, vectors, both indexes, what a sync reuses, manifest)
    and make it live.

    Row i of `chunks`, `vectors`, `chunk_sha256`, `terms`, `dense` and `bm25` is the same chunk;
    `model` is the embedder's identity; `corpus` what it was built from ({"paths", "files"});
    `derived` how (from which generation, by which operation); `text_of(doc_id)` an article's text
    (to check wire-copy candidates exactly, news.py); `sentences` the vectors of the chunks'
    sentences, if the index keeps them. Returns the generation's folder.

    Raises:
        ValueError: the tables and indexes disagree on the number of chunks, or two documents
            share an id (nothing goes live).
        IndexWriteError: the files cannot be written (the live index stays as it was).
    """
    docs = sorted(docs, key=lambda d: d.doc_id)  # the order Documents looks them up in
    for a, b in zip(docs, docs[1:]):
        if a.doc_id == b.doc_id:
            raise ValueError(f"two documents share the doc_id {a.doc_id!r}")
    n = len(vectors)
    if not len(dense) == len(bm25) == len(terms) == len(chunk_sha256) == n == sum(d.n_rows for d in docs):
        raise ValueError(f"{n} vectors, {len(dense)} dense, {len(bm25)} BM25, {len(terms)} term-count and "
                         f"{len(chunk_sha256)} checksum rows, {sum(d.n_rows for d in docs)} document rows: "
                         "they must be the same chunks")

    def write_files(folder: Path) -> dict:
        rows = {**write_records(folder / CHUNKS_FILE, chunks), **write_records(folder / DOCS_FILE, (d.record for d in docs))}
        if rows[CHUNKS_FILE] != n or rows[DOCS_FILE] != len(docs):
            # Refused before the manifest exists, so the live index stays as it was.
            raise ValueError(f"{rows[CHUNKS_FILE]} chunk and {rows[DOCS_FILE]} document records for {n} chunks "
                             f"of {len(docs)} documents: they must be the same chunks")
        arrays = {VECTORS_FILE: vectors, CHUNK_SHA_FILE: chunk_sha256,
                  DOC_SHA_FILE: np.frombuffer(b"".join(d.fingerprint for d in docs), np.uint8).reshape(-1, 32),
                  DOC_ROWS_FILE: np.array([(d.first_row, d.n_rows) for d in docs], np.int64).reshape(-1, 2)}
        for name, array in arrays.items():
            np.save(folder / name, array, allow_pickle=False)
            rows[name] = len(array)
        for written in (dense.save(folder), bm25.save(folder), terms.save(folder),
                        write_news(folder, [d.doc_id for d in docs], [d.news for d in docs], text_of),
                        sentences.save(folder) if sentences is not None else []):
            rows.update({f: None for f in written})
        return rows

    manifest = {
        "model": model,
        "chunking": chunking.to_dict(),
        "analyzer": {"version": Analyzer.VERSION, "settings": analyzer.to_dict()},
        "dense": dense.describe(),
        "corpus": corpus,
        "derived": derived or {},
        "counts": {"documents": len(docs), "chunks": n},
        **({"sentences": sentences.describe()} if sentences is not None else {}),
    }
    return store.write_index(index_dir, write_files, manifest)


@dataclass(frozen=True)
class LiveRows:
    """What a sync reuses of the live generation: its tables, vectors and per-row data (opened
    and checksummed like QA.load, without the model or the search structures).

    `doc_sha256`/`doc_rows` are None for an index written before syncs existed; `chunk_sha256`
    is then computed from the chunk texts. `terms` is None when the index analysed its text
    another way than this version does (or is that old): its chunks are analysed again.
    """

    folder: Path
    manifest: dict
    chunks: Records
    docs: Records
    vectors: np.ndarray
    chunk_sha256: np.ndarray
    doc_sha256: np.ndarray | None
    doc_rows: np.ndarray | None
    terms: TermCounts | None
    news: News | None = None   # None: written before the news tables (computed again by a sync)
    sentences: SentenceStore | None = None   # None: kept without sentence vectors

    def dense(self) -> DenseIndex:
        """The dense index (checksummed) read into memory, not mapped, so a sync may grow its graph.

        Raises:
            IndexCorruptError: its files are damaged, or gone (removed by another writer).
        """
        _verify(self.folder, self.manifest, lambda name: name.startswith("dense"))
        return DenseIndex.load(self.folder, mmap=False, rows=ROWS_FILE in self.manifest["files"])


def open_rows(index_dir: str | Path) -> LiveRows:
    """Open the live generation of an index folder for a sync, verifying the checksum of every
    file it reuses (not the BM25 weights, which a sync computes anew, nor yet the dense index).

    Raises:
        IndexMissingError, IndexCorruptError, IndexFormatError: it cannot be reused as it is.
    """
    return store.read_live(Path(index_dir), _open_rows, verify=False)


def _verify(folder: Path, manifest: dict, which) -> None:
    store.verify_files(folder, {**manifest, "files": {k: v for k, v in manifest["files"].items() if which(k)}})


def chunk_sha256(text: str) -> bytes:
    """The checksum a chunk's vector is reused by."""
    return hashlib.sha256(text.encode("utf-8")).digest()


def _open_rows(folder: Path, manifest: dict) -> LiveRows:
    _verify(folder, manifest, lambda name: (not name.startswith(("dense", "bm25_", "sentence_"))
                                            or name == "bm25_vocab.json"))
    chunks, docs = Records(folder / CHUNKS_FILE, Chunk), Records(folder / DOCS_FILE, Document)
    files = manifest["files"]

    def load(name: str) -> np.ndarray:
        try:
            return np.load(folder / name, allow_pickle=False, mmap_mode="r")
        except (ValueError, OSError, EOFError) as exc:
            raise IndexCorruptError(f"cannot read {folder / name} ({exc}); rebuild with `qa build`") from exc

    vectors = load(VECTORS_FILE)
    if CHUNK_SHA_FILE in files:
        sha, doc_sha, doc_rows = load(CHUNK_SHA_FILE), load(DOC_SHA_FILE), load(DOC_ROWS_FILE)
    else:  # written before syncs: reuse vectors by the checksums of the chunk texts
        sha = np.frombuffer(b"".join(chunk_sha256(c.text) for c in chunks), np.uint8).reshape(-1, 32)
        doc_sha = doc_rows = None
    n, n_docs = len(chunks), len(docs)
    shapes_fit = (vectors.ndim == 2 and len(vectors) == n and sha.shape == (n, 32) and sha.dtype == np.uint8
                  and (doc_sha is None or (doc_sha.shape == (n_docs, 32) and doc_sha.dtype == np.uint8
                                           and doc_rows.shape == (n_docs, 2) and doc_rows.dtype == np.int64
                                           and int(doc_rows[:, 1].sum()) == n)))
    if not shapes_fit:
        raise IndexCorruptError(f"the index files in {folder} disagree on the number of chunks or documents; "
                                "rebuild with `qa build`")
    same_analysis = manifest.get("analyzer") == {"version": Analyzer.VERSION, "settings": Analyzer().to_dict()}
    terms = None
    if same_analysis and CHUNK_SHA_FILE in files:
        terms = TermCounts.load(folder, BM25Index.load(folder).terms, n)
    news = News.load(folder, doc_rows, signatures=True) if has_news(manifest) else None
    return LiveRows(folder, manifest, chunks, docs, vectors, sha, doc_sha, doc_rows, terms, news,
                    _live_sentences(folder, manifest))


def open_sentences(folder: Path, manifest: dict) -> SentenceStore | None:
    """A generation's stored sentence vectors, or None if it was built without them.

    Raises:
        IndexCorruptError: they are not the ones its manifest records.
    """
    if not has_sentences(manifest):
        return None
    kept = SentenceStore.load(folder)
    recorded = manifest.get("sentences", {})
    if len(kept) != recorded.get("count") or kept.vectors.shape[1] != manifest["model"]["dim"]:
        raise IndexCorruptError(f"the sentence vectors in {folder} are not the ones its manifest records; "
                                "rebuild with `qa build --sentence-vectors`")
    return kept


def _live_sentences(folder: Path, manifest: dict) -> SentenceStore | None:
    """What a sync reuses of the live sentence vectors: None when it kept none, or when they are
    damaged (said in a warning; the sync then embeds them all again, nothing else)."""
    try:
        _verify(folder, manifest, lambda name: name in SENTENCE_FILES)
        return open_sentences(folder, manifest)
    except IndexCorruptError as exc:
        if has_sentences(manifest):
            warnings.warn(f"the stored sentence vectors cannot be reused, so they are embedded again: {exc}",
                          RebuildWarning)
        return None


def has_sentences(manifest: dict) -> bool:
    """Whether a generation keeps its sentences' vectors (sentences.py)."""
    return "sentences" in manifest and all(name in manifest.get("files", {}) for name in SENTENCE_FILES)


def has_news(manifest: dict) -> bool:
    """Whether a generation has this version's news tables (news.py); a sync computes them."""
    return all(name in manifest.get("files", {}) for name in NEWS_FILES)


def stale_reason(index_dir: str | Path, paths: Iterable[str | Path]) -> str | None:
    """Why the index must be (re)built for these corpus paths, or None if it is up to date.

    Up to date means: it opens, it has the news tables (news.py), and its corpus files are exactly
    the files under `paths` with the same checksums.
    """
    try:
        _, manifest = store.open_index(Path(index_dir), verify=False)
    except QAError as exc:
        return str(exc)
    if not has_news(manifest):
        return "the index was built before date and publisher filters (its news tables are computed, nothing embedded)"
    recorded = {f["path"]: f["sha256"] for f in manifest.get("corpus", {}).get("files", [])}
    current = {f["path"]: f["sha256"] for f in corpus_files(paths)}
    if recorded != current:
        changed = sorted(set(recorded) ^ set(current) | {p for p in current if recorded.get(p) not in (None, current[p])})
        return f"the corpus changed since the index was built ({', '.join(changed[:5])})"
    return None
