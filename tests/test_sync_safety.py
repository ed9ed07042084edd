"""A sync is as safe as a build: killed at any moment, the live index serves on; readers never see
a mix; a sync that cannot write (disk full) or read (a corrupt new file) loses nothing.

The kill test is test_kill.py's, for `qa sync`: 20 SIGKILLs at random moments (fixed seed) over
the measured duration of a sync that changes about half of a generated corpus (and adds to it),
each sync going the other way from whatever is live, so every kill interrupts real work.
"""

from __future__ import annotations

import json
import os
import random
import re
import resource
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import pytest
import test_kill
from conftest import write_news
from test_kill import (
    _KILLER,
    ARTICLES,
    KILLS,
    NEEDLE_ID,
    QUESTION,
    SEED,
    STEPS,
    _check_live,
    _debris,
    _env,
    _names,
    _write_corpus,
)

from qa import QA
from qa.embedding import HashEmbedder
from qa.store import CURRENT, current_generation

small_corpora = test_kill.small_corpora  # its module-scoped fixture: the corpora before and after


def _sync_cmd(corpus: Path, index_dir: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "qa.cli", "sync", str(corpus), "--index", str(index_dir), *extra]


# Marks the phase the sync enters on stderr, so the report can say where each kill landed.
_TRACER = r"""
import os, sys
from qa import rows, store, sync
from qa.cli import main
from qa.terms import TermCounts

def traced(phase, original, first_only=False):
    state = {"seen": False}
    def wrapper(*args, **kwargs):
        if not (first_only and state["seen"]):
            os.write(2, f"PHASE {phase}\n".encode())
        state["seen"] = True
        return original(*args, **kwargs)
    return wrapper

sync.open_rows = traced("opening the live index", sync.open_rows)
sync.scan_corpus = traced("reading the corpus", sync.scan_corpus)
rows.embed_texts = traced("embedding", rows.embed_texts)
TermCounts.renumbered = traced("term counts", TermCounts.renumbered)
TermCounts.bm25 = traced("weighing BM25", TermCounts.bm25)
sync.DenseIndex.build = staticmethod(traced("dense index", sync.DenseIndex.build))
store.write_index = traced("writing files", store.write_index)
store._fsync = traced("fsync", store._fsync, first_only=True)
store.os.rename = traced("swapping", store.os.rename)
sys.exit(main(sys.argv[1:]))
"""


def test_sync_killed_at_random_moments_keeps_the_live_index(tmp_path):
    corpus = tmp_path / "corpus"
    states = {}
    # Four times test_kill's corpus: a sync then spends most of its time past the interpreter's start-up.
    for name, n in (("old", 4 * ARTICLES - 100), ("new", 4 * ARTICLES)):
        states[name] = _write_corpus(tmp_path / name / "news.jsonl", n, SEED).read_text(encoding="utf-8")
    corpus.mkdir()
    feed = corpus / "news.jsonl"
    index_dir = tmp_path / "index"

    def target(name: str) -> str:
        feed.write_text(states[name], encoding="utf-8")
        return name

    target("old")
    subprocess.run([*_sync_cmd(corpus, index_dir), "--model", "hash-64"], env=_env(), check=True, capture_output=True,
                   timeout=300)
    counts = {"old": _check_live(index_dir, set(range(1, 10**6)))}
    # An undisturbed sync to the new corpus, in a copy, sets the kill moments.
    reference = tmp_path / "reference"
    subprocess.run(["cp", "-r", str(index_dir), str(reference)], check=True)
    target("new")
    start = time.monotonic()
    done = subprocess.run(_sync_cmd(corpus, reference, "--json"), env=_env(), check=True, capture_output=True,
                          timeout=300)
    duration = time.monotonic() - start
    report = json.loads(done.stdout)
    assert report["documents"]["added"] + report["documents"]["changed"] >= 100  # real work,
    assert report["chunks"]["reused"] > 1000                                     # and reuse
    counts["new"] = _check_live(reference, {n for n in range(counts["old"] + 1, 10**6)})

    rng = random.Random(SEED)
    moments = [(i + rng.random()) * duration / KILLS for i in range(KILLS)]
    phases, lines = Counter(), []
    for i, moment in enumerate(moments):
        live_before = current_generation(index_dir).name
        going = target("new" if len(QA.load(index_dir, embedder=HashEmbedder(64)).chunks) == counts["old"] else "old")
        t0 = time.monotonic()
        proc = subprocess.Popen([sys.executable, "-c", _TRACER, *_sync_cmd(corpus, index_dir)[3:]], env=_env(),
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        time.sleep(max(0.0, moment - (time.monotonic() - t0)))
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
        _, err = proc.communicate(timeout=120)
        # A sync may end on its own between the poll and the signal: then it exits 0.
        assert proc.returncode in (0, -signal.SIGKILL), err.decode(errors="replace")
        finished = proc.returncode == 0
        markers = [line[6:] for line in err.decode(errors="replace").splitlines() if line.startswith("PHASE ")]
        phase = "(finished)" if finished else markers[-1] if markers else "start-up (interpreter, imports)"
        phases[phase] += 1
        count = _check_live(index_dir, set(counts.values()))  # loads, verifies every checksum, answers
        swapped = current_generation(index_dir).name != live_before
        lines.append(f"kill {i + 1:2d} at {moment:5.2f}s syncing to {going} in {phase}: "
                     f"{'new generation live' if swapped else 'previous generation live'} ({count} chunks)")
        if i % 10 == 9:  # the command line sees the same
            ask = subprocess.run([sys.executable, "-m", "qa.cli", "ask", QUESTION, "--index", str(index_dir), "--json"],
                                 env=_env(), capture_output=True, text=True, timeout=120, cwd=tmp_path)
            assert ask.returncode == 0 and json.loads(ask.stdout)["citations"][0]["doc_id"] == NEEDLE_ID, ask.stderr
    print(f"\nsync takes {duration:.2f}s; {KILLS} kills:\n" + "\n".join(lines)
          + "\nphases: " + ", ".join(f"{n}x {p}" for p, n in phases.most_common()))

    target("new")
    final = subprocess.run(_sync_cmd(corpus, index_dir), env=_env(), capture_output=True, text=True, timeout=300)
    assert final.returncode == 0, final.stderr
    assert _check_live(index_dir, {counts["new"]}) == counts["new"]
    assert not _debris(index_dir) and len([n for n in _names(index_dir) if n.startswith("g-")]) <= 2


def test_readers_during_syncs_never_fail_to_load(tmp_path):
    """Reader threads load + ask in a loop while 12 syncs alternate between two corpora."""
    news = write_news(tmp_path / "news")
    extra = {f"extra-{i}.txt": f"date 2023-0{i + 4} De gemeenteraad van Zwolle besprak plan {i} voor fietspaden."
             for i in range(3)}
    embedder = HashEmbedder(64)
    index_dir = tmp_path / "index"
    QA.build([news], index_dir, embedder=embedder)
    counts = {6, 9}
    stop, errors, seen = threading.Event(), [], []

    def reader():
        while not stop.is_set():
            try:
                qa = QA.load(index_dir, embedder=embedder)
                n = len(qa.chunks)
                if not (n in counts and len(qa.vectors) == len(qa.dense) == len(qa.bm25) == n
                        and {c.doc_id for c in qa.chunks} == set(qa.docs)):
                    errors.append(f"inconsistent index: {n} chunks")
                if qa.ask("Hoeveel vierkante kilometer is bevrijd?").citations[0].doc_id != "oorlog.txt":
                    errors.append("wrong answer")
                seen.append(n)
            except Exception as exc:  # noqa: BLE001 - every failure is a finding
                errors.append(f"{type(exc).__name__}: {exc}")

    readers = [threading.Thread(target=reader) for _ in range(3)]
    for t in readers:
        t.start()
    try:
        for i in range(12):
            for name, text in extra.items():
                if i % 2 == 0:
                    (news / name).write_text(text, encoding="utf-8")
                else:
                    (news / name).unlink()
            report = QA.sync([news], index_dir, embedder=embedder)
            assert report.documents["added" if i % 2 == 0 else "removed"] == 3
            time.sleep(0.05)
    finally:
        stop.set()
        for t in readers:
            t.join(timeout=60)
    assert not errors, f"{len(errors)} failed loads of {len(errors) + len(seen)}: {errors[:5]}"
    assert len(seen) >= 10 and set(seen) == counts
    assert len([p for p in index_dir.iterdir() if p.name.startswith("g-")]) == 2
    assert not [p for p in index_dir.iterdir() if p.name.startswith((".tmp-", f".{CURRENT}."))]


@pytest.mark.parametrize("full_at", ["chunks.jsonl", "dense.faiss"])
def test_sync_that_cannot_write_keeps_the_live_index(news_dir, tmp_path, full_at):
    """A disk that fills up mid-sync (the kernel refuses writes past a file-size limit: EFBIG)."""
    index_dir = tmp_path / "index"
    before = [c.chunk_id for c in QA.build([news_dir], index_dir, model="hash-64").chunks]
    if full_at == "chunks.jsonl":
        (news_dir / "begroting.txt").write_text("date 2024-01\n" + "Het kabinet presenteert de begroting. " * 400,
                                               encoding="utf-8")
        limit, extra = 4096, []
    else:
        for i in range(300):
            (news_dir / f"kort-{i}.txt").write_text(f"date 2024-01\nKort bericht {i}.", encoding="utf-8")
        limit, extra = 100_000, ["--dense", "hnsw"]

    def small_disk():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    result = subprocess.run(_sync_cmd(news_dir, index_dir, *extra), env=_env(), capture_output=True, text=True,
                            timeout=120, preexec_fn=small_disk)
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    assert result.stderr.startswith("error: cannot write the index") and "File too large" in result.stderr
    assert "unchanged" in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert not [p.name for p in index_dir.iterdir() if p.name.startswith(".tmp-")]
    qa = QA.load(index_dir)
    assert [c.chunk_id for c in qa.chunks] == before
    # With room again, the same sync goes through and embeds only what is new.
    report = json.loads(subprocess.run(_sync_cmd(news_dir, index_dir, *extra, "--json"), env=_env(), check=True,
                                       capture_output=True, text=True, timeout=120).stdout)
    assert report["chunks"]["reused"] == len(before)


def test_a_corrupt_file_among_new_ones(news_dir, tmp_path):
    """Without --skip-bad the sync stops before writing anything; with it, the rest is synced."""
    index_dir = tmp_path / "index"
    QA.build([news_dir], index_dir, model="hash-64")
    live = current_generation(index_dir)
    (news_dir / "nieuw.txt").write_text("date 2024-02 De NS reed weer op tijd.", encoding="utf-8")
    (news_dir / "kapot.txt").write_bytes(b"date 2024-02 \x00\x01\x02")
    result = subprocess.run(_sync_cmd(news_dir, index_dir), env=_env(), capture_output=True, text=True, timeout=120)
    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr.strip() == (f"error: {news_dir / 'kapot.txt'}: contains NUL bytes, so it is binary, not text; "
                                     "fix or remove it, or pass --skip-bad")
    assert current_generation(index_dir) == live
    result = subprocess.run(_sync_cmd(news_dir, index_dir, "--skip-bad"), env=_env(), capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stderr.startswith(f"warning: skipped {news_dir / 'kapot.txt'}: contains NUL bytes")
    assert "documents: 1 added, 0 changed, 0 removed, 6 unchanged; chunks: 1 embedded, 6 reused" in result.stdout
    assert set(QA.load(index_dir).docs) == {p.name for p in news_dir.iterdir()} - {"kapot.txt"}


def test_two_writers_never_undo_each_other(news_dir, tmp_path):
    """An add and a remove at the same time: the index lock makes one wait, so both land."""
    index_dir = tmp_path / "index"
    QA.build([news_dir], index_dir, model="hash-64")
    (tmp_path / "a.txt").write_text("date 2024-02 Een nieuw artikel over dijken.", encoding="utf-8")
    procs = [subprocess.Popen([sys.executable, "-m", "qa.cli", *args, "--index", str(index_dir)], env=_env(),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE)
             for args in (["add", str(tmp_path / "a.txt")], ["remove", "sport.txt"])]
    for p in procs:
        _, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
    docs = set(QA.load(index_dir).docs)
    assert "a.txt" in docs and "sport.txt" not in docs and len(docs) == 6
    assert os.listdir(index_dir)  # and nothing left behind
    assert not _debris(index_dir)


@pytest.mark.parametrize("step", STEPS)
def test_sync_killed_at_each_write_step_keeps_the_live_index(tmp_path, small_corpora, step):
    """test_kill.py's deterministic kills at each step of store.write_index, during a sync."""
    old, new = small_corpora
    corpus, index_dir = tmp_path / "corpus", tmp_path / "index"
    subprocess.run(["cp", "-r", str(old), str(corpus)], check=True)
    for _ in range(3):  # a previous generation too, for the clean-up step
        QA.build([corpus], index_dir, model="hash-64")
    old_count = _check_live(index_dir, set(range(1, 1000)))
    subprocess.run(["cp", "-r", f"{new}/.", str(corpus)], check=True)
    new_count = len(QA.build([corpus], tmp_path / "reference", model="hash-64").chunks)
    live_before = current_generation(index_dir).name
    proc = subprocess.run([sys.executable, "-c", _KILLER, step, str(STEPS[step]), *_sync_cmd(corpus, index_dir)[3:]],
                          env=_env(), capture_output=True, text=True, timeout=120)
    assert proc.returncode == -signal.SIGKILL, (proc.returncode, proc.stderr)
    swapped = current_generation(index_dir).name != live_before
    assert swapped == (step in ("CURRENT swapped", "old generation half removed")), step
    _check_live(index_dir, {new_count} if swapped else {old_count})
    report = QA.sync([corpus], index_dir)  # cleans up whatever the kill left, and goes through
    assert report.written != swapped and report.chunks["embedded"] == (0 if swapped else new_count - old_count)
    assert _check_live(index_dir, {new_count}) == new_count
    # (A sync with nothing to do writes nothing, and so leaves the clean-up to the next one.)
    generations = len([n for n in _names(index_dir) if n.startswith("g-")])
    assert not _debris(index_dir) and (generations <= 3 if swapped else generations == 2)


def test_a_sync_on_a_full_disk_says_so_and_loses_nothing(news_dir, tmp_path):
    """A real full disk: a 3 MB tmpfs (needs the right to mount; skipped elsewhere)."""
    disk = tmp_path / "disk"
    disk.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(disk)], capture_output=True).returncode:
        pytest.skip("cannot mount a small tmpfs here (not root)")
    try:
        index_dir = disk / "index"
        before = len(QA.build([news_dir], index_dir, model="hash-64").chunks)
        for i in range(3000):
            (news_dir / f"kort-{i}.txt").write_text(f"date 2024-01\nKort bericht {i} over gemeente {i} en het kabinet "
                                                    f"dat besloot {i} euro uit te geven.", encoding="utf-8")
        result = subprocess.run(_sync_cmd(news_dir, index_dir), env=_env(), capture_output=True, text=True,
                                timeout=300)
        assert result.returncode == 1 and result.stdout == ""
        # Python's own writes say ENOSPC; numpy's and FAISS's have their own words for a write cut short.
        assert re.fullmatch(rf"error: cannot write the index in {re.escape(str(index_dir))} \((No space left on device|"
                            r"no space left on the device: a write stopped short)\); free disk space or write the index "
                            r"elsewhere \(--index\)\. The index that was there is unchanged\.\n", result.stderr), result.stderr
        assert len(QA.load(index_dir).chunks) == before and not _debris(index_dir)
    finally:
        subprocess.run(["umount", str(disk)], check=True)
