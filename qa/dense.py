"""Dense leg: L2-normalised vectors in a FAISS inner-product index (cosine similarity).

Small corpora get an exact `IndexFlatIP`; above `HNSW_THRESHOLD` vectors an approximate HNSW
graph over float16 copies of the vectors (`IndexHNSWSQ`, QT_fp16), whose recall@10 against exact
search is measured in BENCHMARKS.md.

A sync keeps an HNSW graph instead of building it again (`DenseIndex.updated`): new vectors are
inserted as new nodes, and the nodes of removed chunks stay in the graph, masked at search time.
The graph's node numbers then differ from chunk rows, so such an index carries a node -> row
table (`dense_rows.npy`, -1 for a masked node).
"""

from __future__ import annotations

import errno
import re
from contextlib import contextmanager
from pathlib import Path

import faiss
import numpy as np

from .errors import IndexCorruptError

INDEX_FILE = "dense.faiss"
ROWS_FILE = "dense_rows.npy"
KINDS = ("auto", "flat", "hnsw")

# Exact search reads every vector per query (1.5 kB per 384-d vector at this machine's ~25 GB/s:
# ~3 ms at 50k, ~6 ms at 100k, ~60 ms at 1M with one thread). Up to 50k that stays well under
# the ~10 ms query embedding, costs nothing to build and is exact; above it HNSW answers in
# well under a millisecond at recall@10 >= 0.99 (BENCHMARKS.md). Its build (~0.1-0.3 ms per
# vector on 2 threads) is small next to embedding the same chunks (~40 ms each in bf16).
HNSW_THRESHOLD = 50_000
# M=32 as usual. efConstruction 40 (FAISS's default) built a graph whose recall@10 at 1M
# e5-like vectors stalled at ~0.98 however wide the search (0.976 at efSearch 128, 0.981 at
# 256); 80 gives 0.993 at efSearch 128 (~0.3 ms) for a ~1.3x longer build.
HNSW_M = 32
HNSW_EF_CONSTRUCTION = 80
HNSW_EF_SEARCH = 128
# The graph's own copy of the vectors in float16 halves the largest part of a big index (1.54 GB
# -> 0.77 GB at 1M) for cosines within 1e-4 of float32 and the same recall@10 (0.995 vs 0.9953
# at 100k, same speed); bf16 (0.988) and 8-bit (0.984) lose recall. vectors.npy keeps float32.
HNSW_STORAGE = "fp16"
# A sync keeps the graph while at most this share of its nodes belong to removed chunks; beyond
# it the graph is built again from the vectors. Masked nodes still route searches, but results
# must be found among fewer live ones (recall measured in BENCHMARKS.md, "Sync").
MAX_MASKED_SHARE = 0.2
# A filtered question (dates, publishers) over an HNSW graph: up to this many allowed rows are
# searched exactly (~2 ms at 20k); more go through the graph with an ID selector.
EXACT_FILTERED_MAX = 20_000
_STORAGE = {"float32": None, "fp16": faiss.ScalarQuantizer.QT_fp16}
# Memory-maps flat and HNSW vector storage; FAISS versions without it read the file into memory.
_MMAP_FLAG = getattr(faiss, "IO_FLAG_MMAP_IFC", 0)
BUILD_THREADS = 2
# Below this many vectors a build takes well under a second on one thread, and a second OpenMP
# thread on a busy machine only adds waiting.
PARALLEL_BUILD_MIN = 10_000

# Single queries on a small CPU: more OpenMP threads only add contention (2 threads made a flat
# query 4-60x slower on 2 busy cores, measured for BENCHMARKS.md). Building HNSW raises it for a while.
faiss.omp_set_num_threads(1)


@contextmanager
def _omp_threads(n: int):
    before = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(n)
    try:
        yield
    finally:
        faiss.omp_set_num_threads(before)


class DenseIndex:
    """Inner-product search over row-aligned vectors (row i = chunk i), exact or HNSW.

    Attributes:
        kind: "flat" (exact) or "hnsw" (approximate).
        params: the index settings, e.g. {"M": 32, "efConstruction": 80, "efSearch": 128} for
            HNSW and {} for flat; `describe()` gives both for a manifest.
        rows: for a graph kept across syncs, the row of each node (-1: masked); None when node
            i is row i.
    """

    def __init__(self, index: faiss.Index, rows: np.ndarray | None = None, *, mapped: bool = False):
        # read_index already returns the concrete class; downcasting here would make a second
        # proxy that does not own the C++ object, which dies with the first.
        self.index = index
        self._mapped = mapped  # FAISS aborts the process when asked to add to a mapped index
        if isinstance(self.index, faiss.IndexHNSW) and self.storage in _STORAGE:
            self.kind = "hnsw"
        elif isinstance(self.index, faiss.IndexFlat):
            self.kind = "flat"
        else:
            raise IndexCorruptError(f"unsupported FAISS index type {type(self.index).__name__}; rebuild with `qa build`")
        if self.index.metric_type != faiss.METRIC_INNER_PRODUCT:
            raise IndexCorruptError("the dense index does not use inner product; rebuild with `qa build`")
        self.rows, self._selector = None, None
        if rows is not None:
            self._set_rows(rows)

    def _set_rows(self, rows: np.ndarray) -> None:
        rows = np.asarray(rows)
        alive = rows >= 0
        n = int(alive.sum())
        if (rows.ndim != 1 or rows.dtype != np.int64 or len(rows) != self.index.ntotal or self.kind != "hnsw"
                or not np.array_equal(np.bincount(rows[alive], minlength=n), np.ones(n, np.int64))):
            raise IndexCorruptError(f"the dense index's node table does not fit its {self.index.ntotal} nodes; "
                                    "rebuild with `qa build`")
        self.rows = rows
        if n < len(rows):
            # Masked nodes still route searches through the graph; the selector only keeps them
            # out of the results. The bitmap must outlive the selector that points into it.
            self._bitmap = np.packbits(alive, bitorder="little")
            self._selector = faiss.IDSelectorBitmap(len(rows), faiss.swig_ptr(self._bitmap))

    @classmethod
    def build(cls, vectors: np.ndarray, *, kind: str = "auto", threshold: int = HNSW_THRESHOLD,
              m: int = HNSW_M, ef_construction: int = HNSW_EF_CONSTRUCTION,
              ef_search: int = HNSW_EF_SEARCH, storage: str = HNSW_STORAGE,
              threads: int = BUILD_THREADS) -> DenseIndex:
        """Index normalised vectors; row i of the index is `vectors[i]`.

        Args:
            vectors: (n, d) array of L2-normalised vectors.
            kind: "flat" (exact), "hnsw" (approximate), or "auto": hnsw when n > threshold.
            threshold: the size above which "auto" picks hnsw.
            m, ef_construction, ef_search: HNSW graph degree, build and search beam widths.
            storage: how HNSW keeps its copy of the vectors, "fp16" or "float32".
            threads: OpenMP threads while building HNSW of PARALLEL_BUILD_MIN vectors or more
                (restored afterwards).

        Raises:
            ValueError: vectors is not 2-d, or an option is out of range.
        """
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {', '.join(KINDS)}, got {kind!r}")
        if storage not in _STORAGE:
            raise ValueError(f"storage must be one of {', '.join(_STORAGE)}, got {storage!r}")
        for name, value, low in (("threshold", threshold, 0), ("m", m, 2), ("ef_construction", ef_construction, 1),
                                 ("ef_search", ef_search, 1), ("threads", threads, 1)):
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        if vectors.ndim != 2:
            raise ValueError(f"vectors must be a 2-d array, got shape {vectors.shape}")
        if kind == "auto":
            kind = "hnsw" if len(vectors) > threshold else "flat"
        d = vectors.shape[1]
        if kind == "flat":
            index = faiss.IndexFlatIP(d)
            index.add(vectors)
        else:
            if _STORAGE[storage] is None:
                index = faiss.IndexHNSWFlat(d, m, faiss.METRIC_INNER_PRODUCT)
            else:
                index = faiss.IndexHNSWSQ(d, _STORAGE[storage], m, faiss.METRIC_INNER_PRODUCT)
                index.train(vectors[:0])  # float16 needs no statistics; marks the index trained
            index.hnsw.efConstruction = ef_construction
            index.hnsw.efSearch = ef_search
            # Graph insertion parallelises well (unlike single queries); the order in which
            # threads insert makes the graph, and so rare near-ties, vary between builds.
            with _omp_threads(threads if len(vectors) >= PARALLEL_BUILD_MIN else 1):
                index.add(vectors)
        return cls(index)

    def __len__(self) -> int:
        """The number of rows searched (masked nodes of a kept graph do not count)."""
        return self.index.ntotal - self.masked

    @property
    def masked(self) -> int:
        """Nodes of removed chunks that a kept graph still holds (0 for a fresh index)."""
        return 0 if self.rows is None else int(np.count_nonzero(self.rows < 0))

    @property
    def dim(self) -> int:
        return self.index.d

    @property
    def params(self) -> dict:
        if self.kind == "hnsw":
            hnsw = self.index.hnsw
            return {"M": int(hnsw.nb_neighbors(1)), "efConstruction": int(hnsw.efConstruction),
                    "efSearch": int(hnsw.efSearch), "storage": self.storage}
        return {}

    @property
    def storage(self) -> str | None:
        """How an HNSW index stores its vectors: "float32" or "fp16" (None for others)."""
        if not isinstance(self.index, faiss.IndexHNSW):
            return None
        store = faiss.downcast_index(self.index.storage)
        if isinstance(store, faiss.IndexFlat):
            return "float32"
        if isinstance(store, faiss.IndexScalarQuantizer) and store.sq.qtype == faiss.ScalarQuantizer.QT_fp16:
            return "fp16"
        return type(store).__name__

    @property
    def ef_search(self) -> int | None:
        return int(self.index.hnsw.efSearch) if self.kind == "hnsw" else None

    @ef_search.setter
    def ef_search(self, value: int) -> None:
        if self.kind != "hnsw":
            raise ValueError("ef_search applies to an hnsw index only")
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"ef_search must be an integer >= 1, got {value!r}")
        self.index.hnsw.efSearch = value

    def describe(self) -> dict:
        """What a manifest records: {"kind": ..., "params": {...}, "count": n, "dim": d}, plus
        "masked" (nodes of removed chunks) for a graph kept across syncs."""
        extra = {"masked": self.masked} if self.rows is not None else {}
        return {"kind": self.kind, "params": self.params, "count": len(self), "dim": self.dim, **extra}

    def updated(self, row_of: np.ndarray, vectors: np.ndarray, rows: np.ndarray, *,
                threads: int = BUILD_THREADS) -> DenseIndex:
        """This HNSW graph after a sync: old row r becomes row `row_of[r]` (-1: removed, its node
        masked), and `vectors` are inserted as rows `rows`. Takes over this index's graph.

        Raises:
            ValueError: not an HNSW index, it is memory-mapped (load it with mmap=False), or the
                arrays do not fit it.
        """
        if self.kind != "hnsw" or self._mapped:
            raise ValueError("only an HNSW index loaded with mmap=False can be updated")
        vectors = np.ascontiguousarray(vectors, dtype=np.float32).reshape(-1, self.dim)
        if len(row_of) != len(self) or len(rows) != len(vectors):
            raise ValueError(f"row_of must have {len(self)} entries and rows one per vector")
        old = np.arange(self.index.ntotal, dtype=np.int64) if self.rows is None else self.rows
        nodes = np.where(old >= 0, np.asarray(row_of, np.int64)[np.maximum(old, 0)], -1)
        with _omp_threads(threads if len(vectors) >= PARALLEL_BUILD_MIN else 1):
            self.index.add(vectors)
        nodes = np.concatenate([nodes, np.asarray(rows, np.int64)])
        identity = np.array_equal(nodes, np.arange(len(nodes)))
        index, self.index = self.index, None  # this object no longer owns the graph
        return DenseIndex(index, None if identity else nodes)

    def search(self, query: np.ndarray, k: int, rows: np.ndarray | None = None) -> list[tuple[int, float]]:
        """Return up to k (row, cosine) pairs for one normalised query vector, best first.

        Args:
            rows: a boolean mask of the chunk rows that may be returned (None: all). The graph
                is searched with a FAISS ID selector; when the allowed rows are few, or the
                graph's beam found fewer than k of them, they are searched exactly instead, so
                that k rows come back whenever k are allowed.
        """
        allowed = len(self) if rows is None else int(np.count_nonzero(rows))
        k = min(k, allowed)
        if k <= 0:
            return []
        q = np.ascontiguousarray(query, dtype=np.float32).reshape(1, -1)
        selector, nodes_ok = self._selector, None
        if rows is not None:
            nodes_ok = rows if self.rows is None else (self.rows >= 0) & rows[np.maximum(self.rows, 0)]
            bitmap = np.packbits(nodes_ok, bitorder="little")  # must outlive the search
            selector = faiss.IDSelectorBitmap(len(nodes_ok), faiss.swig_ptr(bitmap))
        if self.kind == "hnsw" and nodes_ok is not None and allowed <= EXACT_FILTERED_MAX:
            found = self._exact(q, k, np.flatnonzero(nodes_ok))
        elif self.kind == "hnsw" and (k > self.index.hnsw.efSearch or selector is not None):
            # The beam must hold k candidates; widen it for this call only (thread-safe).
            params = faiss.SearchParametersHNSW(efSearch=max(k, self.index.hnsw.efSearch), sel=selector)
            found = self.index.search(q, k, params=params)
            if nodes_ok is not None and np.count_nonzero(found[1][0] >= 0) < k:
                found = self._exact(q, k, np.flatnonzero(nodes_ok))
        else:
            found = self.index.search(q, k, params=faiss.SearchParameters(sel=selector) if selector else None)
        scores, nodes = found[0][0], found[1][0]
        rows = nodes if self.rows is None else np.where(nodes >= 0, self.rows[np.maximum(nodes, 0)], -1)
        return [(int(r), float(s)) for r, s in zip(rows, scores) if r >= 0]

    def _exact(self, q: np.ndarray, k: int, nodes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Exact search among some nodes, in FAISS's result shape."""
        scores = self.index.reconstruct_batch(nodes) @ q[0]
        best = np.lexsort((nodes, -scores))[:k]
        return scores[best][None], nodes[best][None]

    def save(self, folder: Path) -> list[str]:
        path = folder / INDEX_FILE
        try:
            faiss.write_index(self.index, str(path))
        except RuntimeError as exc:
            # FAISS reports a failed write (disk full, no permission) as "... write error ... (reason)".
            reason = re.search(r"\(([^()]+)\)\s*$", str(exc))
            raise OSError(errno.EIO, reason.group(1) if reason else str(exc), str(path)) from exc
        if self.rows is None:
            return [INDEX_FILE]
        np.save(folder / ROWS_FILE, self.rows, allow_pickle=False)
        return [INDEX_FILE, ROWS_FILE]

    @classmethod
    def load(cls, folder: Path, *, mmap: bool = True, rows: bool | None = None) -> DenseIndex:
        """Read an index written by save(), memory-mapped by default: the vectors and the graph
        stay reclaimable page cache, read as searches touch them, and loading takes no time.

        `rows` says whether save() wrote a node table (as the manifest lists it); None: if the
        file is there. Only an index loaded with mmap=False can be `updated`.
        """
        try:
            index = faiss.read_index(str(folder / INDEX_FILE), _MMAP_FLAG if mmap else 0)
            table = (np.load(folder / ROWS_FILE, allow_pickle=False)
                     if rows or (rows is None and (folder / ROWS_FILE).exists()) else None)
        except (RuntimeError, OSError, ValueError, EOFError) as exc:
            raise IndexCorruptError(f"the dense index in {folder} cannot be read ({exc}); rebuild with `qa build`") from exc
        return cls(index, table, mapped=mmap and bool(_MMAP_FLAG))
