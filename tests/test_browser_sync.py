"""In a real browser: the app is running, `qa sync` in another process adds an article, and the
next question in the open page cites it, without a restart; and articles uploaded through the
"add articles" control (--allow-upload) are checked, synced and cited."""

from __future__ import annotations

import subprocess
import sys

import pytest

pytestmark = pytest.mark.browser
pytest.importorskip("gradio")
sync_api = pytest.importorskip("playwright.sync_api")

from conftest import serve  # noqa: E402
from test_browser import browser, chromium  # noqa: E402, F401 - fixtures
from test_kill import _env  # noqa: E402

QUESTION = "Wat ontdekte vulkanoloog Ingrid Falkenberg op Spitsbergen?"
ARTICLE = ("date 2024-03 De Zweedse vulkanoloog Ingrid Falkenberg ontdekte op Spitsbergen een onbekende "
           "warmwaterbron. Volgens Falkenberg is de bron minstens drieduizend jaar oud.")


@pytest.mark.model
def test_an_article_synced_by_another_process_is_cited_by_the_next_question(browser, news_dir, tmp_path,  # noqa: F811
                                                                            real_embedder):
    from qa import QA

    index = tmp_path / "index"
    qa = QA.build([news_dir], index, embedder=real_embedder)
    with serve(qa) as url:
        browser.page.goto(url)
        before = browser.ask(QUESTION)
        sync_api.expect(before.locator(".nqa-passage").first).to_be_visible()
        assert "Falkenberg" not in before.inner_text()
        (news_dir / "falkenberg.txt").write_text(ARTICLE, encoding="utf-8")
        done = subprocess.run([sys.executable, "-m", "qa.cli", "sync", str(news_dir), "--index", str(index)],
                              env=_env(), capture_output=True, text=True, timeout=300)
        assert done.returncode == 0 and "documents: 1 added" in done.stdout, done.stderr
        after = browser.ask(QUESTION)
        sync_api.expect(after.locator(".nqa-quote")).to_contain_text("warmwaterbron")
        sync_api.expect(browser.page.locator("#nqa-sources")).to_contain_text("Falkenberg")
        assert browser.foreign_requests() == [] and browser.csp_violations() == []


def test_uploaded_articles_are_added_and_answered_in_the_browser(browser, news_dir, tmp_path):  # noqa: F811
    from conftest import free_port

    import app
    from qa import QA

    qa = QA.build([news_dir], tmp_path / "index", model="hash-64")
    upload = tmp_path / "upload"
    upload.mkdir()
    (upload / "falkenberg.txt").write_text(ARTICLE, encoding="utf-8")
    (upload / "kapot.txt").write_bytes(b"\x00\x01")
    demo = app.build_app(qa, upload_to=news_dir)
    port = free_port()
    app.launch_app(demo, port=port, block=False, quiet=True)
    try:
        browser.page.goto(f"http://127.0.0.1:{port}/")
        browser.page.get_by_text("Artikelen toevoegen / Add articles").click()
        browser.page.locator("#nqa-upload input[type=file]").set_input_files(
            [str(upload / "falkenberg.txt"), str(upload / "kapot.txt")])
        browser.page.get_by_role("button", name="Toevoegen / Add", exact=True).click()
        status = browser.page.locator("#nqa-upload-status")
        sync_api.expect(status).to_contain_text("✓ falkenberg.txt: 1 article", timeout=60_000)
        sync_api.expect(status).to_contain_text("✗ kapot.txt")
        sync_api.expect(status).to_contain_text("documents: 1 added")
        answer = browser.ask(QUESTION)
        sync_api.expect(answer.locator(".nqa-passage").first).to_contain_text("warmwaterbron")
        assert (news_dir / "falkenberg.txt").read_text(encoding="utf-8") == ARTICLE
        assert not (news_dir / "kapot.txt").exists()
        assert browser.foreign_requests() == [] and browser.csp_violations() == []
    finally:
        demo.close()
