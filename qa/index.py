"""The index layout: one generation's files, how they are written, and how they are opened.

A generation folder (see store.py for generations, CURRENT and the manifest) holds::

    chunks.jsonl (+ .offsets.npy)   one `Chunk` per row, row-aligned with the two indexes
    docs.jsonl (+ .offsets.npy)     one `Document` per article, sorted by doc_id
    vectors.npy                     float32 embeddings, row i = chunk i
    dense.faiss                     the FAISS index over the vectors (dense.py)
    bm25_*.npy, bm25_vocab.json     the BM25 weights (lexical.py)
    manifest.json                   written last: model, chunking, analyzer, corpus, checksums

Row i of the chunk table, the vectors, the dense index and the BM25 index is the same chunk.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import store
from .chunking import Chunk, ChunkSettings
from .corpus import Document, corpus_files
from .dense import DenseIndex
from .errors import IndexCorruptError, IndexFormatError, QAError
from .lexical import Analyzer, BM25Index
from .records import Documents, Records, write_documents, write_records

CHUNKS_FILE, DOCS_FILE, VECTORS_FILE = "chunks.jsonl", "docs.jsonl", "vectors.npy"


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
                f"of nieuws-qa analyzes text with version {Analyzer.VERSION!r}; rebuild with `qa build`"
            )
        chunks, docs = Records(folder / CHUNKS_FILE, Chunk), Documents(folder / DOCS_FILE, Document)
        try:
            vectors = np.load(folder / VECTORS_FILE, allow_pickle=False, mmap_mode="r")
        except (ValueError, OSError, EOFError) as exc:
            raise IndexCorruptError(f"cannot read the index in {folder} ({exc}); rebuild with `qa build`") from exc
        dense, bm25 = DenseIndex.load(folder), BM25Index.load(folder)
        if not len(chunks) == len(vectors) == len(dense) == len(bm25):
            raise IndexCorruptError(f"the index files in {folder} disagree on the number of chunks; rebuild with `qa build`")
        return cls(folder, manifest, chunks, docs, vectors, dense, bm25)

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
            "dense": self.dense.describe(), "corpus": m["corpus"],
        }


def open_live(index_dir: str | Path, *, verify: bool = True) -> Generation:
    """Open the live generation of an index folder (checksums verified unless `verify` is off).

    Raises:
        IndexMissingError, IndexCorruptError, IndexFormatError: the index cannot be used as is.
    """
    return store.read_live(Path(index_dir), lambda folder, manifest: Generation.open(folder, manifest, index_dir=index_dir),
                           verify=verify)


def write_generation(index_dir: Path, *, chunks: Iterable[Chunk], docs: Iterable[Document], vectors: np.ndarray,
                     dense: DenseIndex, bm25: BM25Index, model: dict, chunking: ChunkSettings,
                     analyzer: Analyzer, corpus: dict) -> Path:
    """Write an index generation (tables, vectors, both indexes, manifest) and make it live.

    Row i of `chunks`, `vectors`, `dense` and `bm25` is the same chunk; `model` is the embedder's
    identity; `corpus` what it was built from ({"paths", "files"}). Returns the generation's folder.

    Raises:
        ValueError: the tables and indexes disagree on the number of chunks (nothing goes live).
        IndexWriteError: the files cannot be written (the live index stays as it was).
    """
    docs = list(docs)

    def write_files(folder: Path) -> dict:
        rows = {**write_records(folder / CHUNKS_FILE, chunks), **write_documents(folder / DOCS_FILE, docs)}
        if not rows[CHUNKS_FILE] == len(vectors) == len(dense) == len(bm25):
            # Refused before the manifest exists, so the live index stays as it was.
            raise ValueError(f"{rows[CHUNKS_FILE]} chunks, {len(vectors)} vectors, {len(dense)} dense and "
                             f"{len(bm25)} BM25 rows: they must be the same chunks")
        np.save(folder / VECTORS_FILE, vectors, allow_pickle=False)
        rows[VECTORS_FILE] = len(vectors)
        rows.update({f: None for f in dense.save(folder)})
        rows.update({f: None for f in bm25.save(folder)})
        return rows

    manifest = {
        "model": model,
        "chunking": chunking.to_dict(),
        "analyzer": {"version": Analyzer.VERSION, "settings": analyzer.to_dict()},
        "dense": dense.describe(),
        "corpus": corpus,
        "counts": {"documents": len(docs), "chunks": len(vectors)},
    }
    return store.write_index(index_dir, write_files, manifest)


def stale_reason(index_dir: str | Path, paths: Iterable[str | Path]) -> str | None:
    """Why the index must be (re)built for these corpus paths, or None if it is up to date.

    Up to date means: it opens, and its corpus files are exactly the files under `paths` with
    the same checksums.
    """
    try:
        _, manifest = store.open_index(Path(index_dir), verify=False)
    except QAError as exc:
        return str(exc)
    recorded = {f["path"]: f["sha256"] for f in manifest.get("corpus", {}).get("files", [])}
    current = {f["path"]: f["sha256"] for f in corpus_files(paths)}
    if recorded != current:
        changed = sorted(set(recorded) ^ set(current) | {p for p in current if recorded.get(p) not in (None, current[p])})
        return f"the corpus changed since the index was built ({', '.join(changed[:5])})"
    return None
