"""A client of `qa serve` (standard library only): `qa ask --server URL`, and `RemoteQA`, the
backend of the chat app's `--backend URL` (POST the question as JSON; serve.py describes the
fields)."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from datetime import date
from functools import cached_property

from ..answer import Answer, Citation, Highlight
from ..errors import QAError, QuestionError
from ..fusion import found_by
from ..news import Filters

TIMEOUT_S = 30.0


def ask(url: str, question: str, *, k: int = 5, history: list[str] = (), since: date | None = None,
        until: date | None = None, publishers=None, now: date | None = None, recency: bool | None = None,
        read_time: bool = True, timeout: float = TIMEOUT_S, shard_timeout: float | None = None) -> dict:
    """POST one question to a `qa serve` endpoint and return its JSON answer.

    Args:
        timeout: how long to wait for the answer; shard_timeout: how long the server may wait for
            its shards for this question (default: its --timeout).

    Raises:
        QuestionError: the server refused the question.
        QAError: the server cannot be reached, answered with an error, or too late.
    """
    body = {"question": question, "k": k, "history": list(history), "since": since and since.isoformat(),
            "until": until and until.isoformat(), "publishers": list(publishers) if publishers is not None else None,
            "now": now and now.isoformat(), "recency": recency, "read_time": read_time, "timeout": shard_timeout}
    return _request(urllib.request.Request(url, data=json.dumps(body).encode("utf-8"), method="POST",
                                           headers={"Content-Type": "application/json"}), timeout)


def info(url: str, *, timeout: float = TIMEOUT_S) -> dict:
    """What a `qa serve` endpoint serves: its shards, model and publishers (GET).

    Raises:
        QAError: the server cannot be reached or answered with an error.
    """
    return _request(urllib.request.Request(url, method="GET"), timeout)


def _request(request: urllib.request.Request, timeout: float) -> dict:
    url = request.full_url
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return json.loads(response.read().decode("utf-8"))
    except ValueError:  # (UnicodeDecodeError and JSONDecodeError are ValueErrors)
        raise QAError(f"the server at {url} did not answer with JSON; is it a `qa serve` endpoint?") from None
    except urllib.error.HTTPError as exc:
        try:
            message = json.loads(exc.read().decode("utf-8")).get("error") or str(exc)
        except ValueError:
            message = str(exc)
        raise (QuestionError if exc.code == 400 else QAError)(f"the server at {url} says: {message}") from None
    except (urllib.error.URLError, TimeoutError, OSError) as exc:
        raise QAError(f"cannot reach the server at {url} ({getattr(exc, 'reason', exc)}); is `qa serve` running?") from None


def answer_from_dict(data: dict) -> Answer:
    """The `Answer` a server's JSON describes (for printing it as `qa ask` prints a local one);
    the citation named by "answer_citation" carries the answer (highlight scores are not sent)."""
    best = data.get("answer_citation")
    citations = []
    for c in data.get("citations", []):
        h = c["highlight"]
        citations.append(Citation(
            n=c["n"], doc_id=c["doc_id"], title=c["title"], date=c["date"], source=c["source"], chunk_id=c["chunk_id"],
            text=c["text"], start=c["start"], end=c["end"], score=c["score"],
            highlight=Highlight(h["text"], h["start"], h["end"], 1.0 if c["n"] == best else 0.0),
            ranks=dict(c.get("ranks") or {}), found_by=found_by(c.get("ranks") or {}), publisher=c.get("publisher"),
            url=c.get("url"), path=c.get("path", ""), duplicates=tuple(c.get("duplicates") or ())))
    f = data.get("filters") or {}
    filters = Filters(_day(f.get("since")), _day(f.get("until")), f.get("publishers"), f.get("from_question"))
    return Answer(data["question"], data["language"], bool(data["answer_found"]), tuple(citations),
                  tuple(data.get("context") or ()), filters=filters, recency=bool(data.get("recency")),
                  time_dropped=data.get("time_dropped"), partial=data.get("partial"))


class RemoteQA:
    """What the chat app asks of a `QA`, answered by a `qa serve` endpoint (`app.py --backend URL`):
    `ask` (a question over HTTP, the JSON answer as an `Answer`, `partial` saying which part of
    the archive could not be searched), `publishers`, and the model's `embedder` (loaded here on
    first use, for checking written answers).

    Raises:
        QAError: the server cannot be reached (checked at once, not at the first question).
    """

    def __init__(self, url: str, *, timeout: float = TIMEOUT_S):
        self.url, self.timeout = url, timeout
        served = info(url, timeout=timeout)
        self.model: dict = served.get("model") or {}
        self.publishers: list[str] = list(served.get("publishers") or ())

    def ask(self, question: str, *, k: int = 5, history=(), since: date | None = None, until: date | None = None,
            publishers=None, now: date | None = None, recency: bool | None = None, read_time: bool = True) -> Answer:
        """`QA.ask` on the server (QuestionError: it refused the question; QAError: it failed)."""
        return answer_from_dict(ask(self.url, question, k=k, history=list(history), since=since, until=until,
                                    publishers=publishers, now=now, recency=recency, read_time=read_time,
                                    timeout=self.timeout))

    @cached_property
    def embedder(self):
        from ..embedding import load_embedder

        return load_embedder(self.model.get("name"))


def partial_note(status: dict | None, language: str) -> str | None:
    """A line for people when part of the archive could not be searched (`Answer.partial`; None:
    all of it was)."""
    if not status:
        return None
    parts = ", ".join(f"{u['shard']} ({u['since'] or '…'} .. {u['until'] or '…'})" for u in status.get("unsearched", []))
    if language == "en":
        return f"(partly searched: {parts} could not be searched: {status['reason']})"
    return f"(gedeeltelijk doorzocht: {parts} kon niet worden doorzocht: {status['reason']})"


def _day(value: str | None) -> date | None:
    return date.fromisoformat(value) if value else None
