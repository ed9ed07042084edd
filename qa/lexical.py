"""The lexical leg: a sparse BM25 index (the analyzer is in analysis.py)."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import scipy.sparse

from .analysis import VERSION, Analyzer
from .errors import IndexCorruptError, IndexFormatError

__all__ = ["VERSION", "IDF_FLOOR", "Analyzer", "BM25Index", "Collection", "idf"]

# When epsilon * average_idf is not positive (one or two documents, or near-duplicates),
# rank_bm25's floor would zero or even penalise matching terms. Any positive constant ranks a
# corpus whose idfs are all floored the same way; 0.05 is below the smallest positive idf
# rank_bm25 gives in a corpus of fewer than 40 documents (log((N/2+1)/(N/2)), N odd), so
# floored terms still count but practically never outweigh a term that discriminates.
IDF_FLOOR = 0.05

_FORMAT = 1
_VOCAB_FILE = "bm25_vocab.json"
_ARRAY_FILES = {"data": "bm25_data.npy", "indices": "bm25_indices.npy", "indptr": "bm25_indptr.npy"}
_DTYPES = {"data": np.dtype(np.float64), "indices": np.dtype(np.int32), "indptr": np.dtype(np.int64)}


def idf(df: np.ndarray, n_docs: int) -> np.ndarray:
    """rank_bm25's idf of terms in `df` of `n_docs` documents, log(N - df + 0.5) - log(df + 0.5),
    unfloored: the same two math.log calls as rank_bm25, once per distinct df, for bit-equal idfs."""
    unique_df, inverse = np.unique(np.asarray(df, np.int64), return_inverse=True)
    return np.array([math.log(n_docs - n + 0.5) - math.log(n + 0.5) for n in unique_df.tolist()],
                    dtype=np.float64)[inverse.reshape(-1)]


@dataclass(frozen=True)
class Collection:
    """BM25's statistics of a whole collection indexed in parts (shards, qa/scale/): a part's
    index weighed with them (`BM25Index.from_counts(..., collection=)`) scores its rows exactly as
    one index over the whole collection would.

    Args:
        n_docs: the documents (chunks) of the whole collection.
        total_length: the sum of their lengths in terms (so avgdl = total_length / n_docs).
        average_idf: the mean unfloored idf over the whole collection's vocabulary (epsilon's floor).
        df: the collection's document frequency of each term of the part, aligned with its terms.
    """

    n_docs: int
    total_length: int
    average_idf: float
    df: np.ndarray

    @property
    def avgdl(self) -> float:
        return self.total_length / self.n_docs if self.n_docs else 0.0


def _check_params(k1: float, b: float, epsilon: float) -> None:
    for name, value, ok in (("k1", k1, k1 >= 0), ("b", b, 0 <= b <= 1), ("epsilon", epsilon, epsilon >= 0)):
        if not ok or not math.isfinite(value):
            raise ValueError(f"{name} must be {'between 0 and 1' if name == 'b' else '>= 0'}, got {value!r}")


class BM25Index:
    """BM25 scores of rank_bm25's BM25Okapi, precomputed per (term, document) in a CSC matrix.

    Column t of the N x V matrix holds idf(t) * tf * (k1 + 1) / (tf + k1 * (1 - b + b * dl /
    avgdl)) for the documents containing t, so a query is a sum of columns. Row i is document i.

    One deliberate deviation from BM25Okapi: it floors only idf < 0 at epsilon * average_idf,
    which leaves a term in exactly half of the documents at idf 0, and on tiny corpora that
    floor is itself <= 0; so an exact name or number in a 2-6 chunk corpus could score 0.
    Here every idf <= 0 is floored, at epsilon * average_idf when that is positive and at
    IDF_FLOOR otherwise. All other scores equal BM25Okapi.get_scores.
    """

    def __init__(self, terms: list[str], data: np.ndarray, indices: np.ndarray,
                 indptr: np.ndarray, *, n_docs: int, params: dict[str, float],
                 source: Path | None = None) -> None:
        self._terms = terms
        self._vocab = {term: column for column, term in enumerate(terms)}
        self._data, self._indices, self._indptr = data, indices, indptr
        self._n_docs = n_docs
        self._params = params
        self._source = source  # the folder memory-mapped from, so save() cannot clobber it

    @classmethod
    def build(cls, docs_tokens: Sequence[Sequence[str]], *, k1: float = 1.5, b: float = 0.75,
              epsilon: float = 0.25) -> BM25Index:
        """Index tokenised documents; row i of the index is ``docs_tokens[i]``.

        Args:
            docs_tokens: One list of terms per document (e.g. from Analyzer.analyze).
            k1: Term-frequency saturation, >= 0.
            b: Length normalisation, between 0 and 1.
            epsilon: Fraction of the average idf given to terms with idf <= 0, >= 0.

        Returns:
            The index.

        Raises:
            ValueError: A parameter is out of range.
            TypeError: A document is a string instead of a list of terms.
        """
        _check_params(k1, b, epsilon)
        for row, doc in enumerate(docs_tokens):
            if isinstance(doc, str):
                raise TypeError(f"docs_tokens[{row}] is a str; pass a list of terms per document")
        n_docs = len(docs_tokens)
        lengths = np.array([len(doc) for doc in docs_tokens], dtype=np.int64)
        # Term ids in order of first appearance, the order rank_bm25 sums its idfs in.
        vocab: dict[str, int] = {}
        term_ids = np.fromiter((vocab.setdefault(t, len(vocab)) for doc in docs_tokens for t in doc),
                               dtype=np.int64, count=int(lengths.sum()))
        n_terms = len(vocab)
        doc_ids = np.repeat(np.arange(n_docs, dtype=np.int64), lengths)
        counts = scipy.sparse.csc_matrix((np.ones(term_ids.size), (doc_ids, term_ids)),
                                         shape=(n_docs, n_terms))
        counts.sum_duplicates()
        return cls._weigh(list(vocab), counts, lengths, k1=k1, b=b, epsilon=epsilon)

    @classmethod
    def from_counts(cls, terms: Sequence[str], indptr: np.ndarray, term_ids: np.ndarray, counts: np.ndarray, *,
                    k1: float = 1.5, b: float = 0.75, epsilon: float = 0.25,
                    collection: Collection | None = None) -> BM25Index:
        """Index documents given as term counts instead of token lists (no text analysed again).

        Row i holds ``terms[term_ids[j]]`` ``counts[j]`` times for j in ``indptr[i]:indptr[i + 1]``,
        each term at most once per row. The result equals ``build`` on the same documents when the
        terms are numbered in order of first appearance (rank_bm25 sums its idfs in that order).

        Args:
            terms: The vocabulary; column j of the index is ``terms[j]``.
            indptr: Row pointers, length n_docs + 1.
            term_ids: Term numbers per (row, term), int.
            counts: Occurrences per (row, term), >= 1.
            k1, b, epsilon: As for build().
            collection: weigh with the statistics of a whole collection these rows are part of
                (idf, average length, idf floor), instead of the rows' own; the index still has
                one row per document given here.

        Returns:
            The index.

        Raises:
            ValueError: A parameter is out of range, the arrays do not fit together, a term
                occurs in no document, or the collection's statistics cannot include these rows.
        """
        _check_params(k1, b, epsilon)
        indptr, term_ids, counts = np.asarray(indptr, np.int64), np.asarray(term_ids), np.asarray(counts)
        if (indptr.ndim != 1 or indptr.size == 0 or indptr[0] != 0 or indptr[-1] != term_ids.size
                or term_ids.size != counts.size or np.any(np.diff(indptr) < 0)):
            raise ValueError("indptr, term_ids and counts do not describe one row of term counts per document")
        if counts.size and (counts.min() < 1 or term_ids.min() < 0 or term_ids.max() >= len(terms)):
            raise ValueError("counts must be >= 1 and term_ids must number the given terms")
        n_docs = indptr.size - 1
        lengths = np.zeros(n_docs, np.int64)
        rows = np.flatnonzero(np.diff(indptr))  # reduceat sums from each start to the next one
        if rows.size:
            lengths[rows] = np.add.reduceat(counts, indptr[rows], dtype=np.int64)
        matrix = scipy.sparse.csr_matrix((counts, term_ids, indptr), shape=(n_docs, len(terms)))
        if collection is not None:
            df = np.asarray(collection.df)
            if df.shape != (len(terms),) or collection.n_docs < n_docs or collection.total_length < int(lengths.sum()):
                raise ValueError(f"the collection's statistics ({collection.n_docs} documents, {df.shape[0]} document "
                                 f"frequencies) cannot include these {n_docs} documents of {len(terms)} terms")
        return cls._weigh(list(terms), matrix.tocsc(), lengths, k1=k1, b=b, epsilon=epsilon, collection=collection)

    @classmethod
    def _weigh(cls, terms: list[str], counts: scipy.sparse.csc_matrix, lengths: np.ndarray, *, k1: float, b: float,
               epsilon: float, collection: Collection | None = None) -> BM25Index:
        """The index of an n_docs x n_terms count matrix (no repeated entries) and the row lengths
        (weighed with a whole collection's statistics when `collection` is given)."""
        counts.sort_indices()
        n_docs, n_terms = counts.shape
        indptr = counts.indptr.astype(np.int64)
        df = np.diff(indptr)
        if n_terms and not df.all():
            raise ValueError(f"term {terms[int(np.argmin(df))]!r} occurs in no document")
        if collection is None:
            weights = idf(df, n_docs)
            average_idf = sum(weights.tolist()) / n_terms if n_terms else 0.0
            avgdl = int(lengths.sum()) / n_docs if n_docs else 0.0
        else:
            if np.any(np.asarray(collection.df) < df):
                raise ValueError("the collection's document frequencies are below these documents' own")
            weights, average_idf, avgdl = idf(collection.df, collection.n_docs), collection.average_idf, collection.avgdl
        floor = epsilon * average_idf if epsilon * average_idf > 0 else IDF_FLOOR
        weights[weights <= 0] = floor
        tf = counts.data
        # BM25Okapi.get_scores's idf * (tf * (k1 + 1) / (tf + k1 * (1 - b + b * dl / avgdl))), with
        # the same operations on the same values in the same order, so weights are bit-equal: the
        # length part once per document, the rest in place (a + x == x + a exactly), as every
        # (term, document) array is as large as the index (800 MB at 1M chunks).
        per_doc = b * lengths
        if counts.nnz:  # (no division by a zero average length when there is nothing to weigh)
            per_doc /= avgdl
        per_doc += 1 - b
        per_doc *= k1
        norm = per_doc[counts.indices]
        norm += tf
        data = tf * (k1 + 1)
        data /= norm
        del norm
        data *= np.repeat(weights, df)
        params = {"k1": k1, "b": b, "epsilon": epsilon, "avgdl": avgdl,
                  "average_idf": average_idf, "idf_floor": floor}
        return cls(terms, data.astype(np.float64, copy=False), counts.indices.astype(np.int32, copy=False), indptr,
                   n_docs=n_docs, params=params)

    def __len__(self) -> int:
        return self._n_docs

    @property
    def terms(self) -> list[str]:
        """The vocabulary: column j is ``terms[j]``, in order of first appearance (do not change it)."""
        return self._terms

    @property
    def vocabulary_size(self) -> int:
        """The number of distinct terms (columns)."""
        return len(self._terms)

    @property
    def postings(self) -> int:
        """The number of stored (term, document) weights."""
        return int(self._data.size)

    def __repr__(self) -> str:
        return (f"BM25Index(docs={self._n_docs}, terms={len(self._terms)}, "
                f"k1={self._params['k1']}, b={self._params['b']})")

    def scores(self, query_tokens: Sequence[str]) -> np.ndarray:
        """Score every document against a query, like BM25Okapi.get_scores.

        Args:
            query_tokens: Query terms; a repeated term counts again, unknown terms count 0.

        Returns:
            float64 array of length len(self).

        Raises:
            TypeError: ``query_tokens`` is a string instead of a list of terms.
        """
        return self._accumulate(self._spans(query_tokens))

    def _spans(self, query_tokens: Sequence[str]) -> list[tuple[int, int]]:
        """The (start, end) postings of each known query token, in query order (repeats included)."""
        if isinstance(query_tokens, str):
            raise TypeError("query_tokens is a str; pass a list of terms (Analyzer.analyze)")
        columns = [self._vocab.get(token) for token in query_tokens]
        return [(int(self._indptr[c]), int(self._indptr[c + 1])) for c in columns if c is not None]

    def _accumulate(self, spans: list[tuple[int, int]]) -> np.ndarray:
        """The scores of all rows: a fresh array per call, so concurrent queries share nothing."""
        scores = np.zeros(self._n_docs, dtype=np.float64)
        for start, end in spans:
            # np.add.at updates in one pass; `scores[rows] += weights` gathers, adds and scatters
            # (~2x slower at 1M chunks). A column holds each row once and the terms are added in
            # query order, as rank_bm25 sums them, so every score is bit-equal to its sum.
            np.add.at(scores, self._indices[start:end], self._data[start:end])
        return scores

    def knows(self, query_tokens: Sequence[str]) -> tuple[bool, ...]:
        """Per query token: does it occur anywhere in the corpus."""
        return tuple(t in self._vocab for t in query_tokens)

    def coverage(self, query_tokens: Sequence[str]) -> float:
        """Fraction of the query tokens that occur anywhere in the corpus (0.0 for no tokens)."""
        if not query_tokens:
            return 0.0
        return sum(self.knows(query_tokens)) / len(query_tokens)

    def top_k(self, query_tokens: Sequence[str], k: int, rows: np.ndarray | None = None) -> list[tuple[int, float]]:
        """Return the best ``k`` documents for a query.

        Args:
            query_tokens: Query terms, as for scores().
            k: How many results at most; larger than the corpus is fine.
            rows: a boolean mask of the documents that may be returned (None: all).

        Returns:
            (row, score) pairs, best first, only scores > 0; equal scores by lower row.

        Raises:
            ValueError: ``k`` is negative.
        """
        if k < 0:
            raise ValueError(f"k must be >= 0, got {k!r}")
        spans = self._spans(query_tokens)
        if k == 0 or not spans:
            return []
        scores = self._accumulate(spans)
        # Sort only the rows that can reach the top k: a cheap lower bound on the k-th best score
        # usually leaves ~k of them, where every matching row (most of the corpus at 1M chunks
        # for a question with a common word) would cost more than scoring.
        threshold = self._kth_bound(scores, spans, k, rows)
        keep = scores >= threshold if threshold is not None else scores > 0
        if rows is not None:
            keep &= rows  # before flatnonzero: a bound from few allowed rows can be low
        hits = np.flatnonzero(keep)
        if hits.size == 0:
            return []
        values = scores[hits]
        if k < hits.size:
            kth = np.partition(values, hits.size - k)[hits.size - k]
            keep = values >= kth  # keeps every tie at the cut, so lower rows can win it
            hits, values = hits[keep], values[keep]
        order = np.lexsort((hits, -values))[:k]
        return [(int(row), float(score)) for row, score in zip(hits[order], values[order])]

    def _kth_bound(self, scores: np.ndarray, spans: list[tuple[int, int]], k: int,
                   rows: np.ndarray | None) -> float | None:
        """A positive lower bound on the k-th best score of the allowed rows, or None if none is found.

        The k-th best score among any k distinct allowed rows is one. The rows of a single term
        are distinct, and the rarest term's are few and carry its high idf, so they usually hold
        the top scores and give a bound close to the true k-th score. (Weights are positive, so
        the bound is too; checked anyway, as `scores >= bound` must never admit a score of 0.)"""
        by_length = sorted(spans, key=lambda span: span[1] - span[0])
        # If a mask leaves the rarest term fewer than k rows, the commonest term's are the likeliest
        # to hold k (two tries at most: each costs a pass over the term's rows).
        for start, end in dict.fromkeys((by_length[0], by_length[-1])):
            candidates = self._indices[start:end]
            if rows is not None:
                candidates = candidates[rows[candidates]]
            if candidates.size >= k:
                values = scores[candidates]
                bound = float(np.partition(values, values.size - k)[values.size - k])
                return bound if bound > 0 else None
        return None

    def save(self, folder: Path) -> list[str]:
        """Write the index as plain files (JSON vocabulary, .npy arrays, no pickle).

        Args:
            folder: Where to write; created if missing. Not the folder this index is mapped from.

        Returns:
            The names of the files written, relative to ``folder``.

        Raises:
            ValueError: ``folder`` is the folder this index was memory-mapped from.
        """
        folder = Path(folder)
        if self._source is not None and folder.resolve() == self._source:
            raise ValueError(f"cannot save into {folder}: this index is memory-mapped from it; "
                             "save into a new folder and swap it in")
        folder.mkdir(parents=True, exist_ok=True)
        meta = {"format": _FORMAT, "n_docs": self._n_docs, **self._params, "terms": self._terms}
        with open(folder / _VOCAB_FILE, "w", encoding="utf-8") as file:
            json.dump(meta, file, ensure_ascii=False)
        for name, filename in _ARRAY_FILES.items():
            np.save(folder / filename, getattr(self, f"_{name}"), allow_pickle=False)
        return [_VOCAB_FILE, *_ARRAY_FILES.values()]

    @classmethod
    def load(cls, folder: Path, *, mmap: bool = True) -> BM25Index:
        """Read an index written by save().

        Args:
            folder: The folder save() wrote.
            mmap: Memory-map the arrays instead of reading them into memory.

        Returns:
            The index.

        Raises:
            IndexCorruptError: A file is missing, unreadable or inconsistent with the others.
            IndexFormatError: The files were written in another format version.
        """
        folder = Path(folder)
        fix = "rebuild the index with `qa build`"
        try:
            with open(folder / _VOCAB_FILE, encoding="utf-8") as file:
                meta = json.load(file)
            if meta["format"] != _FORMAT:
                raise IndexFormatError(f"BM25 index format {meta['format']!r} in {folder} is not "
                                       f"format {_FORMAT}, the one this version reads; {fix}")
            terms, n_docs = meta["terms"], meta["n_docs"]
            params = {key: float(meta[key]) for key in
                      ("k1", "b", "epsilon", "avgdl", "average_idf", "idf_floor")}
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise IndexCorruptError(f"BM25 vocabulary {folder / _VOCAB_FILE} is missing or "
                                    f"unreadable ({exc}); {fix}") from exc
        if (not isinstance(terms, list) or not isinstance(n_docs, int) or n_docs < 0
                or not all(isinstance(term, str) for term in terms)):
            raise IndexCorruptError(f"BM25 vocabulary {folder / _VOCAB_FILE} is malformed; {fix}")
        arrays = {}
        for name, filename in _ARRAY_FILES.items():
            try:
                array = np.load(folder / filename, mmap_mode="r" if mmap else None,
                                allow_pickle=False)
            except (OSError, ValueError, EOFError) as exc:
                raise IndexCorruptError(f"BM25 array {folder / filename} is missing or "
                                        f"truncated ({exc}); {fix}") from exc
            if array.ndim != 1 or array.dtype != _DTYPES[name]:
                raise IndexCorruptError(f"BM25 array {folder / filename} has shape {array.shape} "
                                        f"and dtype {array.dtype}, expected 1-D {_DTYPES[name]}; {fix}")
            arrays[name] = array
        data, indices, indptr = arrays["data"], arrays["indices"], arrays["indptr"]
        problem = None
        if indptr.size != len(terms) + 1:
            problem = f"{indptr.size - 1} columns for {len(terms)} terms"
        elif indptr[0] != 0 or indptr[-1] != data.size or data.size != indices.size:
            problem = f"{data.size} weights, {indices.size} rows, pointers end at {indptr[-1]}"
        elif np.any(indptr[1:] < indptr[:-1]):
            problem = "column pointers decrease"
        elif indices.size and (indices.min() < 0 or indices.max() >= n_docs):
            problem = f"row numbers outside 0..{n_docs - 1}"
        if problem is not None:
            raise IndexCorruptError(f"BM25 index in {folder} is inconsistent ({problem}); {fix}")
        index = cls(terms, data, indices, indptr, n_docs=n_docs, params=params,
                    source=folder.resolve() if mmap else None)
        if len(index._vocab) != len(terms):
            raise IndexCorruptError(f"BM25 vocabulary in {folder} repeats terms; {fix}")
        return index
