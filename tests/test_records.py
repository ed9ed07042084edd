"""The on-demand JSONL tables behind QA.chunks and QA.docs."""

from __future__ import annotations

import numpy as np
import pytest

from qa.errors import IndexCorruptError
from qa.records import Documents, Records, offsets_name, write_documents, write_records

ROWS = [{"chunk_id": f"d{i}#0", "text": t} for i, t in enumerate(["één", "", "a\nb \u2028 c", '"{x}"', "z" * 5000])]


def test_round_trip_keeps_every_record_and_the_sequence_protocol(tmp_path):
    files = write_records(tmp_path / "t.jsonl", ROWS)
    assert files == {"t.jsonl": 5, "t.jsonl.offsets.npy": None}
    table = Records(tmp_path / "t.jsonl")
    assert len(table) == 5 and list(table) == ROWS
    assert table[-1] == ROWS[-1] and table[1:3] == ROWS[1:3] and table[np.int64(2)] == ROWS[2]
    with pytest.raises(IndexError):
        table[5]
    with pytest.raises(IndexError):
        table[-6]


def test_empty_table(tmp_path):
    write_records(tmp_path / "t.jsonl", [])
    assert (tmp_path / "t.jsonl").stat().st_size == 0 and list(Records(tmp_path / "t.jsonl")) == []


@pytest.mark.parametrize("damage", ["shorter", "longer", "missing offsets", "empty offsets", "offsets not int64",
                                    "unordered"])
def test_file_and_offsets_that_disagree_are_refused_on_open(tmp_path, damage):
    path = tmp_path / "t.jsonl"
    write_records(path, ROWS)
    offsets_path = tmp_path / offsets_name(path.name)
    offsets = np.load(offsets_path)
    if damage == "shorter":
        path.write_bytes(path.read_bytes()[:-1])
    elif damage == "longer":
        path.write_bytes(path.read_bytes() + b"{}\n")
    elif damage == "missing offsets":
        offsets_path.unlink()
    elif damage == "empty offsets":
        offsets_path.write_bytes(b"")
    elif damage == "offsets not int64":
        np.save(offsets_path, offsets.astype(np.float64))
    else:
        offsets[[1, 2]] = offsets[[2, 1]]
        np.save(offsets_path, offsets)
    with pytest.raises(IndexCorruptError, match="qa build"):
        Records(path)


def test_non_object_record_is_reported(tmp_path):
    write_records(tmp_path / "t.jsonl", [{"a": 1}, [1, 2]])
    table = Records(tmp_path / "t.jsonl")
    assert table[0] == {"a": 1}
    with pytest.raises(IndexCorruptError, match="non-object record at row 1"):
        table[1]


def test_records_without_their_required_fields_are_reported(tmp_path):
    write_records(tmp_path / "t.jsonl", [{"doc_id": "a", "text": "x"}, {"text": "y"}, {"doc_id": None}])
    table = Records(tmp_path / "t.jsonl", fields={"doc_id": str})
    assert table[0]["text"] == "x"
    for row in (1, 2):
        with pytest.raises(IndexCorruptError, match=f"without a valid 'doc_id' at row {row}.*qa build"):
            table[row]


def test_a_document_without_id_is_an_error_not_a_missing_document(tmp_path):
    """Mapping.get turns KeyError into None: a broken record must not make others look absent."""
    write_records(tmp_path / "docs.jsonl", [{"doc_id": "a"}, {"title": "no id"}, {"doc_id": "c"}])
    docs = Documents(tmp_path / "docs.jsonl")
    with pytest.raises(IndexCorruptError, match="doc_id"):
        docs.get("c")
    with pytest.raises(IndexCorruptError, match="doc_id"):
        list(docs)


def test_documents_are_found_by_id_whatever_the_input_order(tmp_path):
    ids = ["z.txt", "a.txt", "ä.txt", "A.txt", "m/n.txt", "10.txt", "9.txt"]
    write_documents(tmp_path / "docs.jsonl", [{"doc_id": d, "title": d.upper()} for d in ids])
    docs = Documents(tmp_path / "docs.jsonl")
    assert len(docs) == len(ids) and set(docs) == set(ids)
    for d in ids:
        assert docs[d]["title"] == d.upper() and d in docs
        assert docs.records[docs.position(d)]["doc_id"] == d   # the row of the per-document arrays
    assert docs.get("b.txt") is None and "zz" not in docs and "" not in docs and docs.get(123) is None
    with pytest.raises(KeyError):
        docs.position("b.txt")
    with pytest.raises(ValueError, match="share the doc_id 'a.txt'"):
        write_documents(tmp_path / "dup.jsonl", [{"doc_id": "a.txt"}, {"doc_id": "b.txt"}, {"doc_id": "a.txt"}])
