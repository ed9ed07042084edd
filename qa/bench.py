"""Scale benchmark: BM25, dense and hybrid legs at 10k-1M chunks, and embedding throughput.

    python -m qa.bench [--json] [--sizes 10000,100000,1000000] [--quick] [--workdir DIR]

Not a test: it takes ~15 minutes at 1M chunks and needs ~12 GB of free memory for rank_bm25
there (skipped, with a note, when memory is short). Each measurement that reports memory or
load time runs in a fresh subprocess, so one phase's leftovers never inflate another's RSS.

What is synthetic and what is real:
- Lexical leg: a Zipf(s=1) vocabulary whose most frequent ranks are the real stems of the Dutch
  corpora in data/ (ordered by their real frequency) and whose tail is Dutch-looking
  pseudo-words; ~120 analysed terms per chunk. Queries are real Dutch questions (xquad_nl),
  analysed as QA.search does, so they hit postings of realistic length.
- Dense leg: a mixture of Gaussians around 4000 centres in 384-d, normalised, with the shared
  direction and power-law spectrum of real multilingual-e5-small embeddings (clustered_vectors;
  uniform random vectors, which no graph index handles well, are in the sweep for contrast);
  queries are held-out points of the same mixture.
- Hybrid: real Dutch and English questions embedded by the real model at its default precision
  (one thread), the BM25 leg on the analysed question, the dense leg on the query vector, RRF.
- Embedding: real Dutch passages (xquad_nl, ntrex_nl) through each precision path.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "data"
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


# ------------------------------------------------------------------------------ helpers


def _status_mb() -> dict:
    """Memory counters of this process in MB, from /proc/self/status: VmRSS (resident), VmHWM
    (peak resident), RssAnon (heap: cannot be dropped) and RssFile (pages of mapped files,
    which the kernel can drop and re-read)."""
    values = {}
    with open("/proc/self/status") as f:
        for line in f:
            key, _, rest = line.partition(":")
            if key in ("VmRSS", "VmHWM", "RssAnon", "RssFile"):
                values[key] = int(rest.split()[0]) / 1024
    return values


def _mapped_mb(folder: Path) -> dict:
    """Resident MB of each memory-mapped file under `folder`, from /proc/self/smaps."""
    kb, current = {}, None
    prefix = str(folder.resolve()) + os.sep
    with open("/proc/self/smaps") as f:
        for line in f:
            parts = line.split(maxsplit=5)
            if not parts[0].endswith(":"):  # a mapping's header: address perms offset dev inode [path]
                path = parts[5].rstrip("\n") if len(parts) > 5 else ""
                current = Path(path).name if path.startswith(prefix) else None
            elif current and parts[0] == "Rss:":
                kb[current] = kb.get(current, 0) + int(parts[1])
    return {name: round(v / 1024, 1) for name, v in kb.items()}


def _rss_mb() -> tuple[float, float]:
    """(current RSS, peak RSS) of this process in MB."""
    status = _status_mb()
    return status.get("VmRSS", 0.0), status.get("VmHWM", 0.0)


def _mem_available_mb() -> float:
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) / 1024
    return 0.0


def _pct(times: list[float]) -> dict:
    ms = np.asarray(times) * 1000
    return {"p50_ms": round(float(np.percentile(ms, 50)), 3), "p95_ms": round(float(np.percentile(ms, 95)), 3),
            "n": len(ms)}


def _timed(fn, items, warmup: int = 3) -> tuple[dict, list]:
    for item in items[:warmup]:
        fn(item)
    times, out = [], []
    for item in items:
        t = time.perf_counter()
        out.append(fn(item))
        times.append(time.perf_counter() - t)
    return _pct(times), out


def _read_jsonl(path: Path) -> list[dict]:
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def _questions(lang: str | None = None) -> list[str]:
    rows = _read_jsonl(DATA / "xquad_nl" / "questions.jsonl")
    return [r["question"] for r in rows if lang is None or r.get("lang") == lang]


def _loadavg() -> float:
    return round(os.getloadavg()[0], 2)


# ------------------------------------------------------------------------------ synthetic data


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


def _vocabulary() -> list[str]:
    """VOCAB_RANKS terms, most frequent first: real stems of data/ by frequency, then pseudo-words."""
    from collections import Counter

    from .lexical import Analyzer

    analyzer, counts = Analyzer(), Counter()
    for name in ("xquad_nl", "ntrex_nl"):
        for row in _read_jsonl(DATA / name / "passages.jsonl"):
            counts.update(analyzer.analyze(row["text"], "nl"))
    real = [t for t, _ in counts.most_common()]
    return real + _pseudo_words(0, VOCAB_RANKS - len(real))


def make_corpus(n: int, folder: Path) -> None:
    """Write token ids (ids.npy, offsets.npy) and vocab.json for n synthetic chunks."""
    rng = np.random.default_rng(SEED)
    vocab = _vocabulary()
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
    vocab = np.array(json.loads((folder / "vocab.json").read_text(encoding="utf-8")), dtype=object)
    ids, offsets = np.load(folder / "ids.npy"), np.load(folder / "offsets.npy")
    docs = []
    for i in range(len(offsets) - 1):
        docs.append(vocab[ids[offsets[i]:offsets[i + 1]]].tolist())
    return docs


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


def _exact_top(vectors: np.ndarray, queries: np.ndarray, k: int) -> np.ndarray:
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


def _recall(index, queries: np.ndarray, truth: np.ndarray, k: int) -> float:
    hits = 0
    for q, t in zip(queries, truth):
        got = {r for r, _ in index.search(q, k)}
        hits += len(got & set(t[:k].tolist()))
    return round(hits / (len(queries) * k), 4)


# ------------------------------------------------------------------------------ phases (subprocesses)


def _synthetic_chunks(docs: list[list[str]]):
    """Chunk records for the synthetic terms, four chunks per document, a full stop every 15
    terms (news sentences are ~15-20 words; answers highlight one of them)."""
    for i, terms in enumerate(docs):
        text = ". ".join(" ".join(terms[a:a + 15]) for a in range(0, len(terms), 15)) + "."
        yield {"chunk_id": f"d{i // 4}#{i % 4}", "doc_id": f"d{i // 4}", "ordinal": i % 4, "start": 0,
               "end": len(text), "text": text, "lang": "nl"}


def _synthetic_docs(n: int):
    for d in range((n + 3) // 4):
        yield {"doc_id": f"d{d}", "title": f"Synthetisch artikel {d}", "date": "2024-06",
               "source": f"synthetic/d{d}.txt", "url": None, "publisher": None, "lang": "nl"}


def phase_build(n: int, folder: Path, quick: bool) -> dict:
    """Generate the corpus, build both indexes, compare dense kinds, and write the served index
    generation (folder/index) through api.write_generation, as QA.build writes one."""
    from .api import write_generation
    from .chunking import ChunkSettings
    from .dense import HNSW_EF_SEARCH, DenseIndex
    from .embedding import load_embedder
    from .lexical import Analyzer, BM25Index

    out: dict = {"n": n}
    t = time.perf_counter()
    make_corpus(n, folder)
    docs = load_corpus(folder)
    out["corpus_s"] = round(time.perf_counter() - t, 1)
    out["terms_per_chunk"] = round(sum(map(len, docs)) / n, 1)
    t = time.perf_counter()
    bm25 = BM25Index.build(docs)
    out["bm25_build_s"] = round(time.perf_counter() - t, 2)
    out["bm25_terms"] = len(bm25._terms)
    out["bm25_postings"] = int(bm25._data.size)

    vectors = clustered_vectors(n)
    queries = clustered_vectors(300, seed=SEED + 7)
    np.save(folder / "queries.npy", queries)
    truth = _exact_top(vectors, queries, 50)
    kinds = {}
    # The automatic choice first (it is what gets served), then the other kind for comparison.
    served = None
    for kind in ("auto", "flat", "hnsw"):
        if served is not None and kind == served.kind:
            continue
        t = time.perf_counter()
        index = DenseIndex.build(vectors, kind=kind)
        build_s = time.perf_counter() - t
        if kind == "auto":
            served = index
            out["dense_auto_kind"] = index.kind
        info = {"build_s": round(build_s, 2), "params": index.params}
        efs = [None] if index.kind == "flat" else [HNSW_EF_SEARCH] if quick else [64, HNSW_EF_SEARCH, 256]
        # Exact search needs no recall estimate beyond a sanity check, and costs ~60 ms at 1M.
        qs, ts = (queries, truth) if index.kind == "hnsw" else (queries[:100], truth[:100])
        for ef in efs:
            if ef is not None:
                index.ef_search = ef
            lat, _ = _timed(lambda q: index.search(q, 50), list(qs), warmup=10)
            key = "" if ef is None else f"ef{ef}_"
            info[f"{key}p50_ms"], info[f"{key}p95_ms"] = lat["p50_ms"], lat["p95_ms"]
            info[f"{key}recall@10"] = _recall(index, qs, ts, 10)
            info[f"{key}recall@50"] = _recall(index, qs, ts, 50)
        if index.kind == "hnsw":
            index.ef_search = HNSW_EF_SEARCH  # served with the default efSearch
        kinds[index.kind] = info
        del index
    out["dense_kinds"] = kinds
    sample = vectors[:200_000]
    top = np.sort(queries @ sample.T, axis=1)[:, ::-1]
    out["query_cosines_rank1_10_50_first200k"] = [round(float(top[:, r].mean()), 3) for r in (0, 9, 49)]

    # The manifest names the real model, so QA.load serves this index with it.
    model = load_embedder().identity.to_dict()
    t = time.perf_counter()
    generation = write_generation(
        folder / "index", chunks=_synthetic_chunks(docs), docs=_synthetic_docs(n), vectors=vectors, dense=served,
        bm25=bm25, model=model, chunking=ChunkSettings(), analyzer=Analyzer(),
        corpus={"paths": [], "files": [], "synthetic": f"{n} chunks, qa.bench"},
    )
    out["write_index_s"] = round(time.perf_counter() - t, 1)
    files = json.loads((generation / "manifest.json").read_text(encoding="utf-8"))["files"]
    out["files_mb"] = {name: round(meta["bytes"] / 1e6, 1) for name, meta in files.items()}
    out["bm25_disk_mb"] = round(sum(v for k, v in out["files_mb"].items() if k.startswith("bm25")), 1)
    out["build_peak_rss_mb"] = round(_rss_mb()[1])
    return out


def phase_sweep(n: int) -> dict:
    """HNSW recall@10 against exact search on vectors less structured than real embeddings."""
    from .dense import DenseIndex

    out = {}
    for label, alpha in (("e5-like (spectrum i^-0.8)", ALPHA), ("flatter spectrum (i^-0.4)", 0.4),
                         ("isotropic clusters", 0.0), ("uniform random", None)):
        vectors = clustered_vectors(n, alpha=alpha)
        queries = clustered_vectors(200, seed=SEED + 7, alpha=alpha)
        truth = _exact_top(vectors, queries, 10)
        index = DenseIndex.build(vectors, kind="hnsw")
        row = {}
        for ef in (64, 128, 256):
            index.ef_search = ef
            row[f"ef{ef}"] = _recall(index, queries, truth, 10)
        out[label] = row
    return out


def phase_serve(n: int, folder: Path, quick: bool) -> dict:
    """Fresh process: the model, then QA.load of the index generation, then the bm25, dense and
    hybrid legs and whole answers through the QA object, as the CLI and the app use it."""
    from . import store
    from .api import DEFAULT_DEPTH, QA
    from .embedding import load_embedder

    out: dict = {"n": n}
    status0 = _status_mb()
    t = time.perf_counter()
    embedder = load_embedder()
    # Warm up both encode paths at real lengths, so the torch code and buffers they touch count
    # as the model's, not as the index's.
    embedder.encode_queries(_questions()[-40:])
    embedder.encode_passages([r["text"] for r in _read_jsonl(DATA / "xquad_nl" / "passages.jsonl")[:16]])
    out["model_load_s"] = round(time.perf_counter() - t, 1)
    out["model_precision"] = embedder.identity.precision
    model = _status_mb()
    out["model_rss_mb"] = round(model["VmRSS"] - status0["VmRSS"])

    t = time.perf_counter()
    qa = QA.load(folder / "index", embedder=embedder)  # checks every checksum, as the app does
    out["load_s"] = round(time.perf_counter() - t, 2)
    loaded = _status_mb()
    out["rss_loaded_mb"] = round(loaded["VmRSS"] - model["VmRSS"])
    out["dense_kind"], out["dense_params"] = qa.dense.kind, qa.dense.params
    t = time.perf_counter()
    store.verify_files(qa.folder, qa.manifest)
    out["sha256_s"] = round(time.perf_counter() - t, 2)
    out["index_disk_mb"] = round(sum(m["bytes"] for m in qa.manifest["files"].values()) / 1e6, 1)

    nl, both = _questions("nl"), _questions()
    n_q = 100 if quick else 300
    mixed = [q for pair in zip(both[0::2], both[1::2]) for q in pair][: (60 if quick else 200)]
    out["bm25"], _ = _timed(lambda q: qa.search(q, k=10, mode="bm25", depth=DEFAULT_DEPTH), nl[:n_q], warmup=10)
    queries = np.load(folder / "queries.npy")[:n_q]
    out["dense"], _ = _timed(lambda q: qa.dense.search(q, DEFAULT_DEPTH), list(queries), warmup=10)
    out["hybrid"], _ = _timed(lambda q: qa.search(q, k=10), mixed, warmup=5)
    out["embed_query"], _ = _timed(lambda q: embedder.encode_queries([q]), mixed, warmup=5)
    out["ask"], _ = _timed(lambda q: qa.ask(q, k=5), mixed[: (20 if quick else 100)], warmup=2)
    after = _status_mb()
    out["rss_after_queries_mb"] = round(after["VmRSS"] - model["VmRSS"])
    out["rss_anon_after_queries_mb"] = round(after["RssAnon"] - model["RssAnon"])
    out["rss_file_after_queries_mb"] = round(after["RssFile"] - model["RssFile"])
    out["rss_indexes_peak_mb"] = round(after["VmHWM"] - model["VmRSS"])
    out["mapped_index_files_mb"] = _mapped_mb(qa.folder)
    out["rss_total_mb"] = round(after["VmRSS"])
    out["loadavg"] = _loadavg()
    return out


def phase_rank(n: int, folder: Path, quick: bool) -> dict:
    """rank_bm25 get_scores vs BM25Index.top_k on the same queries, in one process."""
    from rank_bm25 import BM25Okapi

    from . import store
    from .lexical import Analyzer, BM25Index

    analyzer = Analyzer()
    queries = [analyzer.analyze(q, "nl") for q in _questions("nl")]
    queries = [q for q in queries if q]
    n_rank = 10 if n >= 1_000_000 else (20 if n >= 100_000 else 40)
    if quick:
        n_rank = min(n_rank, 5)
    rss0 = _rss_mb()[0]
    docs = load_corpus(folder)
    t = time.perf_counter()
    okapi = BM25Okapi(docs)
    out = {"n": n, "rank_bm25_build_s": round(time.perf_counter() - t, 1)}
    del docs
    out["rank_bm25_rss_mb"] = round(_rss_mb()[0] - rss0)
    ours = BM25Index.load(store.current_generation(folder / "index"))
    ours_lat, ours_top = _timed(lambda q: ours.top_k(q, 10), queries[:200], warmup=5)
    rank_times, ours_times, identical, max_diff = [], [], 0, 0.0
    for q, top in zip(queries[:n_rank], ours_top):
        t = time.perf_counter()
        scores = okapi.get_scores(q)
        rank_times.append(time.perf_counter() - t)
        t = time.perf_counter()
        ours.top_k(q, 10)
        ours_times.append(time.perf_counter() - t)
        want = [int(r) for r in np.argsort(-scores, kind="stable")[:10] if scores[r] > 0]
        identical += [r for r, _ in top] == want
        max_diff = max(max_diff, max((abs(s - scores[r]) for r, s in top), default=0.0))
    out["rank_bm25_get_scores"] = _pct(rank_times)
    out["ours_top_k"] = ours_lat
    # Both on the same queries, one right after the other; the median of the per-query ratios.
    out["ours_top_k_same_queries"] = _pct(ours_times)
    out["speedup_p50"] = round(float(np.median(np.array(rank_times) / np.array(ours_times))), 1)
    out["speedup_min"] = round(float(np.min(np.array(rank_times) / np.array(ours_times))), 1)
    out["top10_identical"] = f"{identical}/{len(rank_times)}"
    out["max_score_diff"] = float(f"{max_diff:.3g}")
    out["mean_query_terms"] = round(float(np.mean([len(q) for q in queries[:n_rank]])), 1)
    out["loadavg"] = _loadavg()
    return out


def phase_embed(quick: bool) -> dict:
    """Throughput and fidelity of each precision path on real Dutch passages."""
    import torch

    from .embedding import SentenceEmbedder

    passages = [r["text"] for r in _read_jsonl(DATA / "xquad_nl" / "passages.jsonl")]
    passages += [r["text"] for r in _read_jsonl(DATA / "ntrex_nl" / "passages.jsonl")][:160]
    if quick:
        passages = passages[:48]
    questions = _questions()[:40]
    fp32 = SentenceEmbedder(precision="fp32")
    model = fp32._model
    tok = model.tokenizer
    lengths = np.array([len(tok(fp32.prompts["passage"] + p, truncation=True, max_length=512)["input_ids"]) for p in passages])
    cfg = model[0].auto_model.config
    linear_params = sum(m.weight.numel() for m in model.modules() if isinstance(m, torch.nn.Linear))
    # Per passage of n tokens: 2 FLOPs per linear weight per token, plus attention scores and
    # their weighted sum (2 * n * d each per token per layer). Padding is not counted.
    flops = 2 * linear_params * lengths + 4 * cfg.num_hidden_layers * cfg.hidden_size * lengths ** 2
    out: dict = {"passages": len(passages), "tokens_mean": round(float(lengths.mean()), 1),
                 "tokens_max": int(lengths.max()), "gflop_per_passage": round(float(flops.mean()) / 1e9, 2),
                 "linear_params_m": round(linear_params / 1e6, 2), "paths": {}}

    torch.set_num_threads(1)
    gemm = {}
    for name, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16)):
        a, b = torch.randn(4096, 384).to(dtype), torch.randn(384, 1536).to(dtype)
        for _ in range(3):
            a @ b
        t = time.perf_counter()
        for _ in range(10):
            a @ b
        gemm[name] = round(2 * 4096 * 384 * 1536 * 10 / (time.perf_counter() - t) / 1e9, 1)
    out["gemm_gflops_1thread"] = gemm

    def int8(emb):
        emb._model = torch.ao.quantization.quantize_dynamic(emb._model, {torch.nn.Linear}, dtype=torch.qint8)
        return emb

    def bf16_whole(emb):
        emb._model.to(torch.bfloat16)
        return emb

    from . import embedding

    batch = embedding.BATCH_SIZE
    # (label, make, torch threads for the passages, batch size)
    candidates = [("fp32", lambda: fp32, 1, batch), ("bf16", lambda: SentenceEmbedder(precision="bf16"), 1, batch)]
    if not quick:
        candidates += [("int8-dynamic (rejected)", lambda: int8(SentenceEmbedder(precision="fp32")), 1, batch),
                       ("bf16-whole-model (rejected)", lambda: bf16_whole(SentenceEmbedder(precision="fp32")), 1, batch),
                       ("bf16 batch 32", lambda: SentenceEmbedder(precision="bf16"), 1, 32),
                       ("fp32", lambda: fp32, 2, batch), ("bf16", lambda: SentenceEmbedder(precision="bf16"), 2, batch)]
    reference = reference_q = None
    import warnings

    made = {}
    for name, make, threads, size in candidates:
        key = f"{name} x{threads}"
        if name not in made:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                made = {name: make()}  # one extra model in memory at a time
        emb = made[name]
        emb.threads = threads
        embedding.BATCH_SIZE = size
        emb.encode_passages(passages[:4])
        load0 = _loadavg()
        t = time.perf_counter()
        vecs = emb.encode_passages(passages)
        per_s = len(passages) / (time.perf_counter() - t)
        embedding.BATCH_SIZE = batch
        lat, qv = _timed(lambda q: emb.encode_queries([q])[0], questions, warmup=3)
        qv = np.stack(qv)
        if reference is None:
            reference, reference_q = vecs, qv
        cos, cos_q = np.sum(vecs * reference, 1), np.sum(qv * reference_q, 1)
        dtype = "bf16" if "bf16" in name else ("int8" if "int8" in name else "fp32")
        out["paths"][key] = {
            "passages_per_s": round(per_s, 2), "query_p50_ms": lat["p50_ms"],
            "cos_min": round(float(cos.min()), 5), "cos_mean": round(float(cos.mean()), 6),
            "query_cos_min": round(float(cos_q.min()), 5), "threads": threads, "batch": size,
            "floor_passages_per_s": round(gemm["bf16" if dtype == "bf16" else "fp32"] * threads * 1e9 / float(flops.mean()), 2),
            "loadavg": [load0, _loadavg()],
        }
    base = out["paths"]["fp32 x1"]["passages_per_s"]
    for row in out["paths"].values():
        row["speedup_vs_fp32x1"] = round(row["passages_per_s"] / base, 2)
        row["fraction_of_floor"] = round(row["passages_per_s"] / row["floor_passages_per_s"], 2)
    if not quick:
        out["retrieval_xquad_dense"] = _retrieval(fp32, SentenceEmbedder(precision="bf16"))
    return out


def _retrieval(*embedders) -> dict:
    """R@5 and MRR@10 of exact dense retrieval on xquad_nl (Dutch passages, nl+en questions)."""
    passages = _read_jsonl(DATA / "xquad_nl" / "passages.jsonl")
    rows = _read_jsonl(DATA / "xquad_nl" / "questions.jsonl")
    ids = [p["id"] for p in passages]
    out = {}
    for emb in embedders:
        p = emb.encode_passages([x["text"] for x in passages])
        q = emb.encode_queries([r["question"] for r in rows])
        order = np.argsort(-(q @ p.T), axis=1, kind="stable")[:, :10]
        r5 = mrr = 0.0
        for r, top in zip(rows, order):
            gold = set(r["answer_passage_ids"])
            ranked = [ids[i] for i in top]
            r5 += any(x in gold for x in ranked[:5])
            mrr += next((1 / (i + 1) for i, x in enumerate(ranked) if x in gold), 0.0)
        out[emb.identity.precision] = {"R@5": round(r5 / len(rows), 4), "MRR@10": round(mrr / len(rows), 4),
                                       "questions": len(rows)}
    return out


# ------------------------------------------------------------------------------ driver


def _run_phase(args: list[str]) -> dict:
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.run([sys.executable, "-m", "qa.bench", "--phase", *args], capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        raise RuntimeError(f"phase {args[0]} failed:\n{proc.stderr[-4000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _parse_sizes(text: str) -> list[int]:
    sizes = []
    for part in text.split(","):
        part = part.strip().lower()
        mult = 1_000_000 if part.endswith("m") else 1000 if part.endswith("k") else 1
        sizes.append(int(float(part.rstrip("mk")) * mult))
    return sizes


def _log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')} load {_loadavg()}] {msg}", file=sys.stderr, flush=True)


def run(sizes: list[int], quick: bool, workdir: Path) -> dict:
    from .dense import HNSW_THRESHOLD

    result: dict = {"command": "python -m qa.bench " + " ".join(sys.argv[1:]), "cpus": os.cpu_count(),
                    "hnsw_threshold": HNSW_THRESHOLD, "loadavg_start": _loadavg(), "sizes": {}}
    for n in sizes:
        folder = workdir / f"n{n}"
        folder.mkdir(parents=True, exist_ok=True)
        _log(f"build {n:,}")
        build = _run_phase(["build", str(n), str(folder)] + (["--quick"] if quick else []))
        (folder / "build.json").write_text(json.dumps(build))
        _log(f"serve {n:,}")
        serve = _run_phase(["serve", str(n), str(folder)] + (["--quick"] if quick else []))
        rank = None
        need_mb = 7.5 * n / 1000 + 2500  # rank_bm25 ~6.7 kB per chunk, plus the token lists
        if n <= (100_000 if quick else 1_000_000) and _mem_available_mb() > need_mb:
            _log(f"rank_bm25 {n:,}")
            rank = _run_phase(["rank", str(n), str(folder)] + (["--quick"] if quick else []))
        elif n > 100_000:
            rank = {"skipped": f"needs ~{need_mb / 1000:.0f} GB free, have {_mem_available_mb() / 1000:.1f} GB "
                               "(or --quick); extrapolate linearly from 100k"}
        result["sizes"][str(n)] = {"build": build, "serve": serve, "rank_bm25": rank}
        (folder / "ids.npy").unlink(missing_ok=True)
    if not quick and 100_000 in sizes:
        _log("recall sweep at 100k")
        result["hnsw_recall_sweep_100k"] = _run_phase(["sweep", "100000", str(workdir)])
    _log("embedding")
    result["embedding"] = _run_phase(["embed", "0", str(workdir)] + (["--quick"] if quick else []))
    result["loadavg_end"] = _loadavg()
    return result


def format_table(r: dict) -> str:
    lines = ["Scale (per query, one thread; latency p50/p95 in ms; hybrid includes the query embedding)", ""]
    head = ("chunks", "bm25 build s", "bm25 disk MB", "dense kind", "dense build s", "dense disk MB", "QA.load s",
            "RSS MB", "bm25 p50/p95", "dense p50/p95", "hybrid p50/p95", "embed q p50", "rank_bm25 p50",
            "speedup (min)", "top-10 same")
    rows = []
    for n, s in r["sizes"].items():
        b, v, rk = s["build"], s["serve"], s["rank_bm25"] or {}
        kind = v["dense_kind"]
        rows.append((
            f"{int(n):,}", f"{b['bm25_build_s']:.1f}", f"{b['bm25_disk_mb']:.0f}", kind,
            f"{b['dense_kinds'][kind]['build_s']:.1f}", f"{b['files_mb']['dense.faiss']:.0f}",
            f"{v['load_s']:.2f}", f"{v['rss_after_queries_mb']}",
            f"{v['bm25']['p50_ms']:.2f}/{v['bm25']['p95_ms']:.2f}", f"{v['dense']['p50_ms']:.2f}/{v['dense']['p95_ms']:.2f}",
            f"{v['hybrid']['p50_ms']:.1f}/{v['hybrid']['p95_ms']:.1f}", f"{v['embed_query']['p50_ms']:.1f}",
            f"{rk['rank_bm25_get_scores']['p50_ms']:.0f}" if "rank_bm25_get_scores" in rk else "-",
            f"{rk['speedup_p50']:.0f}x ({rk.get('speedup_min', 0):.0f}x)" if "speedup_p50" in rk else "-",
            rk.get("top10_identical", "-"),
        ))
    lines += _grid(head, rows)
    lines += ["", "Dense kinds (search depth 50; recall against exact numpy search, 300 held-out mixture queries)", ""]
    head = ("chunks", "flat p50 ms", "hnsw build s", "hnsw ef", "hnsw p50 ms", "recall@10", "recall@50")
    rows = []
    for n, s in r["sizes"].items():
        k = s["build"]["dense_kinds"]
        for ef in (64, 128, 256):
            if f"ef{ef}_p50_ms" in k["hnsw"]:
                h = k["hnsw"]
                rows.append((f"{int(n):,}", f"{k['flat']['p50_ms']:.2f}", f"{h['build_s']:.1f}", str(ef),
                             f"{h[f'ef{ef}_p50_ms']:.3f}", f"{h[f'ef{ef}_recall@10']:.4f}", f"{h[f'ef{ef}_recall@50']:.4f}"))
    lines += _grid(head, rows)
    if "hnsw_recall_sweep_100k" in r:
        lines += ["", "HNSW recall@10 at 100k by vector structure (M=32, efConstruction 80)", ""]
        lines += _grid(("vectors", "ef 64", "ef 128", "ef 256"),
                       [(k, str(v["ef64"]), str(v["ef128"]), str(v["ef256"])) for k, v in r["hnsw_recall_sweep_100k"].items()])
    lines += ["", "QA.load and memory (MB, seconds; RSS excludes the model; heap = anonymous memory, mapped = "
              "pages of the index files, which the kernel can drop and re-read)", ""]
    head = ("chunks", "QA.load s", "of which sha256 s", "model load s", "RSS loaded", "RSS after queries",
            "heap / mapped", "index MB on disk", "chunks.jsonl MB", "ask p50/p95 ms", "model MB", "rank_bm25 MB",
            "rank_bm25 build s")
    rows = []
    for n, s in r["sizes"].items():
        b, v, rk = s["build"], s["serve"], s["rank_bm25"] or {}
        rows.append((f"{int(n):,}", f"{v['load_s']:.2f}", f"{v['sha256_s']:.2f}", f"{v['model_load_s']:.1f}",
                     str(v["rss_loaded_mb"]), str(v["rss_after_queries_mb"]),
                     f"{v['rss_anon_after_queries_mb']} / {v['rss_file_after_queries_mb']}",
                     f"{v['index_disk_mb']:.0f}", f"{b['files_mb']['chunks.jsonl']:.0f}",
                     f"{v['ask']['p50_ms']:.0f}/{v['ask']['p95_ms']:.0f}",
                     str(v["model_rss_mb"]), str(rk.get("rank_bm25_rss_mb", "-")), str(rk.get("rank_bm25_build_s", "-"))))
    lines += _grid(head, rows)
    e = r["embedding"]
    lines += ["", f"Embedding ({e['passages']} real Dutch passages, {e['tokens_mean']} tokens mean, max {e['tokens_max']}; "
                  f"{e['gflop_per_passage']} GFLOP/passage; 1-thread GEMM fp32 {e['gemm_gflops_1thread']['fp32']} / "
                  f"bf16 {e['gemm_gflops_1thread']['bf16']} GFLOP/s)", ""]
    head = ("path", "passages/s", "vs fp32 x1", "floor p/s", "of floor", "query p50 ms", "cos min", "cos mean", "query cos min")
    lines += _grid(head, [(k, f"{p['passages_per_s']:.2f}", f"{p['speedup_vs_fp32x1']:.2f}x", f"{p['floor_passages_per_s']:.1f}",
                           f"{p['fraction_of_floor']:.2f}", f"{p['query_p50_ms']:.1f}", f"{p['cos_min']:.5f}",
                           f"{p['cos_mean']:.6f}", f"{p['query_cos_min']:.5f}") for k, p in e["paths"].items()])
    if "retrieval_xquad_dense" in e:
        lines += ["", "Dense retrieval on xquad_nl (exact search): "
                  + "; ".join(f"{k}: R@5 {v['R@5']}, MRR@10 {v['MRR@10']}" for k, v in e["retrieval_xquad_dense"].items())]
    lines += ["", f"load average: start {r['loadavg_start']}, end {r['loadavg_end']}; HNSW above {r['hnsw_threshold']:,} chunks"]
    return "\n".join(lines)


def _grid(head, rows) -> list[str]:
    widths = [max(len(str(x)) for x in col) for col in zip(head, *rows)] if rows else [len(h) for h in head]
    fmt = lambda cells: "| " + " | ".join(str(c).ljust(w) for c, w in zip(cells, widths)) + " |"  # noqa: E731
    return [fmt(head), "|" + "|".join("-" * (w + 2) for w in widths) + "|", *map(fmt, rows)]


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--phase"]:
        phase, n, folder = argv[1], int(argv[2]), Path(argv[3])
        quick = "--quick" in argv
        fn = {"build": lambda: phase_build(n, folder, quick), "serve": lambda: phase_serve(n, folder, quick),
              "rank": lambda: phase_rank(n, folder, quick),
              "sweep": lambda: phase_sweep(n), "embed": lambda: phase_embed(quick)}[phase]
        print(json.dumps(fn()))
        return 0
    parser = argparse.ArgumentParser(prog="python -m qa.bench", description=__doc__.split("\n")[0])
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of tables")
    parser.add_argument("--sizes", help="comma-separated chunk counts (10k,100k,1M); default 10k,100k,1M "
                                        "(10k,100k with --quick)")
    parser.add_argument("--quick", action="store_true", help="fewer queries and passages, no sweeps, no 2-thread runs")
    parser.add_argument("--workdir", type=Path, help="where to write the generated corpora (default: a temp folder)")
    parser.add_argument("--table", type=Path, metavar="JSON", help="print the tables of an earlier --json result")
    args = parser.parse_args(argv)
    if args.table:
        print(format_table(json.loads(args.table.read_text(encoding="utf-8"))))
        return 0
    sizes = _parse_sizes(args.sizes) if args.sizes else ([10_000, 100_000] if args.quick else [10_000, 100_000, 1_000_000])
    if args.workdir:
        args.workdir.mkdir(parents=True, exist_ok=True)
        result = run(sizes, args.quick, args.workdir)
    else:
        with tempfile.TemporaryDirectory(prefix="qa-bench-") as tmp:
            result = run(sizes, args.quick, Path(tmp))
    print(json.dumps(result) if args.json else format_table(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
