"""The chat's news parts without a browser: links to articles (http(s) only, attribute-escaped),
"also in" for wire copies, the applied-filter line, and the date and publisher filters."""

from __future__ import annotations

import html
from datetime import date

import pytest

pytest.importorskip("gradio")
from conftest import ROOT
from test_app import ALLOWED_ATTRS, ALLOWED_TAGS, TEXT, FakeQA, citation, parse

import app
from qa import QA, Answer
from qa.news import Filters

NEWS = ROOT / "data" / "news_nl" / "articles.jsonl"
LINK_ATTRS = {"class", "href", "target", "rel"}
NO_FILTERS = Filters()


def links_of(markup: str) -> list[dict]:
    """The attributes of every <a> in the markup, as a browser's parser reads them."""
    return [attrs for tag, attrs in parse(markup).tags if tag == "a"]


def assert_safe(markup: str) -> list[dict]:
    """The app's own tags only, links only to http(s) with target=_blank and rel=noopener noreferrer;
    returns the links."""
    for tag, attrs in parse(markup).tags:
        assert tag in ALLOWED_TAGS | {"a"}, tag
        assert set(attrs) <= (LINK_ATTRS if tag == "a" else ALLOWED_ATTRS), (tag, attrs)
    links = links_of(markup)
    for a in links:
        assert a["href"].lower().startswith(("http://", "https://")), a
        assert a["target"] == "_blank" and a["rel"] == "noopener noreferrer", a
    for special in ("](", "![", "javascript:", "{{"):
        assert special not in markup, special
    return links


# ------------------------------------------------------------------ the link rule

@pytest.mark.parametrize("url", [
    "http://npa.example/2022/03/wales", "https://npa.example/a?b=1&c=2#d", "HTTPS://NPA.EXAMPLE/X",
    "HtTp://x.example", "https://x.example:8443/pad/met%20spatie", "https://[2001:db8::1]/x",
    "https://x.example/a_b*c(d)[e]$f~g`h", "https://nieuws.example/artikel/één",
])
def test_http_and_https_urls_become_links(url):
    assert app.link_url(url) == url
    assert app.link_url(f"  {url}\n") == url  # stripped
    (a,) = links_of(app.link(f" {url} ", "bron"))
    assert a == {"class": "nqa-link", "href": url, "target": "_blank", "rel": "noopener noreferrer"}


@pytest.mark.parametrize("url", [
    "javascript:alert(1)", "JavaScript:alert(1)", " javascript:alert(1)", "\tjavascript:alert(1)",
    "java\tscript:alert(1)", "javascript://example.com/%0aalert(1)", "data:text/html,<script>alert(1)</script>",
    "vbscript:msgbox(1)", "ftp://archief.npa.example/2022/bericht.txt", "file:///etc/passwd", "mailto:a@b.example",
    "//evil.example/x", "/relative/path", "relative/path", "evil.example", "#top", "?q=1",
    "https:evil.example", "https:/evil.example", "https:\\\\evil.example", "http://", "https:///x", "https://[::1/",
    "http://x.example/a b", "http://x.example/a\nb", 'https://x.example/" onmouseover="alert(1)', "http://x.example/\u202egnp.exe", "http://x.example/\u200b",
    "https://x.example/" + "a" * app.MAX_URL_CHARS, "", "   ", None, 42, b"https://x.example",
])
def test_nothing_else_ever_becomes_a_link(url):
    assert app.link_url(url) is None
    assert app.link(url, "bron") == ""


@pytest.mark.parametrize("url", [
    'https://x.example/"onmouseover="alert(1)', "https://x.example/'onmouseover='alert(1)",
    'https://x.example/"><script>alert(1)</script>', "https://x.example/?a=1&amp;b=<b>&c='\"",
])
def test_a_url_cannot_leave_its_attribute(url):
    markup = app.link(url, "bron")
    (a,) = links_of(markup)
    assert set(a) == LINK_ATTRS and a["href"] == url  # the parser gives back exactly the url
    assert [tag for tag, _ in parse(markup).tags] == ["a"]


# ------------------------------------------------------------------ citations: publisher, link, also in

def news_citation(n: int = 1, *, url=None, publisher="NPA", duplicates=(), path="news/artikelen.jsonl"):
    c = citation(n, TEXT, "In minder dan een week is 400 vierkante kilometer bevrijd.", 0.9, doc_id=f"npa-{n}")
    from dataclasses import replace

    return replace(c, publisher=publisher, source=publisher or path, url=url, path=path, duplicates=tuple(duplicates))


def render(*citations, filters=NO_FILTERS, recency=False, lang="nl") -> tuple[str, str]:
    return app.render_answer(Answer("Vraag?", lang, True, citations, filters=filters, recency=recency))


def test_a_citation_shows_its_publisher_and_links_its_url():
    c = news_citation(url="https://npa.example/2022/10/bevrijd", publisher="NPA <b>Nieuws</b>")
    message, sources = render(c)
    for markup in (message, sources):
        (a,) = assert_safe(markup)
        assert a["href"] == "https://npa.example/2022/10/bevrijd"
        text = "".join(parse(markup).text)
        assert "NPA <b>Nieuws</b>" in text  # escaped, shown literally
    assert "bron ↗" in message
    assert "source ↗" in render(c, lang="en")[0]


@pytest.mark.parametrize("url", ["javascript:alert(1)", "ftp://archief.npa.example/x.txt", "//evil.example/x",
                                 "data:text/html,x", None])
def test_a_citation_without_an_http_url_has_no_link(url):
    message, sources = render(news_citation(url=url))
    for markup in (message, sources):
        assert assert_safe(markup) == []
        assert "bron ↗" not in markup and "source ↗" not in markup
        assert "NPA" in markup


def test_without_a_publisher_the_file_is_the_source():
    message, _ = render(news_citation(publisher=None, path="news/oorlog.txt"))
    assert "news/oorlog.txt" in html.unescape(message)


def test_wire_copies_are_listed_once_as_also_in():
    copies = [{"doc_id": "dagkrant-1", "publisher": "De Dagkrant", "date": "2022-10-07",
               "url": "https://dagkrant.example/2022/10/x"},
              {"doc_id": "stad-2", "publisher": None, "date": None, "url": "javascript:alert(1)"},
              {"doc_id": "rijnmond-3", "publisher": "Rijnmond <i>Courant</i>", "date": "2022-10-08",
               "url": 'https://rijnmond.example/"onclick="x'}]
    c = news_citation(url="https://npa.example/2022/10/x", duplicates=copies)
    message, sources = render(c)
    for markup in (message, sources):
        links = assert_safe(markup)
        assert [a["href"] for a in links] == ["https://npa.example/2022/10/x", "https://dagkrant.example/2022/10/x",
                                              'https://rijnmond.example/"onclick="x']
        also = "".join(parse(markup[markup.index("<span class='nqa-also'>"):]).text)
        assert also.startswith("ook verschenen in: De Dagkrant ↗ (2022-10-07), stad-2 (zonder datum), "
                               "Rijnmond <i>Courant</i> ↗ (2022-10-08)")
    assert message.count("nqa-also") == 1
    assert "also in" in render(c, lang="en")[0]
    assert "nqa-also" not in render(news_citation())[0]  # no copies, no line


# ------------------------------------------------------------------ the applied-filter line

@pytest.mark.parametrize("filters,recency,lang,expected", [
    (Filters(date(2022, 10, 1), date(2022, 10, 31), None, "in oktober 2022"), False, "nl",
     "gefilterd: oktober 2022 (uit de vraag)"),
    (Filters(date(2022, 10, 1), date(2022, 10, 31), None, "in October 2022"), False, "en",
     "filtered: October 2022 (from the question)"),
    (Filters(date(2022, 3, 1), None, ("NPA", "De Dagkrant")), False, "nl",
     "gefilterd: sinds 1 maart 2022 · alleen NPA, De Dagkrant"),
    (Filters(None, None, ("NPA",)), True, "en", "filtered: only NPA · newest first"),
    (Filters(), True, "nl", "nieuwste eerst"),
])
def test_the_filter_line_says_what_was_searched(filters, recency, lang, expected):
    message, _ = render(news_citation(), filters=filters, recency=recency, lang=lang)
    line = html.unescape(message.split("<p class='nqa-filter'>", 1)[1].split("</p>", 1)[0])
    assert line == expected
    assert message.index("nqa-filter") < message.index("nqa-label")  # at the top of the answer


def test_no_filter_no_line():
    assert "nqa-filter" not in render(news_citation())[0]
    assert app.filter_line(Answer("Vraag?", "nl", True, ())) == ""


def test_a_filtered_question_without_passages_still_says_how_it_was_filtered():
    empty = Answer("Vraag?", "nl", False, (), filters=Filters(date(1999, 1, 1), date(1999, 1, 31), None, "in januari 1999"))
    message, _ = app.render_answer(empty)
    assert "januari 1999" in message and "Er zijn geen passages gevonden" in html.unescape(message)


# ------------------------------------------------------------------ the filter controls

class RecordingQA(FakeQA):
    def __init__(self, answer=None):
        super().__init__(answer)
        self.calls = []

    def ask(self, question, **options):
        self.calls.append(options)
        return self.answer


@pytest.mark.parametrize("since,until,expected", [
    ("", "", (None, None)), (None, "  ", (None, None)),
    ("2022-03-05", "2022-03-09", (date(2022, 3, 5), date(2022, 3, 9))),
    (" 2022-03 ", "2022-03", (date(2022, 3, 1), date(2022, 3, 31))),  # a month is its first and last day
    ("2022", None, (date(2022, 1, 1), None)), (date(2022, 3, 1), "2022-03-01", (date(2022, 3, 1), date(2022, 3, 1))),
])
def test_dates_from_the_controls(since, until, expected):
    options = app.search_filters(since, until, [])
    assert (options["since"], options["until"]) == expected and options["publishers"] is None


@pytest.mark.parametrize("since,until,says", [
    ("2022-13-01", "", "is not a date"), ("", "31-03-2022", "is not a date"), ("gisteren", "", "is not a date"),
    ("2022-02-30", "", "is not a date"), ("<b>x</b>" * 20, "", "is not a date"),
    ("2022-04", "2022-03", "after the “until” date"), ("2022-03-10", "2022-03-09", "after the “until” date"),
])
def test_invalid_dates_get_a_friendly_message_in_the_chat(since, until, says):
    qa = RecordingQA(Answer("Vraag?", "nl", True, (news_citation(),)))
    message, sources = app.answer_markdown(qa, "Vraag?", since=since, until=until)
    text = "".join(parse(message).text)
    assert says in text and "Traceback" not in message and "ValueError" not in message
    assert ("is geen datum" in text) or ("ligt na" in text)  # Dutch too
    assert [tag for tag, _ in parse(message).tags] == ["div"]  # the hostile value is shown as text
    assert sources == app.SOURCES_PLACEHOLDER and qa.calls == []  # nothing was searched
    chat, _ = app.respond(qa, "Vraag?", [], since=since, until=until)
    assert chat[-1]["role"] == "assistant" and says in html.unescape(chat[-1]["content"])


def test_the_controls_reach_qa_ask():
    qa = RecordingQA(Answer("Vraag?", "nl", True, (news_citation(),)))
    app.answer_markdown(qa, "Vraag?", since="2022-03", until="2022-04-15", publishers=["NPA", "De Dagkrant"])
    app.answer_markdown(qa, "Vraag?", read_time=False, publishers=[])
    assert qa.calls == [
        {"k": 5, "history": (), "read_time": True, "since": date(2022, 3, 1), "until": date(2022, 4, 15),
         "publishers": ["NPA", "De Dagkrant"]},
        {"k": 5, "history": (), "read_time": False, "since": None, "until": None, "publishers": None},
    ]


# ------------------------------------------------------------------ the dated, multi-publisher corpus

@pytest.fixture(scope="module")
def news_qa(tmp_path_factory):
    return QA.build([NEWS], tmp_path_factory.mktemp("news-index"), model="hash-64")


def test_publishers_of_the_index(news_qa, hash_qa):
    assert app.publishers_of(news_qa) == sorted(app.publishers_of(news_qa))
    assert {"NPA", "De Dagkrant", "Rijnmond Courant"} <= set(app.publishers_of(news_qa))
    assert app.publishers_of(hash_qa) == []  # plain files name no publisher


def test_a_time_word_filters_and_can_be_dropped(news_qa):
    question = "What happened in Wales in March 2022?"
    message, _ = app.answer_markdown(news_qa, question)
    assert "filtered: March 2022 (from the question)" in html.unescape(message)
    dates = [c.date for c in news_qa.ask(question).citations]
    assert dates and all(d.startswith("2022-03") for d in dates)
    again, _ = app.answer_markdown(news_qa, question, read_time=False)
    assert "nqa-filter" not in again


def test_a_publisher_filter_keeps_only_that_publisher(news_qa):
    message, sources = app.answer_markdown(news_qa, "Wat gebeurde er in Wales?", publishers=["Rijnmond Courant"])
    assert "gefilterd: alleen Rijnmond Courant" in html.unescape(message) or "filtered: only" in html.unescape(message)
    shown = [html.unescape(s.split(">", 1)[1]) for s in message.split("<span class='nqa-source'")[1:]]
    assert shown and all(s.startswith("Rijnmond Courant<") for s in shown)


def test_hostile_urls_in_the_corpus_never_become_links(news_qa):
    # Two articles carry "javascript:alert(1)" and an ftp:// url (the second a wire copy): their words find them.
    for question in ("Johnny English Strikes Again Brexit spionnenparodie",
                     "Bij een forse watervleermuis en tsunami op het Indonesische eiland Sulawesi"):
        answer = news_qa.ask(question, read_time=False)
        assert any(c.url and not c.url.startswith("http") for c in answer.citations) or any(
            d["url"] and not d["url"].startswith("http") for c in answer.citations for d in c.duplicates), question
        for markup in app.render_answer(answer):
            links = assert_safe(markup)
            assert links and all(a["href"].startswith("https://") and ".example/" in a["href"] for a in links)
            assert "javascript" not in markup.lower() and "ftp:" not in markup


def test_time_words_dropped_for_lack_of_an_answer_are_said():
    answer = Answer("Hoeveel liepen vorig jaar over?", "nl", True, (), time_dropped="vorig jaar")
    assert html.unescape(app.filter_line(answer)) == \
        "<p class='nqa-filter'>niets uit “vorig jaar” beantwoordt dit; gezocht in het hele archief</p>"
    assert "nothing dated “vorig jaar” answers this" in html.unescape(app.filter_line(answer, "en"))
