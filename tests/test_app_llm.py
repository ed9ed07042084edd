"""The chat's written answers without a browser or a server: a fake model streams into
`app.stream_written_answer`, whose every step must be safe HTML with the verbatim answer in it."""

from __future__ import annotations

import html
import logging

import pytest

pytest.importorskip("gradio")
from test_app import assert_inert, parse

import app
from qa import grounding
from qa.answer import Generated
from qa.generate import GeneratorError

QUESTION = "Hoeveel procent was de inflatie volgens het CBS?"
HOSTILE = ('<img src="http://example.com/x.png"> ![x](http://example.com/y.png) [klik](javascript:alert(1)) '
           '<script>window.__pwned=1</script> {{7*7}} *nadruk* [1]')


class FakeModel:
    """A Generator that streams fixed pieces, then raises `error` if given; counts its calls."""

    def __init__(self, pieces: list[str], *, error: Exception | None = None, model: str = "fake"):
        self.pieces, self.error, self.model, self.calls = pieces, error, model, 0

    def stream(self, messages):
        self.calls += 1
        yield from self.pieces
        if self.error is not None:
            raise self.error


def turns(qa, model, question=QUESTION, asked=()) -> list[str]:
    """The assistant message of every step of one streamed turn."""
    history = [{"role": "user", "content": "vraag"}]
    steps = list(app.stream_written_answer(qa, model, question, history, asked))
    for chat, _ in steps:
        assert chat[:-1] == history and chat[-1]["role"] == "assistant"
    return [chat[-1]["content"] for chat, _ in steps]


def text_of(markup: str) -> str:
    return "".join(parse(markup).text)


def inflation(qa) -> int:
    """The number of the passage about December's inflation among QUESTION's citations."""
    return next(c.n for c in qa.ask(QUESTION).citations if "9,6 procent" in c.text)


@pytest.fixture(autouse=True)
def every_piece(monkeypatch):
    monkeypatch.setattr(app, "STREAM_INTERVAL", 0.0)  # one step per piece


@pytest.fixture
def facts_only(monkeypatch):
    """The grounding check without its support part: the hashing embedder's cosines mean nothing."""
    monkeypatch.setattr(grounding, "SUPPORT_COSINE_BY_LANGUAGE", {"nl": -1.0, "en": -1.0})


def test_the_draft_streams_above_the_passages_then_the_checked_answer_replaces_it(hash_qa, facts_only):
    pieces = ["De inflatie ", "daalde in december ", f"naar 9,6 procent [{inflation(hash_qa)}]."]
    messages = turns(hash_qa, FakeModel(pieces))
    assert len(messages) == 1 + len(pieces) + 1  # empty draft, one per piece, the verdict
    for message in messages:
        assert_inert(message)
        assert "<details class='nqa-passage'" in message  # the verbatim answer is there at every step
        assert message.index("nqa-written") < message.index("<details class='nqa-passage'")
    for step, message in enumerate(messages[:-1]):
        assert "nqa-checking" in message and "wordt gecontroleerd" in message
        assert "".join(pieces[:step]) in html.unescape(message)
    final = messages[-1]
    assert "nqa-checking" not in final and "wordt gecontroleerd" not in final
    assert "nqa-verified" in final and "Geschreven antwoord (gecontroleerd)" in html.unescape(final)
    assert "".join(pieces) in text_of(final) and f"<span class='nqa-n'>&#91;{inflation(hash_qa)}&#93;</span>" in final


def test_a_rejected_answer_is_not_shown_as_the_answer(hash_qa, facts_only):
    n = inflation(hash_qa)
    final = turns(hash_qa, FakeModel([f"De inflatie daalde in december naar 9,8 procent [{n}]."]))[-1]
    assert_inert(final)
    assert "nqa-unverified" in final and "kon niet worden geverifieerd" in final and "nqa-written-text" not in final
    assert f"number “9,8” is not in passage [{n}]" in text_of(final)
    # The rejected text is folded away, the verbatim answer's label unchanged.
    assert "<details class='nqa-rejected'>" in final and "9,8 procent" in text_of(final)
    assert app.WRITTEN["nl"]["verbatim"] not in final


def test_a_verified_answer_is_shown_as_the_answer_with_its_markers():
    generated = Generated("Er is 400 km² bevrijd [1]. Zelenski <b>noemde</b> 500 km² [2].", True, (), "qwen<i>")
    block = app.written_verdict(generated, "en")
    assert_inert(block)
    assert "Written answer (checked)" in text_of(block) and "qwen<i>" in text_of(block)
    assert "Zelenski <b>noemde</b>" in text_of(block)
    assert block.count("<span class='nqa-n'>") == 2 and "&#91;2&#93;</span>" in block


def test_model_text_is_escaped_at_every_step(hash_qa):
    messages = turns(hash_qa, FakeModel([HOSTILE[:40], HOSTILE[40:]]))
    for message in messages:
        assert_inert(message)
    assert HOSTILE in text_of(messages[-1]) and "nqa-rejected" in messages[-1]


@pytest.mark.parametrize("error, reason", [
    (GeneratorError("the model server answered HTTP 500"), "HTTP 500"),
    (GeneratorError("the model server did not answer within 1 s"), "within 1 s"),
])
def test_a_failing_model_leaves_the_verbatim_answer_and_the_reason(hash_qa, error, reason):
    messages = turns(hash_qa, FakeModel(["De infl"], error=error))
    final = messages[-1]
    assert_inert(final)
    assert "kon niet worden geverifieerd" in final and reason in text_of(final)
    assert "<details class='nqa-passage'" in final and "Traceback" not in final


def test_a_bug_of_ours_is_logged_not_shown(hash_qa, caplog):
    with caplog.at_level(logging.ERROR, logger="nieuws-qa.app"):
        final = turns(hash_qa, FakeModel(["x"], error=RuntimeError("secret /etc/passwd")))[-1]
    assert app.WRITTEN_FAILED in text_of(final) and "secret" not in final and "RuntimeError" not in final
    assert "<details class='nqa-passage'" in final
    assert any(r.exc_info and r.exc_info[0] is RuntimeError for r in caplog.records)


@pytest.mark.parametrize("question", ["", "x" * (app.MAX_QUESTION_CHARS + 1)])
def test_a_refused_question_asks_no_model(hash_qa, question):
    model = FakeModel(["niet gevraagd"])
    assert len(messages := turns(hash_qa, model, question)) == 1
    assert model.calls == 0 and ("Type a question" in messages[0] or "too long" in messages[0])


def test_the_follow_up_marker_stays_on_top(hash_qa):
    final = turns(hash_qa, FakeModel(["Het was 9,6 procent [1]."]), "En hoeveel procent was het?",
                  asked=["Wat meldt het CBS over de inflatie?"])[-1]
    assert "met de vorige vraag" in final and final.index("nqa-context") < final.index("nqa-written")


def test_bad_llm_options_stop_the_app_before_it_loads_anything(tmp_path, capsys, monkeypatch):
    for name in ("NIEUWS_QA_LLM_URL", "NIEUWS_QA_LLM_MODEL"):
        monkeypatch.delenv(name, raising=False)
    index = tmp_path / "index"
    options = ["--index", str(index), "--corpus", str(tmp_path)]
    assert app.main([*options, "--llm-url", "ftp://127.0.0.1/v1", "--llm-model", "m"]) == 1
    assert "error: --llm-url must be an http:// or https:// URL" in capsys.readouterr().err
    assert app.main([*options, "--llm-url", "http://127.0.0.1:9/v1"]) == 1
    assert "--llm-model" in capsys.readouterr().err
    assert not index.exists()
