"""Timing, memory and data-reading helpers shared by the benchmark's phases."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import numpy as np


def status_mb() -> dict:
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


def mapped_mb(folder: Path) -> dict:
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


def rss_mb() -> tuple[float, float]:
    """(current RSS, peak RSS) of this process in MB."""
    status = status_mb()
    return status.get("VmRSS", 0.0), status.get("VmHWM", 0.0)


def mem_available_mb() -> float:
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) / 1024
    return 0.0


# The instructions that decide which embedding and search paths are fast (qa/embedding.py,
# qa/onnx_backend.py, FAISS): AVX2/AVX-512 for FAISS and int8, VNNI for int8 products, BF16/AMX
# for bf16 matrix products.
CPU_FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_bf16", "amx_int8", "amx_tile")


def machine() -> dict:
    """The CPU a benchmark ran on: model name, vendor, family/model, the flags that matter, cores."""
    from qa.embedding import cpu_flags

    info, flags = {}, cpu_flags()
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as f:
            for line in f:
                key, _, value = (part.strip() for part in line.partition(":"))
                if key in ("model name", "vendor_id", "cpu family", "model") and key not in info:
                    info[key] = value
    except OSError:
        pass
    return {"cpu": info.get("model name"), "vendor": info.get("vendor_id"),
            "family_model": f"{info.get('cpu family')}/{info.get('model')}",
            "flags": [f for f in CPU_FLAGS if f in flags], "cpus": os.cpu_count()}


def loadavg() -> float:
    return round(os.getloadavg()[0], 2)


def pct(times: list[float]) -> dict:
    """p50 and p95 in milliseconds of durations in seconds."""
    ms = np.asarray(times) * 1000
    return {"p50_ms": round(float(np.percentile(ms, 50)), 3), "p95_ms": round(float(np.percentile(ms, 95)), 3),
            "n": len(ms)}


def timed(fn, items, warmup: int = 3) -> tuple[dict, list]:
    """fn on every item after `warmup` untimed calls: (latency percentiles, results)."""
    for item in items[:warmup]:
        fn(item)
    times, out = [], []
    for item in items:
        t = time.perf_counter()
        out.append(fn(item))
        times.append(time.perf_counter() - t)
    return pct(times), out


def recall(index, queries: np.ndarray, truth: np.ndarray, k: int) -> float:
    """Mean share of the exact top k (rows of `truth`) that `index.search(q, k)` finds."""
    hits = 0
    for q, t in zip(queries, truth):
        got = {r for r, _ in index.search(q, k)}
        hits += len(got & set(t[:k].tolist()))
    return round(hits / (len(queries) * k), 4)


def read_jsonl(path: Path) -> list[dict]:
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def questions(data: Path, lang: str | None = None) -> list[str]:
    """The real xquad_nl questions under the data folder (Dutch and English), or one language's."""
    rows = read_jsonl(data / "xquad_nl" / "questions.jsonl")
    return [r["question"] for r in rows if lang is None or r.get("lang") == lang]


def passages(data: Path, name: str) -> list[str]:
    """The passage texts of one data set under the data folder (xquad_nl, ntrex_nl, ...)."""
    return [r["text"] for r in read_jsonl(data / name / "passages.jsonl")]
