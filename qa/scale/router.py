"""The router of a sharded index: a `QA` whose legs fan out to the shards.

`ShardedQA` prepares a question once (terms, vector, time words: `QA.prepare`), asks every shard
for its legs (`ShardSearcher.legs`, with a deadline), merges each leg over the shards (best
scores first, equal scores by row, as one index's top-k: shards number their rows as one index
over the corpus would), and ranks the merged lists with `api.rank` — the same fusion, recency
and wire-copy collapse as `QA.retrieve` — then assembles the answer with `QA.ask` itself.

A shard that fails or misses the deadline is left out of that answer and named in its status
(`ask_with_status`): the answer is "partly searched", never late and never silently incomplete.
How shards are reached is a `ShardClient`: in-process (`LocalShard`, tests and one machine) or
a Ray Serve handle (serve.py).
"""

from __future__ import annotations

import contextvars
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field, replace
from datetime import date
from typing import Protocol

import numpy as np

from ..analysis import Analyzer
from ..answer import Answer, SentenceVectors
from ..api import QA, rank
from ..conversation import search_terms
from ..corpus import Document
from ..embedding import Embedder
from ..errors import ModelMismatchError, QAError
from ..fusion import Hit, SearchSettings
from ..news import as_day, make_filters
from ..query import Query
from .searcher import ShardLegs, ShardSearcher
from .shards import Layout

TIMEOUT_S = 3.0           # per question and fan-out round, for all shards together
START_TIMEOUT_S = 120.0   # for the shards to describe themselves when the router starts
MAX_TIMEOUT_S = 60.0      # the longest deadline a question may ask for
READ_S = 0.02             # the wait for each answer still unread when the deadline has passed


class ShardClient(Protocol):
    """How the router reaches one shard: `call(method, *args)` runs a `ShardSearcher` method
    there and returns something with `result(timeout)` (and optionally `cancel()`)."""

    name: str

    def call(self, method: str, *args): ...


class LocalShard:
    """A shard searched in this process (tests; one machine)."""

    def __init__(self, searcher: ShardSearcher):
        self.searcher, self.name = searcher, searcher.name

    def call(self, method: str, *args) -> Future:
        future: Future = Future()
        try:
            future.set_result(getattr(self.searcher, method)(*args))
        except Exception as exc:  # noqa: BLE001 - handed to the caller, as a remote call's error would be
            future.set_exception(exc)
        return future


@dataclass(frozen=True)
class Unsearched:
    """A shard left out of an answer, and why."""

    shard: str
    since: date | None
    until: date | None
    reason: str

    def to_dict(self) -> dict:
        return {"shard": self.shard, "since": self.since and self.since.isoformat(),
                "until": self.until and self.until.isoformat(), "reason": self.reason}


@dataclass
class _Call:
    """What one question's retrieval found out, for the answer assembled after it."""

    timeout: float | None = None                  # this question's deadline per fan-out (None: the router's)
    failed: list[Unsearched] = field(default_factory=list)
    owner: dict = field(default_factory=dict)    # row -> the shard that holds it
    chunks: dict = field(default_factory=dict)
    docs: dict = field(default_factory=dict)

    def fail(self, failed: Sequence[Unsearched]) -> None:
        """Record shards left out (each once: `QA.ask` may retrieve twice for one question)."""
        named = {u.shard for u in self.failed}
        self.failed += [u for u in failed if u.shard not in named]


_CALL: contextvars.ContextVar[_Call | None] = contextvars.ContextVar("sharded_call", default=None)


def partial(failed: Sequence[Unsearched]) -> dict | None:
    """The "partial" field of an answer (None: every shard was searched)."""
    if not failed:
        return None
    reason = "; ".join(f"{u.shard} ({u.since or '…'} .. {u.until or '…'}): {u.reason}" for u in failed)
    return {"shards_failed": [u.shard for u in failed], "reason": reason, "unsearched": [u.to_dict() for u in failed]}


class ShardedQA(QA):
    """A `QA` over the shards of a layout, reached through `clients` (one per shard, in order).

    Args:
        clients: one ShardClient per shard of `layout`, in its order.
        embedder: embeds questions (and highlight sentences): the shards' model.
        layout: the shard root's layout (its wire clusters; its shards' names and date ranges).
        timeout: seconds a fan-out waits for all shards together.

    Raises:
        QAError: a shard cannot be reached at start, or the shards disagree on model or analyzer.
        ModelMismatchError: the embedder is not the model the shards were built with.
    """

    def __init__(self, clients: Sequence[ShardClient], embedder: Embedder, layout: Layout, *,
                 settings: SearchSettings | None = None, timeout: float = TIMEOUT_S,
                 start_timeout: float = START_TIMEOUT_S):
        if len(clients) != len(layout.shards):
            raise ValueError(f"{len(clients)} clients for {len(layout.shards)} shards")
        self.clients, self.layout, self.timeout = list(clients), layout, timeout
        found, failed = self._fan_out({i: ("describe",) for i in range(len(clients))}, start_timeout)
        if failed:
            raise QAError("cannot start the router: " + partial(failed)["reason"])
        infos = [found[i] for i in range(len(clients))]
        if any(i["model"] != infos[0]["model"] or i["analyzer"] != infos[0]["analyzer"] for i in infos):
            raise QAError(f"the shards of {layout.root} disagree on the model or analyzer; build them again together")
        if embedder.identity.to_dict() != infos[0]["model"]:
            raise ModelMismatchError(f"the shards were built with {infos[0]['model']}, not {embedder.identity.to_dict()}")
        self.embedder, self.settings = embedder, settings or SearchSettings()
        self.index = None
        self.folder, self.manifest = layout.root, {"model": infos[0]["model"], "analyzer": infos[0]["analyzer"]}
        self.analyzer = Analyzer(**infos[0]["analyzer"]["settings"])
        newest = [date.fromisoformat(i["newest"]) for i in infos if i["newest"]]
        self.news = _Newest(max(newest) if newest else None, sorted({p for i in infos for p in i["publishers"]}))
        self.chunks, self.docs = _CallRows(), _CallDocs({
            doc_id: Document(doc_id, date=shown.get("date"), url=shown.get("url"), publisher=shown.get("publisher"))
            for doc_id, (_, _, shown) in layout.wire.items()})
        self.vectors = self.dense = self.bm25 = None
        self._sentence_vectors = SentenceVectors(embedder)
        self.shard_info = infos
        self._members = layout.members()

    # ------------------------------------------------------------------ questions

    def ask_with_status(self, question: str, *, timeout: float | None = None, **options) -> tuple[Answer, dict | None]:
        """`QA.ask`, and the "partial" status (None: every shard was searched).

        Args:
            timeout: this question's deadline per fan-out, in seconds (default: the router's).
        """
        if timeout is not None and not 0 < timeout <= MAX_TIMEOUT_S:
            raise ValueError(f"timeout must be between 0 and {MAX_TIMEOUT_S:g} seconds, got {timeout!r}")
        token = _CALL.set(_Call(timeout))
        try:
            answer = super().ask(question, **options)
            status = partial(_CALL.get().failed)
            return replace(answer, partial=status), status
        finally:
            _CALL.reset(token)

    def ask(self, question: str, **options) -> Answer:
        """`QA.ask` over the shards (`ask_with_status` also says which were left out)."""
        return self.ask_with_status(question, **options)[0]

    def legs(self, query: Query, settings: SearchSettings) -> dict[str, list[tuple[int, float]]]:
        return self._legs(query, settings, _call())[0]

    def retrieve(self, query: Query, settings: SearchSettings) -> list[Hit]:
        """As `QA.retrieve`, over every shard that answers in time (the others are named in
        `ask_with_status`'s status)."""
        call = _call()
        legs, answers = self._legs(query, settings, call)
        coverage = 0.0
        terms = search_terms(query)
        if settings.mode == "hybrid" and terms and answers:
            known = np.array([a.known for a in answers.values()], bool)
            coverage = float(known.any(axis=0).sum()) / len(terms)
        hits = rank(query, settings, legs, coverage=coverage, news=_MergedNews(answers, self.layout, self._members))
        return self._fetch(hits, call)

    def _legs(self, query: Query, settings: SearchSettings, call: _Call) -> tuple[dict, dict[int, ShardLegs]]:
        found, failed = self._fan_out({i: ("legs", query, settings, self.reference_date)
                                       for i in range(len(self.clients))}, call.timeout or self.timeout)
        call.fail(failed)
        depth = max(settings.depth, settings.k)
        legs: dict[str, list[tuple[int, float]]] = {}
        for i, a in found.items():
            call.owner.update(dict.fromkeys(a.docs, i))
            call.chunks.update(a.chunks)
            call.docs.update(a.documents)
        for leg in dict.fromkeys(leg for a in found.values() for leg in a.legs):  # in the legs' own order
            merged = [pair for a in found.values() for pair in a.legs.get(leg, ())]
            merged.sort(key=lambda pair: (-pair[1], pair[0]))
            legs[leg] = merged[:depth]
        return legs, found

    def _fetch(self, hits: list[Hit], call: _Call) -> list[Hit]:
        """The chunk records of the hits that did not come with the legs, from their shards; hits of
        a shard that fails now are dropped and the shard named. (The wire copies' records are the
        layout's.)"""
        rows: dict[int, list[int]] = {}
        for h in hits:
            if h.row not in call.chunks:
                rows.setdefault(call.owner[h.row], []).append(h.row)
        if rows:
            found, failed = self._fan_out({i: ("records", r) for i, r in rows.items()}, call.timeout or self.timeout)
            call.fail(failed)
            for chunks, documents in found.values():
                call.chunks.update(chunks)
                call.docs.update(documents)
        return [h for h in hits if h.row in call.chunks]

    def _fan_out(self, asked: dict[int, tuple], timeout: float) -> tuple[dict, list[Unsearched]]:
        """Call every asked shard at once and wait for them until the deadline."""
        deadline = time.monotonic() + timeout
        pending, failed = {}, []
        for i, (method, *args) in asked.items():
            try:
                pending[i] = self.clients[i].call(method, *args)
            except Exception as exc:  # noqa: BLE001 - a shard that cannot be called is reported, not raised
                failed.append(self._unsearched(i, _reason(exc)))
        found = {}
        for i, future in pending.items():
            try:
                # Past the deadline an answer that is already there still needs a moment to be read.
                found[i] = future.result(max(READ_S, deadline - time.monotonic()))
            except (TimeoutError, FutureTimeout):  # (one class from Python 3.11 on)
                getattr(future, "cancel", lambda: None)()
                failed.append(self._unsearched(i, f"no answer within {timeout:g} s"))
            except Exception as exc:  # noqa: BLE001 - a shard's failure is reported, never raised or hidden
                failed.append(self._unsearched(i, _reason(exc)))
        return found, failed

    def _unsearched(self, i: int, reason: str) -> Unsearched:
        shard = self.layout.shards[i]
        return Unsearched(shard.name, shard.since, shard.until, reason)

    def info(self) -> dict:
        return {"index": str(self.layout.root), "model": self.manifest["model"], "publishers": self.publishers,
                "shards": [{**s.to_dict(), **{k: i[k] for k in ("chunks", "documents", "newest")}}
                           for s, i in zip(self.layout.shards, self.shard_info)]}


def _reason(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0][:200]}" if text else type(exc).__name__


def _call() -> _Call:
    # retrieve or search outside an ask: a record for this call only (nothing is assembled after it)
    return _CALL.get() or _Call()


class _Newest:
    """What `QA` reads of the news tables outside the legs: the newest article's date and the
    publishers, over all shards."""

    def __init__(self, newest: date | None, publishers: list[str]):
        self.newest, self.publishers = newest, publishers


class _CallRows:
    """The chunk table as `answer.assemble` reads it: the records fetched for this question."""

    def __getitem__(self, row: int):
        return _call().chunks[row]


class _CallDocs:
    """The document table as `answer.assemble` reads it (`get`): the records fetched for this
    question, and what the layout records of wire copies."""

    def __init__(self, copies: dict):
        self.copies = copies

    def get(self, doc_id: str, default=None):
        found = _call().docs.get(doc_id)
        return found if found is not None else self.copies.get(doc_id, default)


class _MergedNews:
    """`api.HitNews` of merged rows: the shards' answers plus the layout's global wire clusters."""

    def __init__(self, answers: dict[int, ShardLegs], layout: Layout, members: dict[str, tuple[str, ...]]):
        self.docs = {r: d for a in answers.values() for r, d in a.docs.items()}
        self.days = {d[0]: d[1] for d in self.docs.values()}
        self.wire, self.members = layout.wire, members

    def recency(self, rows: Sequence[int]) -> np.ndarray:
        return np.array([self.docs[r][2] for r in rows], np.float64)

    def copies(self, row: int) -> tuple[str, tuple[str, ...]]:
        doc = self.docs[row][0]
        found = self.wire.get(doc)
        return doc, self.members[found[0]] if found else (doc,)

    def cluster(self, doc: str) -> str:
        return self.wire[doc][0]

    def first_day(self, doc: str) -> int:
        return self.days[doc]

    def doc_id(self, doc: str) -> str:
        return doc


def local_router(root, embedder: Embedder, *, settings: SearchSettings | None = None,
                 searcher: Callable[[str, int], ShardSearcher] = ShardSearcher) -> ShardedQA:
    """A router over every shard of a root, all searched in this process."""
    layout = Layout.load(root)
    return ShardedQA([LocalShard(searcher(root, i)) for i in range(len(layout.shards))], embedder, layout,
                     settings=settings)


def answer_request(qa: ShardedQA, body: dict) -> dict:
    """`ShardedQA.ask_with_status` for a request body, as the JSON the endpoint returns."""
    if not isinstance(body, dict) or not isinstance(body.get("question"), str):
        raise ValueError('the request must be a JSON object with a "question" string')
    filters = make_filters(body.get("since"), body.get("until"), body.get("publishers"))
    answer, status = qa.ask_with_status(
        body["question"], k=int(body.get("k", 5)), history=list(body.get("history") or ()), since=filters.since,
        until=filters.until, publishers=filters.publishers, now=as_day(body.get("now")),
        recency=body.get("recency"), read_time=bool(body.get("read_time", True)),
        timeout=float(body["timeout"]) if body.get("timeout") is not None else None)
    best = answer.answer_citation
    return {**answer.to_dict(), "answer_citation": best.n if best else None, "partial": status}
