"""Dates, publishers and wire copies in a real browser, over the dated multi-publisher corpus
(data/news_nl) indexed with the real bundled model: the filter a question's time words set (and
the button that drops it), the publisher choice, links to the articles (http(s) only, opening in
a new tab) and "also in" for wire copies. Nothing leaves 127.0.0.1.

The screenshot goes to out/ (NIEUWS_QA_SCREENSHOT_DIR=docs/screenshots refreshes the README's).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from urllib.parse import urlsplit

import pytest

pytestmark = pytest.mark.browser
pytest.importorskip("gradio")
sync_api = pytest.importorskip("playwright.sync_api")

from conftest import ROOT, serve  # noqa: E402
from test_browser import ANSWER_TIMEOUT_MS, browser, chromium  # noqa: E402, F401 - fixtures

from qa import QA  # noqa: E402

NEWS = ROOT / "data" / "news_nl" / "articles.jsonl"
SHOTS = Path(os.environ.get("NIEUWS_QA_SCREENSHOT_DIR") or ROOT / "out")
WALES = "What happened in Wales in March 2022?"
# news-q01's answer: one story that three publishers ran (a wire story).
WALES_STORY = {"dagkrant-20220315-9de7e8", "ntrex-bbc.381790", "rijnmondcourant-20220315-20724b"}


@pytest.fixture(scope="module")
def news_qa(tmp_path_factory, real_embedder):
    """data/news_nl indexed once with the real model (a minute or two)."""
    return QA.build([NEWS], tmp_path_factory.mktemp("news-index"), embedder=real_embedder)


@pytest.fixture(scope="module")
def news_url(news_qa):
    with serve(news_qa) as url:
        yield url


# ------------------------------------------------------------------ page helpers

def citations(answer) -> list[dict]:
    """What each shown passage's header says: its date, source, link and "also in" links."""
    return answer.evaluate("""el => [...el.querySelectorAll('details.nqa-passage > summary')].map(s => ({
        date: s.querySelector('.nqa-meta').textContent.split(' · ')[0],
        source: s.querySelector('.nqa-source').textContent,
        links: [...s.querySelectorAll('.nqa-meta a')].map(a => ({href: a.getAttribute('href'), target: a.getAttribute('target'),
                                                               rel: a.getAttribute('rel'), text: a.textContent})),
        also: s.querySelector('.nqa-also')?.textContent ?? null,
        also_links: [...s.querySelectorAll('.nqa-also a')].map(a => ({href: a.getAttribute('href'),
            target: a.getAttribute('target'), rel: a.getAttribute('rel')})),
    }))""")


def filter_line(answer) -> str | None:
    line = answer.locator(".nqa-filter")
    return line.inner_text() if line.count() else None


def all_links(page) -> list[str]:
    """Every link on the page, as the browser resolved it."""
    return page.eval_on_selector_all("a[href]", "els => els.map(a => a.href)")


def assert_new_tab(link: dict) -> None:
    assert link["target"] == "_blank" and set(link["rel"].split()) == {"noopener", "noreferrer"}, link


def choose_publisher(page, name: str) -> None:
    page.locator("#nqa-publishers input").click()
    page.get_by_role("option", name=name, exact=True).click()
    page.keyboard.press("Escape")
    sync_api.expect(page.locator("#nqa-publishers")).to_contain_text(name)


def expected_urls(qa: QA, question: str, **options) -> set[str]:
    """The http(s) urls the Python API gives for an answer: of its citations and their copies."""
    answer = qa.ask(question, **options)
    urls = {c.url for c in answer.citations} | {d["url"] for c in answer.citations for d in c.duplicates}
    return {u for u in urls if u and u.startswith(("http://", "https://"))}


# ------------------------------------------------------------------ tests

@pytest.mark.model
def test_dates_publishers_links_and_wire_copies(browser, news_url, news_qa):  # noqa: F811
    page = browser.page
    page.goto(news_url)

    # (a) The question's time words become the filter; every passage is of March 2022, with its
    # publisher, a link to the article in a new tab, and the other publishers of a wire story.
    answer = browser.ask(WALES)
    assert filter_line(answer) == "filtered: March 2022 (from the question)"
    shown = citations(answer)
    assert shown and all(c["date"].startswith("2022-03") for c in shown), shown
    assert {c["source"] for c in shown} <= set(news_qa.news.publishers)
    links = [link for c in shown for link in c["links"]]
    assert links and all(link["text"] == "source ↗" and link["href"].startswith("https://") for link in links)
    for link in links + [a for c in shown for a in c["also_links"]]:
        assert_new_tab(link)
    hrefs = {link["href"] for c in shown for link in c["links"] + c["also_links"]}
    assert hrefs == expected_urls(news_qa, WALES)  # the urls arrive in the DOM as they are in the corpus
    story = next(c for c in news_qa.ask(WALES).citations if c.doc_id in WALES_STORY)
    wire = shown[story.n - 1]
    assert wire["also"].startswith("also in: ") and len(wire["also_links"]) == len(story.duplicates) == 2
    for copy in story.duplicates:
        assert f"{copy['publisher']} ↗ ({copy['date']})" in wire["also"]
    sources = page.locator("#nqa-sources")
    sync_api.expect(sources.locator(".nqa-also").first).to_contain_text("also in")
    for a in sources.locator("a").all():
        assert_new_tab({"target": a.get_attribute("target"), "rel": a.get_attribute("rel")})
    page.wait_for_timeout(300)  # let the chat settle its scroll position
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / "news-filters.png"))

    # (b) The button asks the same question again without the filter from its words.
    again = page.locator("#nqa-again")
    sync_api.expect(again).to_be_visible()
    before = page.locator("#nqa-chat .bot-row").count()
    again.click()
    unfiltered = browser.wait_for_answer(before)
    assert filter_line(unfiltered) is None
    assert "without the question's date filter" in page.locator("#nqa-chat .user-row").last.inner_text()
    assert {link["href"] for c in citations(unfiltered) for link in c["links"] + c["also_links"]} == expected_urls(
        news_qa, WALES, read_time=False)
    sync_api.expect(again).to_be_hidden()

    # (c) A publisher chosen in the dropdown: every passage is that publisher's.
    choose_publisher(page, "Rijnmond Courant")
    filtered = browser.ask("Wat gebeurde er in Wales?")  # the earlier question's month is not carried over
    assert filter_line(filtered) == "gefilterd: alleen Rijnmond Courant"
    shown = citations(filtered)
    assert shown and {c["source"] for c in shown} == {"Rijnmond Courant"}
    # It stays until changed, and combines with the question's own dates.
    march = browser.ask(WALES)
    assert filter_line(march) == "filtered: March 2022 (from the question) · only Rijnmond Courant"
    assert {c["source"] for c in citations(march)} == {"Rijnmond Courant"}

    # (d) No link anywhere but to http(s); the only foreign ones are the corpus's articles.
    for href in all_links(page):
        assert urlsplit(href).scheme in ("http", "https"), href
        host = urlsplit(href).hostname
        assert host == "127.0.0.1" or host.endswith(".example"), href
    assert browser.foreign_requests() == []
    assert browser.csp_violations() == []


@pytest.mark.model
def test_an_invalid_date_gets_a_message_not_a_traceback(browser, news_url):  # noqa: F811
    page = browser.page
    page.goto(news_url)
    page.locator("#nqa-since textarea, #nqa-since input").first.fill("2022-13-01")
    answer = browser.ask(WALES)
    sync_api.expect(answer).to_contain_text("is not a date")
    sync_api.expect(answer).to_contain_text("is geen datum")
    page.locator("#nqa-since textarea, #nqa-since input").first.fill("2022-03-10")
    page.locator("#nqa-until textarea, #nqa-until input").first.fill("2022-03-20")
    answer = browser.ask("Wat gebeurde er in Wales?")
    assert filter_line(answer) == "gefilterd: 10–20 maart 2022"
    assert all("2022-03-10" <= c["date"] <= "2022-03-20" for c in citations(answer))
    assert "Traceback" not in page.content()
    assert browser.foreign_requests() == []


def test_a_url_arrives_in_the_dom_exactly_as_written(browser, tmp_path):  # noqa: F811
    # Characters Markdown, HTML and autolinkers give a meaning to: the href must come out unchanged.
    urls = ["https://krant.example/a_b_c/*nadruk*/~x~/(haakjes)/[blok]?q=1&r=2&lt;x&gt;#top",
            "https://krant.example/www.example.com/mail@example.com/$x$/'quote'/\"dubbel\"/`code`"]
    articles = tmp_path / "news"
    articles.mkdir()
    rows = [{"id": f"art-{i}", "title": f"Fietsenstalling {i}", "date": f"2023-04-0{i + 1}",
             "publisher": f"Krant <b>{i}</b>", "url": url,
             "text": f"De gemeente Utrecht opende een stalling voor {12_500 + i} fietsen. Fietsers parkeren er gratis."}
            for i, url in enumerate(urls)]
    rows.append({"id": "art-js", "title": "Fietsenstalling js", "date": "2023-04-05", "publisher": "Krant js",
                 "url": "javascript:alert(1)", "text": "De gemeente Utrecht opende een tweede stalling voor fietsen."})
    rows += [{"id": f"vul-{i}", "title": f"Ander nieuws {i}", "date": "2023-03-01", "publisher": "Vulling",
              "text": f"Het KNMI meldt {i} graden en regen in het noorden."} for i in range(4)]
    (articles / "news.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    qa = QA.build([articles], tmp_path / "index", model="hash-64")
    with serve(qa) as url:
        browser.page.goto(url)
        answer = browser.ask("Hoeveel fietsen passen in de stalling van de gemeente Utrecht?")
        shown = citations(answer)
        hrefs = [link["href"] for c in shown for link in c["links"]]
        assert sorted(hrefs) == sorted(urls)
        assert "Krant <b>0</b>" in {c["source"] for c in shown}
        assert [h for h in all_links(browser.page) if not h.startswith(("http://", "https://"))] == []
        assert browser.page.locator("a[href^='javascript'], a[href^='JAVASCRIPT']").count() == 0
        assert browser.foreign_requests() == []
        assert browser.csp_violations() == []


def test_the_filters_and_the_again_button_with_written_answers(browser, tmp_path):  # noqa: F811
    # The streamed path (`--llm-url`) has its own events: the same filters, the same button.
    pytest.importorskip("openai")
    from llm_server import scripted_server

    from qa.generate import OpenAIGenerator

    qa = QA.build([NEWS], tmp_path / "index", model="hash-64")
    with scripted_server("reply", "In Wales gebeurde iets [1].") as (llm_url, _), \
            serve(qa, generator=OpenAIGenerator(llm_url, "scripted", timeout=10)) as url:
        page = browser.page
        page.goto(url)
        answer = browser.ask(WALES)
        answer.locator(".nqa-verified, .nqa-unverified").wait_for(timeout=ANSWER_TIMEOUT_MS)
        assert filter_line(answer) == "filtered: March 2022 (from the question)"
        again = page.locator("#nqa-again")
        sync_api.expect(again).to_be_visible()
        again.click()
        unfiltered = browser.wait_for_answer(1)
        unfiltered.locator(".nqa-verified, .nqa-unverified").wait_for(timeout=ANSWER_TIMEOUT_MS)
        assert filter_line(unfiltered) is None
        sync_api.expect(again).to_be_hidden()
        choose_publisher(page, "NPA")
        page.locator("#nqa-until textarea, #nqa-until input").first.fill("2022-02-31")
        refused = browser.ask("Wat gebeurde er in Wales?")
        sync_api.expect(refused).to_contain_text("is not a date")
        page.locator("#nqa-until textarea, #nqa-until input").first.fill("2022-06")
        answer = browser.ask("Wat gebeurde er met Wales?")
        answer.locator(".nqa-verified, .nqa-unverified").wait_for(timeout=ANSWER_TIMEOUT_MS)
        assert filter_line(answer).endswith("alleen NPA")
        assert {c["source"] for c in citations(answer)} == {"NPA"}
        assert all(c["date"] <= "2022-06-30" for c in citations(answer))
        assert browser.foreign_requests() == []
        assert browser.csp_violations() == []


def test_an_uploaded_publisher_joins_the_choice(browser, news_dir, tmp_path):  # noqa: F811
    # Plain files name no publisher, so there is nothing to choose until an upload names one.
    article = {"id": "upload-1", "title": "Warmwaterbron op Spitsbergen", "date": "2024-03-02",
               "publisher": "Het Uploadblad", "url": "https://uploadblad.example/2024/03/bron",
               "text": "De Zweedse vulkanoloog Ingrid Falkenberg ontdekte op Spitsbergen een onbekende warmwaterbron."}
    upload = tmp_path / "upload" / "uploadblad.jsonl"
    upload.parent.mkdir()
    upload.write_text(json.dumps(article) + "\n", encoding="utf-8")
    qa = QA.build([news_dir], tmp_path / "index", model="hash-64")
    with serve(qa, upload_to=news_dir) as url:
        page = browser.page
        page.goto(url)
        sync_api.expect(page.locator("#nqa-since")).to_be_visible()
        assert not page.locator("#nqa-publishers").is_visible()
        page.get_by_text("Artikelen toevoegen / Add articles").click()
        page.locator("#nqa-upload input[type=file]").set_input_files([str(upload)])
        page.get_by_role("button", name="Toevoegen / Add", exact=True).click()
        sync_api.expect(page.locator("#nqa-upload-status")).to_contain_text("documents: 1 added", timeout=60_000)
        sync_api.expect(page.locator("#nqa-publishers")).to_be_visible()
        choose_publisher(page, "Het Uploadblad")
        answer = browser.ask("Wat ontdekte Ingrid Falkenberg op Spitsbergen?")
        (shown,) = {c["source"]: c for c in citations(answer)}.values()
        assert shown["source"] == "Het Uploadblad" and shown["date"] == "2024-03-02"
        assert [link["href"] for link in shown["links"]] == [article["url"]]
        assert browser.foreign_requests() == [] and browser.csp_violations() == []
