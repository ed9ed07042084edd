"""Index integrity beyond tests/test_store.py: every file, the manifest itself, the CLI, readers during rebuilds.

test_store.py covers a flipped byte in three data files, one truncated and one missing file, a
newer format and another model through the Python API. Here: the same damage to *every* file
the manifest lists, every byte of the manifest, the pointer file, consistent-but-wrong files
(a pickle payload, mismatched row counts), the errors as the `qa ask` user sees them, and
readers that load while another thread rebuilds.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
from conftest import ROOT

from qa import QA, IndexCorruptError, IndexFormatError, ModelMismatchError, QAError, store
from qa.embedding import HashEmbedder
from qa.store import CURRENT, MANIFEST, current_generation

QUESTION = "Wie won het WK voetbal in Qatar?"
ANSWER_DOC = "sport.txt"


def _index(tmp_path: Path) -> Path:
    return tmp_path / "index"


def _copy(index_dir: Path, dst: Path) -> tuple[Path, Path]:
    """A private copy of an index and its live generation folder."""
    shutil.copytree(index_dir, dst)
    return dst, current_generation(dst)


def _data_files(index_dir: Path) -> list[str]:
    return sorted(store.open_index(index_dir, verify=False)[1]["files"])


def _rewrite_manifest(folder: Path, change=None) -> None:
    """Re-checksum every data file and the manifest, as a writer that is not this package would."""
    path = folder / MANIFEST
    manifest = json.loads(path.read_text(encoding="utf-8"))
    for name, meta in manifest["files"].items():
        meta["sha256"], meta["bytes"] = store.sha256_file(folder / name), (folder / name).stat().st_size
    if change:
        change(manifest)
    manifest[store.MANIFEST_CHECKSUM] = store.manifest_checksum(manifest)
    path.write_text(json.dumps(manifest, indent=2, ensure_ascii=False), encoding="utf-8")


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "qa.cli", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=120)


# --- damage to every file -------------------------------------------------------------------------


def test_every_listed_file_is_checksummed(hash_qa, tmp_path):
    files = _data_files(_index(tmp_path))
    assert {"chunks.jsonl", "chunks.jsonl.offsets.npy", "docs.jsonl", "docs.jsonl.offsets.npy", "vectors.npy",
            "dense.faiss"} <= set(files)
    assert any("bm25" in f for f in files), files
    # Everything in the generation folder is either listed with a checksum or is the manifest.
    assert sorted(p.name for p in hash_qa.folder.iterdir()) == sorted([*files, MANIFEST])


@pytest.mark.parametrize("damage", ["flip_first", "flip_last", "truncate", "empty", "missing", "grow"])
def test_damage_to_any_file_is_refused(hash_qa, tmp_path, damage):
    expected = {"flip_first": "checksum", "flip_last": "checksum", "truncate": "truncated", "empty": "truncated",
                "missing": "missing", "grow": "truncated or changed"}[damage]
    for n, name in enumerate(_data_files(_index(tmp_path))):
        index_dir, folder = _copy(_index(tmp_path), tmp_path / f"copy-{n}")
        path = folder / name
        data = bytearray(path.read_bytes())
        if damage.startswith("flip"):
            data[0 if damage == "flip_first" else -1] ^= 0x01
            path.write_bytes(bytes(data))
        elif damage == "truncate":
            path.write_bytes(bytes(data[: len(data) // 2]))
        elif damage == "empty":
            path.write_bytes(b"")
        elif damage == "grow":
            path.write_bytes(bytes(data) + b"\n")
        else:
            path.unlink()
        with pytest.raises(IndexCorruptError, match=f"{expected}.*qa build") as info:
            QA.load(index_dir)
        assert name in str(info.value)


def test_every_flipped_manifest_byte_is_refused(hash_qa, tmp_path):
    """The manifest carries a checksum of its own content: no single flipped byte slips through.

    Without it, a flip inside a number ("k": 60 -> 70, "depth": 50 -> 51) or a string would load
    and silently change results.
    """
    folder = current_generation(_index(tmp_path))
    original = (folder / MANIFEST).read_bytes()
    accepted = []
    fd = os.open(folder / MANIFEST, os.O_RDWR)  # one byte rewritten in place: fast on any file system
    try:
        for pos in range(len(original)):
            os.pwrite(fd, bytes([original[pos] ^ 0x01]), pos)
            try:
                store.read_manifest(folder)
            except (IndexCorruptError, IndexFormatError):
                continue
            finally:
                os.pwrite(fd, original[pos:pos + 1], pos)
            accepted.append((pos, bytes(original[max(0, pos - 20): pos + 20])))
    finally:
        os.close(fd)
    assert (folder / MANIFEST).read_bytes() == original
    store.read_manifest(folder)
    assert not accepted, f"{len(accepted)} of {len(original)} flipped bytes accepted, e.g. {accepted[:3]}"


@pytest.mark.parametrize("content,match", [
    (b"", "not valid JSON"),
    (b"[1, 2]", "no format version"),
    (b'{"format_version": "1"}', "no format version"),
    (b'{"format_version": 2}', "lists no files"),
    (b'{"format_version": 1, "files": {}}', "outdated"),
    (b"\xff\xfe{", "not valid JSON"),
    (b'{"format_version": 0, "files": {}}', "outdated"),
])
def test_malformed_manifest(hash_qa, tmp_path, content, match):
    folder = current_generation(_index(tmp_path))
    (folder / MANIFEST).write_bytes(content)
    with pytest.raises((IndexCorruptError, IndexFormatError), match=f"{match}.*qa build"):
        QA.load(_index(tmp_path))


def test_missing_manifest(hash_qa, tmp_path):
    (current_generation(_index(tmp_path)) / MANIFEST).unlink()
    with pytest.raises(IndexCorruptError, match="manifest.json is missing.*qa build"):
        QA.load(_index(tmp_path))


@pytest.mark.parametrize("pointer", ["", "g-nothere", "../../etc", "/etc", "g-x/../..", "\x00", "manifest.json"])
def test_current_pointing_nowhere(hash_qa, tmp_path, pointer):
    (_index(tmp_path) / CURRENT).write_text(pointer, encoding="utf-8")
    with pytest.raises(IndexCorruptError, match="not there.*qa build"):
        QA.load(_index(tmp_path))


def test_current_that_is_not_text(hash_qa, tmp_path):
    (_index(tmp_path) / CURRENT).write_bytes(b"\xff\xfeg-\x00")
    with pytest.raises(QAError, match="qa build"):
        QA.load(_index(tmp_path))


def test_current_is_a_folder(hash_qa, tmp_path):
    (_index(tmp_path) / CURRENT).unlink()
    (_index(tmp_path) / CURRENT).mkdir()
    with pytest.raises(QAError, match="qa build"):
        QA.load(_index(tmp_path))


# --- consistent checksums, wrong content ----------------------------------------------------------


def test_pickle_payload_is_never_unpickled(hash_qa, tmp_path):
    """An object array (pickle inside .npy) with matching checksums: refused, and nothing runs."""
    marker = tmp_path / "PWNED"

    class Payload:
        def __reduce__(self):
            return (Path.touch, (marker,))

    folder = current_generation(_index(tmp_path))
    np.save(folder / "vectors.npy", np.array([Payload()], dtype=object), allow_pickle=True)
    _rewrite_manifest(folder)
    with pytest.raises(IndexCorruptError, match="qa build"):
        QA.load(_index(tmp_path))
    assert not marker.exists()


def test_files_that_disagree_on_row_count(hash_qa, tmp_path):
    folder = current_generation(_index(tmp_path))
    vectors = np.load(folder / "vectors.npy")
    np.save(folder / "vectors.npy", vectors[:-1], allow_pickle=False)
    _rewrite_manifest(folder)
    with pytest.raises(IndexCorruptError, match="disagree.*qa build"):
        QA.load(_index(tmp_path))


def test_chunks_file_that_is_not_json(hash_qa, tmp_path):
    folder = current_generation(_index(tmp_path))
    (folder / "chunks.jsonl").write_bytes(b"\x00\x01 not json\n")
    _rewrite_manifest(folder)
    with pytest.raises(IndexCorruptError, match="qa build"):
        QA.load(_index(tmp_path))


def test_chunk_record_broken_in_place_is_reported_when_read(hash_qa, tmp_path):
    """Records are parsed when asked for: with checksums skipped, a record damaged in place
    (same length) loads, and the question that cites it gets an error that says to rebuild."""
    folder = current_generation(_index(tmp_path))
    data = (folder / "chunks.jsonl").read_bytes()
    (folder / "chunks.jsonl").write_bytes(b"#" * data.index(b"\n") + data[data.index(b"\n"):])
    _rewrite_manifest(folder)
    qa = QA.load(_index(tmp_path))
    assert qa.chunks[1].chunk_id
    with pytest.raises(IndexCorruptError, match="broken record at row 0.*qa build"):
        qa.chunks[0]


def test_empty_offsets_file_without_checksums(hash_qa, tmp_path):
    folder = current_generation(_index(tmp_path))
    (folder / "chunks.jsonl.offsets.npy").write_bytes(b"")
    with pytest.raises(IndexCorruptError, match="qa build"):
        QA.load(_index(tmp_path), verify=False)


def test_tables_that_disagree_with_the_vectors_are_never_made_live(hash_qa, tmp_path):
    from qa.chunking import ChunkSettings
    from qa.index import DocEntry, open_rows, write_generation
    from qa.lexical import Analyzer

    before = store.current_generation(_index(tmp_path))
    rows = open_rows(_index(tmp_path))
    docs = [DocEntry(rows.docs[i].doc_id, rows.docs[i], bytes(rows.doc_sha256[i]), *map(int, rows.doc_rows[i]),
                     rows.news.doc(i)) for i in range(len(rows.docs))]
    with pytest.raises(ValueError, match="must be the same chunks"):
        write_generation(_index(tmp_path), chunks=list(hash_qa.chunks)[:1], docs=docs, vectors=np.asarray(hash_qa.vectors),
                         chunk_sha256=rows.chunk_sha256, terms=rows.terms, dense=hash_qa.dense, bm25=hash_qa.bm25,
                         model=hash_qa.manifest["model"], chunking=ChunkSettings(), analyzer=Analyzer(), corpus={},
                         text_of=lambda doc_id: "")
    assert store.current_generation(_index(tmp_path)) == before
    assert len(QA.load(_index(tmp_path)).chunks) == len(hash_qa.chunks)


def test_faiss_file_that_is_not_faiss(hash_qa, tmp_path):
    folder = current_generation(_index(tmp_path))
    (folder / "dense.faiss").write_bytes(b"IxFI" + b"\x00" * 64)
    _rewrite_manifest(folder)
    with pytest.raises(IndexCorruptError, match="qa build"):
        QA.load(_index(tmp_path))


def test_analyzer_of_another_version_is_refused(hash_qa, tmp_path):
    """Terms from another analyzer version would silently stop matching the question's terms."""
    folder = current_generation(_index(tmp_path))
    _rewrite_manifest(folder, lambda m: m["analyzer"].__setitem__("version", "999"))
    with pytest.raises(IndexFormatError, match="analyzer.*qa build"):
        QA.load(_index(tmp_path))


def test_model_of_another_dimension(hash_qa, tmp_path):
    folder = current_generation(_index(tmp_path))
    _rewrite_manifest(folder, lambda m: m["model"].__setitem__("name", "hash-32"))
    with pytest.raises(ModelMismatchError, match="32-d vectors, the index has 64-d"):
        QA.load(_index(tmp_path))


# --- what the CLI user sees -----------------------------------------------------------------------


def _newer(folder: Path) -> None:
    m = json.loads((folder / MANIFEST).read_text())
    m["format_version"] = 99
    (folder / MANIFEST).write_text(json.dumps(m))


def _flip(folder: Path) -> None:
    data = bytearray((folder / "docs.jsonl").read_bytes())
    data[len(data) // 2] ^= 0x01
    (folder / "docs.jsonl").write_bytes(bytes(data))


CLI_CASES = {
    "flipped byte": (_flip, [], "fails its checksum"),
    "truncated": (lambda f: (f / "vectors.npy").write_bytes((f / "vectors.npy").read_bytes()[:100]), [], "truncated"),
    "missing file": (lambda f: (f / "dense.faiss").unlink(), [], "is missing"),
    "newer format": (_newer, [], "newer than this version"),
    "other model": (lambda f: None, ["--model", "hash-32"], "built with 'hash-64', not 'hash-32'"),
    "no index": (lambda f: shutil.rmtree(f.parent), [], "no index in"),
    "dangling pointer": (lambda f: shutil.rmtree(f), [], "which is not there"),
}


def test_cli_gives_distinct_actionable_errors_without_traceback(hash_qa, tmp_path):
    """`qa ask` exits 1 with one `error: ...` line per kind of damage, never a traceback."""
    messages = {}
    for n, (case, (damage, extra, expected)) in enumerate(CLI_CASES.items()):
        index_dir, folder = _copy(_index(tmp_path), tmp_path / f"cli-{n}")
        damage(folder)
        # cwd has no seeds/ folder, so a missing index is reported instead of built.
        result = _cli("ask", QUESTION, "--index", str(index_dir), *extra, cwd=tmp_path)
        assert result.returncode == 1, (case, result.stdout, result.stderr)
        assert result.stdout == "", case
        assert "Traceback" not in result.stderr, (case, result.stderr)
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: "), (case, result.stderr)
        assert expected in lines[0], (case, lines[0])
        assert "qa build" in lines[0] or "--model" in lines[0], (case, lines[0])
        messages[case] = lines[0].replace(str(index_dir), "INDEX")
    assert len(set(messages.values())) == len(messages), messages


@pytest.mark.parametrize("full_at", ["chunks.jsonl", "dense.faiss"])
def test_build_that_cannot_write_keeps_the_old_index(hash_qa, news_dir, tmp_path, full_at):
    """A disk that fills up mid-build (here the kernel refuses writes past a file-size limit with
    EFBIG) gives one error line, leaves no half-written generation, and the old index serves on.
    Two places: the first file written (Python's own I/O) and the FAISS file (FAISS's I/O), which
    is the largest file of a big index."""
    before = [c.chunk_id for c in QA.load(_index(tmp_path)).chunks]
    if full_at == "chunks.jsonl":
        (news_dir / "begroting.txt").write_text("date 2024-01\n" + "Het kabinet presenteert de begroting. " * 400,
                                               encoding="utf-8")
        limit, extra = 4096, []
    else:  # many tiny chunks: an HNSW file (~400 bytes a chunk) outgrows every file written before it
        for i in range(300):
            (news_dir / f"kort-{i}.txt").write_text(f"date 2024-01\nKort bericht {i}.", encoding="utf-8")
        limit, extra = 100_000, ["--dense", "hnsw"]

    def small_disk():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # fail the write instead of killing the process
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONDONTWRITEBYTECODE": "1"}
    result = subprocess.run([sys.executable, "-m", "qa.cli", "build", str(news_dir), "--index", str(_index(tmp_path)),
                             "--model", "hash-64", *extra], env=env, capture_output=True, text=True, timeout=120,
                            preexec_fn=small_disk)
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    assert result.stderr.startswith("error: cannot write the index") and "File too large" in result.stderr
    assert "unchanged" in result.stderr
    assert not [p.name for p in _index(tmp_path).iterdir() if p.name.startswith(".tmp-")]
    qa = QA.load(_index(tmp_path))
    assert [c.chunk_id for c in qa.chunks] == before and "begroting.txt" not in qa.docs
    assert qa.ask(QUESTION).citations[0].doc_id == ANSWER_DOC


def test_cli_info_on_damaged_index(hash_qa, tmp_path):
    _flip(current_generation(_index(tmp_path)))
    result = _cli("info", "--index", str(_index(tmp_path)), cwd=tmp_path)
    assert result.returncode == 1 and result.stderr.startswith("error: ") and "Traceback" not in result.stderr


# --- readers during rebuilds ----------------------------------------------------------------------


def _corpora(news_dir: Path, tmp_path: Path) -> tuple[Path, Path]:
    bigger = tmp_path / "news-b"
    shutil.copytree(news_dir, bigger)
    for i in range(3):
        (bigger / f"extra-{i}.txt").write_text(
            f"date 2023-0{i + 4} De gemeenteraad van Zwolle besprak plan {i} voor nieuwe fietspaden. "
            "Wethouders wilden meer geld voor onderhoud.", encoding="utf-8")
    return news_dir, bigger


def test_reader_survives_generations_removed_under_it(hash_qa, news_dir, tmp_path, monkeypatch):
    """A reader resolved CURRENT, then two rebuilds removed that generation before it read the files."""
    index_dir = _index(tmp_path)
    verify = store.verify_files
    calls = []

    def slow_reader_verify(folder, manifest):
        if not calls:
            calls.append(folder)
            QA.build([news_dir], index_dir, model="hash-64")
            QA.build([news_dir], index_dir, model="hash-64")
        return verify(folder, manifest)

    monkeypatch.setattr(store, "verify_files", slow_reader_verify)
    qa = QA.load(index_dir)
    assert not calls[0].exists() and qa.folder == current_generation(index_dir)
    assert qa.ask(QUESTION).citations[0].doc_id == ANSWER_DOC


def test_concurrent_readers_never_see_a_half_swapped_index(news_dir, tmp_path):
    """Reader threads load + ask in a loop while another thread rebuilds with alternating corpora."""
    small, big = _corpora(news_dir, tmp_path)
    counts = {len(QA.build([c], tmp_path / f"ref-{i}", model="hash-64").chunks) for i, c in enumerate((small, big))}
    assert len(counts) == 2
    index_dir = tmp_path / "live"
    QA.build([small], index_dir, model="hash-64")
    stop, errors, seen = threading.Event(), [], []
    embedder = HashEmbedder(64)

    def reader():
        while not stop.is_set():
            try:
                qa = QA.load(index_dir, embedder=embedder)
                n = len(qa.chunks)
                if not (n in counts and len(qa.vectors) == len(qa.dense) == len(qa.bm25) == n
                        and qa.manifest["counts"]["chunks"] == n
                        and {c.doc_id for c in qa.chunks} == set(qa.docs)):
                    errors.append(f"inconsistent index: {n} chunks, manifest {qa.manifest['counts']}")
                top = qa.ask(QUESTION).citations[0].doc_id
                if top != ANSWER_DOC:
                    errors.append(f"wrong answer {top}")
                seen.append(n)
            except Exception as exc:  # noqa: BLE001 - every failure is a finding
                errors.append(f"{type(exc).__name__}: {exc}")

    readers = [threading.Thread(target=reader) for _ in range(3)]
    for t in readers:
        t.start()
    try:
        for i in range(12):
            QA.build([big if i % 2 == 0 else small], index_dir, model="hash-64", embedder=embedder)
    finally:
        stop.set()
        for t in readers:
            t.join(timeout=60)
    assert not errors, f"{len(errors)} failed loads of {len(errors) + len(seen)}: {errors[:5]}"
    assert len(seen) >= 10 and set(seen) == counts, (len(seen), set(seen))
    # Old generations are cleaned up: the live one and the previous one remain.
    assert len([p for p in index_dir.iterdir() if p.name.startswith("g-")]) == 2
    assert not [p for p in index_dir.iterdir() if p.name.startswith((".tmp-", f".{CURRENT}."))]
