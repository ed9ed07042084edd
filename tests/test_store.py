"""Index persistence: round trip, integrity checks, format version, model identity, atomic swap."""

from __future__ import annotations

import json

import numpy as np
import pytest

from qa import QA, CorpusError, IndexCorruptError, IndexFormatError, IndexMissingError, ModelMismatchError, store
from qa.store import CURRENT, MANIFEST, current_generation


def _live(index_dir):
    return current_generation(index_dir)


def test_round_trip_gives_identical_results(hash_qa, tmp_path):
    loaded = QA.load(tmp_path / "index")
    for q in ["400 vierkante kilometer", "inflatie CBS", "Wie won het WK?", "exoplaneet 1.127 dagen"]:
        assert [(h.row, h.score, h.ranks) for h in loaded.search(q, k=5)] == \
               [(h.row, h.score, h.ranks) for h in hash_qa.search(q, k=5)]
        assert loaded.ask(q).to_dict() == hash_qa.ask(q).to_dict()
    assert list(loaded.chunks) == list(hash_qa.chunks)
    np.testing.assert_array_equal(loaded.vectors, hash_qa.vectors)


def test_manifest_records_what_built_the_index(hash_qa):
    m = hash_qa.manifest
    assert m["format_version"] == store.FORMAT_VERSION == 2
    assert m["model"] == {"name": "hash-64", "dim": 64, "prompts": {"query": "", "passage": ""}}
    assert {"max_words", "overlap"} <= set(m["chunking"])
    assert m["analyzer"]["version"]
    assert len(m["corpus"]["files"]) == 6 and all(len(f["sha256"]) == 64 for f in m["corpus"]["files"])
    assert m["files"]["chunks.jsonl"]["rows"] == len(hash_qa.chunks)
    for name, meta in m["files"].items():
        assert (hash_qa.folder / name).stat().st_size == meta["bytes"]


def test_no_pickle_in_index_files(hash_qa):
    for path in hash_qa.folder.iterdir():
        if path.suffix == ".npy":
            np.load(path, allow_pickle=False)  # raises if an object array was stored


@pytest.mark.parametrize("name", ["chunks.jsonl", "vectors.npy", "dense.faiss"])
def test_flipped_byte_is_refused(hash_qa, tmp_path, name):
    path = _live(tmp_path / "index") / name
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))
    with pytest.raises(IndexCorruptError, match="checksum.*qa build"):
        QA.load(tmp_path / "index")


def test_truncated_and_missing_files_are_refused(hash_qa, tmp_path):
    folder = _live(tmp_path / "index")
    vectors = folder / "vectors.npy"
    vectors.write_bytes(vectors.read_bytes()[:-10])
    with pytest.raises(IndexCorruptError, match="truncated"):
        QA.load(tmp_path / "index")
    vectors.unlink()
    with pytest.raises(IndexCorruptError, match="missing"):
        QA.load(tmp_path / "index")


def test_newer_format_is_refused(hash_qa, tmp_path):
    path = _live(tmp_path / "index") / MANIFEST
    manifest = json.loads(path.read_text())
    manifest["format_version"] = 99
    path.write_text(json.dumps(manifest))
    with pytest.raises(IndexFormatError, match="newer.*upgrade"):
        QA.load(tmp_path / "index")


def test_other_model_is_refused(hash_qa, tmp_path):
    with pytest.raises(ModelMismatchError, match="built with 'hash-64'"):
        QA.load(tmp_path / "index", model="hash-32")


def test_missing_index(tmp_path):
    with pytest.raises(IndexMissingError, match="qa build"):
        QA.load(tmp_path / "nothing")


def test_rebuild_swaps_generations_and_failed_build_keeps_old(hash_qa, news_dir, tmp_path):
    index_dir = tmp_path / "index"
    first = _live(index_dir)
    (news_dir / "extra.txt").write_text("date 2023-05 Een nieuw artikel over de Tweede Kamer.", encoding="utf-8")
    QA.build([news_dir], index_dir, model="hash-64")
    second = _live(index_dir)
    assert second != first and len(QA.load(index_dir).docs) == 7
    (news_dir / "broken.txt").write_bytes(b"\xff\xfe not utf-8 \xff")
    with pytest.raises(CorpusError, match="broken.txt: not valid UTF-8"):
        QA.build([news_dir], index_dir, model="hash-64")
    assert _live(index_dir) == second and len(QA.load(index_dir).docs) == 7
    assert not [p for p in index_dir.iterdir() if p.name.startswith(".tmp-")]


def test_debris_of_a_killed_build_is_cleaned(hash_qa, news_dir, tmp_path):
    index_dir = tmp_path / "index"
    debris = index_dir / ".tmp-g-20000101T000000-dead00"
    debris.mkdir()
    (debris / "vectors.npy").write_bytes(b"half")
    QA.build([news_dir], index_dir, model="hash-64")
    assert not debris.exists()
    assert (index_dir / CURRENT).read_text().strip() == _live(index_dir).name
