"""Scaling on Ray: ingestion throughput on 1 and 2 nodes against the local build, router overhead
per question at 1-4 shards, memory per shard (SCALING.md holds a run's figures).

    python benchmarks/scale.py [--ingest FILE] [--passages 1500] [--router FILE] [--questions FILE]
                               [--shards 1,2,3,4] [--n-questions 200] [--skip-ingest] [--skip-router]
                               [--json OUT]

Not a test: ~10 minutes on 2 busy cores. What is measured:
- Ingestion: the first --passages passages of --ingest (default ../shared/data/laws_nl_pool, else
  data/kamervragen_nl) with the real bundled model: the local build (`QA.build`, one process,
  the model already loaded: its load time is reported apart) against `ray_embedder` + the same
  build with its vectors, on a local Ray instance of 2 CPUs (1 node) and on a 2-node cluster of
  1 CPU each (127.0.0.2/127.0.0.3, `ray.cluster_utils.Cluster`). The Ray times include starting
  the actors and loading the model in each (not the cluster's start, reported apart).
- Router overhead: data/kamervragen_nl's passages, given synthetic dates (spread over 2020-2021,
  so that date-range shards can be cut), indexed once (--router-model, default the hashing
  embedder: the overhead alone, without the model's time and noise; the router embeds each
  question once, as one index does); shards of the same vectors at each count; the shards on
  Ray Serve (2-node cluster), the router (`ShardedQA`) in this process over their deployment
  handles. Per real question: `QA.ask` on one index and `ShardedQA.ask`, overhead = the
  difference; p50/p95. And the HTTP round trip through the router deployment at 3 shards.
- Memory per shard: each shard replica's resident memory (/proc/self/status), and the
  generation's size on disk.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    shared = ROOT.parent / "shared" / "data" / "laws_nl_pool" / "passages.jsonl"
    p.add_argument("--ingest", type=Path, default=shared if shared.exists() else ROOT / "data/kamervragen_nl/passages.jsonl")
    p.add_argument("--passages", type=int, default=1500)
    p.add_argument("--router", type=Path, default=ROOT / "data/kamervragen_nl/passages.jsonl")
    p.add_argument("--router-passages", type=int, default=None, help="only the first N (default: all)")
    p.add_argument("--questions", type=Path, default=ROOT / "data/kamervragen_nl/questions.jsonl")
    p.add_argument("--n-questions", type=int, default=200)
    p.add_argument("--router-model", default="hash-64",
                   help="embedder of the router measurement (default hash-64: the overhead alone, without the "
                        "model's own time and its noise; the router embeds a question once either way)")
    p.add_argument("--shards", default="1,2,3,4")
    p.add_argument("--skip-ingest", action="store_true")
    p.add_argument("--skip-router", action="store_true")
    p.add_argument("--json", type=Path, default=None)
    p.add_argument("--workdir", type=Path, default=None)
    args = p.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    work = args.workdir or Path(tempfile.mkdtemp(prefix="qa-scale-bench-"))
    sys.path.insert(0, str(ROOT))
    from benchmarks.measure import machine

    result = {"load_before": _uptime(), "cpus": os.cpu_count(), "machine": machine()}
    try:
        if not args.skip_ingest:
            result["ingest"] = ingest(args.ingest, args.passages, work / "ingest")
        if not args.skip_router:
            result["router"] = router(args.router, args.questions, args.n_questions,
                                      [int(n) for n in args.shards.split(",")], work / "router", args.router_passages,
                                      args.router_model)
    finally:
        result["load_after"] = _uptime()
        if args.workdir is None:
            shutil.rmtree(work, ignore_errors=True)
    text = json.dumps(result, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text + "\n", encoding="utf-8")
    return 0


def ingest(source: Path, n: int, work: Path) -> dict:
    """Local build vs Ray on 1 node (2 CPUs) vs Ray on 2 nodes (1 CPU each), same corpus."""
    import ray

    from qa import QA
    from qa.embedding import load_embedder
    from qa.scale import ingest as ray_ingest

    corpus = work / "corpus"
    corpus.mkdir(parents=True)
    lines = source.read_text(encoding="utf-8").splitlines()[:n]
    (corpus / "passages.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    out = {"corpus": f"{source} (first {len(lines)} passages)"}

    start = time.perf_counter()
    embedder = load_embedder()
    out["local_model_load_s"] = round(time.perf_counter() - start, 2)
    start = time.perf_counter()
    local = QA.build([corpus], work / "local", embedder=embedder)
    seconds = time.perf_counter() - start
    chunks = len(local.chunks)
    out["chunks"] = chunks
    out["local"] = {"seconds": round(seconds, 1), "chunks_per_s": round(chunks / seconds, 1),
                    "precision": embedder.identity.precision, "threads": getattr(embedder, "threads", None)}
    reference = np.asarray(local.vectors)
    del embedder, local

    def run(label: str) -> dict:
        start = time.perf_counter()
        pe = ray_ingest.ray_embedder([corpus], stall_timeout=900)
        embedded = time.perf_counter() - start
        built = QA.build([corpus], work / label, embedder=pe)
        seconds = time.perf_counter() - start
        cosine = float(np.min(np.sum(np.asarray(built.vectors) * reference, axis=1)))
        return {"seconds": round(seconds, 1), "embed_s": round(embedded, 1), "write_s": round(seconds - embedded, 1),
                "chunks_per_s": round(chunks / seconds, 1), "actors": pe.workers, "missed": pe.missed,
                "min_cosine_to_local": round(cosine, 6)}

    start = time.perf_counter()
    ray_ingest.connect(None, num_cpus=2)
    out["ray_1_node_start_s"] = round(time.perf_counter() - start, 1)
    out["ray_1_node"] = run("ray1")
    ray.shutdown()

    cluster, started = _cluster()
    out["ray_2_nodes_start_s"] = started
    try:
        out["ray_2_nodes"] = run("ray2")
    finally:
        ray.shutdown()
        cluster.shutdown()
    for key in ("ray_1_node", "ray_2_nodes"):
        out[f"{key}_vs_local"] = round(out[key]["chunks_per_s"] / out["local"]["chunks_per_s"], 2)
    return out


def router(source: Path, questions_file: Path, n_questions: int, counts: list[int], work: Path,
           limit: int | None = None, model: str | None = None) -> dict:
    """Router overhead per question at each shard count, and memory per shard."""
    import ray
    from ray import serve

    from qa import QA
    from qa.embedding import load_embedder
    from qa.index import open_rows
    from qa.scale import ingest as ray_ingest
    from qa.scale.router import ShardedQA
    from qa.scale.searcher import process_memory
    from qa.scale.serve import APP, _ServeShard, application
    from qa.scale.shards import Layout, sync_shards

    corpus = work / "corpus"
    corpus.mkdir(parents=True)
    with open(corpus / "passages.jsonl", "w", encoding="utf-8") as f:
        for i, line in enumerate(source.read_text(encoding="utf-8").splitlines()[:limit]):
            record = json.loads(line)
            record["date"] = (date(2020, 1, 1) + timedelta(days=i % 730)).isoformat()
            f.write(json.dumps(record, ensure_ascii=False) + "\n")
    embedder = load_embedder(model)
    start = time.perf_counter()
    single = QA.build([corpus], work / "single", embedder=embedder)
    out = {"corpus": f"{source} ({len(single.docs)} passages, {len(single.chunks)} chunks, synthetic dates)",
           "model": embedder.identity.name, "index_s": round(time.perf_counter() - start, 1)}
    rows = open_rows(work / "single")
    vectors = {bytes(s): np.asarray(v) for s, v in zip(rows.chunk_sha256, rows.vectors)}
    same = ray_ingest.PrecomputedEmbedder(embedder.identity, vectors)  # the shards reuse the same vectors
    asked = [json.loads(line)["question"] for line in questions_file.read_text(encoding="utf-8").splitlines()]
    asked = asked[:n_questions]

    cluster, started = _cluster()
    out["cluster_start_s"] = started
    try:
        serve.start(http_options={"host": "127.0.0.1", "port": 8765}, proxy_location="HeadOnly")
        for n in counts:
            root = work / f"shards-{n}"
            sync_shards([corpus], root, shards=n, embedder=same)
            layout = Layout.load(root)
            name = f"{APP}-{n}"
            start = time.perf_counter()
            serve.run(application(root, timeout=10.0), name=name, route_prefix=f"/s{n}")
            deployed = time.perf_counter() - start
            clients = [_ServeShard(s.name, serve.get_deployment_handle(s.name, app_name=name)) for s in layout.shards]
            sharded = ShardedQA(clients, embedder, layout, timeout=10.0)
            for q in asked[:5]:  # warm up both
                single.ask(q), sharded.ask(q)
            local_ms, routed_ms, partial = [], [], 0
            for q in asked:
                t0 = time.perf_counter()
                single.ask(q)
                t1 = time.perf_counter()
                _, status = sharded.ask_with_status(q)
                t2 = time.perf_counter()
                local_ms.append((t1 - t0) * 1000)
                routed_ms.append((t2 - t1) * 1000)
                partial += status is not None
            overhead = np.array(routed_ms) - np.array(local_ms)
            entry = {"deploy_s": round(deployed, 1), "questions": len(asked), "partial_answers": partial,
                     "one_index_ms": _percentiles(local_ms), "sharded_ms": _percentiles(routed_ms),
                     "overhead_ms": _percentiles(overhead)}
            entry["shards"] = []
            for i, s in enumerate(layout.shards):
                handle = serve.get_deployment_handle(s.name, app_name=name)
                mem = handle.memory.remote().result(timeout_s=30)
                entry["shards"].append({"name": s.name, "chunks": s.chunks, "disk_mb": _disk_mb(layout.folder(i)),
                                        **{k.lower() + "_mb": v for k, v in mem.items()}})
            if n == 3:
                entry["http_ms"] = _http(f"http://127.0.0.1:8765/s{n}", asked[:100])
            out[f"{n}_shards"] = entry
            serve.delete(name)
        idle = ray.get(ray.remote(process_memory).options(num_cpus=0.1).remote(), timeout=60)["VmRSS"]
        out["idle_ray_worker_rss_mb"] = idle
    finally:
        serve.shutdown()
        ray.shutdown()
        cluster.shutdown()
    return out


def _cluster():
    from ray.cluster_utils import Cluster

    from qa.scale import ingest as ray_ingest

    start = time.perf_counter()
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "node_ip_address": "127.0.0.2",
                                                           "include_dashboard": False})
    cluster.add_node(num_cpus=1, node_ip_address="127.0.0.3")
    cluster.wait_for_nodes(timeout=120)
    ray_ingest.connect(cluster.address)
    return cluster, round(time.perf_counter() - start, 1)


def _http(url: str, questions: list[str]) -> dict:
    from qa.scale import client

    for q in questions[:3]:
        client.ask(url, q)
    times = []
    for q in questions:
        t0 = time.perf_counter()
        client.ask(url, q)
        times.append((time.perf_counter() - t0) * 1000)
    return _percentiles(times)


def _percentiles(values) -> dict:
    values = np.asarray(values, dtype=float)
    return {"p50": round(float(np.percentile(values, 50)), 2), "p95": round(float(np.percentile(values, 95)), 2)}


def _disk_mb(index_dir: Path) -> float:
    live = index_dir / (index_dir / "CURRENT").read_text().strip()
    return round(sum(f.stat().st_size for f in live.iterdir()) / 2**20, 1)


def _uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


if __name__ == "__main__":
    sys.exit(main())
