"""The sync benchmark (BENCHMARKS.md, "Sync"): 10 new articles into an index of n chunks.

Two phases, each in its own process (bench.py runs them):

- `base`: a corpus folder of synthetic articles (JSONL files of 10,000 articles, the lexical
  leg's Zipf vocabulary of real Dutch stems and pseudo-words, sentences of SENTENCE_TERMS words,
  CHUNKS_PER_DOC chunks each) indexed by `QA.build` with synthetic vectors (clustered_vectors)
  recorded under the real model's identity, so the real model reuses them. Everything but the
  embedding is the product path, so its time is a rebuild's time without the embedding.
- `sync`: the real model loaded and warmed up first (excluded, as the acceptance says), then
  `QA.sync` of the folder after 10 real Dutch news articles (ntrex_nl) were written into it; then
  one of them changed and one removed; then a sync with nothing to do. Peak RSS of the syncs is
  measured from a reset high-water mark. Per stage times come from wrapping the sync module's
  steps (measurement only). A rebuild is extrapolated: the base build + n x the measured
  per-chunk embedding cost of real passages on this machine.
"""

from __future__ import annotations

import json
import threading
import time
from functools import wraps
from pathlib import Path

import numpy as np

from .measure import loadavg, passages, read_jsonl, rss_mb, status_mb
from .synthetic import CHUNKS_PER_DOC, SEED, SENTENCE_TERMS, VOCAB_RANKS, ZIPF_S, clustered_vectors, vocabulary

ARTICLES_PER_FILE = 10_000
NEW_ARTICLES = 10
# 29 sentences of 15 words: 4 chunks of up to 120 words with one sentence of overlap.
WORDS_PER_ARTICLE = (CHUNKS_PER_DOC * 7 + 1) * SENTENCE_TERMS


def write_corpus(n_chunks: int, corpus: Path, data: Path) -> int:
    """Synthetic articles for about n_chunks chunks in JSONL files under `corpus`; returns the count."""
    rng = np.random.default_rng(SEED + 11)
    words = np.array(vocabulary(data), dtype=object)
    p = 1.0 / np.arange(1, VOCAB_RANKS + 1, dtype=np.float64) ** ZIPF_S
    cdf = np.cumsum(p / p.sum())
    n_articles = max(1, n_chunks // CHUNKS_PER_DOC)
    corpus.mkdir(parents=True, exist_ok=True)
    for f in range(0, n_articles, ARTICLES_PER_FILE):
        count = min(ARTICLES_PER_FILE, n_articles - f)
        ids = np.minimum(np.searchsorted(cdf, rng.random(count * WORDS_PER_ARTICLE)), VOCAB_RANKS - 1)
        drawn = words[ids].reshape(count, -1, SENTENCE_TERMS)
        with open(corpus / f"archive-{f // ARTICLES_PER_FILE:04d}.jsonl", "w", encoding="utf-8") as out:
            for i, sentences in enumerate(drawn):
                text = " ".join(" ".join(s).capitalize() + "." for s in sentences)
                out.write(json.dumps({"id": f"a{f + i}", "text": text, "date": "2024-06"}, ensure_ascii=False) + "\n")
    return n_articles


class SyntheticEmbedder:
    """Vectors from the clustered mixture, under the identity of the real model."""

    def __init__(self, identity, expected: int):
        self.identity = identity
        self._vectors, self._next = clustered_vectors(expected), 0

    @property
    def dim(self) -> int:
        return self.identity.dim

    def encode_passages(self, texts: list[str], *, progress: bool = False) -> np.ndarray:
        if self._next + len(texts) > len(self._vectors):
            more = clustered_vectors(max(len(texts), len(self._vectors) // 10), seed=SEED + 3 + self._next)
            self._vectors = np.concatenate([self._vectors, more])
        out = self._vectors[self._next:self._next + len(texts)]
        self._next += len(texts)
        return out

    encode_queries = encode_passages


def base(n: int, folder: Path, data: Path) -> dict:
    """Write the corpus and index it with synthetic vectors (folder/sync-corpus, folder/sync-index)."""
    from qa import QA
    from qa.embedding import load_embedder

    identity = load_embedder().identity
    out: dict = {"n": n, "loadavg": loadavg()}
    t = time.perf_counter()
    out["articles"] = write_corpus(n, folder / "sync-corpus", data)
    out["corpus_s"] = round(time.perf_counter() - t, 1)
    out["corpus_mb"] = round(sum(f.stat().st_size for f in (folder / "sync-corpus").iterdir()) / 1e6)
    rss0 = rss_mb()[0]
    t = time.perf_counter()
    qa = QA.build([folder / "sync-corpus"], folder / "sync-index", embedder=SyntheticEmbedder(identity, n))
    out["build_s"] = round(time.perf_counter() - t, 1)
    out["build_peak_rss_mb"] = round(rss_mb()[1] - rss0)
    out["chunks"], out["documents"], out["dense"] = len(qa.chunks), len(qa.docs), qa.dense.describe()
    out["index_mb"] = round(sum(m["bytes"] for m in qa.manifest["files"].values()) / 1e6)
    return out


class _AnonPeak(threading.Thread):
    """Samples RssAnon (heap: not the index files' pages, which the kernel can drop) every 20 ms."""

    def __init__(self):
        super().__init__(daemon=True)
        self.peak, self._done = 0.0, threading.Event()
        self.start()

    def run(self) -> None:
        while not self._done.wait(0.02):
            self.peak = max(self.peak, status_mb()["RssAnon"])

    def stop(self) -> None:
        self._done.set()
        self.join()


def _reset_peak() -> None:
    # Writing 5 to clear_refs resets VmHWM to the current RSS (Linux >= 4.0).
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")


def _stages():
    """Wrap the sync module's steps to time them; returns (timings, restore)."""
    from qa import rows, store, sync
    from qa.terms import TermCounts

    timings: dict[str, float] = {}
    patched = []

    def wrap(owner, name, label, *, method=False):
        original = getattr(owner, name)

        @wraps(original)
        def timed(*args, **kwargs):
            t = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                timings[label] = timings.get(label, 0.0) + time.perf_counter() - t

        setattr(owner, name, timed)
        patched.append((owner, name, original))

    wrap(sync, "_Live", "live index: open, check, read its document table")
    wrap(sync, "open_rows", "  of which open + sha256 of the files reused")
    wrap(sync, "scan_corpus", "read corpus (sha256 of every file, parse the changed ones)")
    wrap(sync, "NewRows", "plan rows (chunk new articles, find reusable vectors)")
    wrap(rows, "embed_texts", "embed new chunks")
    wrap(rows.NewRows, "vectors", "vectors (copy + embed)")
    wrap(rows.NewRows, "terms", "term counts (copy + analyse)")
    wrap(TermCounts, "renumbered", "renumber vocabulary")
    wrap(TermCounts, "bm25", "BM25 weights")
    wrap(sync, "_dense", "dense index")
    wrap(store, "write_index", "write generation (files, sha256, fsync)")
    wrap(store, "sha256_file", "sha256 (checking the live files, hashing the new ones)")

    def restore():
        for owner, name, original in patched:
            setattr(owner, name, original)

    return timings, restore


def measure(n: int, folder: Path, data: Path) -> dict:
    """Fresh process: the real model (load excluded), then the syncs."""
    from qa import QA
    from qa.embedding import load_embedder

    out: dict = {"n": n, "loadavg_start": loadavg()}
    embedder = load_embedder()
    texts = passages(data, "ntrex_nl")
    embedder.encode_passages(texts[:16])  # warm-up
    # The per-chunk cost a rebuild would pay: 64 real passages in one bulk call (both threads).
    t = time.perf_counter()
    embedder.encode_passages(texts[16:80])
    out["embed_s_per_chunk"] = round((time.perf_counter() - t) / 64, 4)
    out["model_rss_mb"] = round(status_mb()["VmRSS"])
    corpus, index = folder / "sync-corpus", folder / "sync-index"
    news = read_jsonl(data / "ntrex_nl" / "passages.jsonl")[100:100 + NEW_ARTICLES]
    today = corpus / "today.jsonl"
    if today.exists():  # left by an earlier run in this workdir: back to the base corpus first (untimed)
        today.unlink()
        QA.sync([corpus], index, embedder=embedder)

    def write(rows):
        today.write_text("".join(json.dumps({"id": f"today-{i}", "text": r["text"], "title": r.get("title"),
                                             "date": "2024-07-01"}, ensure_ascii=False) + "\n"
                                 for i, r in rows), encoding="utf-8")

    timings, restore = _stages()
    runs = {}
    for label, rows in (("add 10", list(enumerate(news))),
                        ("change 1, remove 1", [(0, {**news[0], "text": news[0]["text"] + " Een nieuwe zin."})]
                         + list(enumerate(news))[2:]),
                        ("nothing changed", None)):
        if rows is not None:
            write(rows)
        timings.clear()
        before = status_mb()
        _reset_peak()
        sampler = _AnonPeak()
        t = time.perf_counter()
        report = QA.sync([corpus], index, embedder=embedder)
        wall = time.perf_counter() - t
        sampler.stop()
        runs[label] = {"wall_s": round(wall, 2), "report": report.to_dict(), "stages_s": {k: round(v, 2) for k, v in timings.items()},
                       "peak_rss_mb": round(status_mb()["VmHWM"]), "peak_over_model_mb": round(status_mb()["VmHWM"] - before["VmRSS"]),
                       "peak_heap_over_model_mb": round(sampler.peak - before["RssAnon"])}
    restore()
    qa = QA.load(index, embedder=embedder)
    out["answer_cites_new"] = qa.ask(news[3]["text"].split(".")[0], k=3).citations[0].doc_id
    out["runs"] = runs
    out["loadavg_end"] = loadavg()
    return out


def masked_recall(n: int) -> dict:
    """HNSW recall@10 against exact search when a sync keeps the graph: a share of the nodes
    masked (their chunks removed), and a share inserted after the graph was built, against a
    graph built from scratch over the same vectors (clustered, as the build phase's)."""
    from qa.dense import DenseIndex

    from .measure import recall
    from .synthetic import exact_top

    rng = np.random.default_rng(SEED + 5)
    vectors, queries = clustered_vectors(n), clustered_vectors(200, seed=SEED + 7)
    out: dict = {"n": n, "masked": {}, "inserted": {}}
    for share in (0.0, 0.1, 0.2, 0.3, 0.5):
        index = DenseIndex.build(vectors, kind="hnsw")
        removed = rng.random(n) < share
        row_of = np.where(removed, -1, np.cumsum(~removed) - 1)
        kept = vectors[~removed]
        index = index.updated(row_of, kept[:0], np.zeros(0, np.int64))
        out["masked"][str(share)] = recall(index, queries, exact_top(kept, queries, 10), 10)
    truth = exact_top(vectors, queries, 10)
    for share in (0.0, 0.01, 0.1, 0.3):
        first = int(n * (1 - share))
        index = DenseIndex.build(vectors[:first], kind="hnsw")
        index = index.updated(np.arange(first), vectors[first:], np.arange(first, n))
        out["inserted"][str(share)] = recall(index, queries, truth, 10)
    return out
