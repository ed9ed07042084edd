"""Crash safety: `qa build` killed with SIGKILL at any moment leaves the live index intact.

Two tests:

- 20 kills at random moments (fixed seed) spread over the measured duration of a build of a
  generated corpus big enough to take seconds with the fast hash-64 embedder, so they land in
  start-up, reading, chunking, embedding, writing, fsync and swapping. After each kill the old
  index (or, if the build got as far as the swap, the new one) loads, verifies and answers a
  known question with the known document; debris of one kill never breaks the next build.
- Deterministic kills at each step of `store.write_index` (the short late phases that random
  moments rarely hit): the build process SIGKILLs itself right at that step.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from conftest import ROOT, write_news

from qa import QA
from qa.embedding import HashEmbedder
from qa.store import CURRENT, current_generation

SEED = 20240229
KILLS = 20
ARTICLES = 2500          # ~2 s to build with hash-64 on an idle 2-core machine (more when busy)
WORDS_PER_ARTICLE = 150
NEEDLE_ID = "needle-falkenberg"
NEEDLE = ("De Zweedse vulkanoloog Ingrid Falkenberg ontdekte op Spitsbergen een onbekende warmwaterbron. "
          "Volgens Falkenberg is de bron minstens drieduizend jaar oud.")
QUESTION = "Wat ontdekte vulkanoloog Ingrid Falkenberg op Spitsbergen?"

_VOCAB = ("de het een van in op met voor door naar over bij uit aan regering kabinet minister gemeente "
          "provincie rechter politie burgemeester inwoners bedrijven economie inflatie prijzen energie woningen "
          "onderzoek universiteit ziekenhuis zorg onderwijs leerlingen klimaat water dijken boeren stikstof "
          "verkiezingen partij zetels kamer debat wet voorstel miljoen miljard procent jaar maand week dinsdag "
          "Amsterdam Rotterdam Utrecht Groningen Eindhoven Nederland Europa Oekraïne Duitsland België "
          "zei meldde besloot verklaarde onderzocht bouwde sloot opende verhoogde daalde steeg").split()


def _write_corpus(path: Path, n: int, seed: int) -> Path:
    """JSONL with n Dutch-like articles; the needle article sits in the middle."""
    rng = random.Random(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        for i in range(n):
            if i == n // 2:
                record = {"id": NEEDLE_ID, "text": NEEDLE, "date": "2023-06-01"}
            else:
                sentences, words = [], 0
                while words < WORDS_PER_ARTICLE:
                    k = rng.randint(8, 22)
                    sentence = [rng.choice(_VOCAB) for _ in range(k)]
                    sentences.append(" ".join([sentence[0].capitalize(), *sentence[1:]]) + rng.choice(".?!."))
                    words += k
                record = {"id": f"art-{i}", "title": f"Artikel {i}", "text": " ".join(sentences),
                          "date": f"2023-{1 + i % 12:02d}-{1 + i % 28:02d}"}
            f.write(json.dumps(record, ensure_ascii=False) + "\n")
    return path


def _env() -> dict:
    return {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONDONTWRITEBYTECODE": "1"}


def _build_cmd(corpus: Path, index_dir: Path) -> list[str]:
    return [sys.executable, "-m", "qa.cli", "build", str(corpus), "--index", str(index_dir), "--model", "hash-64"]


# The random-kill builds run through this wrapper: it only writes a marker to stderr when the build
# enters a phase, so the report can say where each kill landed.
_TRACER = r"""
import os, sys
from qa import rows, store, sync
from qa.embedding import HashEmbedder
from qa.cli import main

def mark(phase):
    os.write(2, f"PHASE {phase}\n".encode())

def traced(phase, original, first_only=False):
    state = {"seen": False}
    def wrapper(*args, **kwargs):
        if not (first_only and state["seen"]):
            mark(phase)
        state["seen"] = True
        return original(*args, **kwargs)
    return wrapper

sync.scan_corpus = traced("reading", sync.scan_corpus)
rows.chunk_text = traced("chunking", rows.chunk_text, first_only=True)
HashEmbedder.encode_passages = traced("embedding", HashEmbedder.encode_passages, first_only=True)
sync.DenseIndex.build = staticmethod(traced("indexing (FAISS, BM25)", sync.DenseIndex.build))
store.write_index = traced("writing files", store.write_index)
store._fsync = traced("fsync", store._fsync, first_only=True)
original_rename = store.os.rename
store.os.rename = traced("swapping", original_rename)
sys.exit(main(sys.argv[1:]))
"""


def _check_live(index_dir: Path, allowed_counts: set[int]) -> int:
    """The live index verifies, answers the known question with the known doc; returns its chunk count."""
    qa = QA.load(index_dir, embedder=HashEmbedder(64))
    assert len(qa.chunks) in allowed_counts, (len(qa.chunks), allowed_counts)
    answer = qa.ask(QUESTION, k=3)
    assert answer.citations and answer.citations[0].doc_id == NEEDLE_ID, [c.doc_id for c in answer.citations]
    return len(qa.chunks)


def _names(index_dir: Path) -> set[str]:
    return {p.name for p in index_dir.iterdir()}


def _debris(index_dir: Path) -> list[str]:
    return sorted(n for n in _names(index_dir) if n.startswith((".tmp-", f".{CURRENT}.")))


def _phase(before: set[str], after: set[str], live_before: str, live_after: str, finished: bool) -> str:
    """Where a kill landed, read from what it left behind."""
    new = after - before
    if finished:
        return "finished before the kill"
    if live_after != live_before:
        return "after the swap (cleaning up)"
    if any(n.startswith("g-") for n in new):
        return "generation renamed, CURRENT not yet swapped"
    if any(n.startswith(".tmp-") for n in new):
        return "writing/fsyncing the new generation"
    if any(n.startswith(".tmp-") for n in before - after):
        return "removing the debris of an earlier kill"
    return "start-up, reading, chunking or embedding"


def test_build_killed_at_random_moments_keeps_the_live_index(tmp_path):
    old_corpus = _write_corpus(tmp_path / "old" / "news.jsonl", ARTICLES - 100, SEED)
    new_corpus = _write_corpus(tmp_path / "new" / "news.jsonl", ARTICLES, SEED)
    index_dir = tmp_path / "index"

    subprocess.run(_build_cmd(old_corpus, index_dir), env=_env(), check=True, capture_output=True, timeout=300)
    old_count = _check_live(index_dir, {n for n in range(1, 10**6)})
    # The duration of an undisturbed build of the new corpus (caches now warm) sets the kill moments.
    start = time.monotonic()
    subprocess.run(_build_cmd(new_corpus, tmp_path / "reference"), env=_env(), check=True, capture_output=True,
                   timeout=300)
    duration = time.monotonic() - start
    new_count = _check_live(tmp_path / "reference", {n for n in range(old_count + 1, 10**6)})

    # One random moment in each twentieth of the build: uniform, yet every part of the build gets one.
    rng = random.Random(SEED)
    moments = [(i + rng.random()) * duration / KILLS for i in range(KILLS)]
    phases, report = Counter(), []
    for i, moment in enumerate(moments):
        before, live_before = _names(index_dir), current_generation(index_dir).name
        t0 = time.monotonic()
        proc = subprocess.Popen([sys.executable, "-c", _TRACER, *_build_cmd(new_corpus, index_dir)[3:]], env=_env(),
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        time.sleep(max(0.0, moment - (time.monotonic() - t0)))
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
        _, err = proc.communicate(timeout=120)
        # A build may end on its own between the poll and the signal: then it exits 0.
        assert proc.returncode in (0, -signal.SIGKILL), err.decode(errors="replace")
        finished = proc.returncode == 0
        markers = [line[6:] for line in err.decode(errors="replace").splitlines() if line.startswith("PHASE ")]
        phase = "(finished)" if finished else markers[-1] if markers else "start-up (interpreter, imports)"
        left = _phase(before, _names(index_dir), live_before, current_generation(index_dir).name, finished)
        phases[phase] += 1
        count = _check_live(index_dir, {old_count, new_count})
        report.append(f"kill {i + 1:2d} at {moment:5.2f}s in {phase}: {left}; live index has {count} chunks")
        if i % 10 == 9:  # the command line sees the same thing
            ask = subprocess.run([sys.executable, "-m", "qa.cli", "ask", QUESTION, "--index", str(index_dir), "--json"],
                                 env=_env(), capture_output=True, text=True, timeout=120, cwd=tmp_path)
            assert ask.returncode == 0, ask.stderr
            assert json.loads(ask.stdout)["citations"][0]["doc_id"] == NEEDLE_ID

    print(f"\nbuild takes {duration:.2f}s; {KILLS} kills:\n" + "\n".join(report)
          + "\nphases: " + ", ".join(f"{n}x {p}" for p, n in phases.most_common()))

    final = subprocess.run(_build_cmd(new_corpus, index_dir), env=_env(), capture_output=True, text=True, timeout=300)
    assert final.returncode == 0, final.stderr
    assert _check_live(index_dir, {new_count}) == new_count
    assert not _debris(index_dir)
    assert len([n for n in _names(index_dir) if n.startswith("g-")]) <= 2


# --- deterministic kills at each step of write_index ---------------------------------------------

# The build process patches one step of qa.store and SIGKILLs itself there (no finally, no atexit).
_KILLER = r"""
import os, signal, sys
import numpy as np
from qa import store
from qa.cli import main

step, nth = sys.argv[1], int(sys.argv[2])
calls = {"n": 0}

def die():
    os.kill(os.getpid(), signal.SIGKILL)

def hook(original, before=True):
    def wrapper(*args, **kwargs):
        calls["n"] += 1
        if before and calls["n"] == nth:
            die()
        result = original(*args, **kwargs)
        if not before and calls["n"] == nth:
            die()
        return result
    return wrapper

targets = {
    "after debris removal": (store, "_remove_debris", False),
    "data files half written": (np, "save", True),
    "manifest temp file written": (store.os, "replace", True),
    "fsync of data files": (store, "_fsync", True),
    "generation renamed": (store.os, "rename", False),
    "CURRENT temp file written": (store.os, "replace", True),
    "CURRENT swapped": (store, "_remove_old_generations", True),
    "old generation half removed": (store.shutil, "rmtree", False),
}
module, name, before = targets[step]
setattr(module, name, hook(getattr(module, name), before))
sys.exit(main(sys.argv[3:]))
"""

STEPS = {  # step -> which call of the patched function to die at
    "after debris removal": 1,
    "data files half written": 1,
    "manifest temp file written": 1,
    "fsync of data files": 2,
    "generation renamed": 1,
    "CURRENT temp file written": 2,
    "CURRENT swapped": 1,
    "old generation half removed": 1,
}


@pytest.fixture(scope="module")
def small_corpora(tmp_path_factory):
    root = tmp_path_factory.mktemp("kill-corpora")
    old, new = root / "old", root / "new"
    for folder, extra in ((old, 0), (new, 3)):
        write_news(folder)
        (folder / "needle.jsonl").write_text(json.dumps({"id": NEEDLE_ID, "text": NEEDLE}) + "\n", encoding="utf-8")
        for i in range(extra):
            (folder / f"extra-{i}.txt").write_text(f"De gemeente Zwolle opende fietspad {i}. Het was druk.",
                                                   encoding="utf-8")
    return old, new


@pytest.mark.parametrize("step", STEPS)
def test_build_killed_at_each_write_step_keeps_the_live_index(tmp_path, small_corpora, step):
    old, new = small_corpora
    index_dir = tmp_path / "index"
    QA.build([old], index_dir, model="hash-64")
    QA.build([old], index_dir, model="hash-64")  # a previous generation too, for the clean-up step
    QA.build([old], index_dir, model="hash-64")
    old_count = _check_live(index_dir, {n for n in range(1, 1000)})
    new_count = len(QA.build([new], tmp_path / "reference", model="hash-64").chunks)
    live_before = current_generation(index_dir).name

    proc = subprocess.run([sys.executable, "-c", _KILLER, step, str(STEPS[step]), *_build_cmd(new, index_dir)[3:]],
                          env=_env(), capture_output=True, text=True, timeout=120)
    assert proc.returncode == -signal.SIGKILL, (proc.returncode, proc.stderr)
    swapped = current_generation(index_dir).name != live_before
    assert swapped == (step in ("CURRENT swapped", "old generation half removed")), step
    _check_live(index_dir, {new_count} if swapped else {old_count})

    # The next build cleans up whatever the kill left and succeeds.
    QA.build([new], index_dir, model="hash-64")
    assert _check_live(index_dir, {new_count}) == new_count
    assert not _debris(index_dir)
    assert len([n for n in _names(index_dir) if n.startswith("g-")]) == 2
