"""How long the command line takes from a cold process: `qa --help`, `qa info` and `qa ask` on the
seed index (BENCHMARKS.md, "Starting the command line").

    python benchmarks/cli_start.py [--index index] [--runs 5] [--json OUT]

Not a test. Each run is a new process (`sys.executable -m qa.cli`, as the `qa` script runs it),
so imports and loading are counted; the operating system's file cache is warm after the first.
The index must exist (`qa build seeds`), and the query model's ONNX export too: the first `qa
ask` on a machine exports it once (20-45 s), which the warm-up run takes.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.measure import loadavg, machine  # noqa: E402

# What answering a question should not import (each costs seconds, or ~0.4 s for SciPy's integrate).
HEAVY = ("torch", "sentence_transformers", "transformers", "scipy.integrate")
PROBE = ("import json, sys\nfrom qa.cli import main\nmain(sys.argv[2:])\n"
         "print(json.dumps([m for m in sys.argv[1].split(',') if m in sys.modules]), file=sys.stderr)")
QUESTION = "Wie zijn uitgenodigd voor de informele bijeenkomst op Poetins verjaardag?"


def wall(args: list[str], runs: int) -> dict:
    """Wall seconds of `qa ARGS` in new processes (one warm-up run first): p50, min, max."""
    times = []
    for i in range(runs + 1):
        start = time.perf_counter()
        done = subprocess.run([sys.executable, "-m", "qa.cli", *args], cwd=ROOT, capture_output=True, text=True)
        if done.returncode != 0:
            raise SystemExit(f"qa {' '.join(args)} failed: {done.stderr[-500:]}")
        if i:
            times.append(time.perf_counter() - start)
    return {"p50_s": round(float(np.median(times)), 2), "min_s": round(min(times), 2), "max_s": round(max(times), 2)}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--index", default="index")
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--json", type=Path)
    args = p.parse_args(argv)
    result = {"machine": machine(), "loadavg_start": loadavg(), "runs": args.runs,
              "help": wall(["--help"], args.runs),
              "info": wall(["info", "--index", args.index], args.runs),
              "ask": wall(["ask", "--index", args.index, QUESTION], args.runs)}
    done = subprocess.run([sys.executable, "-c", PROBE, ",".join(HEAVY), "ask", "--index", args.index, QUESTION],
                          cwd=ROOT, capture_output=True, text=True)
    result["ask_imports_heavy"] = json.loads(done.stderr.strip().splitlines()[-1]) if done.returncode == 0 else None
    result["loadavg_end"] = loadavg()
    text = json.dumps(result, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
