"""The app follows the corpus: a generation made by `qa sync` in another process is picked up by
the next question (questions in flight keep theirs), `--watch` syncs the corpus folder, and
`--allow-upload` places checked files in the corpus folder and syncs them."""

from __future__ import annotations

import html
import json
import logging
import subprocess
import sys
from pathlib import Path

import pytest
from test_kill import _env

pytest.importorskip("gradio")
import app
from qa import QA
from qa.embedding import HashEmbedder
from qa.live import LiveQA, Watcher
from qa.upload import MAX_UPLOAD_BYTES, place_uploads

QUESTION = "Wat ontdekte vulkanoloog Ingrid Falkenberg op Spitsbergen?"
NEEDLE = ("date 2024-03 De Zweedse vulkanoloog Ingrid Falkenberg ontdekte op Spitsbergen een onbekende "
          "warmwaterbron. Volgens Falkenberg is de bron minstens drieduizend jaar oud.")


def _sync_elsewhere(corpus: Path, index: Path) -> None:
    subprocess.run([sys.executable, "-m", "qa.cli", "sync", str(corpus), "--index", str(index)], env=_env(),
                   check=True, capture_output=True, timeout=120)


def test_a_generation_made_by_another_process_answers_the_next_question(news_dir, tmp_path):
    index = tmp_path / "index"
    embedder = HashEmbedder(64)
    live = LiveQA(QA.build([news_dir], index, embedder=embedder))
    before = live.get()
    assert live.get() is before  # nothing changed: the same object, no load
    (news_dir / "falkenberg.txt").write_text(NEEDLE, encoding="utf-8")
    _sync_elsewhere(news_dir, index)
    message, _ = app.answer_markdown(live.get(), QUESTION)
    assert "Falkenberg" in html.unescape(message) and live.get() is not before
    # A question that started on the old index still finishes on it, even once later syncs have
    # removed its files (they are memory-mapped).
    (news_dir / "sport.txt").unlink()
    _sync_elsewhere(news_dir, index)
    (news_dir / "weer.md").unlink()
    _sync_elsewhere(news_dir, index)
    assert not before.folder.exists()
    assert before.ask("Wie won het WK voetbal?").citations[0].doc_id == "sport.txt"
    assert "sport.txt" not in live.get().docs


def test_a_generation_that_cannot_be_loaded_leaves_the_old_one_serving(news_dir, tmp_path, caplog):
    index = tmp_path / "index"
    live = LiveQA(QA.build([news_dir], index, embedder=HashEmbedder(64)))
    before = live.get()
    QA.build([news_dir], index, model="hash-32")  # another model: the app's embedder cannot serve it
    with caplog.at_level(logging.WARNING, logger="nieuws-qa.live"):
        assert live.get() is before and live.get() is before  # tried once, not on every question
    assert sum("cannot be loaded" in r.message for r in caplog.records) == 1
    assert before.ask("inflatie").citations[0].doc_id == "economie.txt"


def test_watch_syncs_when_the_corpus_folder_changes(news_dir, tmp_path):
    index = tmp_path / "index"
    live = LiveQA(QA.build([news_dir], index, embedder=HashEmbedder(64)))
    watcher = Watcher(live, news_dir, 60)
    assert watcher.check() is None  # nothing changed, nothing read
    (news_dir / "falkenberg.txt").write_text(NEEDLE, encoding="utf-8")
    (news_dir / "half-geschreven.jsonl").write_text('{"id": "x", "text": "Een artikel dat nog', encoding="utf-8")
    with pytest.warns(UserWarning, match="half-geschreven"):
        report = watcher.check()
    assert report.documents["added"] == 1 and report.chunks["embedded"] == 1
    assert live.get().ask(QUESTION).citations[0].doc_id == "falkenberg.txt"
    assert watcher.check() is None


def _upload(tmp_path: Path, name: str, content: bytes) -> tuple[Path, str]:
    folder = tmp_path / "uploads" / str(len(list((tmp_path / "uploads").glob("*"))) if (tmp_path / "uploads").exists() else 0)
    folder.mkdir(parents=True)
    (folder / "file").write_bytes(content)
    return folder / "file", name


def test_uploads_are_checked_and_placed_in_the_corpus_folder_only(news_dir, tmp_path):
    index = tmp_path / "index"
    qa = QA.build([news_dir], index, embedder=HashEmbedder(64))
    files = [
        _upload(tmp_path, "falkenberg.txt", NEEDLE.encode()),
        _upload(tmp_path, "feed.jsonl", (json.dumps({"id": "feed-1", "text": "De dijken bij Kampen zijn verhoogd."})
                                         + "\n").encode()),
        _upload(tmp_path, "../../buiten.txt", b"Een artikel dat de corpusmap wil verlaten."),
        _upload(tmp_path, ".verborgen.txt", b"Verborgen."),
        _upload(tmp_path, "sport.txt", b"Overschrijft een bestaand artikel."),
        _upload(tmp_path, "dubbel.jsonl", (json.dumps({"id": "sport.txt", "text": "Neemt een id over."}) + "\n").encode()),
        _upload(tmp_path, "kapot.txt", b"\x00\x01binair"),
        _upload(tmp_path, "groot.txt", b"a " * (MAX_UPLOAD_BYTES // 2 + 1)),
        _upload(tmp_path, "programma.exe", b"MZ"),
    ]
    results = place_uploads(files, news_dir, lambda doc_id: doc_id in qa.docs)
    outcome = {r.name: (r.ok, r.message) for r in results}
    assert [n for n, (ok, _) in outcome.items() if ok] == ["falkenberg.txt", "feed.jsonl", "buiten.txt"]
    assert "already" in outcome["sport.txt"][1] and "'sport.txt'" in outcome["dubbel.jsonl"][1]
    assert outcome["kapot.txt"][1] == "kapot.txt: contains NUL bytes, so it is binary, not text; fix or remove it, or pass --skip-bad"
    assert "limit" in outcome["groot.txt"][1] and "plain name" in outcome[".verborgen.txt"][1]
    assert "plain name" in outcome["programma.exe"][1]
    assert not (tmp_path / "buiten.txt").exists() and (news_dir / "buiten.txt").exists()
    assert sorted(p.name for p in news_dir.iterdir()) == sorted(
        ["oorlog.txt", "economie.txt", "sport.txt", "weer.md", "politiek.txt", "wetenschap.txt",
         "falkenberg.txt", "feed.jsonl", "buiten.txt"])  # nothing else, no temporary file left
    assert (news_dir / "sport.txt").read_text(encoding="utf-8").startswith("date 2022-12 Argentinië")


def test_the_app_syncs_uploads_and_answers_from_them(news_dir, tmp_path):
    index = tmp_path / "index"
    live = LiveQA(QA.build([news_dir], index, embedder=HashEmbedder(64)))
    path, _ = _upload(tmp_path, "x", NEEDLE.encode())
    named = path.with_name("falkenberg.txt")
    path.rename(named)
    message = html.unescape(app.upload_articles(live, news_dir, [str(named), str(named)]))
    assert "✓ falkenberg.txt: 1 article" in message and "✗ falkenberg.txt" in message  # the second is a copy
    assert "documents: 1 added" in message
    assert live.get().ask(QUESTION).citations[0].doc_id == "falkenberg.txt"
    assert "Choose files first" in app.upload_articles(live, news_dir, [])
    app.build_app(live, upload_to=news_dir)  # the control builds


@pytest.mark.parametrize("argv,message", [
    (["--watch", "0"], "above 0"),
    (["--allow-upload", "--corpus", "README.md"], "need --corpus to be a folder"),
])
def test_watch_and_upload_need_sensible_arguments(argv, message, capsys):
    with pytest.raises(SystemExit):
        app.main(argv)
    assert message in capsys.readouterr().err
