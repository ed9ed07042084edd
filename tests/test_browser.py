"""The chat in a real browser: Debian's Chromium driven by Playwright, fully offline."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from urllib.parse import urlsplit

import pytest

pytestmark = pytest.mark.browser
pytest.importorskip("gradio")
sync_api = pytest.importorskip("playwright.sync_api")

from conftest import ROOT, serve  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1"]
SCREENSHOT = ROOT / "out" / "screenshot-chat.png"
ANSWER_TIMEOUT_MS = 60_000


@pytest.fixture(scope="module")
def chromium() -> str:
    if not Path(CHROMIUM).exists() and not shutil.which("chromium"):
        if os.environ.get("NIEUWS_QA_REQUIRE_BROWSER") == "1":
            pytest.fail(f"{CHROMIUM} is missing and NIEUWS_QA_REQUIRE_BROWSER=1; install Debian's chromium package")
        pytest.skip(f"{CHROMIUM} is missing (apt-get install chromium)")
    return CHROMIUM if Path(CHROMIUM).exists() else shutil.which("chromium")


class Browser:
    """A fresh Chromium profile that records every request, websocket and console message."""

    def __init__(self, p, executable: str, profile: Path):
        self.requests: list[str] = []
        self.console: list[str] = []
        self.context = p.chromium.launch_persistent_context(
            str(profile), executable_path=executable, headless=True, args=CHROMIUM_ARGS,
            viewport={"width": 1400, "height": 1000})
        self.context.on("request", lambda r: self.requests.append(r.url))
        # Route observes (and refuses) anything that is not this machine, before it leaves.
        self.context.route("**/*", self._route)
        self.page = self.context.new_page()
        self.page.on("websocket", lambda ws: self.requests.append(ws.url))
        self.page.on("console", lambda m: self.console.append(f"{m.type}: {m.text}"))

    def _route(self, route):
        self.requests.append(route.request.url)
        if urlsplit(route.request.url).hostname == "127.0.0.1":
            route.continue_()
        else:
            route.abort()

    def ask(self, question: str):
        """Type a question, send it, and return the locator of the new answer."""
        answers = self.page.locator("#nqa-chat .bot-row")
        before = answers.count()
        box = self.page.locator("#nqa-question textarea")
        box.fill(question)
        box.press("Enter")
        return self.wait_for_answer(before)

    def wait_for_answer(self, before: int):
        answers = self.page.locator("#nqa-chat .bot-row")
        answers.nth(before).locator(".nqa-msg").wait_for(timeout=ANSWER_TIMEOUT_MS)
        return answers.nth(before)

    def foreign_requests(self) -> list[str]:
        return [u for u in self.requests if urlsplit(u).hostname != "127.0.0.1"]

    def csp_violations(self) -> list[str]:
        return [m for m in self.console if "Content Security Policy" in m]


@pytest.fixture
def browser(chromium, tmp_path):
    with sync_api.sync_playwright() as p:
        b = Browser(p, chromium, tmp_path / "chromium-profile")
        try:
            yield b
        finally:
            b.context.close()


@pytest.fixture(scope="module")
def seed_url(seed_qa):
    with serve(seed_qa) as url:
        yield url


@pytest.mark.model
def test_dutch_question_shows_the_highlighted_passage(browser, seed_url):
    browser.page.goto(seed_url)
    answer = browser.ask("Hoeveel vierkante kilometer is in minder dan een week bevrijd?")
    assert "400 vierkante kilometer" in answer.locator(".nqa-quote").inner_text()
    assert "Antwoord" in answer.text_content()
    passage = answer.locator("details[open] .nqa-text")
    sync_api.expect(passage).to_contain_text("Cherson op de Russen te heroveren")
    mark = passage.locator("mark")
    sync_api.expect(mark).to_be_visible()
    sync_api.expect(mark).to_contain_text("400 vierkante kilometer")
    sync_api.expect(browser.page.locator("#nqa-sources")).to_contain_text("Kim Jong-un")
    browser.page.wait_for_timeout(300)  # let the chat settle its scroll position
    SCREENSHOT.parent.mkdir(exist_ok=True)
    browser.page.screenshot(path=str(SCREENSHOT), full_page=True)
    assert browser.foreign_requests() == []
    assert browser.csp_violations() == []


@pytest.mark.model
def test_english_example_question_is_answered_in_english(browser, seed_url):
    browser.page.goto(seed_url)
    browser.page.get_by_text("How many square kilometres were liberated").click()  # examples ask right away
    answer = browser.wait_for_answer(0)
    assert "Answer" in answer.text_content() and "Cited passages" in answer.text_content()
    mark = answer.locator("details[open] .nqa-text mark")
    sync_api.expect(mark).to_be_visible()
    sync_api.expect(mark).to_contain_text("400 vierkante kilometer")
    sync_api.expect(browser.page.locator("#nqa-sources")).to_contain_text("Sources of the last answer")
    second = browser.ask("What did Kim Jong-un say about Putin?")
    sync_api.expect(second.locator(".nqa-quote")).to_contain_text("Kim Jong-un looft")
    assert browser.foreign_requests() == []
    assert browser.csp_violations() == []


@pytest.mark.model
def test_empty_question_gets_a_message(browser, seed_url):
    browser.page.goto(seed_url)
    # The textbox caps typing at the limit; the server refuses longer questions on its own (test_app).
    answer = browser.ask("  ")
    sync_api.expect(answer).to_contain_text("Type a question")
    assert "Traceback" not in browser.page.content()


@pytest.mark.model
def test_hostile_passage_is_shown_as_text_and_loads_nothing(browser, tmp_path, news_dir, real_embedder):
    from qa import QA

    (news_dir / "stalling.txt").write_text(
        'date 2023-04 Nieuwe fietsenstalling in Utrecht <img src="http://example.com/t.png"> geopend. '
        'De gemeente Utrecht opende bij het station een stalling voor 12.500 fietsen. '
        '<img src="http://example.com/x"> ![x](http://example.com/y.png) [klik](javascript:alert(1)) '
        '<script>window.__pwned=1</script> {{7*7}} Fietsers kunnen er de eerste 24 uur gratis parkeren.',
        encoding="utf-8")
    qa = QA.build([news_dir], tmp_path / "index", embedder=real_embedder)
    with serve(qa) as url:
        browser.page.goto(url)
        answer = browser.ask("Hoeveel fietsen passen in de nieuwe stalling in Utrecht?")
        passage = answer.locator("details[open]")
        sync_api.expect(passage).to_contain_text("12.500 fietsen")
        shown = passage.inner_text()
        for literal in ('<img src="http://example.com/x">', "![x](http://example.com/y.png)",
                        "[klik](javascript:alert(1))", "<script>window.__pwned=1</script>", "{{7*7}}",
                        '<img src="http://example.com/t.png">'):
            assert literal in shown
        browser.page.wait_for_timeout(500)  # give any injected image or script time to fire
        assert browser.page.evaluate("typeof window.__pwned") == "undefined"
        images = browser.page.evaluate("[...document.images].map(i => i.src)")
        assert [src for src in images if urlsplit(src).hostname not in (None, "", "127.0.0.1")] == []
        assert browser.page.locator("#nqa-chat a[href^='javascript']").count() == 0
        assert browser.page.locator("#nqa-chat img, #nqa-chat script, #nqa-sources img").count() == 0
        assert browser.foreign_requests() == []
        assert not any("example.com" in u for u in browser.requests)
        assert browser.csp_violations() == []  # nothing even tried to load (the CSP is the second line)
