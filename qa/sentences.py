"""Sentence vectors stored with an index, so a highlight needs no embedding when a question comes.

Every answer highlights the sentence of each cited passage that answers best, which means comparing
the question with every sentence of five passages: ~20 sentences to embed, ~0.2-0.4 s on a CPU, the
largest part of `QA.ask` (BENCHMARKS.md). An index built with sentence vectors (`qa build
--sentence-vectors`, `QA.build(sentence_vectors=True)`) embeds every sentence of every chunk when it
embeds the chunk, as passages are embedded, and answering looks them up. Its generation holds::

    sentence_keys.npy     uint64, sorted: the first 8 bytes of the blake2b digest of each sentence
    sentence_vectors.npy  int8, row i = key i: the vector divided by its largest |component|, x127
    sentence_scales.npy   float32, row i = key i: that largest |component| / 127

Keyed by the sentence's text, not by chunk rows: a sync embeds only the sentences it has not seen
(those of new chunks; a sentence shared by overlapping chunks or by wire copies is embedded once),
and sentences of removed chunks stay until the next build. int8 rows keep 1/4 of float32's bytes
at a cosine to the float32 vector >= 0.9999 (tests/test_sentences.py). Two different sentences
share a 64-bit key with probability ~n^2/2^65 (~1e-6 at 5M sentences): the highlight would then
be chosen with the other sentence's vector, nothing else.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .chunking import split_sentences
from .errors import IndexCorruptError

KEYS_FILE, VECTORS_FILE, SCALES_FILE = "sentence_keys.npy", "sentence_vectors.npy", "sentence_scales.npy"
FILES = (KEYS_FILE, VECTORS_FILE, SCALES_FILE)
# Rows copied per step when a sync merges the live (mapped) store with new sentences: the new
# store is built in memory, the old one is read a block at a time.
MERGE_BLOCK = 1 << 16


def sentence_spans(passage: str) -> list[tuple[int, int]]:
    """Sentence spans inside a passage (the whole passage if it has no sentence boundary): the
    candidates of its highlight, and what a store holds a vector of."""
    spans = split_sentences(passage)
    return spans or [(0, len(passage))]


def distinct_sentences(texts: Iterable[str]) -> list[str]:
    """The sentences of these passages, each once, in order of appearance."""
    return list(dict.fromkeys(text[a:b] for text in texts for a, b in sentence_spans(text)))


def sentence_key(text: str) -> int:
    """The key a sentence's stored vector is found by."""
    return int.from_bytes(hashlib.blake2b(text.encode("utf-8"), digest_size=8).digest(), "little")


def quantise(vectors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """int8 rows and their float32 scales (row = int8 * scale)."""
    vectors = np.asarray(vectors, np.float32)
    scales = np.maximum(np.abs(vectors).max(axis=1, initial=0.0), 1e-12) / 127
    return np.round(vectors / scales[:, None]).astype(np.int8), scales.astype(np.float32)


@dataclass(frozen=True)
class SentenceStore:
    """The stored sentence vectors of a generation (memory-mapped when loaded)."""

    keys: np.ndarray     # uint64, sorted
    vectors: np.ndarray  # int8 (n, dim)
    scales: np.ndarray   # float32 (n,)

    def __len__(self) -> int:
        return len(self.keys)

    @classmethod
    def empty(cls, dim: int) -> SentenceStore:
        return cls(np.zeros(0, np.uint64), np.zeros((0, dim), np.int8), np.zeros(0, np.float32))

    @classmethod
    def of(cls, sentences: list[str], vectors: np.ndarray) -> SentenceStore:
        """A store of these sentences' vectors (the first of equal sentences kept)."""
        keys = np.array([sentence_key(s) for s in sentences], np.uint64).reshape(-1)
        keys, first = np.unique(keys, return_index=True)
        quantised, scales = quantise(vectors[first] if len(first) else vectors[:0])
        return cls(keys, quantised, scales)

    @classmethod
    def load(cls, folder: Path) -> SentenceStore:
        """Map a generation's store.

        Raises:
            IndexCorruptError: a file cannot be read or the files disagree.
        """
        try:
            keys, vectors, scales = (np.load(folder / name, allow_pickle=False, mmap_mode="r") for name in FILES)
        except (ValueError, OSError, EOFError) as exc:
            raise IndexCorruptError(f"cannot read the sentence vectors in {folder} ({exc}); "
                                    "rebuild with `qa build --sentence-vectors`") from exc
        if not (keys.dtype == np.uint64 and vectors.dtype == np.int8 and scales.dtype == np.float32
                and keys.ndim == scales.ndim == 1 and vectors.ndim == 2 and len(keys) == len(vectors) == len(scales)):
            raise IndexCorruptError(f"the sentence vector files in {folder} disagree; rebuild with `qa build --sentence-vectors`")
        return cls(keys, vectors, scales)

    def save(self, folder: Path) -> list[str]:
        for name, array in zip(FILES, (self.keys, self.vectors, self.scales)):
            np.save(folder / name, array, allow_pickle=False)
        return list(FILES)

    def describe(self) -> dict:
        """What the manifest records."""
        return {"count": len(self), "dim": int(self.vectors.shape[1]), "storage": "int8 per-row scale"}

    def rows(self, sentences: Iterable[str]) -> np.ndarray:
        """The store row of each sentence, -1 where it is not stored."""
        keys = np.array([sentence_key(s) for s in sentences], np.uint64).reshape(-1)
        at = np.minimum(np.searchsorted(self.keys, keys), max(len(self.keys) - 1, 0))
        found = (self.keys[at] == keys) if len(self.keys) else np.zeros(len(keys), bool)
        return np.where(found, at, -1)

    def vectors_at(self, rows: np.ndarray) -> np.ndarray:
        """float32 vectors of these rows, unit length again."""
        order = np.argsort(rows)  # mapped rows read in file order
        out = np.empty((len(rows), self.vectors.shape[1]), np.float32)
        out[order] = self.vectors[rows[order]].astype(np.float32) * self.scales[rows[order], None]
        out /= np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)
        return out

    def missing(self, texts: Iterable[str]) -> list[str]:
        """The distinct sentences of these passages that are not stored."""
        sentences = distinct_sentences(texts)
        if not len(self) or not sentences:
            return sentences
        return [s for s, row in zip(sentences, self.rows(sentences)) if row < 0]

    def merged(self, new: SentenceStore) -> SentenceStore:
        """This store plus `new` (whose keys are not in this one), in key order: a mapped store is
        read in blocks, in file order, into the new store's arrays."""
        if not len(new):
            return self
        if not len(self):
            return new
        keys = np.concatenate([np.asarray(self.keys), new.keys])
        order = np.argsort(keys, kind="stable")
        vectors = np.empty((len(keys), new.vectors.shape[1]), np.int8)
        scales = np.empty(len(keys), np.float32)
        n_old = len(self.keys)
        for a in range(0, len(order), MERGE_BLOCK):
            block = order[a:a + MERGE_BLOCK]
            old = block < n_old
            vectors[a:a + len(block)][old] = self.vectors[block[old]]
            vectors[a:a + len(block)][~old] = new.vectors[block[~old] - n_old]
            scales[a:a + len(block)][old] = self.scales[block[old]]
            scales[a:a + len(block)][~old] = new.scales[block[~old] - n_old]
        return SentenceStore(keys[order], vectors, scales)
