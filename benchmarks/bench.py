"""Scale benchmark: BM25, dense and hybrid legs at 10k-1M chunks, and embedding throughput.

    python benchmarks/bench.py --data data [--json] [--sizes 10000,100000,1000000] [--quick] [--workdir DIR]
                               [--only search|sync]
    python benchmarks/bench.py --table result.json     # the tables of an earlier --json run

--data is the folder holding the real data sets (xquad_nl/, ntrex_nl/); default `data` in the
current directory. The benchmark measures the installed `qa` package through its public API.

Not a test: it takes ~15 minutes at 1M chunks and needs ~12 GB of free memory for rank_bm25
there (skipped, with a note, when memory is short). Each measurement that reports memory or
load time runs in a fresh subprocess (this script again, with --phase), so one phase's leftovers
never inflate another's RSS.

What is synthetic and what is real:
- Lexical leg: a Zipf(s=1) vocabulary whose most frequent ranks are the real stems of the Dutch
  corpora in the data folder (ordered by their real frequency) and whose tail is Dutch-looking
  pseudo-words; ~120 analysed terms per chunk. Queries are real Dutch questions (xquad_nl),
  analysed as QA.search does, so they hit postings of realistic length.
- Dense leg: a mixture of Gaussians around 4000 centres in 384-d, normalised, with the shared
  direction and power-law spectrum of real multilingual-e5-small embeddings (clustered_vectors;
  uniform random vectors, which no graph index handles well, are in the sweep for contrast);
  queries are held-out points of the same mixture.
- Hybrid: real Dutch and English questions embedded by the real model at its default precision
  (one thread), the BM25 leg on the analysed question, the dense leg on the query vector, RRF.
- Embedding: real Dutch passages (xquad_nl, ntrex_nl) through each precision path.
- Sync: 10 real Dutch news articles (ntrex_nl) embedded by the real model into an index of
  synthetic articles with synthetic vectors (sync_phase.py).
Method and results: BENCHMARKS.md.
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

SCRIPT = Path(__file__).resolve()
if not __package__:
    # Run as a script: make the folder above benchmarks/ importable so the modules next to this
    # one load as the `benchmarks` package. Appended, so an installed `qa` still comes first.
    sys.path.append(str(SCRIPT.parent.parent))

PHASES = ("build", "serve", "rank", "sweep", "embed", "syncbase", "sync", "syncrecall")
PARTS = ("search", "sync")
NEEDED = ("xquad_nl/questions.jsonl", "xquad_nl/passages.jsonl", "ntrex_nl/passages.jsonl")


def _run_phase(phase: str, n: int, folder: Path, data: Path, quick: bool) -> dict:
    """One phase in a fresh process of this script; its result is the last line it prints."""
    command = [sys.executable, str(SCRIPT), "--phase", phase, str(n), str(folder), "--data", str(data)]
    proc = subprocess.run(command + (["--quick"] if quick else []), check=False, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"phase {phase} failed:\n{proc.stderr[-4000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _phase(phase: str, n: int, folder: Path, data: Path, quick: bool) -> dict:
    from benchmarks import phases

    if phase == "build":
        return phases.build(n, folder, data, quick)
    if phase == "serve":
        return phases.serve(n, folder, data, quick)
    if phase == "rank":
        return phases.rank(n, folder, data, quick)
    if phase == "sweep":
        return phases.sweep(n)
    if phase in ("syncbase", "sync", "syncrecall"):
        from benchmarks import sync_phase

        if phase == "syncrecall":
            return sync_phase.masked_recall(n)
        return sync_phase.base(n, folder, data) if phase == "syncbase" else sync_phase.measure(n, folder, data)
    return phases.embed(data, quick)


def _parse_sizes(text: str) -> list[int]:
    sizes = []
    for part in text.split(","):
        part = part.strip().lower()
        mult = 1_000_000 if part.endswith("m") else 1000 if part.endswith("k") else 1
        sizes.append(int(float(part.rstrip("mk")) * mult))
    return sizes


def _log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')} load {os.getloadavg()[0]:.2f}] {msg}", file=sys.stderr, flush=True)


def run(sizes: list[int], quick: bool, workdir: Path, data: Path, parts: tuple[str, ...] = PARTS) -> dict:
    """Every phase at every size, each in its own process; the results as one JSON-ready dict."""
    from benchmarks.measure import loadavg, machine, mem_available_mb
    from qa.dense import HNSW_THRESHOLD

    start = time.perf_counter()
    result: dict = {"command": "python benchmarks/bench.py " + " ".join(sys.argv[1:]), "cpus": os.cpu_count(),
                    "machine": machine(),
                    "hnsw_threshold": HNSW_THRESHOLD, "loadavg_start": loadavg(), "sizes": {}}
    for n in sizes:
        folder = workdir / f"n{n}"
        folder.mkdir(parents=True, exist_ok=True)
        if "sync" in parts:
            if (folder / "syncbase.json").exists():  # a workdir of an earlier run: its base index is reused
                base = json.loads((folder / "syncbase.json").read_text())
            else:
                _log(f"sync: base index of {n:,} chunks")
                base = _run_phase("syncbase", n, folder, data, quick)
                (folder / "syncbase.json").write_text(json.dumps(base))
            _log(f"sync into {n:,}")
            result.setdefault("sync", {})[str(n)] = {"base": base, "sync": _run_phase("sync", n, folder, data, quick)}
            if n == 100_000 and not quick:
                _log("HNSW recall with masked and inserted nodes at 100k")
                result["sync_hnsw_recall_100k"] = _run_phase("syncrecall", n, folder, data, quick)
        if "search" not in parts:
            continue
        _log(f"build {n:,}")
        build = _run_phase("build", n, folder, data, quick)
        (folder / "build.json").write_text(json.dumps(build))
        _log(f"serve {n:,}")
        serve = _run_phase("serve", n, folder, data, quick)
        rank = None
        need_mb = 7.5 * n / 1000 + 2500  # rank_bm25 ~6.7 kB per chunk, plus the token lists
        if n <= (100_000 if quick else 1_000_000) and mem_available_mb() > need_mb:
            _log(f"rank_bm25 {n:,}")
            rank = _run_phase("rank", n, folder, data, quick)
        elif n > 100_000:
            rank = {"skipped": f"needs ~{need_mb / 1000:.0f} GB free, have {mem_available_mb() / 1000:.1f} GB "
                               "(or --quick); extrapolate linearly from 100k"}
        result["sizes"][str(n)] = {"build": build, "serve": serve, "rank_bm25": rank}
        (folder / "ids.npy").unlink(missing_ok=True)
    if "search" not in parts:
        result["wall_s"] = round(time.perf_counter() - start, 1)
        return result
    if not quick and 100_000 in sizes:
        _log("recall sweep at 100k")
        result["hnsw_recall_sweep_100k"] = _run_phase("sweep", 100_000, workdir, data, quick)
    _log("embedding")
    result["embedding"] = _run_phase("embed", 0, workdir, data, quick)
    result["loadavg_end"] = loadavg()
    result["wall_s"] = round(time.perf_counter() - start, 1)
    _log(f"done in {result['wall_s']:.0f} s")
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python benchmarks/bench.py", description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=Path("data"),
                        help="the folder holding xquad_nl/ and ntrex_nl/ (default: ./data)")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of tables")
    parser.add_argument("--sizes", help="comma-separated chunk counts (10k,100k,1M); default 10k,100k,1M "
                                        "(10k,100k with --quick)")
    parser.add_argument("--quick", action="store_true", help="fewer queries and passages, no sweeps, no 2-thread runs")
    parser.add_argument("--workdir", type=Path, help="where to write the generated corpora (default: a temp folder)")
    parser.add_argument("--table", type=Path, metavar="JSON", help="print the tables of an earlier --json result")
    parser.add_argument("--only", choices=PARTS, help="run only the search phases (build, serve, rank_bm25, sweep, "
                                                      "embedding) or only the sync phases")
    parser.add_argument("--phase", nargs=3, metavar=("NAME", "N", "FOLDER"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.table:
        from benchmarks.report import format_table

        print(format_table(json.loads(args.table.read_text(encoding="utf-8"))))
        return 0
    data = args.data.resolve()
    missing = [name for name in NEEDED if not (data / name).is_file()]
    if missing:
        parser.error(f"--data {args.data}: no {', '.join(missing)} there; pass the folder holding xquad_nl/ and "
                     "ntrex_nl/ (the repository's data/)")
    if args.phase:
        phase, n, folder = args.phase
        if phase not in PHASES:
            parser.error(f"--phase must be one of {', '.join(PHASES)}, got {phase!r}")
        print(json.dumps(_phase(phase, int(n), Path(folder), data, args.quick)))
        return 0
    parts = (args.only,) if args.only else PARTS
    sizes = _parse_sizes(args.sizes) if args.sizes else ([10_000, 100_000] if args.quick else [10_000, 100_000, 1_000_000])
    if args.workdir:
        args.workdir.mkdir(parents=True, exist_ok=True)
        result = run(sizes, args.quick, args.workdir.resolve(), data, parts)
    else:
        with tempfile.TemporaryDirectory(prefix="qa-bench-") as tmp:
            result = run(sizes, args.quick, Path(tmp), data, parts)
    if args.json:
        print(json.dumps(result))
    else:
        from benchmarks.report import format_table

        print(format_table(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
