"""nieuws-QA chat: ask questions about Dutch news in the browser; answers are cited passages.

    python app.py [--host 127.0.0.1] [--port 7860] [--index index] [--corpus seeds] [--model M]
                  [--watch SECONDS] [--allow-upload] [--llm-url URL --llm-model NAME]
    python app.py --backend http://127.0.0.1:8000/     (answers from `qa serve`, a sharded index)

Syncs the index with the corpus first when it is missing or stale (only new and changed articles
are embedded), then serves the chat. While it runs, a new index generation made by `qa sync` in
another process is picked up by the next question; `--watch` syncs the corpus folder itself
whenever its files change, and `--allow-upload` lets visitors add articles (see SECURITY.md).
Above the chat, a date range and a choice of publishers filter every question until changed; a
date range read from the question's own words ("in maart 2022") is shown with the answer, with a
button that asks again without it. Citations link to their article (http(s) only) and list the
other publishers of a wire story ("ook verschenen in").
With `--llm-url`/`--llm-model` (or $NIEUWS_QA_LLM_URL/$NIEUWS_QA_LLM_MODEL) a language model's
written answer streams in above the verbatim one and is shown as the answer only when the
grounding check verifies it (qa/generate.py, qa/grounding.py).
With `--backend URL` the chat answers from a `qa serve` endpoint (SCALING.md) instead of a local
index; an answer that some shards could not give in time says which part of the archive was not
searched.
"""

from __future__ import annotations

import os
import sys

# Nothing leaves the machine: analytics, the version check and hub calls are read from the
# environment when gradio and huggingface_hub are imported, so this must come first.
os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"
# The default model is local; a hub name passed with --model still loads (and is cached) when the
# user has not set HF_HUB_OFFLINE themselves.
os.environ.setdefault("HF_HUB_OFFLINE", "0" if "--model" in sys.argv else "1")

import argparse
import html
import logging
import re
import threading
import time
import unicodedata
from pathlib import Path
from types import SimpleNamespace
from urllib.parse import urlsplit

import gradio as gr
from starlette.middleware import Middleware

from qa import QA, QAError, QuestionError
from qa.answer import Generated
from qa.api import MAX_QUESTION_CHARS
from qa.conversation import MAX_HISTORY
from qa.generate import AnswerStream, load_generator
from qa.live import LiveQA, Watcher
from qa.news import as_day
from qa.scale.client import RemoteQA, partial_note
from qa.upload import MAX_UPLOAD_BYTES, place_uploads

log = logging.getLogger("nieuws-qa.app")

# Same origin only. 'unsafe-inline' because Gradio injects inline scripts and styles.
CSP = ("default-src 'self' 'unsafe-inline' data: blob:; script-src 'self' 'unsafe-inline'; "
       "style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; font-src 'self' data:; "
       "media-src 'self' data: blob:; connect-src 'self'; frame-src 'none'; object-src 'none'; "
       "base-uri 'self'; form-action 'self'")
# Answers are long, and Gradio's autoscroll would show their last passage: instead, scroll each new
# exchange so its question sits at the top of the chat and the quoted answer right below it.
SCROLL_JS = """(() => { let shown = "";
  new MutationObserver(() => {
    const box = document.querySelector("#nqa-chat .bubble-wrap"), rows = box ? box.querySelectorAll(".user-row") : [];
    const key = rows.length + "/" + box?.querySelectorAll(".bot-row").length;
    if (!rows.length || key === shown) return;
    shown = key;
    requestAnimationFrame(() => { box.scrollTop += rows[rows.length - 1].getBoundingClientRect().top - box.getBoundingClientRect().top - 8; });
  }).observe(document.documentElement, {childList: true, subtree: true}); })();"""
HEAD = f'<meta http-equiv="Content-Security-Policy" content="{CSP}"><script>{SCROLL_JS}</script>'

EXAMPLES = [
    "Hoeveel vierkante kilometer is in minder dan een week bevrijd?",
    "Wat zei Kim Jong-un over Poetin?",
    "Welke regio probeert Oekraïne te heroveren?",
    "How many square kilometres were liberated in less than a week?",
    "What did Kim Jong-un say about Putin?",
]

LABELS = {
    "nl": {"answer": "Antwoord", "passages": "Geciteerde passages", "closest": "Dichtstbijzijnde passages",
           "not_found": "Het corpus bevat geen passage die deze vraag beantwoordt. Hieronder staan de "
                        "dichtstbijzijnde passages; dat is geen antwoord.",
           "no_passages": "Er zijn geen passages gevonden.", "sources": "Bronnen van het laatste antwoord",
           "no_date": "zonder datum", "legs": {"both": "BM25 + semantisch", "bm25": "BM25", "dense": "semantisch"},
           "rank": "rang", "context": "met de vorige vraag", "link": "bron ↗", "also": "ook verschenen in",
           "filtered": "gefilterd", "from_question": "uit de vraag", "only": "alleen", "newest": "nieuwste eerst",
           "dropped": "niets uit “{}” beantwoordt dit; gezocht in het hele archief"},
    "en": {"answer": "Answer", "passages": "Cited passages", "closest": "Closest passages",
           "not_found": "No passage in the corpus answers this question. Below are the closest passages; "
                        "they are not an answer.",
           "no_passages": "No passages were found.", "sources": "Sources of the last answer",
           "no_date": "undated", "legs": {"both": "BM25 + semantic", "bm25": "BM25", "dense": "semantic"},
           "rank": "rank", "context": "using the previous question", "link": "source ↗", "also": "also in",
           "filtered": "filtered", "from_question": "from the question", "only": "only", "newest": "newest first",
           "dropped": "nothing dated “{}” answers this; searched the whole archive"},
}
EMPTY_QUESTION = "Typ een vraag, in het Nederlands of het Engels. / Type a question, in Dutch or English."
TOO_LONG = (f"Deze vraag is te lang (maximaal {MAX_QUESTION_CHARS:,} tekens); stel een kortere vraag. / "
            f"This question is too long (at most {MAX_QUESTION_CHARS:,} characters); ask a shorter one.")
GENERIC_ERROR = ("Er ging iets mis; probeer het opnieuw of stel een andere vraag. / "
                 "Something went wrong; try again or ask another question.")
SOURCES_PLACEHOLDER = ("<div class='nqa-sources nqa-muted'>De bronnen van het laatste antwoord verschijnen hier."
                       "<br>The sources of the last answer appear here.</div>")
INTRO = """# nieuws-QA
Stel een vraag over het nieuws, in het **Nederlands** of het **Engels**. Elk antwoord is een letterlijk
geciteerde passage uit de bronnen, met de antwoordzin gemarkeerd.
*Ask in Dutch or English; sources are quoted verbatim, the answering sentence highlighted.*"""

# Corpus text is untrusted. Every character that HTML or Markdown gives a meaning to becomes a
# numeric entity, in one pass (so entities are never escaped twice): no tag, link, image,
# emphasis, autolink (":" "." "@") or LaTeX ("$") can be formed, yet the text reads the same.
_ESCAPES = {ord(c): f"&#{ord(c)};" for c in "&<>\"'`\\*_{}[]()#+-.!|~$:@="}
_ESCAPES.update({ord("\r"): "", ord("\n"): "<br>"})


def esc(text: object) -> str:
    """HTML- and Markdown-inert text for the chat (newlines become <br>)."""
    return str(text).translate(_ESCAPES)


# An article's url is corpus text too. It becomes a link only when it is http(s) with a host and
# nothing a browser would strip or reinterpret (spaces, control and invisible characters): never
# javascript:, data:, ftp:, a relative or a protocol-relative ("//host") address.
MAX_URL_CHARS = 2048


def link_url(url: object) -> str | None:
    """The url, stripped, when it may be a link (http:// or https:// and a host); None otherwise."""
    if not isinstance(url, str):
        return None
    url = url.strip()
    scheme, colon, rest = url.partition(":")
    if not colon or scheme.lower() not in ("http", "https") or not rest.startswith("//") or len(url) > MAX_URL_CHARS:
        return None
    if any(ch.isspace() or unicodedata.category(ch).startswith("C") for ch in url):
        return None
    try:
        host = urlsplit(url).hostname
    except ValueError:  # e.g. a malformed IPv6 host
        return None
    return url if host else None


def attr(value: str) -> str:
    """A value for a double-quoted HTML attribute. Not `esc`: its Markdown entities would change a URL."""
    return html.escape(value, quote=True)


def link(url: object, label_html: str) -> str:
    """`label_html` as a link to url opening in a new tab, or "" when url may not be a link (see link_url)."""
    href = link_url(url)
    if href is None:
        return ""
    return f'<a class="nqa-link" href="{attr(href)}" target="_blank" rel="noopener noreferrer">{label_html}</a>'


def _message(body: str) -> str:
    # One line of HTML: Markdown treats it as a single HTML block and leaves it alone.
    return f"<div class='nqa-msg'>{body}</div>"


def _passage(c, t: dict, *, open_: bool, also: bool = True) -> str:
    # Passages fold so a whole answer fits the chat; a folded one still shows its highlighted
    # sentence, an unfolded one the whole verbatim passage with that sentence marked.
    h = c.highlight
    text = f"{esc(c.text[:h.start])}<mark>{esc(h.text)}</mark>{esc(c.text[h.end:])}"
    ranks = " · ".join(f"{name} {t['rank']} {c.ranks[leg]}" for leg, name in (("bm25", "BM25"), ("dense", t["legs"]["dense"]))
                       if c.ranks.get(leg) is not None)
    title = esc(c.title or c.doc_id)
    head = (f"<span class='nqa-n'>[{c.n}]</span><span class='nqa-title' title='{title}'>{title}</span>"
            f"<span class='nqa-badge nqa-{esc(c.found_by)}' title='{esc(ranks)}'>{esc(t['legs'].get(c.found_by, c.found_by))}</span>"
            f"<span class='nqa-meta'>{_where(c, t)} · score {c.score:.4f}</span>{_also(c, t) if also else ''}"
            f"<span class='nqa-snippet'><mark>{esc(h.text)}</mark></span>")
    return (f"<details class='nqa-passage'{' open' if open_ else ''}><summary>{head}</summary>"
            f"<p class='nqa-text'>{text}</p></details>")


def _where(c, t: dict) -> str:
    # "2022-03-14 · NPA · bron ↗": the source is the publisher when known (the file as its tooltip),
    # else the corpus file; the link only for an http(s) url.
    tip = f" title='{esc(c.path)}'" if c.path and c.path != c.source else ""
    source = f"<span class='nqa-source'{tip}>{esc(c.source)}</span>"
    url = link(c.url, esc(t["link"]))
    return f"{esc(c.date or t['no_date'])} · {source}" + (f" · {url}" if url else "")


def _also(c, t: dict) -> str:
    # The other wire copies of the article, collapsed into this citation: who else ran it, and when.
    if not c.duplicates:
        return ""
    copies = []
    for d in c.duplicates:
        name = esc(d.get("publisher") or d.get("doc_id") or "?")
        copies.append((link(d.get("url"), f"{name} ↗") or name) + esc(f" ({d.get('date') or t['no_date']})"))
    return f"<span class='nqa-also'>{esc(t['also'])}: {', '.join(copies)}</span>"


def _sources(answer, t: dict) -> str:
    docs: dict[str, list] = {}
    for c in answer.citations:
        docs.setdefault(c.doc_id, []).append(c)
    items = "".join(
        f"<li><span class='nqa-n'>{esc(', '.join(f'[{c.n}]' for c in cs))}</span> "
        f"<span class='nqa-title'>{esc(cs[0].title or doc_id)}</span><br><span class='nqa-meta'>"
        f"{_where(cs[0], t)}</span>{'<br>' + _also(cs[0], t) if cs[0].duplicates else ''}</li>"
        for doc_id, cs in docs.items())
    return f"<div class='nqa-sources'><h3>{esc(t['sources'])}</h3><ol>{items}</ol></div>"


BAD_DATE = ("„{value}” is geen datum: schrijf JJJJ-MM-DD (of JJJJ-MM, JJJJ), of laat het vak leeg. / "
            "“{value}” is not a date: write YYYY-MM-DD (or YYYY-MM, YYYY), or leave the box empty.")
DATES_REVERSED = ("De datum bij „vanaf” ligt na die bij „tot en met”. / "
                  "The “from” date is after the “until” date.")


def search_filters(since: object = None, until: object = None, publishers: object = None) -> dict:
    """`QA.ask`'s since/until/publishers from the chat's filter controls (empty: no filter).

    Args:
        since, until: "YYYY-MM-DD" ("YYYY-MM" and "YYYY" mean the month's or year's first or last
            day), a date, or empty.
        publishers: the chosen publisher names (none: all).

    Raises:
        ValueError: a bilingual message for the reader: a date that is not one, or "from" after "until".
    """
    days = {}
    for key, value in (("since", since), ("until", until)):
        text = str(value if value is not None else "").strip()
        try:
            days[key] = as_day(text, last=key == "until") if text else None
        except ValueError:
            shown = text if len(text) <= 40 else text[:40] + "…"
            raise ValueError(BAD_DATE.format(value=shown)) from None
    if days["since"] and days["until"] and days["since"] > days["until"]:
        raise ValueError(DATES_REVERSED)
    if isinstance(publishers, str):
        publishers = [publishers]
    chosen = [name for name in publishers or () if isinstance(name, str) and name.strip()]
    return {**days, "publishers": chosen or None}


def answer_markdown(qa: QA, question: str, lang: str | None = None, *, k: int = 5,
                    history: list[str] | tuple = (), since: object = None, until: object = None,
                    publishers: object = None, read_time: bool = True) -> tuple[str, str]:
    """Answer a question as a chat message and a sources panel, both safe HTML.

    Args:
        qa: the loaded index.
        question: the user's question, Dutch or English.
        lang: label language ("nl" or "en"); default: the language of the question.
        k: how many passages to cite.
        history: the earlier questions of this chat, oldest first (a follow-up is searched with them).
        since, until, publishers: the chat's filters, as `search_filters` reads them.
        read_time: let time words in the question ("in maart 2022") become the date range.

    Returns:
        (chat message, sources panel). Never raises: problems become a friendly message.
    """
    answer, problem = _ask(qa, question, k=k, history=history, since=since, until=until, publishers=publishers,
                           read_time=read_time)
    if answer is None:
        return problem, SOURCES_PLACEHOLDER
    return render_answer(answer, lang)


def _ask(qa: QA, question: str, *, k: int = 5, history: list[str] | tuple = (), since: object = None,
         until: object = None, publishers: object = None, read_time: bool = True):
    """(the Answer, "") or (None, a friendly chat message): never raises."""
    try:
        options = search_filters(since, until, publishers)
    except ValueError as exc:
        return None, _message(esc(exc))
    try:
        return qa.ask(question, k=k, history=history, read_time=read_time, **options), ""
    except QuestionError:
        too_long = isinstance(question, str) and len(question) > MAX_QUESTION_CHARS
        return None, _message(esc(TOO_LONG if too_long else EMPTY_QUESTION))
    except ValueError as exc:  # a filter qa refuses that search_filters let through
        log.warning("filters refused: %s", exc)
        return None, _message(esc(GENERIC_ERROR))
    except QAError as exc:
        log.warning("question failed: %s", exc)
        return None, _message(f"{esc(GENERIC_ERROR)}<br><small>{esc(exc)}</small>")
    except Exception:
        log.exception("unexpected error while answering %r", question[:200])
        return None, _message(esc(GENERIC_ERROR))


def render_answer(answer, lang: str | None = None, *, written: str = "", answer_label: str | None = None
                  ) -> tuple[str, str]:
    """An Answer as a chat message and a sources panel, both safe HTML.

    Args:
        answer: from `QA.ask`.
        lang: label language ("nl" or "en"); default: the language of the question.
        written: safe HTML placed above the verbatim answer (the written answer, `--llm-url`).
        answer_label: the label of the quoted sentence (default "Antwoord" / "Answer").
    """
    lang = lang or answer.language
    t = LABELS.get(lang, LABELS["en"])
    filtered = filter_line(answer, lang) + partial_line(answer, lang)
    if not answer.citations:
        return _message(f"{filtered}<p class='nqa-notfound'>{esc(t['no_passages'])}</p>"), SOURCES_PLACEHOLDER
    if answer.answer_found:
        best = answer.answer_citation
        lead = (f"<p class='nqa-label'>{esc(answer_label or t['answer'])}</p><blockquote class='nqa-quote'>"
                f"“{esc(best.highlight.text)}” <span class='nqa-n'>[{best.n}]</span></blockquote>"
                f"<p class='nqa-label'>{esc(t['passages'])}</p>")
    else:
        best = answer.citations[0]
        lead = (f"<p class='nqa-notfound'>{esc(t['not_found'])}</p>"
                f"<p class='nqa-label nqa-closest'>{esc(t['closest'])}</p>")
    lead = written + lead
    if answer.context:
        # Unobtrusive, but the reader should know the answer also rests on the earlier question.
        lead = f"<p class='nqa-context'>{esc(t['context'])}: “{esc(answer.context[-1])}”</p>" + lead
    # An article's wire copies are listed once, with its first passage.
    first = {c.doc_id: c for c in reversed(answer.citations)}
    body = filtered + lead + "".join(_passage(c, t, open_=c is best, also=first[c.doc_id] is c) for c in answer.citations)
    return _message(body), _sources(answer, t)


def filter_line(answer, lang: str | None = None) -> str:
    """The filters an answer was searched with, as one small line of safe HTML ("" for none):
    "gefilterd: maart 2022 (uit de vraag) · alleen NPA · nieuwste eerst"."""
    lang = lang or answer.language
    lang = lang if lang in LABELS else "en"
    t, f = LABELS[lang], answer.filters
    said = []
    if f.dated:
        said.append(f.label(lang) + (f" ({t['from_question']})" if f.from_question else ""))
    if f.publishers is not None:
        said.append(f"{t['only']} {', '.join(f.publishers)}")
    parts = [f"{t['filtered']}: {' · '.join(said)}"] if said else []
    if answer.recency:
        parts.append(t["newest"])
    if answer.time_dropped:
        parts.append(t["dropped"].format(answer.time_dropped))
    return f"<p class='nqa-filter'>{esc(' · '.join(parts))}</p>" if parts else ""


def partial_line(answer, lang: str | None = None) -> str:
    """Which part of a sharded archive could not be searched for this answer, as safe HTML ("":
    all of it was)."""
    note = partial_note(answer.partial, lang or answer.language)
    return f"<p class='nqa-partial'>{esc(note)}</p>" if note else ""


def respond(qa: QA, message: str, history: list | None, **filters) -> tuple[list, str]:
    """One chat turn: the history with the question and its answer appended, and the sources panel
    (`filters`: since, until, publishers, read_time, as for `answer_markdown`)."""
    chat, sources, _ = _with_answer(qa, message, _with_question(message, history), **filters)
    return chat, sources


def _with_answer(qa: QA, question: str, history: list, asked: list[str] | tuple = (), **filters):
    """(the chat with the answer appended, the sources panel, the Answer or None)."""
    answer, problem = _ask(qa, question, history=asked, **filters)
    reply, sources = (problem, SOURCES_PLACEHOLDER) if answer is None else render_answer(answer)
    return [*history, {"role": "assistant", "content": reply}], sources, answer


def _with_question(message: str, history: list | None, note: str = "") -> list:
    shown = message if len(message) <= 500 else message[:500] + " …"
    small = f"<br><small class='nqa-muted'>{esc(note)}</small>" if note else ""
    return [*(history or []), {"role": "user", "content": _message(esc(shown) + small)}]



# ------------------------------------------------------------------ written answers (--llm-url, off by default)
# The verbatim answer is computed and shown first; the model's text streams in above it as a draft
# labelled as being checked, then the grounding check's verdict replaces the draft: the text as
# the answer when verified, otherwise a notice with the reasons (the rejected text folded away).
# Model output is untrusted HTML like corpus text: it only ever reaches the page through esc().

WRITTEN = {
    "nl": {"checking": "Geschreven antwoord · wordt gecontroleerd…", "waiting": "het taalmodel schrijft…",
           "verified": "Geschreven antwoord (gecontroleerd)", "verbatim": "Letterlijk uit de bron",
           "unverified": "Het geschreven antwoord kon niet worden geverifieerd",
           "reason": "Reden", "reasons": "Redenen", "rejected": "Afgewezen tekst tonen (geen antwoord)"},
    "en": {"checking": "Written answer · checking…", "waiting": "the language model is writing…",
           "verified": "Written answer (checked)", "verbatim": "Verbatim from the source",
           "unverified": "The written answer could not be verified",
           "reason": "Reason", "reasons": "Reasons", "rejected": "Show the rejected text (not an answer)"},
}
# A generic reason for a failure of our own (a bug), never its details.
WRITTEN_FAILED = "the written answer failed"
# At most this often (seconds) a growing draft is sent to the browser: the text stays live
# without a message per token.
STREAM_INTERVAL = 0.1
# How long clearing the chat waits for the turn being written to stop (it stops at its next update).
CLEAR_WAIT_S = 5.0
_MARKERS = re.compile(r"(\[\s*\d{1,4}(?:\s*[,;]\s*\d{1,4})*\s*\])")


def _model_tag(model: str) -> str:
    return f" <small class='nqa-model'>{esc(model)}</small>" if model else ""


def written_draft(text: str, model: str, lang: str) -> str:
    """The streamed text, as safe HTML, labelled as not yet checked."""
    w = WRITTEN.get(lang, WRITTEN["en"])
    body = esc(text) if text.strip() else f"<span class='nqa-muted'>{esc(w['waiting'])}</span>"
    return (f"<div class='nqa-written nqa-checking'><p class='nqa-label'>{esc(w['checking'])}{_model_tag(model)}</p>"
            f"<p class='nqa-written-text'>{body}</p></div>")


def written_verdict(generated, lang: str) -> str:
    """The checked result, as safe HTML: the text as the answer when verified, else the reasons."""
    w = WRITTEN.get(lang, WRITTEN["en"])
    if generated.verified:
        # [n] markers styled like the citation numbers they point to (the check made sure they do).
        text = "".join(f"<span class='nqa-n'>{esc(part)}</span>" if i % 2 else esc(part)
                       for i, part in enumerate(_MARKERS.split(generated.text)))
        return (f"<div class='nqa-written nqa-verified'><p class='nqa-label'>{esc(w['verified'])}"
                f"{_model_tag(generated.model)}</p><p class='nqa-written-text'>{text}</p></div>")
    reasons = generated.reasons or (WRITTEN_FAILED,)
    rejected = (f"<details class='nqa-rejected'><summary>{esc(w['rejected'])}</summary>"
                f"<p class='nqa-rejected-text'>{esc(generated.text)}</p></details>" if generated.text.strip() else "")
    return (f"<div class='nqa-written nqa-unverified'><p class='nqa-unverified-head'>{esc(w['unverified'])}"
            f"{_model_tag(generated.model)}</p><p class='nqa-reasons'>{esc(w['reasons' if len(reasons) > 1 else 'reason'])}"
            f": {esc('; '.join(reasons))}</p>{rejected}</div>")


def stream_written_answer(qa: QA, generator, question: str, history: list, asked: list[str] | tuple = (),
                          **filters):
    """One chat turn with a written answer; yields (chat history, sources panel) as it goes.

    First the verbatim answer with an empty draft above it, then the draft as the model writes it,
    then the check's verdict in its place. Never raises: a failing model, server or check ends in
    the verbatim answer and a reason.

    Args:
        qa: the index to answer from.
        generator: the language model (`qa.generate.load_generator`).
        question: the user's question.
        history: the chat so far, the question already appended.
        asked: the earlier questions of this chat, for follow-ups.
        filters: since, until, publishers, read_time, as for `answer_markdown`.
    """
    answer, problem = _ask(qa, question, history=asked, **filters)
    yield from _written_turn(qa, generator, answer, problem, question, history)


def _written_turn(qa: QA, generator, answer, problem: str, question: str, history: list):
    """`stream_written_answer` once the question is answered (`answer`, or None and `problem`)."""
    if answer is None or not answer.citations:
        reply, sources = (problem, SOURCES_PLACEHOLDER) if answer is None else render_answer(answer)
        yield [*history, {"role": "assistant", "content": reply}], sources
        return
    model = str(getattr(generator, "model", ""))

    def turn(written: str, answer_label: str | None = None):
        reply, sources = render_answer(answer, written=written, answer_label=answer_label)
        return [*history, {"role": "assistant", "content": reply}], sources

    yield turn(written_draft("", model, answer.language))
    text, shown = "", time.monotonic()
    try:
        stream = AnswerStream(answer, generator, qa.embedder)
        for piece in stream:
            text += piece
            if time.monotonic() - shown >= STREAM_INTERVAL:
                shown = time.monotonic()
                yield turn(written_draft(text, model, answer.language))
        generated = stream.result.generated
    except Exception:  # a bug of ours, not the model's: AnswerStream handles those
        log.exception("written answer failed for %r", question[:200])
        generated = Generated(text, False, (WRITTEN_FAILED,), model)
    w = WRITTEN.get(answer.language, WRITTEN["en"])
    yield turn(written_verdict(generated, answer.language), w["verbatim"] if generated.verified else None)


AGAIN_LABEL = "↺ Zonder datumfilter uit de vraag / Without the question's date filter"
AGAIN_NOTE = "opnieuw, zonder datumfilter uit de vraag / again, without the question's date filter"
WAIT = ("Even geduld: het vorige antwoord wordt nog geschreven. / "
        "Please wait: the previous answer is still being written.")


def _retry(answer, question: str, asked_before) -> tuple:
    """The "without the date filter" button and what it re-asks: shown only after an answer whose
    date range was read from the question's words."""
    if answer is not None and answer.filters.from_question:
        return gr.Button(visible=True), {"question": question, "asked": list(asked_before)}
    return gr.Button(visible=False), None


def _controls(since, until, publishers) -> dict:
    return {"since": since, "until": until, "publishers": publishers}


def _plain_events(live: LiveQA, ui) -> None:
    """The chat's events without written answers (inside `build_app`'s Blocks)."""

    def show_question(message, history):
        return "", _with_question(message or "", history), message

    def answer_turn(question, history, asked_before, *controls):
        chat, panel, answer = _with_answer(live.get(), question, history, asked_before, **_controls(*controls))
        # Only questions that could be asked become context for the next ones.
        valid = isinstance(question, str) and question.strip() and len(question) <= MAX_QUESTION_CHARS
        return chat, panel, [*asked_before, question][-MAX_HISTORY:] if valid else asked_before, *_retry(
            answer, question, asked_before)

    def show_again(retry, history):
        if not retry:
            return gr.skip(), None, gr.Button(visible=False)
        return _with_question(retry["question"], history, AGAIN_NOTE), retry, gr.Button(visible=False)

    def answer_again(redo, history, *controls):
        if not redo:
            return gr.skip(), gr.skip(), gr.skip(), gr.skip()
        chat, panel, _ = _with_answer(live.get(), redo["question"], history, redo["asked"], read_time=False,
                                      **_controls(*controls))
        return chat, panel, gr.Button(visible=False), None

    for trigger in (ui.box.submit(show_question, [ui.box, ui.chatbot], [ui.box, ui.chatbot, ui.pending], queue=False,
                                  api_visibility="private"),
                    ui.examples.load_input_event.then(show_question, [ui.box, ui.chatbot], [ui.box, ui.chatbot, ui.pending],
                                                      queue=False, api_visibility="private")):
        trigger.then(answer_turn, [ui.pending, ui.chatbot, ui.asked, *ui.controls],
                     [ui.chatbot, ui.sources, ui.asked, ui.again, ui.retry], api_visibility="private")
    ui.again.click(show_again, [ui.retry, ui.chatbot], [ui.chatbot, ui.redo, ui.again], queue=False,
                   api_visibility="private").then(
        answer_again, [ui.redo, ui.chatbot, *ui.controls], [ui.chatbot, ui.sources, ui.again, ui.retry],
        api_visibility="private")


def _written_answer_events(live: LiveQA, generator, ui) -> None:
    """The chat's events with written answers (inside `build_app`'s Blocks): one streamed turn at a
    time per browser tab. A question sent while an answer still streams is refused with a notice
    and stays in the box: the stream would otherwise overwrite its bubble, and Gradio would drop
    its turn while the first one runs."""
    streaming = gr.State(False)
    # How often this tab's chat was cleared, and the turn being written (set when it stops). gr.State
    # hands every handler of a tab the same object, so a turn still streaming sees the count change.
    cleared = gr.State({"times": 0, "writing": None})

    def show_question(message, history, busy):
        if busy:
            gr.Warning(WAIT, duration=5)
            return gr.skip(), gr.skip(), None, gr.skip()  # None: no turn for this one
        return "", _with_question(message or "", history), message, True

    def show_again(retry, history, busy):
        if busy:
            gr.Warning(WAIT, duration=5)
            return gr.skip(), None, gr.skip(), gr.skip()
        if not retry:
            return gr.skip(), None, gr.Button(visible=False), gr.skip()
        return _with_question(retry["question"], history, AGAIN_NOTE), retry, gr.Button(visible=False), True

    def run(question, history, asked_before, now_asked, filters, cleared):
        # Yields (chat, sources, asked, streaming, the again button, what it re-asks), and stops
        # as soon as the chat is cleared: nothing of this turn may come back into it.
        turn, cleared["writing"] = cleared["times"], threading.Event()
        try:
            qa = live.get()
            answer, problem = _ask(qa, question, history=asked_before, **filters)
            for chat, panel in _written_turn(qa, generator, answer, problem, question, history):
                if cleared["times"] != turn:
                    return
                yield chat, panel, now_asked, True, gr.skip(), gr.skip()
        except Exception:  # never leave the tab marked as streaming
            log.exception("unexpected error while answering %r", question[:200])
            yield ([*history, {"role": "assistant", "content": _message(esc(GENERIC_ERROR))}], gr.skip(), gr.skip(),
                   False, gr.Button(visible=False), None)
            return
        finally:
            cleared["writing"].set()
        if cleared["times"] == turn:
            yield gr.skip(), gr.skip(), gr.skip(), False, *_retry(answer, question, asked_before)

    def answer_turn(question, history, asked_before, cleared, *controls):
        if question is None:
            yield (gr.skip(),) * 6
            return
        valid = isinstance(question, str) and question.strip() and len(question) <= MAX_QUESTION_CHARS
        now_asked = [*asked_before, question][-MAX_HISTORY:] if valid else asked_before
        yield from run(question, history, asked_before, now_asked, _controls(*controls), cleared)

    def answer_again(redo, history, asked_now, cleared, *controls):
        if not redo:
            yield (gr.skip(),) * 6
            return
        yield from run(redo["question"], history, redo["asked"], asked_now, {**_controls(*controls), "read_time": False},
                       cleared)

    def clear_chat(cleared):
        # The turn being written stops at its next update; once it has, everything it sent is on
        # its way, and the empty chat sent now comes after it.
        cleared["times"] += 1
        if cleared["writing"] is not None:
            cleared["writing"].wait(CLEAR_WAIT_S)
        return [], False

    outputs = [ui.chatbot, ui.sources, ui.asked, streaming, ui.again, ui.retry]
    # Queued, unlike the plain chat's show_question: Gradio shows a gr.Warning only from the queue.
    for trigger in (ui.box.submit(show_question, [ui.box, ui.chatbot, streaming], [ui.box, ui.chatbot, ui.pending, streaming],
                                  api_visibility="private"),
                    ui.examples.load_input_event.then(show_question, [ui.box, ui.chatbot, streaming],
                                                      [ui.box, ui.chatbot, ui.pending, streaming], api_visibility="private")):
        trigger.then(answer_turn, [ui.pending, ui.chatbot, ui.asked, cleared, *ui.controls], outputs,
                     api_visibility="private")
    ui.again.click(show_again, [ui.retry, ui.chatbot, streaming], [ui.chatbot, ui.redo, ui.again, streaming],
                   api_visibility="private").then(
        answer_again, [ui.redo, ui.chatbot, ui.asked, cleared, *ui.controls], outputs, api_visibility="private")
    # Clearing the chat stops a turn still being written (its stream would put the cleared
    # messages back) and frees the tab for the next question; the server empties the chat once
    # more after the turn's last update.
    ui.chatbot.clear(clear_chat, cleared, [ui.chatbot, streaming], api_visibility="private")


CSS = """
.nqa-msg { line-height: 1.5; }
.nqa-msg p { margin: 0.25em 0; }
.nqa-label { font-size: 0.78em; font-weight: 700; text-transform: uppercase; letter-spacing: 0.05em; color: #6b7280; }
.nqa-quote { margin: 0.2em 0 0.7em; padding: 0.45em 0.8em; border-left: 4px solid #d97706; background: rgba(245, 158, 11, 0.1); font-size: 1.05em; }
.nqa-notfound { font-weight: 700; }
.nqa-context { font-size: 0.8em; color: #6b7280; font-style: italic; }
.nqa-partial { font-size: 0.85em; color: #b91c1c; margin: 0.2em 0; }
.nqa-filter { display: inline-block; font-size: 0.8em; color: #92400e; background: rgba(245, 158, 11, 0.12); border-radius: 999px; padding: 0 0.7em; }
.nqa-link { color: #1d4ed8; text-decoration: none; white-space: nowrap; }
.nqa-link:hover { text-decoration: underline; }
.nqa-also { flex-basis: 100%; color: #6b7280; font-size: 0.82em; }
#nqa-filters { gap: 0.5em; }
.nqa-passage { border: 1px solid var(--border-color-primary); border-radius: 8px; padding: 0.4em 0.7em; margin: 0.4em 0; font-size: 0.94em; }
.nqa-passage summary { cursor: pointer; display: flex; flex-wrap: wrap; gap: 0 0.5em; align-items: baseline; }
.nqa-passage summary::-webkit-details-marker { display: none; }
.nqa-passage[open] summary { margin-bottom: 0.3em; }
.nqa-title { font-weight: 700; flex: 1 1 12em; min-width: 0; white-space: nowrap; overflow: hidden; text-overflow: ellipsis; }
.nqa-meta { color: #6b7280; font-size: 0.85em; flex-basis: 100%; overflow: hidden; text-overflow: ellipsis; white-space: nowrap; }
.nqa-snippet { flex-basis: 100%; min-width: 0; white-space: nowrap; overflow: hidden; text-overflow: ellipsis; }
.nqa-snippet mark { background: #fef3c7 !important; }
.nqa-passage[open] .nqa-snippet { display: none; }
.nqa-text { margin: 0; }
.nqa-n { font-weight: 700; color: #b45309; }
.nqa-badge { padding: 0 0.55em; border-radius: 999px; font-size: 0.8em; font-weight: 700; color: white; }
.nqa-both { background: #047857; } .nqa-bm25 { background: #1d4ed8; } .nqa-dense { background: #7c3aed; }
.nqa-msg mark { background: #fde68a; color: #1f2937; padding: 0 0.1em; border-radius: 2px; }
.nqa-sources h3 { margin: 0 0 0.5em; font-size: 1em; }
.nqa-sources .nqa-title, .nqa-sources .nqa-meta { white-space: normal; }
.nqa-sources ol { padding-left: 0; list-style: none; margin: 0; }
.nqa-sources li { margin-bottom: 0.7em; }
.nqa-muted { color: var(--body-text-color-subdued); }
.nqa-written { margin: 0.2em 0 0.8em; padding: 0.45em 0.8em; border-radius: 6px; }
.nqa-written-text { white-space: pre-wrap; }
.nqa-model { font-weight: 400; text-transform: none; letter-spacing: 0; color: #9ca3af; margin-left: 0.4em; }
.nqa-checking { border: 1px dashed #9ca3af; color: #6b7280; }
.nqa-checking .nqa-written-text { font-style: italic; }
.nqa-verified { border-left: 4px solid #047857; background: rgba(4, 120, 87, 0.08); font-size: 1.05em; }
.nqa-verified .nqa-label { color: #047857; }
.nqa-unverified { border: 1px solid #fca5a5; background: rgba(220, 38, 38, 0.05); font-size: 0.9em; }
.nqa-unverified-head { font-weight: 700; color: #b91c1c; }
.nqa-reasons { color: #6b7280; }
.nqa-rejected summary { cursor: pointer; color: #6b7280; font-size: 0.9em; }
.nqa-rejected-text { white-space: pre-wrap; color: #6b7280; text-decoration: line-through; text-decoration-color: rgba(185, 28, 28, 0.5); }
"""


def upload_articles(live: LiveQA, corpus: Path, files: list[str] | None) -> str:
    """Place uploaded files in the corpus folder (qa.upload) and sync the index with it.

    Args:
        live: the index the app answers from; the next question answers from the synced one.
        corpus: the corpus folder.
        files: paths of the uploaded copies, named as uploaded.

    Returns:
        A chat-style message (safe HTML): a line per file, then the sync's summary.
    """
    if not files:
        return _message(esc(UPLOAD_NOTHING))
    qa = live.get()
    results = place_uploads([(f, Path(f).name) for f in files], corpus, lambda doc_id: doc_id in qa.docs)
    lines = [f"{'✓' if r.ok else '✗'} {esc(r.name)}: {esc(r.message)}" for r in results]
    if any(r.ok for r in results):
        try:
            report = QA.sync([corpus], live.index_dir, embedder=qa.embedder, skip_bad=True)
            live.get()  # the next question answers from the new index
            lines.append(esc(f"Index: {report.summary()}"))
        except QAError as exc:
            log.warning("sync after an upload failed: %s", exc)
            lines.append(esc(f"De index kon niet worden bijgewerkt / The index could not be updated: {exc}"))
    return _message("<br>".join(lines))


UPLOAD_NOTHING = "Kies eerst bestanden (.txt, .md, .jsonl). / Choose files first (.txt, .md, .jsonl)."


def publishers_of(qa: QA | RemoteQA) -> list[str]:
    """The publishers named in an index (none for an index built before publishers were stored)."""
    return list(qa.publishers)


class _Remote:
    """A `qa serve` backend where the app expects a LiveQA: the server follows its own index."""

    def __init__(self, qa: RemoteQA):
        self.qa = qa

    def get(self) -> RemoteQA:
        return self.qa


def build_app(qa: QA | LiveQA | RemoteQA, *, upload_to: str | Path | None = None, generator=None) -> gr.Blocks:
    """The chat UI around one shared index (a `QA`, followed as its folder gets new generations;
    or a `RemoteQA`, a `qa serve` endpoint). With `upload_to` (the corpus folder, a local index
    only), an "add articles" control; with `generator` (from `qa.generate.load_generator`), a
    checked written answer streamed above each verbatim one. Launch it with `launch_app`."""
    if isinstance(qa, RemoteQA) and upload_to is not None:
        raise ValueError("articles can only be added to a local index, not to a qa serve backend")
    live = qa if isinstance(qa, LiveQA) else _Remote(qa) if isinstance(qa, RemoteQA) else LiveQA(qa)

    def ask(question: str) -> str:
        """Answer a question; returns the chat message (HTML): with a model, the chat's last
        message of the turn, the checked written answer (or why it could not be verified) above
        the verbatim one."""
        if generator is None:
            return answer_markdown(live.get(), question)[0]
        *_, (chat, _) = stream_written_answer(live.get(), generator, question, [])
        return chat[-1]["content"]

    def publisher_choices():
        # The live index's publishers, read when a page loads (a sync may have added some).
        names = publishers_of(live.get())
        return gr.Dropdown(choices=names, visible=bool(names))

    names = publishers_of(live.get())
    with gr.Blocks(title="nieuws-QA", analytics_enabled=False) as demo:
        gr.Markdown(INTRO)
        ui = SimpleNamespace(pending=gr.State(""),
                             asked=gr.State([]),  # this browser tab's earlier questions, for follow-ups
                             retry=gr.State(None),  # what the again button re-asks (see _retry)
                             redo=gr.State(None))  # what it is re-asking now
        with gr.Row(equal_height=False):
            with gr.Column(scale=3):
                # The filters apply to every question until they are changed.
                with gr.Row(elem_id="nqa-filters"):
                    since = gr.Textbox(label="Vanaf / From", placeholder="YYYY-MM-DD", max_lines=1,
                                       max_length=40, scale=1, min_width=150, elem_id="nqa-since")
                    until = gr.Textbox(label="Tot en met / Until", placeholder="YYYY-MM-DD", max_lines=1,
                                       max_length=40, scale=1, min_width=150, elem_id="nqa-until")
                    publishers = gr.Dropdown(names, value=[], multiselect=True, visible=bool(names), scale=2,
                                             label="Bronnen (leeg = alle) / Publishers (empty = all)",
                                             min_width=220, elem_id="nqa-publishers")
                ui.controls = [since, until, publishers]
                ui.chatbot = gr.Chatbot(show_label=False, height=620, latex_delimiters=[], buttons=["copy"],
                                        autoscroll=False, feedback_options=None, elem_id="nqa-chat")
                ui.box = gr.Textbox(show_label=False, placeholder="Stel een vraag… / Ask a question…", lines=1,
                                    max_length=MAX_QUESTION_CHARS, submit_btn=True, elem_id="nqa-question")
                ui.again = gr.Button(AGAIN_LABEL, visible=False, size="sm", variant="secondary", elem_id="nqa-again")
            with gr.Column(scale=2, min_width=260):
                # Markdown, not gr.HTML: gr.HTML evaluates templates with eval, which the CSP forbids.
                ui.sources = gr.Markdown(SOURCES_PLACEHOLDER, elem_id="nqa-sources", container=True)
                ui.examples = gr.Examples(EXAMPLES, inputs=ui.box, label="Voorbeeldvragen / Example questions")
                if upload_to is not None:
                    with gr.Accordion("Artikelen toevoegen / Add articles", open=False, elem_id="nqa-upload"):
                        files = gr.File(file_count="multiple", file_types=[".txt", ".md", ".jsonl"], type="filepath",
                                        label=f".txt, .md, .jsonl (max {MAX_UPLOAD_BYTES // 1_000_000} MB)")
                        send = gr.Button("Toevoegen / Add")
                        status = gr.Markdown(elem_id="nqa-upload-status")
                    send.click(lambda f: (upload_articles(live, Path(upload_to), f), None), files, [status, files],
                               api_visibility="private").then(publisher_choices, None, publishers,
                                                              api_visibility="private")
        if generator is None:
            _plain_events(live, ui)
        else:
            _written_answer_events(live, generator, ui)
        ui.chatbot.clear(lambda: (SOURCES_PLACEHOLDER, [], gr.Button(visible=False), None), None,
                         [ui.sources, ui.asked, ui.again, ui.retry], api_visibility="private")
        demo.load(publisher_choices, None, publishers, queue=False, api_visibility="private")
        gr.api(ask, api_name="ask")
    # The model and indexes are shared and searching is read-only (the embedder serialises its
    # own encodes), so a few questions may run at once; a bounded queue refuses floods.
    demo.queue(default_concurrency_limit=4, max_size=64)
    return demo


class _SecurityHeaders:
    """ASGI middleware: the CSP as a response header too (the <meta> only applies once parsed)."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        async def send_with_headers(message):
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), (b"content-security-policy", CSP.encode()),
                                      (b"x-content-type-options", b"nosniff"), (b"referrer-policy", b"no-referrer")]
            await send(message)

        await self.app(scope, receive, send_with_headers if scope["type"] == "http" else send)


def launch_app(demo: gr.Blocks, *, host: str = "127.0.0.1", port: int = 7860, block: bool = True, **kwargs):
    """Serve the app locally with the theme, CSS and Content-Security-Policy; nothing is shared."""
    theme = gr.themes.Default(primary_hue="amber", font=(gr.themes.LocalFont("Source Sans Pro", weights=(400, 700)),
                                                         "ui-sans-serif", "system-ui", "sans-serif"))
    # The bundled SemiBold (600) font files are incomplete subsets; stick to 400 and 700.
    theme = theme.set(prose_header_text_weight="700", button_large_text_weight="700", button_medium_text_weight="700")
    return demo.launch(server_name=host, server_port=port, share=False, prevent_thread_lock=not block,
                       head=HEAD, css=CSS, theme=theme, footer_links=[], max_file_size=MAX_UPLOAD_BYTES,
                       app_kwargs={"middleware": [Middleware(_SecurityHeaders)]}, **kwargs)


def load_or_build(index: str, corpus: str, model: str | None) -> QA:
    """Open the index, syncing it first (with progress on the console) if it does not fit the
    corpus: only new and changed articles are embedded."""

    def announce(reason: str) -> None:
        print(f"Indexing {corpus}/ into {index}/ first (reason: {reason})", flush=True)

    def done(report) -> None:
        print(f"Indexed: {report.summary()}", flush=True)

    return QA.open_or_build([corpus], index, model, progress=True, on_build=announce, on_sync=done)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="nieuws-QA chat: questions about Dutch news, answered with cited passages.")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=7860)
    p.add_argument("--index", default="index", help="index folder (default: index/)")
    p.add_argument("--corpus", default="seeds", help="corpus folder, indexed when the index is missing or stale (default: seeds/)")
    p.add_argument("--model", default=None, help="sentence-transformers model name or folder (default: bundled multilingual-e5-small)")
    p.add_argument("--watch", type=float, metavar="SECONDS",
                   help="look at the corpus folder every SECONDS and sync the index when its files changed")
    p.add_argument("--allow-upload", action="store_true",
                   help="let visitors add .txt/.md/.jsonl articles to the corpus folder (off by default; see SECURITY.md)")
    p.add_argument("--llm-url", default=None, metavar="URL",
                   help="also stream a written answer from the language model at this OpenAI-compatible endpoint "
                        "(e.g. http://127.0.0.1:8080/v1; default $NIEUWS_QA_LLM_URL; API key from "
                        "$NIEUWS_QA_LLM_API_KEY), shown as the answer only if it passes the grounding check")
    p.add_argument("--llm-model", default=None, metavar="NAME", help="the model to ask (default $NIEUWS_QA_LLM_MODEL)")
    p.add_argument("--backend", default=None, metavar="URL",
                   help="answer from a `qa serve` endpoint (a sharded index, SCALING.md) instead of a local index; "
                        "--index, --corpus and --model are then not used")
    args = p.parse_args(argv)
    if args.backend and (args.watch or args.allow_upload):
        p.error("--watch and --allow-upload need a local index; the --backend server syncs its own shards")
    if args.watch is not None and not args.watch > 0:
        p.error("--watch takes a number of seconds above 0")
    if (args.watch or args.allow_upload) and not Path(args.corpus).is_dir():
        p.error(f"--watch and --allow-upload need --corpus to be a folder; {args.corpus} is not one")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # gradio's own start-up checks
    try:
        generator = load_generator(args.llm_url, args.llm_model)  # before the slow part: a bad option fails fast
        qa = RemoteQA(args.backend) if args.backend else load_or_build(args.index, args.corpus, args.model)
    except QAError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    live = qa if args.backend else LiveQA(qa, args.index)
    if args.watch:
        Watcher(live, args.corpus, args.watch).start()
    demo = build_app(live, upload_to=args.corpus if args.allow_upload else None, generator=generator)
    if generator is not None:
        # The model and the server's address, never the key (nor credentials in the URL).
        where = urlsplit(generator.url)
        port = f":{where.port}" if where.port else ""
        print(f"Written answers from {generator.model} at {where.scheme}://{where.hostname}{port}{where.path}, "
              "shown only when checked against the passages", flush=True)
    launch_app(demo, host=args.host, port=args.port, block=False, quiet=True)
    # The first encode pays torch's warm-up (seconds): pay it now, while the first visitor's page loads.
    threading.Thread(target=answer_markdown, args=(qa, EXAMPLES[0]), daemon=True).start()
    print(f"nieuws-QA is ready on http://{args.host}:{args.port} (Ctrl+C stops it)", flush=True)
    demo.block_thread()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
