"""What the index knows about each article as news — the days it covers, its publisher, its
wire-copy cluster — and the filters and recency a question is searched with.

Stored per document, in the order of the document table (index.py), and spread over the chunk
rows with the table of each document's rows::

    doc_days.npy       int32 (documents, 2): first and last day (date.toordinal()); 0 = no readable date
    doc_publisher.npy  int32 (documents,): index into publishers.json; -1 = none
    doc_minhash.npy    uint32 (documents, wire.NUM_PERM): each article's MinHash signature
    doc_source.npy     int64 (documents,): a hash of where it appeared (its publisher, else its file)
    doc_cluster.npy    int32 (documents,): the document row of its wire cluster's representative
                       (itself for an article without copies)

A wire copy is the same story from another source: near-duplicates from one source (one
publisher, or one file when no publisher is named — an update, overlapping excerpts, the
passages of an evaluation set) stay apart.

A date filter keeps the articles whose days overlap the asked range ("2022-10" covers the whole
month); an article without a readable date is left out of every date-filtered question.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import numpy as np

from . import wire
from .corpus import Document
from .errors import IndexCorruptError
from .when import DayRange, article_range, parse_day

DAYS_FILE, PUBLISHER_FILE, PUBLISHERS_FILE = "doc_days.npy", "doc_publisher.npy", "publishers.json"
SIGNATURE_FILE, SOURCE_FILE, CLUSTER_FILE = "doc_minhash.npy", "doc_source.npy", "doc_cluster.npy"
FILES = (DAYS_FILE, PUBLISHER_FILE, PUBLISHERS_FILE, SIGNATURE_FILE, SOURCE_FILE, CLUSTER_FILE)
# Recency: a hit's fused score times 1 - RECENCY_WEIGHT + RECENCY_WEIGHT * 2 ** (-age / HALF_LIFE),
# its article's age in days before the reference date: a story of today keeps its score, one of a
# month ago loses a quarter, an old or undated one half. Relevance still counts more than age.
RECENCY_WEIGHT, RECENCY_HALF_LIFE_DAYS = 0.5, 30.0


@dataclass(frozen=True)
class Filters:
    """Which articles a question searches: a day range (inclusive, None = open), publishers, and
    one article (its doc_id: a follow-up searches the article its conversation is on).

    `from_question` is the time expression the day range was read from ("in oktober 2022"), None
    when the range was given explicitly or there is none. `article` is set only for a follow-up's
    inner search (`QA._conversation_hits`), so answers never report it.
    """

    since: date | None = None
    until: date | None = None
    publishers: tuple[str, ...] | None = None
    from_question: str | None = None
    article: str | None = None

    def __post_init__(self) -> None:
        if self.since and self.until and self.since > self.until:
            raise ValueError(f"since ({self.since}) is after until ({self.until})")
        if self.publishers is not None:
            object.__setattr__(self, "publishers", tuple(self.publishers))

    def __bool__(self) -> bool:
        return self.dated or self.publishers is not None or self.article is not None

    @property
    def dated(self) -> bool:
        return self.since is not None or self.until is not None

    def to_dict(self) -> dict:
        return {"since": self.since and self.since.isoformat(), "until": self.until and self.until.isoformat(),
                "publishers": list(self.publishers) if self.publishers is not None else None,
                "from_question": self.from_question}

    def label(self, language: str) -> str:
        """The date range as a reader says it ("oktober 2022"), "" without one."""
        return DayRange(self.since, self.until).label(language) if self.dated else ""


@dataclass(frozen=True)
class DocNews:
    """One document's news data while a generation is written."""

    days: tuple[int, int]
    publisher: str | None
    signature: np.ndarray
    source: int   # source_key(...)

    @classmethod
    def of(cls, doc: Document, text: str, signature: np.ndarray | None = None) -> DocNews:
        """A document's news data (`signature`: its stored MinHash, else computed from `text`)."""
        return cls(days_of(doc.date), doc.publisher, wire.signature(text) if signature is None else signature,
                   source_key(doc))


def source_key(doc: Document) -> int:
    """Where an article appeared, as a number: its publisher, else its corpus file."""
    name = f"publisher:{doc.publisher}" if doc.publisher else f"file:{doc.source}"
    return int.from_bytes(hashlib.sha256(name.encode("utf-8")).digest()[:8], "little", signed=True)


def make_filters(since: date | str | None = None, until: date | str | None = None,
                 publishers: Iterable[str] | str | None = None) -> Filters:
    """Filters from API or command-line values (see `as_day`; one publisher may be a string)."""
    if isinstance(publishers, str):
        publishers = (publishers,)
    return Filters(as_day(since), as_day(until, last=True), tuple(publishers) if publishers is not None else None)


def as_day(value: date | str | None, *, last: bool = False) -> date | None:
    """A day from a date or "YYYY-MM-DD"; "YYYY-MM" and "YYYY" give their first day (their last
    with `last`, for an "until").

    Raises:
        ValueError: the value is not such a date.
    """
    if value is None or isinstance(value, date):
        return value
    days = parse_day(str(value))
    return days.until if last else days.since


def days_of(value) -> tuple[int, int]:
    """An article date as (first day, last day) ordinals; (0, 0) when it cannot be read."""
    found = article_range(value)
    return (found.since.toordinal(), found.until.toordinal()) if found else (0, 0)


def write(folder: Path, doc_ids: Sequence[str], news: Sequence[DocNews], text_of: Callable[[str], str]) -> list[str]:
    """Write the news tables of a generation's documents (in document-table order), finding the
    wire clusters among them; `text_of(doc_id)` is an article's text (for the exact check)."""
    days = np.array([n.days for n in news], np.int32).reshape(-1, 2)
    names = sorted({n.publisher for n in news if n.publisher})
    number = {name: i for i, name in enumerate(names)}
    publisher = np.array([number.get(n.publisher, -1) for n in news], np.int32)
    signatures = np.stack([n.signature for n in news]) if news else np.zeros((0, wire.NUM_PERM), np.uint32)
    source = np.array([n.source for n in news], np.int64)
    row = {doc_id: i for i, doc_id in enumerate(doc_ids)}
    cluster = np.arange(len(doc_ids), dtype=np.int32)
    for doc_id, rep in wire_copies(doc_ids, signatures, text_of, days[:, 0], source).items():
        cluster[row[doc_id]] = row[rep]
    for name, array in ((DAYS_FILE, days), (PUBLISHER_FILE, publisher), (SIGNATURE_FILE, signatures),
                        (SOURCE_FILE, source), (CLUSTER_FILE, cluster)):
        np.save(folder / name, array, allow_pickle=False)
    (folder / PUBLISHERS_FILE).write_text(json.dumps(names, ensure_ascii=False), encoding="utf-8")
    return list(FILES)


def wire_copies(doc_ids: Sequence[str], signatures: np.ndarray, text_of: Callable[[str], str], first_days: Sequence[int],
                sources: Sequence[int]) -> dict[str, str]:
    """The wire clusters (wire.clusters) made only of copies from another source than the
    representative's (see the module docstring): {doc_id: representative doc_id} for every member
    of a cluster of two or more, representatives included. `first_days`: each article's first
    day ordinal (0: none; the earliest article represents its cluster); `sources`: source_key."""
    found = wire.clusters(list(doc_ids), signatures, text_of, dates=[int(d) or None for d in first_days])
    source = dict(zip(doc_ids, np.asarray(sources).tolist()))
    copies = {d: r for d, r in found.items() if d != r and source[d] != source[r]}
    return {**copies, **{r: r for r in copies.values()}}


class News:
    """The news tables of an opened generation, and per-row views of them.

    Args:
        days, publisher, cluster: the per-document arrays (see the module docstring).
        publishers: the publisher names.
        doc_rows: each document's (first chunk row, number of chunks).
    """

    def __init__(self, days: np.ndarray, publisher: np.ndarray, publishers: list[str], cluster: np.ndarray,
                 doc_rows: np.ndarray, signatures: np.ndarray | None = None, sources: np.ndarray | None = None):
        self.days, self.publisher, self.publishers, self.cluster = days, publisher, publishers, cluster
        self.signatures, self.sources = signatures, sources
        # The documents of each cluster with copies, found once: `copies` runs for every hit of
        # every question, where comparing all documents' clusters would cost O(documents) each.
        shared = np.flatnonzero(np.bincount(cluster, minlength=len(cluster))[cluster] > 1)
        shared = shared[np.argsort(cluster[shared], kind="stable")]
        groups = np.split(shared, np.flatnonzero(np.diff(cluster[shared])) + 1) if len(shared) else []
        self._members = {int(cluster[g[0]]): g for g in groups}
        order = np.argsort(doc_rows[:, 0], kind="stable")
        # The document of each chunk row: the rows of the documents, taken in row order, tile 0..n.
        self.row_doc = np.repeat(order, doc_rows[order, 1]).astype(np.int32)
        known = days[:, 0] > 0
        self.undated = int((~known).sum())
        self.newest = date.fromordinal(int(days[known, 1].max())) if known.any() else None

    @classmethod
    def load(cls, folder: Path, doc_rows: np.ndarray, *, signatures: bool = False) -> News:
        """Open a generation's news tables (with the signatures, for a sync that reuses them).

        Raises:
            IndexCorruptError: they cannot be read, or do not fit the documents.
        """
        names = (DAYS_FILE, PUBLISHER_FILE, CLUSTER_FILE) + ((SIGNATURE_FILE, SOURCE_FILE) if signatures else ())
        try:
            arrays = [np.load(folder / name, allow_pickle=False, mmap_mode="r") for name in names]
            publishers = json.loads((folder / PUBLISHERS_FILE).read_text(encoding="utf-8"))
        except (ValueError, OSError, EOFError) as exc:
            raise IndexCorruptError(f"cannot read the news tables in {folder} ({exc}); rebuild with `qa build`") from exc
        days, publisher, cluster = (np.asarray(a) for a in arrays[:3])
        n = len(doc_rows)
        if (days.shape != (n, 2) or publisher.shape != (n,) or cluster.shape != (n,) or not isinstance(publishers, list)
                or (n and (publisher.max() >= len(publishers) or cluster.min() < 0 or cluster.max() >= n))
                or (signatures and (arrays[3].shape != (n, wire.NUM_PERM) or arrays[4].shape != (n,)))):
            raise IndexCorruptError(f"the news tables in {folder} do not fit its {n} documents; rebuild with `qa build`")
        return cls(days, publisher, publishers, cluster, doc_rows, *(arrays[3:5] if signatures else ()))

    def doc(self, i: int) -> DocNews:
        """Document i's news data as stored (for a sync that keeps the document)."""
        p = int(self.publisher[i])
        return DocNews(tuple(self.days[i].tolist()), self.publishers[p] if p >= 0 else None, np.array(self.signatures[i]),
                       int(self.sources[i]))

    def summary(self, doc_id: Callable[[int], str], shown: int = 10) -> dict:
        """What `qa info` says about the articles as news (`doc_id(i)`: document i's id)."""
        known = self.days[:, 0] > 0
        undated = np.flatnonzero(~known)
        sizes = np.bincount(self.cluster, minlength=len(self.cluster))
        return {
            "oldest": date.fromordinal(int(self.days[known, 0].min())).isoformat() if known.any() else None,
            "newest": self.newest and self.newest.isoformat(),
            "publishers": len(self.publishers),
            "wire_clusters": int((sizes > 1).sum()), "wire_copies": int((sizes[sizes > 1] - 1).sum()),
            "undated": self.undated, "undated_examples": [doc_id(int(i)) for i in undated[:shown]],
        }

    def rows(self, filters: Filters | None) -> np.ndarray | None:
        """The chunk rows a question with these filters' dates and publishers may cite (None:
        every row). `filters.article` is left to the caller, who knows the document ids
        (`QA.legs`)."""
        if not filters:
            return None
        keep = np.ones(len(self.days), bool)
        if filters.since:
            keep &= self.days[:, 1] >= filters.since.toordinal()
        if filters.until:
            keep &= (self.days[:, 0] > 0) & (self.days[:, 0] <= filters.until.toordinal())
        if filters.publishers is not None:
            wanted = {p.casefold() for p in filters.publishers}
            ids = [i for i, name in enumerate(self.publishers) if name.casefold() in wanted]
            keep &= np.isin(self.publisher, ids)
        return keep[self.row_doc]

    def recency(self, rows: Sequence[int], now: date) -> np.ndarray:
        """The recency factor of each row's article (see RECENCY_WEIGHT)."""
        last = self.days[self.row_doc[np.asarray(rows, np.int64)], 1].astype(np.float64)
        age = np.where(last > 0, np.maximum(now.toordinal() - last, 0), np.inf)
        return 1 - RECENCY_WEIGHT + RECENCY_WEIGHT * np.exp2(-age / RECENCY_HALF_LIFE_DAYS)

    def copies(self, row: int) -> tuple[int, np.ndarray]:
        """The document of a chunk row, and every document of its wire cluster (itself included)."""
        doc = int(self.row_doc[row])
        return doc, self._members.get(int(self.cluster[doc]), np.array([doc]))
