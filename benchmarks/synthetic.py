"""Synthetic corpora and embeddings at any scale, shaped like the real data.

Lexical: a Zipf(s=1) vocabulary whose most frequent ranks are the real stems of the Dutch
corpora in the data folder (ordered by their real frequency) and whose tail is Dutch-looking
pseudo-words; ~120 analysed terms per chunk. Dense: `clustered_vectors`, a mixture of Gaussians
fitted to multilingual-e5-small (BENCHMARKS.md, "Synthetic vectors").
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from qa.chunking import Chunk
from qa.corpus import Document
from qa.lexical import Analyzer
from qa.sentences import SentenceStore, quantise, sentence_key, sentence_spans

from .measure import passages

DIM = 384
CENTRES = 4000
# Shape of the synthetic embeddings, fitted to multilingual-e5-small (see clustered_vectors):
# variance around the shared direction (unit length), its spectral decay, and its between-topic share.
VARIANCE = 0.294
ALPHA = 0.8
BETWEEN = 0.5
TERMS_PER_CHUNK = 120
ZIPF_S = 1.0
VOCAB_RANKS = 1 << 20
SEED = 20240601
CHUNKS_PER_DOC = 4
SENTENCE_TERMS = 15


def _pseudo_words(start: int, count: int) -> list[str]:
    """Distinct Dutch-looking words for the vocabulary tail, by writing the rank in a syllable base."""
    onsets = ["", "b", "d", "g", "k", "l", "m", "n", "p", "r", "s", "t", "v", "w", "z", "br", "dr", "gr", "kl",
              "kr", "pl", "pr", "sch", "sl", "sp", "st", "str", "tr", "vl", "vr", "zw", "j"]
    nuclei = ["a", "e", "i", "o", "u", "aa", "ee", "oo", "uu", "ie", "oe", "ei", "ij", "ui", "eu", "ou"]
    codas = ["", "n", "r", "l", "s", "t", "k", "m", "ng", "ch", "rd", "st", "ld", "nd", "rs", "ts"]
    syllables = [o + n + c for o in onsets for n in nuclei for c in codas]
    base = len(syllables)
    words = []
    for rank in range(start, start + count):
        parts, r = [], rank + base  # at least two syllables
        while r:
            r, digit = divmod(r, base)
            parts.append(syllables[digit])
        words.append("".join(parts) + "q")  # the suffix keeps them apart from real stems
    return words


def vocabulary(data: Path) -> list[str]:
    """VOCAB_RANKS terms, most frequent first: the real stems of the Dutch passages under `data`
    (xquad_nl, ntrex_nl) by frequency, then pseudo-words."""
    analyzer, counts = Analyzer(), Counter()
    for name in ("xquad_nl", "ntrex_nl"):
        for text in passages(data, name):
            counts.update(analyzer.analyze(text, "nl"))
    real = [t for t, _ in counts.most_common()]
    return real + _pseudo_words(0, VOCAB_RANKS - len(real))


def make_corpus(n: int, folder: Path, data: Path) -> None:
    """Write token ids (ids.npy, offsets.npy) and vocab.json for n synthetic chunks."""
    rng = np.random.default_rng(SEED)
    vocab = vocabulary(data)
    p = 1.0 / np.arange(1, VOCAB_RANKS + 1, dtype=np.float64) ** ZIPF_S
    cdf = np.cumsum(p / p.sum())
    lengths = np.clip(rng.normal(TERMS_PER_CHUNK, 15, n).round(), 20, 200).astype(np.int64)
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    ids = np.empty(int(offsets[-1]), np.int32)
    step = 1 << 24
    for a in range(0, ids.size, step):
        b = min(a + step, ids.size)
        ids[a:b] = np.minimum(np.searchsorted(cdf, rng.random(b - a)), VOCAB_RANKS - 1)
    np.save(folder / "ids.npy", ids)
    np.save(folder / "offsets.npy", offsets)
    (folder / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False), encoding="utf-8")


def load_corpus(folder: Path) -> list[list[str]]:
    """The analysed terms of each chunk written by make_corpus."""
    vocab = np.array(json.loads((folder / "vocab.json").read_text(encoding="utf-8")), dtype=object)
    ids, offsets = np.load(folder / "ids.npy"), np.load(folder / "offsets.npy")
    return [vocab[ids[offsets[i]:offsets[i + 1]]].tolist() for i in range(len(offsets) - 1)]


def synthetic_chunks(terms_per_chunk: list[list[str]]) -> Iterator[Chunk]:
    """The chunks of the synthetic terms, CHUNKS_PER_DOC per document, a full stop every
    SENTENCE_TERMS terms (news sentences are ~15-20 words; answers highlight one of them)."""
    for i, terms in enumerate(terms_per_chunk):
        text = ". ".join(" ".join(terms[a:a + SENTENCE_TERMS]) for a in range(0, len(terms), SENTENCE_TERMS)) + "."
        doc, ordinal = divmod(i, CHUNKS_PER_DOC)
        yield Chunk(chunk_id=f"d{doc}#{ordinal}", doc_id=f"d{doc}", ordinal=ordinal, start=0, end=len(text),
                    text=text, lang="nl")


def synthetic_sentences(chunks: list[Chunk], block: int = 1 << 20) -> SentenceStore:
    """The stored sentence vectors of synthetic chunks: every sentence keyed as a build keys it
    (qa/sentences.py), with clustered vectors made and quantised a block at a time."""
    keys = np.unique(np.fromiter((sentence_key(c.text[a:b]) for c in chunks for a, b in sentence_spans(c.text)),
                                 np.uint64))
    vectors, scales = np.empty((len(keys), DIM), np.int8), np.empty(len(keys), np.float32)
    for a in range(0, len(keys), block):
        vectors[a:a + block], scales[a:a + block] = quantise(clustered_vectors(min(block, len(keys) - a), seed=SEED + 11 + a))
    return SentenceStore(keys, vectors, scales)


def synthetic_docs(n_chunks: int) -> Iterator[Document]:
    """The documents of n_chunks synthetic chunks."""
    for d in range((n_chunks + CHUNKS_PER_DOC - 1) // CHUNKS_PER_DOC):
        yield Document(doc_id=f"d{d}", title=f"Synthetisch artikel {d}", date="2024-06", source=f"synthetic/d{d}.txt",
                       lang="nl")


def clustered_vectors(n: int, *, seed: int = SEED, centres: int = CENTRES, dim: int = DIM,
                      alpha: float | None = ALPHA, between: float = BETWEEN) -> np.ndarray:
    """n unit vectors shaped like real sentence embeddings: a shared direction plus a mixture of
    Gaussians around `centres` topic centres, with a power-law spectrum.

    The defaults match multilingual-e5-small on the ~2000 real passages in data/: mean pairwise
    cosine ~0.77 (one shared direction carries most of every vector), and the variance around it
    falls off as i^-0.8 over the principal axes (top 10 / 50 axes hold ~30% / ~54% of it,
    participation ratio ~60 of 384). `between` is the share of that variance that separates
    topic centres. Cluster sizes are unequal (Dirichlet), like news topics.
    alpha=0 gives isotropic clusters (much harder for a graph index); alpha=None uniform random.
    """
    rng = np.random.default_rng(seed)
    centre_rng = np.random.default_rng(SEED + 1)  # the same centres for corpus and queries
    if alpha is None:
        out = rng.standard_normal((n, dim), dtype=np.float32)
    else:
        scale = np.arange(1, dim + 1, dtype=np.float64) ** -alpha
        scale = np.sqrt(VARIANCE * scale / scale.sum()).astype(np.float32)
        shared = centre_rng.standard_normal(dim).astype(np.float32)
        shared /= np.linalg.norm(shared)
        c = centre_rng.standard_normal((centres, dim), dtype=np.float32) * (scale * np.float32(np.sqrt(between)))
        weights = centre_rng.dirichlet(np.full(centres, 2.0))
        labels = rng.choice(centres, size=n, p=weights)
        within = scale * np.float32(np.sqrt(1 - between))
        out = np.empty((n, dim), np.float32)
        step = 1 << 17
        for a in range(0, n, step):
            b = min(a + step, n)
            out[a:b] = shared + c[labels[a:b]] + rng.standard_normal((b - a, dim), dtype=np.float32) * within
    out /= np.linalg.norm(out, axis=1, keepdims=True)
    return out


def exact_top(vectors: np.ndarray, queries: np.ndarray, k: int) -> np.ndarray:
    """Brute-force top-k rows per query (numpy), the oracle for recall."""
    best_s = np.full((len(queries), 0), -np.inf, np.float32)
    best_i = np.zeros((len(queries), 0), np.int64)
    step = 1 << 18
    for a in range(0, len(vectors), step):
        s = queries @ vectors[a:a + step].T
        kk = min(k, s.shape[1])
        part = np.argpartition(-s, kk - 1, axis=1)[:, :kk]
        best_s = np.concatenate([best_s, np.take_along_axis(s, part, 1)], 1)
        best_i = np.concatenate([best_i, part + a], 1)
        keep = np.argsort(-best_s, axis=1, kind="stable")[:, :k]
        best_s, best_i = np.take_along_axis(best_s, keep, 1), np.take_along_axis(best_i, keep, 1)
    return best_i
