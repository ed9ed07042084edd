"""The command line: build, ask (text and JSON), info, errors, and building on first ask."""

from __future__ import annotations

import io
import json
import shutil

import pytest
from conftest import SEEDS

from qa import store
from qa.api import stale_reason
from qa.cli import main


def test_build_ask_info_with_fake_model(news_dir, tmp_path, capsys):
    index = str(tmp_path / "idx")
    assert main(["build", str(news_dir), "--index", index, "--model", "hash-64"]) == 0
    assert "indexed 6 documents" in capsys.readouterr().out
    assert main(["ask", "inflatie CBS december", "--index", index, "--json", "-k", "2"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert len(out["citations"]) == 2 and out["citations"][0]["doc_id"] == "economie.txt"
    assert out["citations"][0]["date"] == "2023-01-15"
    assert main(["info", "--index", index, "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["documents"] == 6 and info["model"]["name"] == "hash-64"
    assert main(["ask", "inflatie", "--index", index]) == 0
    assert "economie.txt" in capsys.readouterr().out


def test_build_chooses_the_dense_index_kind(news_dir, tmp_path, capsys):
    index = str(tmp_path / "idx")
    assert main(["build", str(news_dir), "--index", index, "--model", "hash-64", "--dense", "hnsw"]) == 0
    capsys.readouterr()
    assert main(["info", "--index", index, "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["dense"]["kind"] == "hnsw" and info["dense"]["params"]["storage"] == "fp16"
    assert main(["info", "--index", index]) == 0
    assert "dense      hnsw M=32" in capsys.readouterr().out
    assert main(["ask", "inflatie CBS december", "--index", index, "--json", "-k", "1"]) == 0
    assert json.loads(capsys.readouterr().out)["citations"][0]["doc_id"] == "economie.txt"
    assert main(["build", str(news_dir), "--index", index, "--model", "hash-64"]) == 0
    capsys.readouterr()
    assert main(["info", "--index", index]) == 0
    assert "dense      flat" in capsys.readouterr().out  # auto: 6 documents are far below the threshold


def test_several_questions_load_the_index_once(news_dir, tmp_path, capsys, monkeypatch):
    index = str(tmp_path / "idx")
    assert main(["build", str(news_dir), "--index", index, "--model", "hash-64"]) == 0
    capsys.readouterr()
    assert main(["ask", "inflatie CBS december", "Argentinië WK Qatar", "--index", index, "--json", "-k", "1"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [json.loads(line)["citations"][0]["doc_id"] for line in lines] == ["economie.txt", "sport.txt"]
    # "-": one question per line from standard input; blank lines skipped, a bad line reported in place.
    monkeypatch.setattr("sys.stdin", io.StringIO("inflatie CBS december\n\n   \n" + "x" * 3000 + "\nArgentinië WK Qatar\n"))
    assert main(["ask", "-", "--index", index, "--json", "-k", "1"]) == 1
    out, err = capsys.readouterr()
    records = [json.loads(line) for line in out.splitlines()]
    assert [r.get("error", "")[:20] for r in records] == ["", "the question is 3,00", ""]
    assert records[2]["citations"][0]["doc_id"] == "sport.txt"
    assert err.startswith("error: question 2: the question is 3,000 characters long")
    assert main(["ask", "inflatie", "Qatar", "--index", index, "-k", "1"]) == 0
    text = capsys.readouterr().out
    assert text.startswith("Q1: inflatie\n") and "\n\nQ2: Qatar\n" in text and text.endswith("\n\n")
    monkeypatch.setattr("sys.stdin", io.StringIO("\n \n"))
    assert main(["ask", "-", "--index", index]) == 1
    assert "no questions on standard input" in capsys.readouterr().err


def test_errors_print_error_and_exit_nonzero(news_dir, tmp_path, capsys):
    assert main(["ask", "   ", "--index", str(tmp_path / "none")]) == 1
    assert capsys.readouterr().err.startswith("error: the question is empty")
    assert main(["info", "--index", str(tmp_path / "none")]) == 1
    assert "error: no index" in capsys.readouterr().err
    (news_dir / "bad.txt").write_bytes(b"\xff\xfe\x00 binary")
    assert main(["build", str(news_dir), "--index", str(tmp_path / "idx"), "--model", "hash-64"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "bad.txt" in err and "Traceback" not in err
    assert main(["build", str(news_dir), "--index", str(tmp_path / "idx"), "--model", "hash-64", "--skip-bad"]) == 0


def test_stale_reason_follows_the_corpus(news_dir, tmp_path):
    index = tmp_path / "idx"
    assert "no index" in stale_reason(index, [news_dir])
    main(["build", str(news_dir), "--index", str(index), "--model", "hash-64"])
    assert stale_reason(index, [news_dir]) is None
    (news_dir / "sport.txt").write_text("date 2023-01 Ajax won van PSV.", encoding="utf-8")
    assert "sport.txt" in stale_reason(index, [news_dir])


def test_index_of_the_previous_format_is_reported_as_outdated(news_dir, tmp_path, capsys):
    """Format 1 had no row-offset files; such an index asks for a rebuild (the app does it itself)."""
    index = tmp_path / "idx"
    main(["build", str(news_dir), "--index", str(index), "--model", "hash-64"])
    folder = store.current_generation(index)
    manifest = json.loads((folder / store.MANIFEST).read_text(encoding="utf-8"))
    for name in [f for f in manifest["files"] if f.endswith(".offsets.npy")]:
        (folder / name).unlink()
        del manifest["files"][name]
    manifest["format_version"] = 1
    manifest[store.MANIFEST_CHECKSUM] = store.manifest_checksum(manifest)
    (folder / store.MANIFEST).write_text(json.dumps(manifest), encoding="utf-8")
    assert "outdated" in stale_reason(index, [news_dir])
    capsys.readouterr()
    assert main(["ask", "inflatie", "--index", str(index)]) == 1
    err = capsys.readouterr().err
    assert "outdated" in err and "qa build" in err and "Traceback" not in err


@pytest.mark.model
def test_ask_without_index_builds_from_seeds(tmp_path, monkeypatch, capsys):
    shutil.copytree(SEEDS, tmp_path / "seeds")
    monkeypatch.chdir(tmp_path)
    assert main(["ask", "Hoeveel vierkante kilometer is in minder dan een week bevrijd?", "--json"]) == 0
    captured = capsys.readouterr()
    assert "building it from seeds/" in captured.err
    answer = json.loads(captured.out)
    assert answer["answer_found"] and "400 vierkante kilometer" in answer["citations"][0]["highlight"]["text"]
    assert (tmp_path / "index" / "CURRENT").is_file()


def test_chat_answers_follow_ups_with_the_questions_before_them(news_dir, tmp_path, capsys):
    index = str(tmp_path / "index")
    assert main(["build", str(news_dir), "--index", index, "--model", "hash-64"]) == 0
    capsys.readouterr()
    first, follow = "Wat meldt het CBS over de inflatie in Nederland?", "En hoeveel procent was het?"
    assert main(["ask", first, follow, "--index", index, "--chat", "--json"]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert lines[0]["context"] is None and lines[1]["context"] == [first]
    assert main(["ask", first, follow, "--index", index, "--json"]) == 0  # without --chat every question is alone
    assert all(json.loads(line)["context"] is None for line in capsys.readouterr().out.splitlines())
    assert main(["ask", first, follow, "--index", index, "--chat"]) == 0
    assert f"(met de vorige vraag: {first})" in capsys.readouterr().out
