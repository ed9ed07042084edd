"""Hostile input: arbitrary Unicode through every text path, hostile corpus files, injection in CLI output.

Property tests run with a local hypothesis profile: "ci" (100 examples per target, the default)
or "extended" (1,000+ per target) with ``HYPOTHESIS_PROFILE=extended``. The profiles are applied
per test here, so other test modules keep their own settings.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
import tracemalloc
import unicodedata
import warnings
from pathlib import Path

import pytest
from conftest import ROOT, write_news
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from qa import QA, CorpusError, QuestionError
from qa.api import MAX_QUESTION_CHARS, check_question
from qa.chunking import chunk_text, split_sentences
from qa.corpus import CorpusWarning, read_corpus
from qa.language import detect_language
from qa.lexical import Analyzer

settings.register_profile("ci", max_examples=100, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
settings.register_profile("extended", max_examples=1000, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
PROFILE_NAME = os.environ.get("HYPOTHESIS_PROFILE", "ci")
PROFILE = settings.get_profile(PROFILE_NAME if PROFILE_NAME in ("ci", "extended") else "ci")
# Building an index per example costs ~50 ms: a quarter of the examples in the quick profile.
BUILD_PROFILE = settings(PROFILE, max_examples=PROFILE.max_examples if PROFILE_NAME == "extended"
                         else PROFILE.max_examples // 4)

# --- strategies -------------------------------------------------------------------------------

SPECIALS = [
    "\x00", "\x07", "\x08", "\x1b[31m", "\x1b[2J", "\x1b]0;title\x07", "\x1b]8;;http://evil.example\x1b\\", "\x9b31m",
    "\x7f", "\u200b", "\u200c", "\u200d", "\u200e", "\u200f", "\u202a", "\u202e", "\u2066", "\u2069", "\ufeff",
    "\u00ad", "\u2028", "\u2029", "\x85", "\r\n", "\r", "\n", "\t", "\v", "\f", "\x1c", "\x1f", "\u3000", "\xa0",
    "\ud800", "\udfff", "\udc80", "\ud83d", "👍🏽", "🇳🇱", "👨\u200d👩\u200d👧", "e\u0301", "\u0301", "ﬁ", "İ", "ß",
    "\uffff", "\ufffd", "\U0010ffff", "\U000e0001", "ⅷ", "²", "١٢٣", "שלום", "مرحبا", "中文", "\u0e01\u0e34",
    "<script>alert(1)</script>", "![x](http://evil.example/x.png)", "[klik](javascript:alert(1))", "{{7*7}}",
    "${7*7}", "{% raw %}", "1.127", "2,5", "o.a.", "d.w.z.", "„", "”", "...", "…", "?", "!", ".", " ", "  ",
]
WORDS = ["Het", "kabinet", "inflatie", "vierkante", "kilometer", "bevrijd", "Argentinië", "WK", "Messi",
         "KNMI", "gladheid", "exoplaneet", "Leiden", "Zelenski", "won", "the", "how", "many", "Wie", "Wat"]

any_char = st.characters(exclude_categories=())  # every code point Python allows in a str
surrogate = st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF, exclude_categories=())
pieces = st.one_of(st.text(any_char, max_size=12), st.text(surrogate, min_size=1, max_size=2),
                   st.sampled_from(SPECIALS), st.sampled_from(WORDS))
mixed = st.lists(pieces, max_size=40).map(" ".join)
whitespace_only = st.text(st.sampled_from(" \t\n\r\v\f\x1c\x1d\x1e\x1f\x85\xa0\u1680\u2000\u2028\u2029\u3000"),
                          max_size=30)
repeated = st.builds(lambda piece, n: piece * n, st.one_of(st.sampled_from(SPECIALS + WORDS), st.text(any_char, min_size=1,
                                                                                                    max_size=4)),
                     st.integers(50, 3000))
hostile_text = st.one_of(mixed, whitespace_only, repeated)
# Questions: the same, plus lengths right at and just over the limit.
at_limit = st.builds(lambda piece, extra: (piece * MAX_QUESTION_CHARS)[: MAX_QUESTION_CHARS + extra],
                     st.sampled_from(SPECIALS + WORDS), st.integers(-2, 2))
questions = st.one_of(hostile_text, at_limit)


def _is_empty(question: str) -> bool:
    return not question.strip()


# --- fixtures ---------------------------------------------------------------------------------

HOSTILE_ARTICLES = {
    "html": "De gemeente plaatste <script>alert('x')</script> op de site. <img src=x onerror=alert(1)> Daarna "
            "volgde <iframe src='http://evil.example'></iframe> een storing.",
    "markdown": "Bekijk ![foto](http://evil.example/pixel.png) en [de bron](javascript:alert(document.cookie)). "
                "Het KNMI meldde <a href=\"javascript:alert(1)\">gladheid</a> in Drenthe.",
    "template": "Het sjabloon {{7*7}} en ${7*7} en {% for x in y %}{{x}}{% endfor %} werd getoond. "
                "De burgemeester van Zwolle verklaarde dat niemand #{7*7} zag.",
    "terminal": "Het parlement \x1b[2J\x1b[31mstemde\x1b[0m voor de wet. \x1b]0;gekaapt\x07 De titel veranderde. "
                "Een link \x1b]8;;http://evil.example\x1b\\klik\x1b]8;;\x1b\\ en \x9b31m C1-tekst. \x08\x08\x7f wis.",
    "bidi": "De minister zei \u202eesrever\u202c en \u2066isolaat\u2069 met \u200bnul\u200bbreedte en \ufeffBOM. "
            "Emoji 👍🏽 🇳🇱 en het getal 1.127.",
}
HOSTILE_TITLES = {"html": "<b>Vet</b> nieuws", "terminal": "Titel \x1b[5mknippert\x1b[0m", "bidi": "\u202eLTR"}
HOSTILE_IDS = {"terminal": "id-\x1b[31m-rood", "bidi": "id-\u202e-omgekeerd"}


def _hostile_corpus(folder: Path) -> Path:
    write_news(folder)
    with open(folder / "hostile.jsonl", "w", encoding="utf-8") as f:
        for key, text in HOSTILE_ARTICLES.items():
            record = {"id": HOSTILE_IDS.get(key, key), "text": text}
            if key in HOSTILE_TITLES:
                record["title"] = HOSTILE_TITLES[key]
            f.write(json.dumps(record, ensure_ascii=False) + "\n")
    (folder / "raw.md").write_text("# <h1>Kop</h1>\n\n" + HOSTILE_ARTICLES["markdown"], encoding="utf-8")
    return folder


@pytest.fixture(scope="module")
def hostile_qa(tmp_path_factory) -> QA:
    root = tmp_path_factory.mktemp("hostile")
    return QA.build([_hostile_corpus(root / "news")], root / "index", model="hash-64")


@pytest.fixture(scope="module")
def app_module():
    import app  # the project root is on sys.path (pyproject: pytest pythonpath)

    return app


# --- text paths -------------------------------------------------------------------------------


@PROFILE
@given(text=hostile_text, max_words=st.integers(10, 60), overlap=st.integers(0, 4))
def test_chunker_offsets_hold_for_hostile_text(text, max_words, overlap):
    chunks = chunk_text("doc", text, max_words=max_words, overlap=overlap)
    covered = set()
    for n, c in enumerate(chunks):
        assert (c.ordinal, c.chunk_id, c.doc_id) == (n, f"doc#{n}", "doc")
        assert 0 <= c.start < c.end <= len(text) and text[c.start:c.end] == c.text
        assert c.text == c.text.strip() and len(c.text.split()) <= 3 * max_words
        if n:
            assert c.start > chunks[n - 1].start
        covered.update(range(c.start, c.end))
    assert all(i in covered for i, ch in enumerate(text) if not ch.isspace()), "text lost between chunks"
    for start, end in split_sentences(text):
        assert 0 <= start < end <= len(text) and text[start:end].strip() == text[start:end]


@PROFILE
@given(text=hostile_text, lang=st.one_of(st.none(), st.sampled_from(["nl", "en", "de", "nl-NL", "", "xx_YY"])))
def test_analyzer_is_total_on_hostile_text(text, lang):
    for analyzer in (Analyzer(), Analyzer(stem=False, fold_diacritics=False, stopwords=False)):
        terms = analyzer.analyze(text, lang)
        assert isinstance(terms, list) and all(isinstance(t, str) and t and not any(ch.isspace() for ch in t)
                                               for t in terms)
        assert analyzer.analyze(text, lang) == terms
    assert detect_language(text) in ("nl", "en")


def _check_answer(qa: QA, answer, k: int) -> None:
    assert answer.language in ("nl", "en") and isinstance(answer.answer_found, bool)
    assert 1 <= len(answer.citations) <= k
    chunks = {c.chunk_id: c for c in qa.chunks}
    for n, c in enumerate(answer.citations, start=1):
        chunk = chunks[c.chunk_id]
        assert c.n == n and c.text == chunk.text and (c.start, c.end) == (chunk.start, chunk.end)
        h = c.highlight
        assert 0 <= h.start < h.end <= len(c.text) and c.text[h.start:h.end] == h.text and h.text.strip()
        assert set(c.ranks) == {"bm25", "dense"} and any(r is not None for r in c.ranks.values())
    # What `qa ask --json` prints is valid UTF-8 JSON and parses back exactly, whatever the question
    # contained: lone surrogates became U+FFFD in check_question.
    data = answer.to_dict()
    assert json.loads(json.dumps(data, ensure_ascii=False).encode("utf-8")) == data


@PROFILE
@given(question=questions, k=st.integers(1, 8))
def test_ask_never_crashes_and_keeps_its_invariants(hostile_qa, question, k):
    if _is_empty(question) or len(question) > MAX_QUESTION_CHARS:
        with pytest.raises(QuestionError, match="empty|limit is 2,000"):
            hostile_qa.ask(question, k=k)
        return
    _check_answer(hostile_qa, hostile_qa.ask(question, k=k), k)
    for mode in ("bm25", "dense"):
        hits = hostile_qa.search(question, k=k, mode=mode)
        assert len(hits) <= k and all(0 <= h.row < len(hostile_qa.chunks) for h in hits)


@pytest.mark.model
@pytest.mark.parametrize("question", [
    "Wat gebeurde er met \ud800 dit teken?", "\udcff\udcfe", "Cherson\x00\x1b[31m", "\u202e?nesrehC",
    "👍🏽🇳🇱 Poetin", "\u200b\u200b\u200b", "Hoeveel" * 285, "e\u0301" * 600, "\U000e0001 tag",
])
def test_real_model_takes_hostile_questions(seed_qa, question):
    """The fake embedder accepts anything; the real tokenizer raised TypeError on lone surrogates."""
    answer = seed_qa.ask(question)
    _check_answer(seed_qa, answer, 5)
    assert not any(unicodedata.category(ch) == "Cs" for ch in answer.question)


@PROFILE
@given(question=questions)
def test_ui_answer_function_never_crashes(app_module, hostile_qa, question):
    message, sources = app_module.answer_markdown(hostile_qa, question)
    assert isinstance(message, str) and isinstance(sources, str) and message
    refusals = {app_module.esc(app_module.EMPTY_QUESTION), app_module.esc(app_module.TOO_LONG)}
    if _is_empty(question) and len(question) <= MAX_QUESTION_CHARS:
        assert app_module.esc(app_module.EMPTY_QUESTION) in message
    elif len(question) > MAX_QUESTION_CHARS:  # whitespace-only and too long: either message is clear
        assert any(r in message for r in refusals) if _is_empty(question) else app_module.esc(app_module.TOO_LONG) in message
    else:
        assert "nqa-passage" in message and app_module.esc(app_module.GENERIC_ERROR) not in message
    lowered = message.lower() + sources.lower()
    for dangerous in ("<script", "<img", "<iframe", "<a ", "javascript:", "onerror=", "!["):
        assert dangerous not in lowered, dangerous
    # The question is echoed into the chat escaped: nothing in it can open a tag or a link.
    history, _ = app_module.respond(hostile_qa, question, [])
    echoed = history[0]["content"]
    inner = echoed[echoed.index(">") + 1: echoed.rindex("<")].replace("<br>", "")  # newlines become <br>
    assert not set(inner) & set("<>[]()`*_"), inner[:200]


@pytest.mark.parametrize("question", ["", " ", "\n\t", "\u3000\u2028", "x" * (MAX_QUESTION_CHARS + 1),
                                      " " * 10_000_000])
def test_empty_and_oversized_questions_are_refused_quickly(hostile_qa, app_module, question):
    start = time.perf_counter()
    with pytest.raises(QuestionError) as info:
        hostile_qa.ask(question)
    message = str(info.value)
    assert ("empty" in message) if _is_empty(question) else ("limit is 2,000" in message)
    with pytest.raises(QuestionError):
        check_question(question)
    app_message, _ = app_module.answer_markdown(hostile_qa, question)
    assert "vraag" in app_message.lower()
    assert time.perf_counter() - start < 2.0


def test_ten_million_character_question_through_the_ui(hostile_qa, app_module):
    start = time.perf_counter()
    message, _ = app_module.answer_markdown(hostile_qa, "Wat " * 2_500_000)
    assert app_module.esc(app_module.TOO_LONG) in message and time.perf_counter() - start < 2.0


# --- hostile corpus content -------------------------------------------------------------------


@BUILD_PROFILE
@given(texts=st.lists(hostile_text, min_size=1, max_size=4), titles=st.lists(st.one_of(st.none(), mixed), max_size=4))
def test_build_from_hostile_jsonl(tmp_path_factory, texts, titles):
    """Whatever a JSONL corpus holds, a build succeeds or says which line is bad; never a traceback."""
    root = tmp_path_factory.mktemp("build")
    path = root / "news.jsonl"
    with open(path, "w", encoding="utf-8") as f:
        for i, text in enumerate(texts):
            record = {"id": f"doc-{i}", "text": text}
            if i < len(titles) and titles[i] is not None:
                record["title"] = titles[i]
            f.write(json.dumps(record) + "\n")  # ASCII escapes: lone surrogates become \udxxx
    try:
        qa = QA.build([path], root / "index", model="hash-64")
    except CorpusError as exc:
        assert f"{path}:" in str(exc) or "no readable article" in str(exc)
        return
    for chunk in qa.chunks:
        # What the file holds: JSON joins an escaped surrogate pair into one character.
        text = json.loads(json.dumps(texts[int(chunk.doc_id.split("-")[1])]))
        normalised = text.removeprefix("\ufeff").replace("\r\n", "\n").replace("\r", "\n").lstrip()
        assert normalised[chunk.start:chunk.end] == chunk.text
    loaded = QA.load(root / "index")
    assert list(loaded.chunks) == list(qa.chunks)
    _check_answer(loaded, loaded.ask("Wat gebeurde er?", k=3), 3)


def _write(path: Path, data: bytes | str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data if isinstance(data, bytes) else data.encode("utf-8"))
    return path


BAD_JSONL = {
    "lone surrogate in text": ('{"id": "a", "text": "Tekst \\ud800 met een half teken."}', "surrogate"),
    "lone surrogate in id": ('{"id": "\\udc80", "text": "Tekst."}', "surrogate"),
    "lone surrogate in title": ('{"id": "a", "text": "Tekst.", "title": "\\udfff"}', "surrogate"),
    "nested too deeply": ("[" * 100_000 + "]" * 100_000, "not valid JSON"),
    "integer too long": ('{"id": ' + "9" * 5000 + ', "text": "Tekst."}', "not valid JSON"),
    "control character in a string": ('{"id": "a", "text": "Tekst.\x1b"}', "not valid JSON"),
}


@pytest.mark.parametrize("case", BAD_JSONL)
def test_bad_jsonl_lines_name_the_line(tmp_path, case):
    """Each bad line is reported with file:line (or skipped with --skip-bad); the rest is read."""
    line, problem = BAD_JSONL[case]
    path = _write(tmp_path / "news.jsonl", '{"id": "ok", "text": "Goede tekst."}\n' + line + "\n")
    with pytest.raises(CorpusError) as info:
        read_corpus([path])
    assert f"{path}:2" in str(info.value) and problem in str(info.value), str(info.value)[:300]
    with pytest.warns(CorpusWarning, match=f"{path}:2"):
        assert [a.doc_id for a in read_corpus([path], skip_bad=True)] == ["ok"]


@pytest.mark.parametrize("suffix", [".txt", ".jsonl"])
def test_huge_file_is_refused_without_reading_it(tmp_path, suffix):
    """100 MB (sparse, so instant to create): refused from its size, in well under a second."""
    folder = tmp_path / "corpus"
    _write(folder / "good.txt", "Goede tekst.")
    huge = folder / f"huge{suffix}"
    with open(huge, "wb") as f:
        f.truncate(100_000_000)
    tracemalloc.start()
    start = time.perf_counter()
    try:
        with pytest.raises(CorpusError, match="byte limit") as info:
            read_corpus([folder])
        with pytest.warns(CorpusWarning, match="byte limit"):
            articles = read_corpus([folder], skip_bad=True)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert str(huge) in str(info.value) and [a.doc_id for a in articles] == ["good.txt"]
    assert time.perf_counter() - start < 1.0 and peak < 5_000_000, peak


def test_binary_file_without_nul_bytes(tmp_path):
    # An ELF/PNG-like header without NUL: caught as not UTF-8 rather than indexed as garbage.
    path = _write(tmp_path / "corpus" / "image.txt", b"\x89PNG\r\n\x1a\n\xff\xd8\xff\xe0 JFIF")
    with pytest.raises(CorpusError, match="not valid UTF-8") as info:
        read_corpus([tmp_path / "corpus"])
    assert str(path) in str(info.value)


def test_file_name_that_is_not_utf8(tmp_path):
    folder = tmp_path / "corpus"
    _write(folder / "good.txt", "Goede tekst over de regering.")
    name = os.fsdecode(b"caf\xe9.txt")  # a Latin-1 file name: a lone surrogate in Python
    _write(folder / name, "Tekst in een bestand met een Latin-1 naam.")
    with pytest.raises(CorpusError, match="file name is not valid UTF-8"):
        QA.build([folder], tmp_path / "index", model="hash-64")
    with pytest.warns(CorpusWarning, match="file name is not valid UTF-8"):
        qa = QA.build([folder], tmp_path / "index", model="hash-64", skip_bad=True)
    assert list(qa.docs) == ["good.txt"]


def test_symlink_loops_and_dangling_links_are_skipped(tmp_path):
    folder = tmp_path / "corpus"
    _write(folder / "good.txt", "Goede tekst.")
    (folder / "loop-a.txt").symlink_to(folder / "loop-b.txt")
    (folder / "loop-b.txt").symlink_to(folder / "loop-a.txt")
    (folder / "self.txt").symlink_to(folder / "self.txt")
    (folder / "dangling.txt").symlink_to(folder / "nothing-here.txt")
    (folder / "dangling-out.txt").symlink_to(tmp_path / "nowhere" / "x.txt")
    (folder / "loopdir").symlink_to(folder, target_is_directory=True)
    with warnings.catch_warnings(record=True):
        warnings.simplefilter("always")
        articles = read_corpus([folder])
    assert [a.doc_id for a in articles] == ["good.txt"]


def test_symlink_chain_leading_outside_is_skipped(tmp_path):
    outside = _write(tmp_path / "secret" / "passwd.txt", "root:x:0:0")
    folder = tmp_path / "corpus"
    _write(folder / "good.txt", "Goede tekst.")
    (folder / "sub").mkdir()
    (folder / "sub" / "hop.txt").symlink_to(outside)
    (folder / "first.txt").symlink_to(folder / "sub" / "hop.txt")
    with pytest.warns(CorpusWarning, match="outside"):
        articles = read_corpus([folder])
    assert [a.doc_id for a in articles] == ["good.txt"]
    assert all("root:x" not in a.text for a in articles)


def _returns_within(fn, seconds: float):
    result = {}

    def run():
        try:
            result["value"] = fn()
        except Exception as exc:  # noqa: BLE001 - handed back to the test
            result["error"] = exc

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), f"still running after {seconds}s (blocked on a special file?)"
    return result


def test_fifo_and_devices_never_block_the_reader(tmp_path):
    folder = tmp_path / "corpus"
    _write(folder / "good.txt", "Goede tekst.")
    os.mkfifo(folder / "pipe.txt")
    (folder / "zero.txt").symlink_to("/dev/zero")
    (folder / "stdin.jsonl").symlink_to("/dev/stdin")
    with warnings.catch_warnings(record=True):
        warnings.simplefilter("always")
        result = _returns_within(lambda: read_corpus([folder]), 10)
    assert [a.doc_id for a in result["value"]] == ["good.txt"]
    # Named directly on the command line: an error, not an endless read.
    for special in (folder / "pipe.txt", folder / "zero.txt"):
        result = _returns_within(lambda special=special: read_corpus([special]), 10)
        assert isinstance(result.get("error"), CorpusError), result
        assert "not a regular file" in str(result["error"])


# --- injection in CLI output ------------------------------------------------------------------

# Control characters that must never reach a terminal raw: C0 except newline, DEL, C1, bidi controls.
_UNSAFE = {chr(c) for c in range(0x20) if c != 0x0A} | {chr(c) for c in range(0x7F, 0xA0)} | set(
    "\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u2028\u2029")

INJECTION_QUESTIONS = {
    "html": "Wat plaatste de gemeente op de site?",
    "markdown": "Waar meldde het KNMI gladheid?",
    "template": "Wat verklaarde de burgemeester van Zwolle over het sjabloon?",
    "terminal": "Waarvoor stemde het parlement?",
    "bidi": "Wat zei de minister over het getal 1.127?",
}


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONIOENCODING": "utf-8"}
    return subprocess.run([sys.executable, "-m", "qa.cli", *args], cwd=cwd, env=env, capture_output=True, timeout=120)


@pytest.fixture(scope="module")
def hostile_index(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("cli-hostile")
    corpus = _hostile_corpus(root / "news")
    result = _cli("build", str(corpus), "--index", str(root / "index"), "--model", "hash-64", cwd=root)
    assert result.returncode == 0, result.stderr
    return root / "index"


def _assert_terminal_safe(raw: bytes) -> str:
    text = raw.decode("utf-8")  # strict: no stray bytes either
    bad = sorted({f"U+{ord(ch):04X}" for ch in text if ch in _UNSAFE or unicodedata.category(ch) == "Cs"})
    assert not bad, f"raw control characters reach the terminal: {bad}"
    return text


@pytest.mark.parametrize("key", INJECTION_QUESTIONS)
def test_cli_text_output_is_inert(hostile_index, key):
    result = _cli("ask", INJECTION_QUESTIONS[key], "--index", str(hostile_index), "-k", "10", cwd=hostile_index.parent)
    assert result.returncode == 0, result.stderr
    out = _assert_terminal_safe(result.stdout)
    _assert_terminal_safe(result.stderr)
    doc_id = HOSTILE_IDS.get(key, key)
    assert f"— {doc_id.replace(chr(27), ' ').replace(chr(0x202e), ' ')} (" in out, out
    if key in ("html", "markdown", "template"):
        # Inert text in a terminal: shown literally, not stripped or rewritten.
        for marker in {"html": ["<script>alert('x')</script>", "<img src=x onerror=alert(1)>"],
                       "markdown": ["![foto](http://evil.example/pixel.png)", "(javascript:alert(document.cookie))"],
                       "template": ["{{7*7}}", "${7*7}", "{% for x in y %}"]}[key]:
            assert marker in out, marker


@pytest.mark.parametrize("key", INJECTION_QUESTIONS)
def test_cli_json_output_is_valid_and_exact(hostile_index, key):
    result = _cli("ask", INJECTION_QUESTIONS[key], "--index", str(hostile_index), "--json", "-k", "10",
                  cwd=hostile_index.parent)
    assert result.returncode == 0, result.stderr
    answer = json.loads(_assert_terminal_safe(result.stdout))
    doc_id = HOSTILE_IDS.get(key, key)
    cited = [c for c in answer["citations"] if c["doc_id"] == doc_id]
    assert cited, [c["doc_id"] for c in answer["citations"]]
    # Escaped on the wire, exact after parsing: the passage is the article text, byte for byte.
    assert cited[0]["text"] in HOSTILE_ARTICLES[key]
    assert cited[0]["text"] == HOSTILE_ARTICLES[key][cited[0]["start"]:cited[0]["end"]]
    if key in HOSTILE_TITLES:
        assert cited[0]["title"] == HOSTILE_TITLES[key]


def test_cli_question_with_invalid_utf8_bytes(hostile_index):
    """argv bytes that are not UTF-8 arrive as lone surrogates; output stays valid UTF-8 and JSON."""
    question = os.fsdecode(b"Wat stemde het parlement \xff\xfe?")
    for extra in ([], ["--json"]):
        result = _cli("ask", question, "--index", str(hostile_index), *extra, cwd=hostile_index.parent)
        assert result.returncode == 0, result.stderr
        out = _assert_terminal_safe(result.stdout)
        if extra:  # the undecodable bytes are shown as U+FFFD
            assert json.loads(out)["question"] == "Wat stemde het parlement \ufffd\ufffd?"


def test_cli_errors_and_warnings_about_hostile_file_names_are_inert(tmp_path):
    folder = tmp_path / "corpus"
    _write(folder / "good.txt", "Goede tekst.")
    _write(folder / "\x1b[31mrood\x1b]0;x\x07.txt", b"")  # empty: an error naming the file
    result = _cli("build", str(folder), "--index", str(tmp_path / "index"), "--model", "hash-64", cwd=tmp_path)
    assert result.returncode == 1
    err = _assert_terminal_safe(result.stderr)
    assert err.startswith("error: ") and "rood" in err and "Traceback" not in err
    result = _cli("build", str(folder), "--index", str(tmp_path / "index"), "--model", "hash-64", "--skip-bad",
                  cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    err = _assert_terminal_safe(result.stderr)
    assert "rood" in err and "skipped" in err
