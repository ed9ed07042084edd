"""The `QA` facade: build an index from news texts, open it, search it, answer questions.

A question goes one way: `prepare` (check, language, terms, vector) -> `retrieve` (both legs,
fused) -> `answer.assemble` (citations, highlights, no-answer rule). `search` stops after
retrieval, `ask` goes on to the answer; both take one immutable `SearchSettings`.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable, Sequence
from dataclasses import replace
from datetime import date
from pathlib import Path
from typing import Protocol

import numpy as np

from . import conversation, store
from .answer import Answer, SentenceVectors, assemble
from .chunking import ChunkSettings
from .conversation import MAX_HISTORY, leans_on_context, search_terms, search_vector
from .corpus import as_list, iter_corpus_files
from .dense import KINDS as DENSE_KINDS
from .embedding import Embedder, load_embedder
from .errors import IndexCorruptError, IndexFormatError, IndexMissingError, ModelMismatchError, QAError
from .fusion import Hit, SearchSettings, dbsf, rrf
from .index import Generation, open_live, stale_reason
from .language import detect_language
from .news import Filters, News, as_day, make_filters
from .query import MAX_QUESTION_CHARS, Query, check_question
from .store import read_manifest
from .sync import SyncReport
from .sync import add as add_articles
from .sync import remove as remove_articles
from .sync import sync as sync_corpus
from .when import asks_for_latest, find_time

# Hits searched beyond k: they stand in for hits whose highlight an earlier citation already shows
# (neighbouring chunks share a sentence; answer.assemble).
SPARE_HITS = 3

__all__ = ["QA", "MAX_QUESTION_CHARS", "check_question", "describe_index", "stale_reason", "SearchSettings", "rank",
           "HitNews"]


class QA:
    """An opened index plus the embedder that built it.

    Use `QA.build(paths)` to index a corpus, `QA.load(index_dir)` to open an index,
    `QA.open_or_build(paths)` for "open it, syncing it first if it does not fit the corpus", and
    `QA.sync`/`QA.add`/`QA.remove` to update an index without embedding again what it holds.
    A `QA` is never changed after it is made, so threads may share one.
    """

    def __init__(self, index: Generation, embedder: Embedder, settings: SearchSettings | None = None):
        self.index, self.embedder = index, embedder
        self.folder, self.manifest = index.folder, index.manifest
        self.chunks, self.docs, self.vectors = index.chunks, index.docs, index.vectors
        self.dense, self.bm25, self.analyzer = index.dense, index.bm25, index.analyzer
        self.news = index.news
        # Fusion is a query-time setting, not part of the index: an index built before the
        # defaults were re-tuned gets the current ones.
        self.settings = settings or SearchSettings()
        self._sentence_vectors = SentenceVectors(embedder, stored=index.sentences)

    # ------------------------------------------------------------------ opening

    @classmethod
    def build(cls, paths: Iterable[str | Path] = ("seeds",), index_dir: str | Path = "index", model: str | None = None,
              *, skip_bad: bool = False, progress: bool = False, chunking: ChunkSettings | None = None,
              dense: str = "auto", embedder: Embedder | None = None, sentence_vectors: bool = False) -> QA:
        """Read a corpus, chunk, embed and index it, and write the index atomically.

        Args:
            paths: files or folders with .txt/.md/.jsonl news texts.
            index_dir: where the index lives.
            model: sentence-transformers name or folder (default: bundled multilingual-e5-small).
            skip_bad: skip unreadable files with a warning instead of failing.
            progress: show a progress bar while embedding.
            chunking: chunk size and overlap.
            dense: the dense index kind: "flat" (exact), "hnsw" (approximate), or "auto" (flat
                up to dense.HNSW_THRESHOLD chunks, hnsw above); recorded in the manifest.
            embedder: an already loaded embedder (overrides `model`).
            sentence_vectors: also embed and keep every sentence, so an answer's highlights need
                no embedding (`QA.ask` 4-20x faster the first time a passage is cited; the build
                embeds ~1.8-2x as long: BENCHMARKS.md); syncs keep them up to date.

        Raises:
            CorpusError: a corpus file is unreadable (and skip_bad is off), or there is none.
            ModelError: the model cannot be loaded.
        """
        if dense not in DENSE_KINDS:
            raise ValueError(f"dense must be one of {', '.join(DENSE_KINDS)}, got {dense!r}")
        if embedder is None:
            iter_corpus_files(paths)  # a missing path is reported before the model takes seconds to load
            embedder = load_embedder(model)
        # A build is a sync that reuses nothing (sync.py): one way to write a generation.
        report = sync_corpus(paths, index_dir, embedder=embedder, chunking=chunking or ChunkSettings(), dense=dense,
                             skip_bad=skip_bad, progress=progress, rebuild=True, sentence_vectors=sentence_vectors)
        return cls._serve_written(report, index_dir, embedder)

    @classmethod
    def _serve_written(cls, report: SyncReport, index_dir: str | Path, embedder: Embedder) -> QA:
        # Served exactly as QA.load serves it: the tables and indexes read back from disk (from
        # the generation just written, even if another build has replaced it since).
        folder = Path(report.index)
        return cls._serve(Generation.open(folder, read_manifest(folder), index_dir=index_dir), embedder=embedder)

    @classmethod
    def sync(cls, paths: Iterable[str | Path] = ("seeds",), index_dir: str | Path = "index", model: str | None = None,
             *, embedder: Embedder | None = None, skip_bad: bool = False, progress: bool = False,
             dense: str | None = None, chunking: ChunkSettings | None = None,
             sentence_vectors: bool | None = None) -> SyncReport:
        """Bring the index in line with the corpus: new and changed articles are chunked and
        embedded, unchanged chunks keep their vectors, vanished articles leave the index.

        A new generation is written and swapped in atomically, like a build; `QA.load` afterwards
        serves it. Another model or other chunking than the index's embeds everything again (the
        report's `rebuilt` says why). Arguments as for `build`, except that `model`, `dense`,
        `chunking` and `sentence_vectors` default to what the index was made with (sync.sync has
        the details).

        Returns:
            What changed: documents added/changed/removed/unchanged, chunks embedded/reused/removed.

        Raises:
            CorpusError, ModelError, IndexWriteError: as for `build`; the live index is unchanged.
        """
        return sync_corpus(paths, index_dir, model=model, embedder=embedder, chunking=chunking, dense=dense,
                           skip_bad=skip_bad, progress=progress, sentence_vectors=sentence_vectors)

    @classmethod
    def add(cls, files: Iterable[str | Path], index_dir: str | Path = "index", *, embedder: Embedder | None = None,
            skip_bad: bool = False, progress: bool = False) -> SyncReport:
        """Add the articles of these files to the index, replacing articles with the same ids.

        Raises:
            CorpusError, IndexWriteError: as for `sync`.
            SyncError: the index was made with other settings or by an older version (sync it).
        """
        return add_articles(files, index_dir, embedder=embedder, skip_bad=skip_bad, progress=progress)

    @classmethod
    def remove(cls, doc_ids: Iterable[str], index_dir: str | Path = "index") -> SyncReport:
        """Remove these articles (by doc_id) from the index.

        Raises:
            SyncError: an id is not in the index (then nothing is removed).
            IndexWriteError: as for `sync`.
        """
        return remove_articles(doc_ids, index_dir)

    @classmethod
    def load(cls, index_dir: str | Path = "index", *, model: str | None = None, embedder: Embedder | None = None,
             verify: bool = True, settings: SearchSettings | None = None) -> QA:
        """Open an index, checking its format, checksums and (if given) the requested model.

        Args:
            index_dir: the index folder.
            model: check that the index was built with this model.
            embedder: an already loaded embedder (default: the model the index was built with).
            verify: check every file's checksum (off: only sizes and formats are checked).
            settings: the default search settings of the opened QA (default: SearchSettings()).

        Raises:
            IndexMissingError, IndexCorruptError, IndexFormatError: the index cannot be used as is.
            ModelMismatchError: `model` differs from the model the index was built with.
        """
        return cls._serve(open_live(index_dir, verify=verify), model=model, embedder=embedder, settings=settings)

    @classmethod
    def _serve(cls, index: Generation, *, model: str | None = None, embedder: Embedder | None = None,
               settings: SearchSettings | None = None) -> QA:
        built_with = index.manifest.get("model", {}).get("name")
        wanted = model or (embedder.identity.name if embedder else None)
        if wanted and wanted != built_with:
            raise ModelMismatchError(
                f"the index in {index.folder.parent} was built with {built_with!r}, not {wanted!r}; "
                f"rebuild it with `qa build --model {wanted}` or drop --model"
            )
        embedder = embedder or load_embedder(built_with)
        if embedder.dim != index.dense.dim:
            raise ModelMismatchError(f"model {built_with!r} gives {embedder.dim}-d vectors, the index has {index.dense.dim}-d")
        return cls(index, embedder, settings)

    @classmethod
    def open_or_build(cls, paths: Iterable[str | Path] = ("seeds",), index_dir: str | Path = "index",
                      model: str | None = None, *, embedder: Embedder | None = None, follow: bool = True,
                      progress: bool = False, on_build: Callable[[str], None] | None = None,
                      on_sync: Callable[[SyncReport], None] | None = None) -> QA:
        """Open the index, syncing it with `paths` first when it cannot serve them as it is.

        The one policy of the CLI, the app and evaluation. An index is built when it is missing,
        and with `follow` synced when its corpus files differ from those under `paths` or its
        analyzer is outdated (unchanged chunks keep their vectors), or built again when it is
        damaged or was built with another model than the one asked for (the sync says so).
        Without `follow`, only a missing index is built: an index someone built from another
        corpus is served as it is, and any other problem is raised.

        Args:
            on_build: called with the reason just before a sync or build starts.
            on_sync: called with the report when it is done.
        """
        paths = as_list(paths)
        if follow:
            reason = stale_reason(index_dir, paths)
            if reason is None:
                try:
                    return cls.load(index_dir, model=model, embedder=embedder)
                except (ModelMismatchError, IndexCorruptError, IndexFormatError) as exc:
                    reason = str(exc)
        else:
            try:
                return cls.load(index_dir, model=model, embedder=embedder)
            except IndexMissingError as exc:
                reason = str(exc)
        if on_build:
            on_build(reason)
        # The model serves the result too, so it is loaded once, here.
        embedder = embedder or load_embedder(model or _built_with(index_dir))
        report = sync_corpus(paths, index_dir, embedder=embedder, progress=progress)
        if on_sync:
            on_sync(report)
        return cls._serve_written(report, index_dir, embedder)

    # ------------------------------------------------------------------ questions

    def prepare(self, question: str, settings: SearchSettings | None = None, history: Sequence[str] = (), *,
                filters: Filters | None = None, now: date | None = None, read_time: bool = True,
                recency: bool | None = None) -> Query:
        """Check a question and compute what the legs of `settings.mode` need (terms, vector).

        Args:
            history: the earlier questions of a conversation, oldest first; a question that
                leans on the one before it (conversation.py) carries it as its `context`.
            filters: the articles to search (dates, publishers).
            now: the reference date of relative time expressions ("vorige week"; default: the
                newest article's date, so an archive answers as of its own time).
            read_time: read a date range from the question's words ("in oktober 2022") when
                `filters` has none; the terms and vector are then those of the rest of it.
            recency: weigh newer articles up (default: when the question asks for the latest).

        Raises:
            QuestionError: the question (or an earlier one) is empty or longer than MAX_QUESTION_CHARS.
        """
        text = check_question(question)
        language = detect_language(text)
        filters, searched = filters or Filters(), text
        # Only an index with dated articles reads time words: in an undated one, a date range
        # would leave nothing to cite.
        if read_time and not filters.dated and self.news is not None and self.news.newest is not None:
            found = find_time(text, language, now or self.reference_date)
            if found is not None:
                searched = found.rest or text
                filters = replace(filters, since=found.range.since, until=found.range.until, from_question=found.text)
        mode = (settings or self.settings).mode
        terms = tuple(self.analyzer.analyze(searched, language)) if mode != "dense" else None
        vector = self.embedder.encode_queries([searched])[0] if mode != "bm25" else None
        latest = asks_for_latest(text) if recency is None else recency
        query = Query(text, language, terms, vector, filters=filters, recency=latest)
        history = list(history)[-MAX_HISTORY:]
        if history and leans_on_context(query):
            # The earlier question lends its words, not its dates: its time words are often about
            # the event ("vorig jaar", "in juli"), and a follow-up that inherited them as a filter
            # lost answers on data/followups_nl (EVALUATION.md).
            context = self.prepare(history[-1], settings, history[:-1], filters=filters, now=now, read_time=False)
            query = replace(query, context=context)
        return query

    @property
    def reference_date(self) -> date:
        """"Today" for relative time expressions: the newest article's date (the wall clock's
        for an index without dated articles)."""
        return (self.news and self.news.newest) or date.today()

    @property
    def publishers(self) -> list[str]:
        """The publishers named in the index (none for an index built before they were stored)."""
        return list(self.news.publishers) if self.news is not None else []

    def retrieve(self, query: Query, settings: SearchSettings) -> list[Hit]:
        """The settings.k best chunks for a prepared question: each leg's top candidates among the
        rows its filters allow, fused; newer articles weighed up for `query.recency`; the wire
        copies of one article collapsed into the earliest version found (news.py)."""
        coverage = self.bm25.coverage(search_terms(query)) if settings.mode == "hybrid" else 0.0
        news = None if self.news is None else GenerationNews(self.news, self.docs, self.reference_date)
        return rank(query, settings, self.legs(query, settings), coverage=coverage, news=news)

    def legs(self, query: Query, settings: SearchSettings) -> dict[str, list[tuple[int, float]]]:
        """Each leg's best max(settings.depth, settings.k) (row, score) pairs, best first, among the
        rows the query's filters allow: the part of `retrieve` that reads the index (a shard of a
        sharded index runs it, and the router `rank`s the merged lists; qa/scale/)."""
        rows = None
        if query.filters:
            if self.news is None:
                raise IndexFormatError(f"the index in {self.folder.parent} was built before date and publisher "
                                       "filters; update it with `qa sync PATH` (no vector is embedded again)")
            rows = self.news.rows(query.filters)
            if query.filters.article is not None:   # one article: its rows (none when this index or shard lacks it)
                try:
                    position = self.docs.position(query.filters.article)
                except KeyError:
                    position = -1
                rows &= self.news.row_doc == position
        depth = max(settings.depth, settings.k)
        legs = {}
        if settings.mode in ("hybrid", "bm25"):
            legs["bm25"] = self.bm25.top_k(search_terms(query), depth, rows)
        if settings.mode in ("hybrid", "dense"):
            legs["dense"] = self.dense.search(search_vector(query), depth, rows)
        return legs

    def search(self, question: str, settings: SearchSettings | None = None, *, k: int | None = None,
               mode: str | None = None, since: date | str | None = None, until: date | str | None = None,
               publishers: Iterable[str] | None = None, now: date | str | None = None, recency: bool | None = None,
               read_time: bool = True) -> list[Hit]:
        """Return the best chunks for a question.

        Args:
            question: the question, Dutch or English.
            settings: how to search (default: this QA's settings, k=10 hybrid).
            k, mode: override the settings' k and mode.
            since, until: only articles whose date lies in this range (inclusive; a date or
                "YYYY-MM-DD"; "YYYY-MM" and "YYYY" mean the month's or year's first or last day).
            publishers: only articles of these publishers (case-insensitive).
            now, recency, read_time: as for `prepare` (a time expression in the question becomes
                the date range when since and until are not given).

        Raises:
            QuestionError: the question is empty or too long.
            ValueError: k, mode, since or until is not allowed.
        """
        settings = (settings or self.settings).but(k=k, mode=mode)
        query = self.prepare(question, settings, filters=make_filters(since, until, publishers), now=as_day(now),
                             read_time=read_time, recency=recency)
        return self.retrieve(query, settings)

    def ask(self, question: str, *, k: int = 5, settings: SearchSettings | None = None,
            history: Sequence[str] = (), since: date | str | None = None, until: date | str | None = None,
            publishers: Iterable[str] | None = None, now: date | str | None = None, recency: bool | None = None,
            read_time: bool = True) -> Answer:
        """Answer a question with up to k cited passages, the answering sentence highlighted.

        Args:
            history: the earlier questions of a conversation, oldest first: a follow-up that
                leans on them is searched with them (`Answer.context` says which).
            since, until, publishers, now, recency, read_time: as for `search`; the filters
                applied are in `Answer.filters`. Time words can be about the event rather than
                the publication ("Hoeveel mensen vluchtten vorig jaar?" in a 2022 article): when
                the date range read from the question leaves no passage that answers, the
                question is answered from the whole archive and `Answer.time_dropped` holds the
                words that were not used as a filter.

        Raises:
            QuestionError: the question is empty or longer than MAX_QUESTION_CHARS.
            ValueError: since or until is not a date.
        """
        settings = (settings or self.settings).but(k=k)
        filters, now = make_filters(since, until, publishers), as_day(now)
        # The highlight compares sentences with the question's terms and vector: prepare both.
        query = self.prepare(question, settings.but(mode="hybrid"), history, filters=filters, now=now,
                             read_time=read_time, recency=recency)
        answer = self._answer(query, settings)
        if query.filters.from_question and not answer.answer_found:
            whole = self._answer(self.prepare(question, settings.but(mode="hybrid"), history, filters=filters, now=now,
                                              read_time=False, recency=recency), settings)
            if whole.answer_found:
                return replace(whole, time_dropped=query.filters.from_question)
        return answer

    def _answer(self, query: Query, settings: SearchSettings) -> Answer:
        # Spare hits replace those whose highlight an earlier citation already shows (assemble).
        hits = self._conversation_hits(query, settings.but(k=settings.k + SPARE_HITS))
        return assemble(query, hits, self.chunks, self.docs, analyzer=self.analyzer,
                        sentence_vectors=self._sentence_vectors, k=settings.k)

    def _conversation_hits(self, query: Query, settings: SearchSettings) -> list[Hit]:
        """`retrieve`; for a follow-up, the article the previous answer came from (its first
        citation, found again the same way: the earlier questions of the chain, at most
        MAX_HISTORY, are searched again) comes first. Its conversation.ARTICLE_PASSAGES best
        passages for the follow-up's own words (one more search, within the article; their scores
        and ranks are that search's) lead the hits, its other passages gain
        conversation.ARTICLE_BONUS times the best hit's score, and wire copies of it are left out
        (the article already stands for its story)."""
        if query.context is None:
            return self.retrieve(query, settings)
        previous = self._conversation_hits(query.context, settings.but(k=1))
        hits = self.retrieve(query, settings.but(k=max(settings.depth, settings.k)))
        if previous and hits:
            article, bonus = self.chunks[previous[0].row].doc_id, conversation.ARTICLE_BONUS * hits[0].score
            hits = rescored(hits, [h.score + bonus * (self.chunks[h.row].doc_id == article) for h in hits])
            if conversation.ARTICLE_PASSAGES and self.news is not None:  # (without news tables: no article filter)
                inside = self.retrieve(replace(query, context=None, filters=replace(query.filters, article=article)),
                                       settings.but(k=conversation.ARTICLE_PASSAGES))
                rows = {h.row for h in inside}
                hits = inside + [h for h in hits if h.row not in rows and article not in h.also]
        return hits[:settings.k]

    def info(self) -> dict:
        """A summary of the opened index and the search settings it answers with (`qa info`)."""
        return self.index.summary(_fusion_summary(self.settings))


class HitNews(Protocol):
    """What `rank` needs to know about the articles of hit rows: their recency factor and wire
    copies (a `QA` reads it from its news tables; a sharded router from its shards' answers)."""

    def recency(self, rows: Sequence[int]) -> np.ndarray:
        """The recency factor of each row's article (news.RECENCY_WEIGHT)."""

    def copies(self, row: int) -> tuple[Hashable, Sequence[Hashable]]:
        """The document of a row, and every document of its wire cluster (itself included)."""

    def cluster(self, doc: Hashable) -> Hashable:
        """A document's wire cluster."""

    def first_day(self, doc: Hashable) -> int:
        """A document's first day (an ordinal; 0: no readable date)."""

    def doc_id(self, doc: Hashable) -> str:
        """A document's id."""


def rank(query: Query, settings: SearchSettings, legs: dict[str, list[tuple[int, float]]], *, coverage: float,
         news: HitNews | None) -> list[Hit]:
    """The part of `QA.retrieve` after the legs: the legs fused, newer articles weighed up for
    `query.recency`, the wire copies of one article collapsed, the best settings.k.

    Args:
        legs: each leg's (row, score) pairs, best first (`QA.legs`, or those of shards merged).
        coverage: the share of the question's search terms found in the corpus (hybrid mode).
        news: the articles of the rows (None: an index without news tables; nothing is collapsed).
    """
    hits = fuse(query, settings, legs, coverage)
    if news is None:
        return hits[:settings.k]
    if query.recency:
        factors = news.recency([h.row for h in hits])
        hits = rescored(hits, [h.score * f for h, f in zip(hits, factors.tolist())])
    return collapse(hits, news)[:settings.k]


def rescored(hits: Sequence[Hit], scores: Sequence[float]) -> list[Hit]:
    """The hits with these scores instead, best first (equal scores: by row)."""
    return sorted((replace(h, score=s) for h, s in zip(hits, scores)), key=lambda h: (-h.score, h.row))


def fuse(query: Query, settings: SearchSettings, legs: dict[str, list[tuple[int, float]]], coverage: float) -> list[Hit]:
    """The legs fused as `settings` says (one leg alone: its own order)."""
    if settings.mode != "hybrid":
        return rrf(legs, k=settings.rrf_k)  # one leg: its own order
    # BM25 only understands the question's words that occur in the corpus: an English
    # question over Dutch news shares a number or a name at best, and its other matches
    # are accidents ("week"). Its weight scales with that coverage, so accidents cannot
    # outvote the dense leg, while a question in the corpus language keeps its full weight.
    terms = search_terms(query)
    if settings.fusion == "rrf":
        weights = {**settings.weights, "bm25": settings.weights.get("bm25", 1.0) * coverage}
        return rrf(legs, k=settings.rrf_k, weights=weights)
    found = round(coverage * len(terms))
    share = coverage * (settings.bm25_share_long if found >= settings.long_terms else settings.bm25_share)
    return dbsf(legs, weights={"bm25": share, "dense": 1.0 - share})


def collapse(hits: list[Hit], news: HitNews) -> list[Hit]:
    """One version per wire-copy cluster: the hits of the earliest-dated copy found among the
    hits (ties: the best hit's), with the other copies in `also`; other copies' hits dropped."""
    copies = {h.row: news.copies(h.row) for h in hits}
    chosen: dict = {}
    for h in hits:
        doc, members = copies[h.row]
        if len(members) > 1:
            cluster = news.cluster(doc)
            day = news.first_day(doc) or 10**9
            if cluster not in chosen or day < (news.first_day(chosen[cluster]) or 10**9):
                chosen[cluster] = doc
    out = []
    for h in hits:
        doc, members = copies[h.row]
        if len(members) == 1:
            out.append(h)
        elif chosen[news.cluster(doc)] == doc:
            out.append(replace(h, also=tuple(news.doc_id(m) for m in members if m != doc)))
    return out


class GenerationNews:
    """`HitNews` of an opened generation's news tables."""

    def __init__(self, news: News, docs, today: date):
        self.news, self.docs, self.today = news, docs, today

    def recency(self, rows: Sequence[int]) -> np.ndarray:
        return self.news.recency(rows, self.today)

    def copies(self, row: int) -> tuple[int, np.ndarray]:
        return self.news.copies(row)

    def cluster(self, doc: int) -> int:
        return int(self.news.cluster[doc])

    def first_day(self, doc: int) -> int:
        return int(self.news.days[doc, 0])

    def doc_id(self, doc: int) -> str:
        return self.docs.records[int(doc)].doc_id


def _built_with(index_dir: str | Path) -> str | None:
    """The model name an index records (None: no readable manifest)."""
    try:
        return store.open_index(Path(index_dir), verify=False)[1]["model"]["name"]
    except (QAError, KeyError, TypeError):
        return None


def describe_index(index_dir: str | Path = "index") -> dict:
    """`QA.load(index_dir).info()` with the default search settings, without loading the model."""
    return open_live(index_dir).summary(_fusion_summary(SearchSettings()))


def _fusion_summary(settings: SearchSettings) -> dict:
    # "k" is the RRF constant (the key predates the other fusion settings).
    return {"k": settings.rrf_k, **settings.fusion_settings()}
