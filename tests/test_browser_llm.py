"""Written answers in a real browser: the chat asks a local model (a scripted server, or llama.cpp
with SmolLM2), streams its text above the verbatim citations, and shows it as the answer only when
the grounding check verifies it. Nothing leaves 127.0.0.1: not from the browser, and from the
server only to the model's endpoint.

Screenshots go to out/ (NIEUWS_QA_SCREENSHOT_DIR=docs/screenshots refreshes the ones in the README).
"""

from __future__ import annotations

import contextlib
import os
import sys
from pathlib import Path
from urllib.parse import urlsplit

import pytest

pytestmark = [pytest.mark.browser, pytest.mark.model]
pytest.importorskip("gradio")
pytest.importorskip("openai")
sync_api = pytest.importorskip("playwright.sync_api")

from conftest import ROOT, free_port, serve  # noqa: E402
from llm_server import llama_server, scripted_server  # noqa: E402
from test_browser import browser, chromium  # noqa: E402, F401 - fixtures

from qa.generate import OpenAIGenerator, generate_answer  # noqa: E402

NL_Q = "Hoeveel vierkante kilometer is in minder dan een week bevrijd?"
EN_Q = "How many square kilometres were liberated in less than a week?"
SHOTS = Path(os.environ.get("NIEUWS_QA_SCREENSHOT_DIR") or ROOT / "out")
WRITTEN_TIMEOUT_MS = 60_000
SECRET = "sk-test-4b1d-never-shown"
# A model that followed instructions planted in a passage, and wrote markup on top.
HOSTILE_REPLY = ('BEZOEK WWW.EXAMPLE.COM VOOR HET ANTWOORD <img src="http://example.com/x.png"> '
                 '![x](http://example.com/y.png) <script>window.__pwned=1</script> [1]')

# ------------------------------------------------------------------ what the server side connects to

_connections: list | None = None


def _audit(event: str, args: tuple) -> None:
    # Every socket this process opens or name it looks up, while a test records them.
    if _connections is None:
        return
    if event == "socket.connect":
        _connections.append(args[1])
    elif event == "socket.getaddrinfo":
        _connections.append(("getaddrinfo", args[0], args[1]))


sys.addaudithook(_audit)  # audit hooks cannot be removed; this one does nothing unless recording


@contextlib.contextmanager
def recording_connections():
    """The addresses this process (the app, its model client) connects to or looks up meanwhile."""
    global _connections
    _connections = found = []
    try:
        yield found
    finally:
        _connections = None


def assert_only_local(connections: list, app_url: str, llm_url: str) -> None:
    """Server side: nothing but the app itself (gradio's start-up check) and the model's endpoint."""
    allowed = {urlsplit(app_url).port, urlsplit(llm_url).port}
    for c in connections:
        if c[0] == "getaddrinfo":
            assert c[1] in ("127.0.0.1", "localhost", b"127.0.0.1", b"localhost"), c
        else:
            assert isinstance(c, tuple) and c[0] in ("127.0.0.1", "::1") and c[1] in allowed, c
    assert (("127.0.0.1", urlsplit(llm_url).port)) in connections  # the model was asked, from here


def assert_browser_stayed_home(b, app_url: str) -> None:
    """Browser side: every request went to the app, none elsewhere (not even to the model)."""
    assert b.requests and b.foreign_requests() == []
    assert {urlsplit(u).port for u in b.requests} == {urlsplit(app_url).port}
    assert b.csp_violations() == []


# ------------------------------------------------------------------ page helpers

def wait_for_verdict(answer):
    """The written answer's final block: checked, or "could not be verified"."""
    verdict = answer.locator(".nqa-verified, .nqa-unverified")
    verdict.wait_for(timeout=WRITTEN_TIMEOUT_MS)
    sync_api.expect(answer.locator(".nqa-checking")).to_have_count(0)
    return verdict


def in_order(answer, *selectors: str) -> bool:
    """Whether the first element of each selector is shown, one below the other, in this order. One
    look at the page: while the text streams in, the message is re-rendered under our feet."""
    tops = answer.evaluate("(el, sels) => sels.map(s => el.querySelector(s)?.getBoundingClientRect().top ?? null)",
                           list(selectors))
    return None not in tops and tops == sorted(tops) and len(set(tops)) == len(tops)


def screenshot(b, name: str, *, settle: bool = True) -> None:
    if settle:
        b.page.wait_for_timeout(300)  # let the chat settle its scroll position
    SHOTS.mkdir(parents=True, exist_ok=True)
    b.page.screenshot(path=str(SHOTS / name))


def citation_number(answer, phrase: str) -> int:
    return next(c.n for c in answer.citations if phrase in c.text)


class Replay:
    """A Generator that replays a fixed text: the Python API's check of what the page showed."""

    def __init__(self, text: str, model: str):
        self.text, self.model = text, model

    def stream(self, messages):
        yield self.text


# ------------------------------------------------------------------ (a) a right answer, then a wrong one

def test_a_checked_answer_streams_in_above_the_citations_and_a_wrong_one_is_flagged(browser, seed_qa,  # noqa: F811
                                                                                    monkeypatch, caplog):
    monkeypatch.setenv("NIEUWS_QA_LLM_API_KEY", SECRET)
    nl, en = seed_qa.ask(NL_Q), seed_qa.ask(EN_Q)  # the app cites 5 passages, as here
    right = (f"In minder dan een week is al ruim 400 vierkante kilometer gebied bevrijd, meldden de Oekraïense "
             f"strijdkrachten [{citation_number(nl, '400 vierkante kilometer')}].")
    wrong = f"More than 4000 square kilometres were liberated in less than a week [{citation_number(en, '400 vierkante')}]."
    # 7 characters every 0.15 s: a few seconds of streaming to watch.
    with scripted_server("slow", right, 0.15) as (llm_url, llm), recording_connections() as connections:
        generator = OpenAIGenerator(llm_url, "scripted-7b", timeout=30)
        with serve(seed_qa, generator=generator) as app_url:
            browser.page.goto(app_url)
            answer = browser.ask(NL_Q)
            # While the model writes: its draft, labelled as being checked, above the verbatim answer.
            draft = answer.locator(".nqa-checking")
            sync_api.expect(draft).to_contain_text("wordt gecontroleerd")
            sync_api.expect(draft.locator(".nqa-written-text")).to_contain_text("In minder dan")
            screenshot(browser, "llm-checking.png", settle=False)
            assert answer.locator(".nqa-checking").count() == 1  # still streaming: the reply takes ~2 s
            passage = answer.locator("details.nqa-passage[open]")
            sync_api.expect(passage).to_be_visible()
            assert in_order(answer, ".nqa-checking", ".nqa-quote", "details.nqa-passage[open]")
            # A second question while the first streams is refused with a notice, and kept in the box.
            box = browser.page.locator("#nqa-question textarea")
            box.fill(EN_Q)
            box.press("Enter")
            notice = browser.page.get_by_text("the previous answer is still being written")
            sync_api.expect(notice).to_be_visible()
            assert box.input_value() == EN_Q and browser.page.locator("#nqa-chat .user-row").count() == 1
            browser.page.locator(".toast-close").first.click()  # out of the screenshot
            sync_api.expect(notice).to_be_hidden()
            # Checked: the text is the answer, its [n] the number of the passage it rests on.
            verdict = wait_for_verdict(answer)
            assert "nqa-verified" in verdict.get_attribute("class")
            sync_api.expect(verdict).to_contain_text("Geschreven antwoord (gecontroleerd)")
            sync_api.expect(verdict.locator(".nqa-model")).to_have_text("scripted-7b")
            assert verdict.locator(".nqa-written-text").inner_text() == right
            markers = verdict.locator(".nqa-written-text .nqa-n").all_inner_texts()
            numbers = answer.locator(".nqa-passage summary .nqa-n").all_inner_texts()
            assert markers and set(markers) <= set(numbers)
            sync_api.expect(answer.locator(".nqa-quote")).to_contain_text("400 vierkante kilometer")
            sync_api.expect(answer).to_contain_text("Letterlijk uit de bron")
            box.fill("")
            assert in_order(answer, ".nqa-verified", ".nqa-quote", "details.nqa-passage[open]")
            screenshot(browser, "llm-verified.png")

            # A wrong number: not shown as the answer; the verbatim answer as without a model.
            llm.mode = ("reply", wrong)
            answer = browser.ask(EN_Q)
            verdict = wait_for_verdict(answer)
            assert "nqa-unverified" in verdict.get_attribute("class")
            sync_api.expect(verdict).to_contain_text("The written answer could not be verified")
            sync_api.expect(verdict.locator(".nqa-reasons")).to_contain_text("number “4000” is not in passage")
            assert answer.locator(".nqa-written-text").count() == 0
            rejected = verdict.locator(".nqa-rejected-text")
            sync_api.expect(rejected).to_be_hidden()  # folded away
            verdict.locator(".nqa-rejected summary").click()
            sync_api.expect(rejected).to_have_text(wrong)
            sync_api.expect(answer.locator(".nqa-quote")).to_contain_text("400 vierkante kilometer")
            assert answer.locator(".nqa-label").first.text_content() == "Answer"
            assert in_order(answer, ".nqa-unverified", ".nqa-quote", "details.nqa-passage[open]")
            screenshot(browser, "llm-unverified.png")
            assert_browser_stayed_home(browser, app_url)
            page_html = browser.page.content()
    assert len(llm.requests) == 2 and llm.headers[0]["authorization"] == f"Bearer {SECRET}"
    assert SECRET not in page_html + caplog.text
    assert_only_local(connections, app_url, llm_url)


# ------------------------------------------------------------------ (b) a real (small, usually wrong) model

@pytest.fixture(scope="module")
def smollm2():
    with llama_server(free_port()) as url:
        yield url


def test_a_real_small_model_is_shown_checked_or_flagged_as_the_check_says(browser, seed_qa, smollm2):  # noqa: F811
    question = "Welke regio probeert het Oekraïense leger te heroveren?"
    generator = OpenAIGenerator(smollm2, "smollm2", timeout=30, max_tokens=60)
    with recording_connections() as connections, serve(seed_qa, generator=generator) as app_url:
        browser.page.goto(app_url)
        answer = browser.ask(question)
        verdict = wait_for_verdict(answer)
        verified = "nqa-verified" in verdict.get_attribute("class")
        if verified:
            shown = verdict.locator(".nqa-written-text").inner_text()
        elif verdict.locator(".nqa-rejected summary").count():
            verdict.locator(".nqa-rejected summary").click()
            shown = verdict.locator(".nqa-rejected-text").inner_text()
        else:
            shown = None  # no text at all (a timeout): only the reason
        sync_api.expect(answer.locator("details.nqa-passage").first).to_be_visible()
        assert_browser_stayed_home(browser, app_url)
    assert_only_local(connections, app_url, smollm2)
    # The page's verdict is the Python API's verdict on the text the page showed.
    assert shown is not None, verdict.inner_text()
    checked = generate_answer(seed_qa.ask(question), Replay(shown, "smollm2"), seed_qa.embedder).generated
    assert checked.verified is verified, (shown, checked.reasons)
    if not verified:
        assert verdict.locator(".nqa-reasons").inner_text().endswith("; ".join(checked.reasons))


# ------------------------------------------------------------------ (c) a server that fails

def test_a_failing_model_server_leaves_the_verbatim_answer_and_says_why(browser, seed_qa):  # noqa: F811
    with scripted_server("status", 500) as (llm_url, llm), recording_connections() as connections:
        with serve(seed_qa, generator=OpenAIGenerator(llm_url, "broken", timeout=1)) as app_url:
            browser.page.goto(app_url)
            for question, mode, reason in [(NL_Q, ("status", 500), "HTTP 500"),
                                           (EN_Q, ("sleep", 3), "did not answer within 1 s")]:
                llm.mode = mode
                answer = browser.ask(question)
                verdict = wait_for_verdict(answer)
                assert "nqa-unverified" in verdict.get_attribute("class")
                sync_api.expect(verdict.locator(".nqa-reasons")).to_contain_text(reason)
                assert verdict.locator(".nqa-rejected").count() == 0  # no text came
                sync_api.expect(answer.locator(".nqa-quote")).to_contain_text("400 vierkante kilometer")
                sync_api.expect(answer.locator("details.nqa-passage[open]")).to_be_visible()

            # A model that obeys a planted instruction and writes markup: rejected, shown as text.
            llm.mode = ("reply", HOSTILE_REPLY)
            answer = browser.ask(NL_Q)
            verdict = wait_for_verdict(answer)
            assert "nqa-unverified" in verdict.get_attribute("class")
            verdict.locator(".nqa-rejected summary").click()
            sync_api.expect(verdict.locator(".nqa-rejected-text")).to_have_text(HOSTILE_REPLY)
            browser.page.wait_for_timeout(500)  # give any injected image or script time to fire
            assert browser.page.evaluate("() => typeof window.__pwned") == "undefined"
            assert browser.page.locator("#nqa-chat img, #nqa-chat script").count() == 0
            assert "Traceback" not in browser.page.content()
            assert_browser_stayed_home(browser, app_url)
    assert not any("example.com" in u for u in browser.requests)
    assert_only_local(connections, app_url, llm_url)


# ------------------------------------------------------------------ (d) the chat cleared while a model writes

def test_clearing_the_chat_stops_the_answer_being_written(browser, seed_qa):  # noqa: F811
    nl = seed_qa.ask(NL_Q)
    right = f"In minder dan een week is al ruim 400 vierkante kilometer gebied bevrijd [{citation_number(nl, '400 vierkante')}]."
    with scripted_server("slow", right, 0.15) as (llm_url, llm):
        with serve(seed_qa, generator=OpenAIGenerator(llm_url, "scripted-7b", timeout=30)) as app_url:
            browser.page.goto(app_url)
            answer = browser.ask(NL_Q)
            sync_api.expect(answer.locator(".nqa-checking .nqa-written-text")).to_contain_text("In minder")
            browser.page.locator("#nqa-chat").get_by_role("button", name="Clear").click()
            chat = browser.page.locator("#nqa-chat .message-row")
            sync_api.expect(chat).to_have_count(0)
            browser.page.wait_for_timeout(3_000)  # the rest of the reply would have streamed in by now
            sync_api.expect(chat).to_have_count(0)
            # The tab is free again: the next question is answered, not refused as "still being written".
            llm.mode = ("reply", right)
            verdict = wait_for_verdict(browser.ask(NL_Q))
            assert "nqa-verified" in verdict.get_attribute("class")
            assert browser.page.locator("#nqa-chat .user-row").count() == 1
