"""The chat's answer function (no browser) and the served app through gradio_client."""

from __future__ import annotations

import html
import logging
import re
import urllib.request
from html.parser import HTMLParser

import pytest

pytest.importorskip("gradio")
from conftest import serve

import app
from qa import QA, Answer, Citation, Highlight, QAError
from qa.api import MAX_QUESTION_CHARS

HOSTILE = ('date 2023-04 <img src="http://example.com/t.png"> Nieuwe fietsenstalling in Utrecht geopend. '
           'De gemeente Utrecht opende bij het station een stalling voor 12.500 fietsen. '
           '<img src="http://example.com/x"> ![x](http://example.com/y.png) [klik](javascript:alert(1)) '
           '<script>window.__pwned=1</script> {{7*7}} $$x^2$$ *nadruk* `code` www.example.com mail@example.com '
           'Fietsers kunnen er de eerste 24 uur gratis parkeren.')
HOSTILE_NAME = "stalling_<b>x<i>[y](z).txt"
HOSTILE_PIECES = ['<img src="http://example.com/x">', "![x](http://example.com/y.png)", "[klik](javascript:alert(1))",
                  "<script>window.__pwned=1</script>", "{{7*7}}", "$$x^2$$", "*nadruk*", "`code`"]
# The only markup the app itself writes.
ALLOWED_TAGS = {"div", "p", "span", "mark", "details", "summary", "blockquote", "br", "small", "h3", "ol", "li"}
ALLOWED_ATTRS = {"class", "title", "open"}
NL_Q = "Hoeveel vierkante kilometer is in minder dan een week bevrijd?"
EN_Q = "How many square kilometres were liberated in less than a week?"


class _Tags(HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.tags, self.text = [], []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data):
        self.text.append(data)


def parse(markup: str) -> _Tags:
    p = _Tags()
    p.feed(markup)
    p.close()
    return p


def assert_inert(markup: str) -> None:
    """Only the app's own tags and attributes, and nothing Markdown or a browser would act on."""
    for tag, attrs in parse(markup).tags:
        assert tag in ALLOWED_TAGS, tag
        assert set(attrs) <= ALLOWED_ATTRS, attrs
    for special in ("](", "![", "javascript:", "http://", "$$", "`", "*", "{{"):
        assert special not in markup, special


def marks(markup: str) -> list[str]:
    return [html.unescape(m) for m in re.findall(r"<mark>(.*?)</mark>", markup)]


class FakeQA:
    """Stands in for QA: returns a fixed answer or raises."""

    def __init__(self, answer=None, error: Exception | None = None):
        self.answer, self.error = answer, error

    def ask(self, question, *, k=5, history=(), **filters):
        if self.error:
            raise self.error
        return self.answer


def citation(n: int, text: str, sentence: str, score: float, doc_id: str = "doc.txt") -> Citation:
    start = text.index(sentence)
    return Citation(n=n, doc_id=doc_id, title=f"Titel {doc_id}", date="2022-10", source=f"seeds/{doc_id}",
                    chunk_id=f"{doc_id}#{n}", text=text, start=0, end=len(text), score=0.03 / n,
                    highlight=Highlight(sentence, start, start + len(sentence), score),
                    ranks={"bm25": n, "dense": None}, found_by="bm25")


TEXT = "Eerste zin. In minder dan een week is 400 vierkante kilometer bevrijd. Laatste zin."


# ------------------------------------------------------------------ fast checks (fake embedder)

@pytest.fixture
def hostile_qa(news_dir, tmp_path):
    (news_dir / HOSTILE_NAME).write_text(HOSTILE, encoding="utf-8")
    return QA.build([news_dir], tmp_path / "hostile-index", model="hash-64")


def test_hostile_corpus_text_is_escaped_and_shown_literally(hostile_qa):
    message, sources = app.answer_markdown(hostile_qa, "Hoeveel fietsen passen in de stalling in Utrecht?")
    for markup in (message, sources):
        assert_inert(markup)
    text = "".join(parse(message).text)
    for piece in HOSTILE_PIECES:
        assert piece in text
    assert HOSTILE_NAME in "".join(parse(sources).text)


@pytest.mark.parametrize("question", ["", "   \n\t", None])
def test_empty_question_gets_a_friendly_message(hash_qa, question):
    message, sources = app.answer_markdown(hash_qa, question)
    assert "Typ een vraag" in html.unescape(message) and "Type a question" in html.unescape(message)
    assert sources == app.SOURCES_PLACEHOLDER


def test_too_long_question_is_refused_on_the_server(hash_qa):
    message, _ = app.answer_markdown(hash_qa, "inflatie " * (MAX_QUESTION_CHARS // 9) + "x" * 10)
    assert "te lang" in message and "too long" in message and f"{MAX_QUESTION_CHARS:,}" in message
    limit = "a" * (MAX_QUESTION_CHARS - 1) + "?"
    assert "too long" not in app.answer_markdown(hash_qa, limit)[0]
    assert "too long" in app.answer_markdown(hash_qa, limit + "?")[0]


def test_unexpected_error_shows_no_traceback_but_logs_it(caplog):
    with caplog.at_level(logging.ERROR, logger="nieuws-qa.app"):
        message, _ = app.answer_markdown(FakeQA(error=RuntimeError("secret internals /etc/passwd")), "Vraag?")
    assert "Traceback" not in message and "secret internals" not in message and "RuntimeError" not in message
    assert "Something went wrong" in message
    assert any(r.exc_info and r.exc_info[0] is RuntimeError for r in caplog.records)


def test_qa_error_becomes_a_friendly_escaped_message():
    message, _ = app.answer_markdown(FakeQA(error=QAError("index <b>kapot</b>; rebuild with `qa build`")), "Vraag?")
    assert_inert(message)
    assert "index <b>kapot</b>" in "".join(parse(message).text) and "Traceback" not in message


def test_answer_found_quotes_the_best_sentence_first_with_its_number():
    weak = citation(1, "Iets anders. Nog iets.", "Iets anders.", 0.70, doc_id="a.txt")
    strong = citation(2, TEXT, "In minder dan een week is 400 vierkante kilometer bevrijd.", 0.90, doc_id="b.txt")
    message, sources = app.answer_markdown(FakeQA(Answer(NL_Q, "nl", True, (weak, strong))), NL_Q)
    quote = html.unescape(re.search(r"<blockquote class='nqa-quote'>(.*?)</blockquote>", message).group(1))
    assert "400 vierkante kilometer" in quote and "[2]" in quote
    assert "Antwoord" in message and "Geciteerde passages" in message and "BM25" in message
    assert message.index("<blockquote") < message.index("<details")
    assert "<details class='nqa-passage' open><summary><span class='nqa-n'>[2]" in message  # the answer's passage unfolds
    assert "a.txt" in html.unescape(sources) and "b.txt" in html.unescape(sources) and "Bronnen" in sources


def test_no_answer_says_so_and_labels_closest_passages():
    c = citation(1, TEXT, "Eerste zin.", 0.70)
    nl, _ = app.answer_markdown(FakeQA(Answer("Wie won het WK?", "nl", False, (c,))), "Wie won het WK?")
    assert "geen passage" in html.unescape(nl) and "Dichtstbijzijnde passages" in nl
    assert "<blockquote" not in nl and "Antwoord" not in nl
    en, _ = app.answer_markdown(FakeQA(Answer("Who won?", "en", False, (c,))), "Who won?")
    assert "No passage in the corpus answers" in en and "Closest passages" in en and "<blockquote" not in en


@pytest.mark.parametrize("question,lang,label", [("Hoeveel procent was de inflatie in december?", "nl", "Bronnen"),
                                                 ("What was the inflation rate in December?", "en", "Sources")])
def test_labels_follow_the_question_language(hash_qa, question, lang, label):
    message, sources = app.answer_markdown(hash_qa, question)
    assert label in sources
    other = "en" if lang == "nl" else "nl"
    assert any(app.esc(app.LABELS[lang][key]) in message for key in ("passages", "closest"))
    assert not any(app.esc(app.LABELS[other][key]) in message for key in ("passages", "closest", "answer"))
    assert "Sources" in app.answer_markdown(hash_qa, question, lang="en")[1]


def test_every_passage_marks_its_highlight(hash_qa):
    answer = hash_qa.ask("Hoeveel procent was de inflatie in december?")
    message, _ = app.answer_markdown(hash_qa, answer.question)
    for c in answer.citations:
        assert c.text[c.highlight.start:c.highlight.end] == c.highlight.text
        assert c.highlight.text in marks(message)


def test_respond_appends_question_and_answer(hash_qa):
    history, sources = app.respond(hash_qa, "Wie won het WK voetbal?", [])
    history, sources = app.respond(hash_qa, "<b>Wat</b> meldt het CBS?", history)
    assert [m["role"] for m in history] == ["user", "assistant", "user", "assistant"]
    assert "&#60;b&#62;Wat&#60;/b&#62;" in history[2]["content"]
    assert "CBS" in html.unescape(history[3]["content"])


def test_a_follow_up_says_it_used_the_previous_question(hash_qa):
    earlier = "Wat meldt het CBS over de <b>inflatie</b>?"
    message, _ = app.answer_markdown(hash_qa, "En hoeveel procent was het?", history=[earlier])
    assert_inert(message)
    assert "met de vorige vraag" in message and "&#60;b&#62;inflatie&#60;/b&#62;" in message
    english, _ = app.answer_markdown(hash_qa, "And how much was it?", history=["What does CBS say about inflation?"])
    assert "using the previous question" in english
    alone, _ = app.answer_markdown(hash_qa, "Wie werd uitgeroepen tot beste speler van het WK voetbal?", history=[earlier])
    assert "nqa-context" not in alone  # a question that stands alone is answered alone


def test_load_or_build_builds_only_when_missing_or_stale(news_dir, tmp_path, capsys):
    index = tmp_path / "index"
    app.load_or_build(str(index), str(news_dir), "hash-64")
    out = capsys.readouterr().out
    assert "Indexing" in out and "no index" in out and "6 added" in out
    app.load_or_build(str(index), str(news_dir), "hash-64")
    assert "Indexing" not in capsys.readouterr().out
    (news_dir / "extra.txt").write_text("date 2023-05 Een nieuw bericht over de NS en vertraagde treinen.", encoding="utf-8")
    qa = app.load_or_build(str(index), str(news_dir), "hash-64")
    out = capsys.readouterr().out
    assert "corpus changed" in out and len(qa.docs) == 7
    assert "1 added" in out and "chunks: 1 embedded, 6 reused" in out  # synced, not rebuilt


# ------------------------------------------------------------------ the real model on the seed corpus

@pytest.mark.model
@pytest.mark.parametrize("question,expected,label", [
    (NL_Q, "400 vierkante kilometer", "Antwoord"),
    (EN_Q, "400 vierkante kilometer", "Answer"),
    ("Wat zei Kim Jong-un over Poetin?", "Kim Jong-un looft", "Antwoord"),
    ("What did Kim Jong-un say about Putin?", "Kim Jong-un looft", "Answer"),
    ("Welke regio probeert Oekraïne te heroveren?", "regio Cherson", "Antwoord"),
])
def test_seed_questions_are_answered(seed_qa, question, expected, label):
    message, sources = app.answer_markdown(seed_qa, question)
    quote = html.unescape(re.search(r"<blockquote class='nqa-quote'>(.*?)</blockquote>", message).group(1))
    assert expected in quote
    assert any(expected in m for m in marks(message))
    assert f"<p class='nqa-label'>{label}</p>" in message
    assert "Kim Jong" in html.unescape(sources)


@pytest.mark.model
def test_borderline_english_question_still_shows_the_right_passage(seed_qa):
    # English questions score lower against Dutch text and this one sits at the no-answer
    # threshold: answered or "closest", the Cherson sentence must be among the marked ones.
    message, _ = app.answer_markdown(seed_qa, "Which region does Ukraine try to recapture?")
    assert any("regio Cherson" in m for m in marks(message))
    assert "Answer" in message or "Closest passages" in message


@pytest.mark.model
def test_examples_in_the_ui_are_answered(seed_qa):
    for question in app.EXAMPLES:
        assert "<blockquote class='nqa-quote'>" in app.answer_markdown(seed_qa, question)[0], question


@pytest.mark.model
def test_served_app_answers_through_gradio_client(seed_qa):
    from gradio_client import Client

    with serve(seed_qa) as url:
        with urllib.request.urlopen(url) as response:
            assert "default-src 'self'" in response.headers["Content-Security-Policy"]
        client = Client(url, verbose=False)
        message = client.predict(NL_Q, api_name="/ask")
        assert any("400 vierkante kilometer" in m for m in marks(message))
        assert "Cherson op de Russen te heroveren" in html.unescape(message)
        # Several people at once share the one loaded index; each gets their own answer.
        jobs = [(q, client.submit(q, api_name="/ask")) for q in [NL_Q, EN_Q, "Wat zei Kim Jong-un over Poetin?"] * 2]
        for question, job in jobs:
            expected = "Kim Jong-un looft" if "Kim" in question else "400 vierkante kilometer"
            assert any(expected in m for m in marks(job.result(timeout=60))), question
        refused = client.predict("x" * (MAX_QUESTION_CHARS + 1), api_name="/ask")
        assert "too long" in refused and "<mark>" not in refused
        client.close()


class Replies:
    """A Generator that writes the next of its replies for each question."""

    model = "scripted"

    def __init__(self, *replies: str):
        self.replies = list(replies)

    def stream(self, messages):
        yield self.replies.pop(0)


@pytest.mark.model
def test_the_api_of_an_app_with_a_model_answers_with_the_check(seed_qa):
    """/ask of an app that writes answers returns the chat's final message: the written answer,
    checked, above the verbatim one."""
    from gradio_client import Client

    n = next(c.n for c in seed_qa.ask(NL_Q).citations if "400 vierkante kilometer" in c.text)
    right = f"In minder dan een week is al ruim 400 vierkante kilometer gebied bevrijd [{n}]."
    wrong = f"In minder dan een week is al ruim 4000 vierkante kilometer gebied bevrijd [{n}]."
    with serve(seed_qa, generator=Replies(right, wrong)) as url:
        client = Client(url, verbose=False)
        checked, flagged = client.predict(NL_Q, api_name="/ask"), client.predict(NL_Q, api_name="/ask")
        client.close()
    assert "nqa-verified" in checked and right.split(" [")[0] in html.unescape(checked)
    assert "nqa-unverified" in flagged and "kon niet worden geverifieerd" in html.unescape(flagged)
    assert "“4000”" in html.unescape(flagged)
    for message in (checked, flagged):
        assert "nqa-checking" not in message and any("400 vierkante kilometer" in m for m in marks(message))
