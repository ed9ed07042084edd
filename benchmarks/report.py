"""The benchmark's result as Markdown tables (what BENCHMARKS.md shows)."""

from __future__ import annotations


def format_table(r: dict) -> str:
    """The tables of one run's result (the dict bench.run returns)."""
    parts = [format_search(r)] if r.get("sizes") else []
    if r.get("sync"):
        parts.append(format_sync(r))
    return "\n\n".join(parts)


def format_sync(r: dict) -> str:
    """The sync tables: 10 new articles into n chunks, per stage, and HNSW recall when kept."""
    lines = ["Sync (real model for the new chunks, load excluded; wall s; peak RSS of the sync process, model "
             "included / above the model)", ""]
    head = ("chunks", "run", "wall s", "embedded", "reused", "removed", "dense", "peak RSS MB", "above model MB",
            "heap above model MB", "rebuild (extrapolated)")
    rows, stages = [], []
    for n, s in r["sync"].items():
        base, m = s["base"], s["sync"]
        rebuild_s = base["build_s"] + int(n) * m["embed_s_per_chunk"]
        for label, run in m["runs"].items():
            c = run["report"]["chunks"]
            rows.append((f"{int(n):,}", label, f"{run['wall_s']:.1f}", c["embedded"], c["reused"], c["removed"],
                         run["report"]["dense"], run["peak_rss_mb"], run["peak_over_model_mb"],
                         run.get("peak_heap_over_model_mb", "-"),
                         f"{rebuild_s / 3600:.1f} h" if label == "add 10" else ""))
            stages.append((f"{int(n):,}", label, "; ".join(f"{k.strip()} {v}" for k, v in run["stages_s"].items())))
    lines += grid(head, rows)
    lines += ["", "Stages (s)", ""] + grid(("chunks", "run", "stages"), stages)
    for n, s in r["sync"].items():
        b, m = s["base"], s["sync"]
        lines.append(f"\n{int(n):,}: base {b['chunks']:,} chunks / {b['documents']:,} articles ({b['corpus_mb']} MB of JSONL), "
                     f"built without embedding in {b['build_s']:.0f} s; embedding {m['embed_s_per_chunk'] * 1000:.0f} ms "
                     f"per chunk; load average {m['loadavg_start']}-{m['loadavg_end']}")
    if "sync_hnsw_recall_100k" in r:
        h = r["sync_hnsw_recall_100k"]
        lines += ["", "HNSW recall@10 at 100k when a sync keeps the graph", ""]
        lines += grid(("share", *h["masked"]), [("masked", *h["masked"].values())])
        lines += grid(("share", *h["inserted"]), [("inserted", *h["inserted"].values())])
    return "\n".join(lines)


def format_search(r: dict) -> str:
    """The search tables (scale, dense kinds, memory, embedding)."""
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
    lines += grid(head, rows)
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
    lines += grid(head, rows)
    if "hnsw_recall_sweep_100k" in r:
        lines += ["", "HNSW recall@10 at 100k by vector structure (M=32, efConstruction 80)", ""]
        lines += grid(("vectors", "ef 64", "ef 128", "ef 256"),
                       [(k, str(v["ef64"]), str(v["ef128"]), str(v["ef256"])) for k, v in r["hnsw_recall_sweep_100k"].items()])
    lines += ["", ("QA.load and memory (MB, seconds; RSS excludes the model; heap = anonymous memory, mapped = "
                   "pages of the index files, which the kernel can drop and re-read)"), ""]
    head = ("chunks", "QA.load s", "of which sha256 s", "model load s", "RSS loaded", "RSS after queries",
            "heap / mapped", "index MB on disk", "chunks.jsonl MB", "ask p50/p95 ms (sentences stored / embedded)", "model MB", "rank_bm25 MB",
            "rank_bm25 build s")
    rows = []
    for n, s in r["sizes"].items():
        b, v, rk = s["build"], s["serve"], s["rank_bm25"] or {}
        rows.append((f"{int(n):,}", f"{v['load_s']:.2f}", f"{v['sha256_s']:.2f}", f"{v['model_load_s']:.1f}",
                     str(v["rss_loaded_mb"]), str(v["rss_after_queries_mb"]),
                     f"{v['rss_anon_after_queries_mb']} / {v['rss_file_after_queries_mb']}",
                     f"{v['index_disk_mb']:.0f}", f"{b['files_mb']['chunks.jsonl']:.0f}",
                     f"{v['ask']['p50_ms']:.0f}/{v['ask']['p95_ms']:.0f} / "
                     + (f"{v['ask_embedding_sentences']['p50_ms']:.0f}/{v['ask_embedding_sentences']['p95_ms']:.0f}"
                        if "ask_embedding_sentences" in v else "-"),
                     str(v["model_rss_mb"]), str(rk.get("rank_bm25_rss_mb", "-")), str(rk.get("rank_bm25_build_s", "-"))))
    lines += grid(head, rows)
    e = r["embedding"]
    lines += ["", (f"Embedding ({e['passages']} real Dutch passages, {e['tokens_mean']} tokens mean, max {e['tokens_max']}; "
                   f"{e['gflop_per_passage']} GFLOP/passage; 1-thread GEMM fp32 {e['gemm_gflops_1thread']['fp32']} / "
                   f"bf16 {e['gemm_gflops_1thread']['bf16']} GFLOP/s)"), ""]
    head = ("path", "passages/s", "vs fp32 x1", "floor p/s", "of floor", "query p50 ms", "cos min", "cos mean", "query cos min")
    lines += grid(head, [(k, f"{p['passages_per_s']:.2f}", f"{p['speedup_vs_fp32x1']:.2f}x", f"{p['floor_passages_per_s']:.1f}",
                           f"{p['fraction_of_floor']:.2f}", f"{p['query_p50_ms']:.1f}", f"{p['cos_min']:.5f}",
                           f"{p['cos_mean']:.6f}", f"{p['query_cos_min']:.5f}") for k, p in e["paths"].items()])
    if "retrieval_xquad_dense" in e:
        lines += ["", "Dense retrieval on xquad_nl (exact search): "
                  + "; ".join(f"{k}: R@5 {v['R@5']}, MRR@10 {v['MRR@10']}" for k, v in e["retrieval_xquad_dense"].items())]
    lines += ["", f"load average: start {r['loadavg_start']}, end {r['loadavg_end']}; HNSW above {r['hnsw_threshold']:,} chunks"]
    return "\n".join(lines)


def grid(head, rows) -> list[str]:
    """A Markdown table: the header row, the rule, one line per row."""
    widths = [max(len(str(x)) for x in col) for col in zip(head, *rows)] if rows else [len(h) for h in head]

    def fmt(cells) -> str:
        return "| " + " | ".join(str(c).ljust(w) for c, w in zip(cells, widths)) + " |"

    return [fmt(head), "|" + "|".join("-" * (w + 2) for w in widths) + "|", *map(fmt, rows)]
