"""Each chunk's analysed terms, kept as counts, so a sync re-weighs BM25 without re-analysing text.

BM25's idf and average chunk length change with every article added or removed, so a sync
recomputes every weight exactly (`BM25Index.from_counts`) from the term counts of all chunks:
those of unchanged chunks are read from the live index, only new chunks are analysed. The counts
are stored row-aligned with the chunk table, each row's terms in order of first occurrence (so
the vocabulary can be renumbered in order of first appearance, as a fresh build numbers it), and
numbered by the BM25 index's columns (its `terms` are the vocabulary)::

    terms_indptr.npy   int64, n + 1 row pointers
    terms_ids.npy      int32, the term (BM25 column) of each (row, term)
    terms_tf.npy       int32, how often the term occurs in the row
"""

from __future__ import annotations

from array import array
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import IndexCorruptError
from .lexical import BM25Index

FILES = {"indptr": "terms_indptr.npy", "ids": "terms_ids.npy", "tf": "terms_tf.npy"}
_DTYPES = {"indptr": np.dtype(np.int64), "ids": np.dtype(np.int32), "tf": np.dtype(np.int32)}


@dataclass(frozen=True)
class TermCounts:
    """The term counts of n rows: row i holds `vocabulary[ids[j]]` `tf[j]` times for j in
    `indptr[i]:indptr[i + 1]`, in order of first occurrence."""

    vocabulary: list[str]
    indptr: np.ndarray
    ids: np.ndarray
    tf: np.ndarray

    def __len__(self) -> int:
        return len(self.indptr) - 1

    @classmethod
    def count(cls, rows: Iterable[Sequence[str]], numbers: dict[str, int]) -> TermCounts:
        """Count the terms of each row.

        Args:
            rows: the terms of each row, e.g. Analyzer.analyze output.
            numbers: term -> number; terms it lacks get the next numbers and are added to it, so
                counts made with one shared `numbers` can be joined.

        Returns:
            The counts; their vocabulary is `numbers` in insertion order.
        """
        ids, tf, indptr = array("i"), array("i"), array("q", [0])
        number = numbers.setdefault
        for terms in rows:
            counts = Counter(terms)  # a dict: terms in order of first occurrence
            ids.extend([number(term, len(numbers)) for term in counts])
            tf.extend(counts.values())
            indptr.append(len(ids))
        return cls(list(numbers), np.frombuffer(indptr, np.int64), np.frombuffer(ids, np.int32),
                   np.frombuffer(tf, np.int32))

    @classmethod
    def join(cls, parts: Iterable[tuple[TermCounts, int, int]], vocabulary: list[str]) -> TermCounts:
        """Rows of several counts, one part after the other.

        Args:
            parts: (counts, start, stop): rows start..stop-1 of counts that number their terms by
                `vocabulary` (or a prefix of it).
            vocabulary: the terms of the result.

        Returns:
            The joined counts (not renumbered).
        """
        pointers, ids, tf = [np.zeros(1, np.int64)], [], []
        end = 0
        for counts, start, stop in parts:
            a, b = int(counts.indptr[start]), int(counts.indptr[stop])
            pointers.append(counts.indptr[start + 1:stop + 1] - a + end)
            ids.append(counts.ids[a:b])
            tf.append(counts.tf[a:b])
            end += b - a
        return cls(vocabulary, np.concatenate(pointers), np.concatenate(ids or [np.zeros(0, np.int32)]),
                   np.concatenate(tf or [np.zeros(0, np.int32)]))

    def renumbered(self) -> TermCounts:
        """The same counts with the terms numbered in order of first appearance (row by row) and
        the terms that occur nowhere dropped: the vocabulary a fresh build of these rows has."""
        n_terms = len(self.vocabulary)
        # Where each term first occurs (positions only grow, so it is the smallest). One pass; a
        # stable sort of 100M ids, or turning the rows into columns, takes several times longer.
        first = np.full(n_terms, self.ids.size, np.int64)
        np.minimum.at(first, self.ids, np.arange(self.ids.size, dtype=np.int64))
        used = np.flatnonzero(first < self.ids.size)
        order = used[np.argsort(first[used])]
        number = np.full(n_terms, -1, np.int32)
        number[order] = np.arange(order.size, dtype=np.int32)
        return TermCounts([self.vocabulary[i] for i in order.tolist()], self.indptr, number[self.ids], self.tf)

    def bm25(self) -> BM25Index:
        """The BM25 index of these rows; equal to BM25Index.build on the rows' terms when the
        counts are `renumbered` (bit-equal weights, same columns)."""
        return BM25Index.from_counts(self.vocabulary, self.indptr, self.ids, self.tf)

    def save(self, folder: Path) -> list[str]:
        """Write the three arrays (the vocabulary is the BM25 index's); return their names."""
        for name, filename in FILES.items():
            np.save(folder / filename, getattr(self, name).astype(_DTYPES[name], copy=False), allow_pickle=False)
        return list(FILES.values())

    @classmethod
    def load(cls, folder: Path, vocabulary: list[str], rows: int) -> TermCounts:
        """Read the arrays (memory-mapped) of a generation with `rows` chunks and this vocabulary.

        Raises:
            IndexCorruptError: a file is missing, unreadable or does not fit the others.
        """
        arrays = {}
        try:
            for name, filename in FILES.items():
                arrays[name] = np.load(folder / filename, mmap_mode="r", allow_pickle=False)
        except (OSError, ValueError, EOFError) as exc:
            raise IndexCorruptError(f"the term counts in {folder} cannot be read ({exc}); rebuild with `qa build`") from exc
        indptr, ids, tf = arrays["indptr"], arrays["ids"], arrays["tf"]
        fits = (all(a.ndim == 1 and a.dtype == _DTYPES[n] for n, a in arrays.items()) and indptr.size == rows + 1
                and indptr[0] == 0 and indptr[-1] == ids.size == tf.size and not np.any(np.diff(indptr) < 0)
                and (not ids.size or (ids.min() >= 0 and ids.max() < len(vocabulary) and tf.min() >= 1)))
        if not fits:
            raise IndexCorruptError(f"the term counts in {folder} do not fit the chunks and BM25 vocabulary; "
                                    "rebuild with `qa build`")
        return cls(vocabulary, indptr, ids, tf)
