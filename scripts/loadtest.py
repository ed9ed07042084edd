"""Load test: concurrent clients against the chat app (through gradio_client) and the Python API.

    python scripts/loadtest.py                      # starts app.py on a free port with seeds/, real model
    python scripts/loadtest.py --model hash-64      # fast fake embedder (plumbing only)
    python scripts/loadtest.py --url http://127.0.0.1:7860 --pid 12345   # an app that is already running
    python scripts/loadtest.py --skip-app           # the Python API only

Reports errors, p50/p95 latency and throughput for both, and the RSS of the server process across
1,000 questions. Exits 1 if any request failed or RSS grew by more than --max-rss-growth-mb.
Nothing leaves the machine: the app binds 127.0.0.1 and gradio/hub telemetry is switched off.
"""

from __future__ import annotations

import os

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import argparse
import json
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from qa.api import MAX_QUESTION_CHARS  # noqa: E402
from qa.corpus import is_unicode  # noqa: E402

# Dutch and English questions about the seed article and general news, plus a few odd ones.
BASE_QUESTIONS = [
    "Hoeveel vierkante kilometer is in minder dan een week bevrijd?",
    "How many square kilometres were liberated in less than a week?",
    "Wat zei Kim Jong-un over Poetin?",
    "What did Kim Jong-un say about Putin?",
    "Which region does Ukraine try to recapture?",
    "Welke regio probeert Oekraïne te heroveren?",
    "Wie is de president van Oekraïne?",
    "Wat meldden de strijdkrachten donderdag?",
    "Hoe hoog was de inflatie in december?",
    "Who won the World Cup in Qatar?",
    "Waar waarschuwt het KNMI voor?",
    "Cherson",
    "Zelenski 500 vierkante kilometer",
    "<script>alert(1)</script> wat gebeurde er?",
    "\u202e?tiejrevol ,dlaw\u200b \x1b[31m rood",
    "Wat gebeurde er met \ud800 dit teken?",
]
# The UI refuses these with a message; they must not count as errors.
REFUSED = ["", "   ", "x" * (MAX_QUESTION_CHARS + 500)]


def questions(n: int, seed: int, *, utf8_only: bool = False) -> list[str]:
    """n questions: the base set with a varying tail, so caches see new strings too.

    gradio_client cannot send a lone surrogate (it encodes requests as strict UTF-8), so the app
    phases leave those out (utf8_only) and `raw_http_check` sends them as JSON escapes instead.
    """
    rng = random.Random(seed)
    pool = [q for q in BASE_QUESTIONS if not utf8_only or is_unicode(q)]
    out = []
    for i in range(n):
        q = rng.choice(pool)
        if i % 3 == 1:
            q = f"{q} ({rng.randint(1, 10_000)})"
        elif i % 50 == 7:
            q = rng.choice(REFUSED)
        out.append(q)
    return out


@dataclass
class Result:
    name: str
    latencies: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    wall: float = 0.0

    def summary(self) -> dict:
        lat = sorted(self.latencies)

        def pct(p: float) -> float:
            return lat[min(len(lat) - 1, int(round(p / 100 * (len(lat) - 1))))] * 1000 if lat else float("nan")

        return {"name": self.name, "requests": len(self.latencies) + len(self.errors), "errors": len(self.errors),
                "p50_ms": round(pct(50), 1), "p95_ms": round(pct(95), 1), "max_ms": round(pct(100), 1),
                "throughput_qps": round(len(self.latencies) / self.wall, 2) if self.wall else 0.0,
                "wall_s": round(self.wall, 2), "first_errors": self.errors[:5]}


def run_clients(name: str, workers: list, per_client: int, seed: int, *, utf8_only: bool = False) -> Result:
    """One thread per worker (a callable that asks one question), each asking `per_client` questions."""
    result, lock = Result(name), threading.Lock()

    def client(i: int) -> None:
        ask = workers[i]
        for q in questions(per_client, seed + i, utf8_only=utf8_only):
            start = time.perf_counter()
            try:
                problem = ask(q)
            except Exception as exc:  # noqa: BLE001 - every failure is counted
                problem = f"{type(exc).__name__}: {str(exc)[:200]}"
            elapsed = time.perf_counter() - start
            with lock:
                (result.errors.append(f"{problem} (question {q[:40]!r})") if problem
                 else result.latencies.append(elapsed))

    start = time.perf_counter()
    with ThreadPoolExecutor(len(workers)) as pool:
        list(pool.map(client, range(len(workers))))
    result.wall = time.perf_counter() - start
    return result


# --- Python API -----------------------------------------------------------------------------------


def _refused(question: str) -> bool:
    """Whether the app and the API refuse this question (empty or too long)."""
    return not question.strip() or len(question) > MAX_QUESTION_CHARS


def api_worker_factory(qa):
    from qa import QuestionError

    def make():
        def ask(q: str) -> str | None:
            try:
                answer = qa.ask(q)
            except QuestionError:
                return None if _refused(q) else "QuestionError for a valid question"
            if not answer.citations:
                return "no citations"
            return None
        return ask
    return make


# --- the app through gradio_client ----------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


def start_app(args, port: int) -> subprocess.Popen:
    cmd = [sys.executable, str(ROOT / "app.py"), "--host", "127.0.0.1", "--port", str(port),
           "--index", args.index, "--corpus", args.corpus]
    if args.model:
        cmd += ["--model", args.model]
    log = open(Path(args.workdir) / "app.log", "w")
    print(f"starting: {' '.join(cmd)} (log: {log.name})", flush=True)
    return subprocess.Popen(cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, env={**os.environ})


def wait_ready(url: str, proc: subprocess.Popen | None, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise SystemExit(f"the app exited with code {proc.returncode} before it was ready (see app.log)")
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.5)
    raise SystemExit(f"the app did not answer on {url} within {timeout:.0f} s")


def app_worker_factory(url: str):
    from gradio_client import Client

    error_marker = "Er ging iets mis"  # the app's generic error message (app.GENERIC_ERROR)

    def make():
        client = Client(url, verbose=False)

        def ask(q: str) -> str | None:
            reply = client.predict(q, api_name="/ask")
            if not isinstance(reply, str) or not reply:
                return f"empty reply {reply!r}"
            if error_marker in reply:
                return f"error message: {reply[:200]}"
            if not _refused(q) and "nqa-passage" not in reply:
                return f"no passages: {reply[:200]}"
            return None
        return ask
    return make


def raw_http_check(url: str) -> list[str]:
    """Questions gradio_client cannot send (lone surrogates), posted as JSON escapes to /ask."""
    errors = []
    base = url.rstrip("/") + "/gradio_api/call/ask"
    for q in (q for q in BASE_QUESTIONS if not is_unicode(q)):
        try:
            request = urllib.request.Request(base, data=json.dumps({"data": [q]}).encode("ascii"),
                                             headers={"Content-Type": "application/json"})
            with urllib.request.urlopen(request, timeout=60) as r:
                event = json.load(r)["event_id"]
            with urllib.request.urlopen(f"{base}/{event}", timeout=120) as r:
                stream = r.read().decode("utf-8", "replace")
            if "event: complete" not in stream or "nqa-passage" not in stream:
                errors.append(f"raw HTTP {q!r}: {stream[:200]}")
        except Exception as exc:  # noqa: BLE001
            errors.append(f"raw HTTP {q!r}: {type(exc).__name__}: {exc}")
    return errors


def memory_run(workers: list, pid: int, total: int, rss_start: float, done: int, seed: int) -> dict:
    """Keep the same clients asking until `total` questions were asked since `rss_start` was taken."""
    samples = [round(rss_start, 1), round(rss_mb(pid), 1)]
    errors = 0
    while done < total:
        per_client = max(1, min(5, (total - done) // len(workers)))
        res = run_clients("memory", workers, per_client, seed + done, utf8_only=True)
        done += len(res.latencies) + len(res.errors)
        errors += len(res.errors)
        samples.append(round(rss_mb(pid), 1))
    return {"questions": done, "errors": errors, "rss_start_mb": samples[0], "rss_end_mb": samples[-1],
            "rss_peak_mb": max(samples), "rss_growth_mb": round(samples[-1] - samples[0], 1), "samples_mb": samples}


# --- main -----------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--clients", type=int, default=16)
    p.add_argument("--questions", type=int, default=50, help="questions per client")
    p.add_argument("--rss-questions", type=int, default=1000, help="questions for the memory measurement")
    p.add_argument("--max-rss-growth-mb", type=float, default=50.0)
    p.add_argument("--corpus", default=str(ROOT / "seeds"))
    p.add_argument("--index", default=None, help="index folder (default: a temporary one, built on start)")
    p.add_argument("--model", default=None, help="embedding model (default: the bundled e5-small)")
    p.add_argument("--url", default=None, help="use a running app instead of starting one")
    p.add_argument("--pid", type=int, default=None, help="pid of the running app, for RSS")
    p.add_argument("--skip-app", action="store_true")
    p.add_argument("--skip-api", action="store_true")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--json", default=None, help="also write the report to this file")
    args = p.parse_args(argv)
    args.workdir = tempfile.mkdtemp(prefix="nqa-load-")
    args.index = args.index or str(Path(args.workdir) / "index")
    report: dict = {"clients": args.clients, "questions_per_client": args.questions, "model": args.model or "default"}

    if not args.skip_api:
        from qa import QA

        start = time.perf_counter()
        try:
            qa = QA.load(args.index, model=args.model)
        except Exception:  # noqa: BLE001 - missing or stale: build it
            qa = QA.build([args.corpus], args.index, args.model)
        print(f"API: index ready in {time.perf_counter() - start:.1f} s; {len(qa.chunks)} chunks", flush=True)
        qa.ask(BASE_QUESTIONS[0])  # warm-up
        rss_before = rss_mb(os.getpid())
        make = api_worker_factory(qa)
        report["api"] = run_clients("python-api", [make() for _ in range(args.clients)], args.questions,
                                    args.seed).summary()
        report["api"]["rss_growth_mb"] = round(rss_mb(os.getpid()) - rss_before, 1)
        print(json.dumps(report["api"], indent=2), flush=True)
        del qa

    proc = None
    if not args.skip_app:
        url = args.url
        pid = args.pid
        if url is None:
            port = free_port()
            proc = start_app(args, port)
            url, pid = f"http://127.0.0.1:{port}/", proc.pid
        try:
            start = time.perf_counter()
            wait_ready(url, proc, timeout=900)
            print(f"app: ready on {url} after {time.perf_counter() - start:.1f} s", flush=True)
            make = app_worker_factory(url)
            # The same 16 clients (sessions) for the whole run, like 16 people asking many questions.
            workers = [make() for _ in range(args.clients)]
            for ask in workers:
                ask(BASE_QUESTIONS[0])  # warm-up: model, caches, each session's first request
            rss_serial = rss_mb(pid) if pid else None
            # Concurrent warm-up too: the server's worker threads each take their own malloc arena
            # and torch buffers on first use, a one-off step that is not growth per question.
            warm = run_clients("warm-up", workers, 3, args.seed - 1, utf8_only=True)
            rss_start = rss_mb(pid) if pid else None
            result = run_clients("app-gradio_client", workers, args.questions, args.seed, utf8_only=True)
            result.errors += raw_http_check(url)
            report["app"] = result.summary()
            print(json.dumps(report["app"], indent=2), flush=True)
            if warm.errors:
                report["app"]["warm_up_errors"] = warm.errors[:5]
            if pid:
                report["app"]["rss_after_serial_warm_up_mb"] = round(rss_serial, 1)
                report["app"]["rss_before_load_mb"] = round(rss_start, 1)
                report["app"]["rss_after_load_mb"] = round(rss_mb(pid), 1)
                report["memory"] = memory_run(workers, pid, args.rss_questions, rss_start, report["app"]["requests"],
                                              args.seed + 10_000)
                print(json.dumps(report["memory"], indent=2), flush=True)
        finally:
            if proc is not None:
                proc.terminate()
                try:
                    proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    proc.kill()

    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2, ensure_ascii=False), encoding="utf-8")
    errors = sum(report[k]["errors"] for k in ("api", "app", "memory") if k in report)
    errors += len(report.get("app", {}).get("warm_up_errors", []))
    growth = report.get("memory", {}).get("rss_growth_mb", 0.0)
    ok = errors == 0 and growth <= args.max_rss_growth_mb
    if ok:  # keep the temporary index and app.log only when something needs a look
        shutil.rmtree(args.workdir, ignore_errors=True)
    print(f"\n{'OK' if ok else 'FAILED'}: {errors} errors; server RSS growth over "
          f"{report.get('memory', {}).get('questions', 0)} questions: {growth} MB (limit {args.max_rss_growth_mb} MB)")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
