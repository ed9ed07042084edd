"""The benchmark's measurements. bench.py runs each phase in a fresh process (so one phase's
leftovers never inflate another's RSS) and reads the dict it returns as JSON.

Every phase takes the data folder (xquad_nl/, ntrex_nl/ ...) as an argument and uses only the
public API of the installed `qa` package; the heavy parts are imported inside each phase, so
the memory a phase reports is its own.
"""

from __future__ import annotations

import time
import warnings
from functools import partial
from pathlib import Path

import numpy as np

from .measure import loadavg, mapped_mb, passages, pct, questions, read_jsonl, recall, rss_mb, status_mb, timed
from .synthetic import (
    ALPHA,
    CHUNKS_PER_DOC,
    SEED,
    clustered_vectors,
    exact_top,
    load_corpus,
    make_corpus,
    synthetic_chunks,
    synthetic_docs,
    synthetic_sentences,
)


def build(n: int, folder: Path, data: Path, quick: bool) -> dict:
    """Generate the corpus, build both indexes, compare dense kinds, and write the served index
    generation (folder/index) with qa.index.write_generation, as QA.build writes one."""
    from qa import store
    from qa.chunking import ChunkSettings
    from qa.dense import HNSW_EF_SEARCH, DenseIndex
    from qa.embedding import load_embedder
    from qa.index import DocEntry, chunk_sha256, write_generation
    from qa.lexical import Analyzer, BM25Index
    from qa.news import DocNews
    from qa.terms import TermCounts

    out: dict = {"n": n}
    t = time.perf_counter()
    make_corpus(n, folder, data)
    docs = load_corpus(folder)
    out["corpus_s"] = round(time.perf_counter() - t, 1)
    out["terms_per_chunk"] = round(sum(map(len, docs)) / n, 1)
    t = time.perf_counter()
    bm25 = BM25Index.build(docs)
    out["bm25_build_s"] = round(time.perf_counter() - t, 2)
    out["bm25_terms"] = bm25.vocabulary_size
    out["bm25_postings"] = bm25.postings
    # What QA.build and a sync do instead: count each chunk's terms, weigh from the counts.
    t = time.perf_counter()
    terms = TermCounts.count(docs, {})
    out["term_counts_s"] = round(time.perf_counter() - t, 2)
    t = time.perf_counter()
    terms = terms.renumbered()
    from_counts = terms.bm25()
    out["bm25_from_counts_s"] = round(time.perf_counter() - t, 2)
    out["bm25_from_counts_identical"] = (from_counts.terms == bm25.terms
                                         and bool(np.array_equal(from_counts._data, bm25._data)))
    del from_counts

    vectors = clustered_vectors(n)
    queries = clustered_vectors(300, seed=SEED + 7)
    np.save(folder / "queries.npy", queries)
    truth = exact_top(vectors, queries, 50)
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
            lat, _ = timed(partial(index.search, k=50), list(qs), warmup=10)
            key = "" if ef is None else f"ef{ef}_"
            info[f"{key}p50_ms"], info[f"{key}p95_ms"] = lat["p50_ms"], lat["p95_ms"]
            info[f"{key}recall@10"] = recall(index, qs, ts, 10)
            info[f"{key}recall@50"] = recall(index, qs, ts, 50)
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
    chunks = list(synthetic_chunks(docs))
    texts = {f"d{i}": " ".join(c.text for c in chunks[i * CHUNKS_PER_DOC:(i + 1) * CHUNKS_PER_DOC])
             for i in range((n + CHUNKS_PER_DOC - 1) // CHUNKS_PER_DOC)}
    entries = [DocEntry(d.doc_id, d, chunk_sha256(d.doc_id), i * CHUNKS_PER_DOC, min(CHUNKS_PER_DOC, n - i * CHUNKS_PER_DOC),
                        DocNews.of(d, texts[d.doc_id])) for i, d in enumerate(synthetic_docs(n))]
    start = time.perf_counter()
    sentences = synthetic_sentences(chunks)
    out["sentence_vectors"] = {"count": len(sentences), "made_s": round(time.perf_counter() - start, 1)}
    generation = write_generation(
        folder / "index", chunks=chunks, docs=entries, vectors=vectors,
        chunk_sha256=np.frombuffer(b"".join(chunk_sha256(c.text) for c in chunks), np.uint8).reshape(-1, 32),
        terms=terms, dense=served, bm25=bm25, model=model, chunking=ChunkSettings(), analyzer=Analyzer(),
        corpus={"paths": [], "files": [], "synthetic": f"{n} chunks, benchmarks/bench.py"}, text_of=texts.__getitem__,
        sentences=sentences,
    )
    del chunks
    out["write_index_s"] = round(time.perf_counter() - t, 1)
    files = store.read_manifest(generation)["files"]
    out["files_mb"] = {name: round(meta["bytes"] / 1e6, 1) for name, meta in files.items()}
    out["bm25_disk_mb"] = round(sum(v for k, v in out["files_mb"].items() if k.startswith("bm25")), 1)
    out["build_peak_rss_mb"] = round(rss_mb()[1])
    return out


def sweep(n: int) -> dict:
    """HNSW recall@10 against exact search on vectors less structured than real embeddings."""
    from qa.dense import DenseIndex

    out = {}
    for label, alpha in (("e5-like (spectrum i^-0.8)", ALPHA), ("flatter spectrum (i^-0.4)", 0.4),
                         ("isotropic clusters", 0.0), ("uniform random", None)):
        vectors = clustered_vectors(n, alpha=alpha)
        queries = clustered_vectors(200, seed=SEED + 7, alpha=alpha)
        truth = exact_top(vectors, queries, 10)
        index = DenseIndex.build(vectors, kind="hnsw")
        row = {}
        for ef in (64, 128, 256):
            index.ef_search = ef
            row[f"ef{ef}"] = recall(index, queries, truth, 10)
        out[label] = row
    return out


def serve(n: int, folder: Path, data: Path, quick: bool) -> dict:
    """Fresh process: the model, then QA.load of the index generation, then the bm25, dense and
    hybrid legs and whole answers through the QA object, as the CLI and the app use it."""
    from qa import QA, store
    from qa.embedding import load_embedder
    from qa.fusion import DEPTH

    out: dict = {"n": n}
    status0 = status_mb()
    t = time.perf_counter()
    embedder = load_embedder()
    # Warm up both encode paths at real lengths, so the torch code and buffers they touch count
    # as the model's, not as the index's.
    embedder.encode_queries(questions(data)[-40:])
    embedder.encode_passages(passages(data, "xquad_nl")[:16])
    out["model_load_s"] = round(time.perf_counter() - t, 1)
    out["model_precision"] = embedder.identity.precision
    model = status_mb()
    out["model_rss_mb"] = round(model["VmRSS"] - status0["VmRSS"])

    t = time.perf_counter()
    qa = QA.load(folder / "index", embedder=embedder)  # checks every checksum, as the app does
    out["load_s"] = round(time.perf_counter() - t, 2)
    loaded = status_mb()
    out["rss_loaded_mb"] = round(loaded["VmRSS"] - model["VmRSS"])
    out["dense_kind"], out["dense_params"] = qa.dense.kind, qa.dense.params
    t = time.perf_counter()
    store.verify_files(qa.folder, qa.manifest)
    out["sha256_s"] = round(time.perf_counter() - t, 2)
    out["index_disk_mb"] = round(sum(m["bytes"] for m in qa.manifest["files"].values()) / 1e6, 1)

    nl, both = questions(data, "nl"), questions(data)
    n_q = 100 if quick else 300
    mixed = [q for pair in zip(both[0::2], both[1::2]) for q in pair][: (60 if quick else 200)]
    out["bm25"], _ = timed(lambda q: qa.search(q, k=10, mode="bm25"), nl[:n_q], warmup=10)
    queries = np.load(folder / "queries.npy")[:n_q]
    out["dense"], _ = timed(lambda q: qa.dense.search(q, DEPTH), list(queries), warmup=10)
    out["hybrid"], _ = timed(lambda q: qa.search(q, k=10), mixed, warmup=5)
    out["embed_query"], _ = timed(lambda q: embedder.encode_queries([q]), mixed, warmup=5)
    # QA.ask the first time its passages are cited (the sentence cache emptied before each
    # question): with the index's stored sentence vectors, and embedding the sentences instead.
    sentence_vectors = qa._sentence_vectors

    def first_ask(q: str):
        sentence_vectors._cache.clear()
        return qa.ask(q, k=5)

    out["ask"], _ = timed(first_ask, mixed[: (40 if quick else 200)], warmup=2)
    stored, sentence_vectors.stored = sentence_vectors.stored, None
    out["ask_embedding_sentences"], _ = timed(first_ask, mixed[: (20 if quick else 100)], warmup=2)
    sentence_vectors.stored = stored
    after = status_mb()
    out["rss_after_queries_mb"] = round(after["VmRSS"] - model["VmRSS"])
    out["rss_anon_after_queries_mb"] = round(after["RssAnon"] - model["RssAnon"])
    out["rss_file_after_queries_mb"] = round(after["RssFile"] - model["RssFile"])
    out["rss_indexes_peak_mb"] = round(after["VmHWM"] - model["VmRSS"])
    out["mapped_index_files_mb"] = mapped_mb(qa.folder)
    out["rss_total_mb"] = round(after["VmRSS"])
    out["loadavg"] = loadavg()
    return out


def rank(n: int, folder: Path, data: Path, quick: bool) -> dict:
    """rank_bm25 get_scores vs BM25Index.top_k on the same queries, in one process."""
    from rank_bm25 import BM25Okapi

    from qa import store
    from qa.lexical import Analyzer, BM25Index

    analyzer = Analyzer()
    queries = [analyzer.analyze(q, "nl") for q in questions(data, "nl")]
    queries = [q for q in queries if q]
    n_rank = 10 if n >= 1_000_000 else (20 if n >= 100_000 else 40)
    if quick:
        n_rank = min(n_rank, 5)
    rss0 = rss_mb()[0]
    docs = load_corpus(folder)
    t = time.perf_counter()
    okapi = BM25Okapi(docs)
    out = {"n": n, "rank_bm25_build_s": round(time.perf_counter() - t, 1)}
    del docs
    out["rank_bm25_rss_mb"] = round(rss_mb()[0] - rss0)
    ours = BM25Index.load(store.current_generation(folder / "index"))
    ours_lat, ours_top = timed(lambda q: ours.top_k(q, 10), queries[:200], warmup=5)
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
    out["rank_bm25_get_scores"] = pct(rank_times)
    out["ours_top_k"] = ours_lat
    # Both on the same queries, one right after the other; the median of the per-query ratios.
    out["ours_top_k_same_queries"] = pct(ours_times)
    out["speedup_p50"] = round(float(np.median(np.array(rank_times) / np.array(ours_times))), 1)
    out["speedup_min"] = round(float(np.min(np.array(rank_times) / np.array(ours_times))), 1)
    out["top10_identical"] = f"{identical}/{len(rank_times)}"
    out["max_score_diff"] = float(f"{max_diff:.3g}")
    out["mean_query_terms"] = round(float(np.mean([len(q) for q in queries[:n_rank]])), 1)
    out["loadavg"] = loadavg()
    return out


def embed(data: Path, quick: bool) -> dict:
    """Throughput and fidelity of each precision path on real Dutch passages."""
    import torch

    from qa.embedding import BATCH_SIZE, SentenceEmbedder

    texts = passages(data, "xquad_nl") + passages(data, "ntrex_nl")[:160]
    if quick:
        texts = texts[:48]
    asked = questions(data)[:40]
    fp32 = SentenceEmbedder(precision="fp32", threads=1)
    model = fp32.model
    tok = model.tokenizer
    lengths = np.array([len(tok(fp32.prompts["passage"] + p, truncation=True, max_length=512)["input_ids"]) for p in texts])
    cfg = model[0].auto_model.config
    linear_params = sum(m.weight.numel() for m in model.modules() if isinstance(m, torch.nn.Linear))
    # Per passage of n tokens: 2 FLOPs per linear weight per token, plus attention scores and
    # their weighted sum (2 * n * d each per token per layer). Padding is not counted.
    flops = 2 * linear_params * lengths + 4 * cfg.num_hidden_layers * cfg.hidden_size * lengths ** 2
    out: dict = {"passages": len(texts), "tokens_mean": round(float(lengths.mean()), 1),
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

    def int8(model) -> None:
        torch.ao.quantization.quantize_dynamic(model, {torch.nn.Linear}, dtype=torch.qint8, inplace=True)

    def bf16_whole(model) -> None:
        model.to(torch.bfloat16)

    # (label, precision, torch threads for the passages, batch size, change made to the model)
    candidates = [("fp32", "fp32", 1, BATCH_SIZE, None), ("bf16", "bf16", 1, BATCH_SIZE, None)]
    if not quick:
        candidates += [("int8-dynamic (rejected)", "fp32", 1, BATCH_SIZE, int8),
                       ("bf16-whole-model (rejected)", "fp32", 1, BATCH_SIZE, bf16_whole),
                       ("bf16 batch 32", "bf16", 1, 32, None),
                       ("fp32", "fp32", 2, BATCH_SIZE, None), ("bf16", "bf16", 2, BATCH_SIZE, None)]
    reference = reference_q = None
    for name, precision, threads, size, change in candidates:
        if (precision, threads, size, change) == ("fp32", 1, BATCH_SIZE, None):
            emb = fp32
        else:
            emb = None  # one extra model in memory at a time
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                emb = SentenceEmbedder(precision=precision, threads=threads, batch_size=size)
                if change:
                    change(emb.model)
        emb.encode_passages(texts[:4])
        load0 = loadavg()
        t = time.perf_counter()
        vecs = emb.encode_passages(texts)
        per_s = len(texts) / (time.perf_counter() - t)
        lat, qv = timed(lambda q, emb=emb: emb.encode_queries([q])[0], asked, warmup=3)
        qv = np.stack(qv)
        if reference is None:
            reference, reference_q = vecs, qv
        cos, cos_q = np.sum(vecs * reference, 1), np.sum(qv * reference_q, 1)
        dtype = "bf16" if "bf16" in name else ("int8" if "int8" in name else "fp32")
        out["paths"][f"{name} x{threads}"] = {
            "passages_per_s": round(per_s, 2), "query_p50_ms": lat["p50_ms"],
            "cos_min": round(float(cos.min()), 5), "cos_mean": round(float(cos.mean()), 6),
            "query_cos_min": round(float(cos_q.min()), 5), "threads": threads, "batch": size,
            "floor_passages_per_s": round(gemm["bf16" if dtype == "bf16" else "fp32"] * threads * 1e9 / float(flops.mean()), 2),
            "loadavg": [load0, loadavg()],
        }
    base = out["paths"]["fp32 x1"]["passages_per_s"]
    for row in out["paths"].values():
        row["speedup_vs_fp32x1"] = round(row["passages_per_s"] / base, 2)
        row["fraction_of_floor"] = round(row["passages_per_s"] / row["floor_passages_per_s"], 2)
    if not quick:
        del emb
        out["retrieval_xquad_dense"] = _retrieval(data, fp32, SentenceEmbedder(precision="bf16"))
    return out


def _retrieval(data: Path, *embedders) -> dict:
    """R@5 and MRR@10 of exact dense retrieval on xquad_nl (Dutch passages, nl+en questions)."""
    rows_p = read_jsonl(data / "xquad_nl" / "passages.jsonl")
    rows = read_jsonl(data / "xquad_nl" / "questions.jsonl")
    ids = [p["id"] for p in rows_p]
    out = {}
    for emb in embedders:
        p = emb.encode_passages([x["text"] for x in rows_p])
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
