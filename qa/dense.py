"""Dense leg: L2-normalised vectors in a FAISS inner-product index (cosine similarity)."""

from __future__ import annotations

from pathlib import Path

import faiss
import numpy as np

from .errors import IndexCorruptError

INDEX_FILE = "dense.faiss"

# Single queries on a small CPU: more OpenMP threads only add contention (ENVIRONMENT.md saw
# 2 threads make a flat query 4-60x slower on 2 busy cores).
faiss.omp_set_num_threads(1)


class DenseIndex:
    """Exact inner-product search over row-aligned vectors (row i = chunk i)."""

    def __init__(self, index: faiss.Index):
        self.index = index

    @classmethod
    def build(cls, vectors: np.ndarray) -> "DenseIndex":
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        if vectors.ndim != 2:
            raise ValueError(f"vectors must be a 2-d array, got shape {vectors.shape}")
        index = faiss.IndexFlatIP(vectors.shape[1])
        index.add(vectors)
        return cls(index)

    def __len__(self) -> int:
        return self.index.ntotal

    @property
    def dim(self) -> int:
        return self.index.d

    def search(self, query: np.ndarray, k: int) -> list[tuple[int, float]]:
        """Return up to k (row, cosine) pairs for one normalised query vector, best first."""
        k = min(k, len(self))
        if k <= 0:
            return []
        scores, rows = self.index.search(np.ascontiguousarray(query, dtype=np.float32).reshape(1, -1), k)
        return [(int(r), float(s)) for r, s in zip(rows[0], scores[0]) if r >= 0]

    def save(self, folder: Path) -> list[str]:
        faiss.write_index(self.index, str(folder / INDEX_FILE))
        return [INDEX_FILE]

    @classmethod
    def load(cls, folder: Path) -> "DenseIndex":
        try:
            return cls(faiss.read_index(str(folder / INDEX_FILE)))
        except RuntimeError as exc:
            raise IndexCorruptError(f"{folder / INDEX_FILE} cannot be read ({exc}); rebuild with `qa build`") from exc
