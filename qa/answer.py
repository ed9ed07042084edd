"""Answers as cited passages: citations, the highlighted answer sentence, and the no-answer rule."""

from __future__ import annotations

import re
import threading
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from itertools import compress

import numpy as np

from .chunking import Chunk
from .conversation import context_questions
from .corpus import Document
from .embedding import Embedder, sentence_encoder
from .fusion import Hit
from .lexical import Analyzer
from .news import Filters
from .query import Query
from .sentences import SentenceStore, sentence_spans

# A passage answers the question only if its support (Highlight.support) reaches this threshold,
# per question language. The support is the best sentence's cosine to the question (e5 query and
# passage embeddings) plus ANSWER_OVERLAP_WEIGHT times the share of the question's terms found in
# the passage: on the same topic, a passage that answers shares the question's names and words
# (median share 0.71 for answerable Dutch xquad questions, 0.27 for the best passage of a corpus
# without the answer; English questions share names and numbers: 0.20 vs 0.00). English questions
# over Dutch passages score lower than Dutch ones, hence a threshold per language. Calibrated on
# 2,380 xquad_nl questions against their own passages (answerable) and against ntrex_nl, tatoeba
# and kamervragen_nl passages (unanswerable; `qa eval data/xquad_nl --calibrate data/ntrex_nl
# data/tatoeba_nld_eng data/kamervragen_nl`), with the weight and thresholds that keep the native
# questions of kamervragen_nl and ntrex_nl found as often as the cosine alone did (xquad's
# questions were written from their passages and share more words with them than a reader's
# would: its own best weight, 0.1, refused a quarter of kamervragen_nl). Balanced accuracy nl
# 0.876 -> 0.896, en 0.831 -> 0.852 (EVALUATION.md). detect_language only returns these two languages.
NO_ANSWER_THRESHOLD_BY_LANGUAGE = {"nl": 0.856, "en": 0.819}
ANSWER_OVERLAP_WEIGHT = 0.05
# The highlighted sentence is the one most similar to the question (e5 cosine), plus bonuses that
# break near-ties towards the sentence that answers rather than the one that restates the topic:
# LEXICAL_BONUS per fraction of the question's terms in the sentence, where a sentence that points
# back ("Daarvoor zouden …", "Hij …") also counts the terms of the sentence before it; and
# TYPE_BONUS when the sentence holds what the question word asks for (a number for "hoeveel", a
# year or month for "wanneer", a name for "wie"/"waar", a reason for "waarom"). On xquad_nl (the
# gold passage cited) this moved answer-sentence accuracy from 0.811 to 0.829 for Dutch and from
# 0.768 to 0.782 for English questions (EVALUATION.md), with the two-sentence highlights below.
LEXICAL_BONUS = 0.1
TYPE_BONUS = 0.02
# A neighbour that points back ("Daarvoor zouden … zijn uitgenodigd") joins the highlight when it
# holds question terms the best sentence lacks, or when it is nearly as similar to the question:
# its cosine at most NEIGHBOUR_MARGIN below the best one. The second test carries the rule across
# languages, where an English question shares no terms with a Dutch sentence. Chosen on xquad_nl
# (answer-sentence accuracy with the gold chunk given: nl 0.831 -> 0.845, en 0.782 -> 0.804; two
# sentences highlighted for 9-10% of questions instead of 2-4%; 0.03: 0.837 / 0.795, 0.08: 0.848 /
# 0.808 with 13-15%), unchanged on data/followups_nl (EVALUATION.md).
NEIGHBOUR_MARGIN = 0.05
_POINTS_BACK = re.compile(
    r"\W*(?:daarvoor|daarna|daarom|daardoor|daarbij|daarin|daarmee|daar|dat|dit|deze|die|hij|zij|ze|hun|zijn|haar|"
    r"hiervoor|hierdoor|hierbij|dergelijke|this|that|these|those|he|she|it|they|there|its|their)\b", re.IGNORECASE)
# Question word -> what the answering sentence holds, tried in this order.
_EXPECTS = (
    ("number", re.compile(r"\b(?:hoeveel|hoe (?:groot|lang|oud|ver|veel)|welk percentage|how (?:many|much|long|old|large|big|far)|"
                          r"what percentage)\b", re.IGNORECASE)),
    ("time", re.compile(r"\b(?:wanneer|(?:in )?welk(?:e)? (?:jaar|eeuw|maand)|when|(?:in )?(?:what|which) (?:year|century|month))\b",
                        re.IGNORECASE)),
    ("name", re.compile(r"\b(?:wie|wiens|waar|who|whom|whose|where)\b", re.IGNORECASE)),
    ("reason", re.compile(r"\b(?:waarom|why)\b", re.IGNORECASE)),
)
_HOLDS = {
    "number": re.compile(r"\d"),
    "time": re.compile(r"\b(?:1\d{3}|20\d{2})\b|\b(?:januari|februari|maart|april|mei|juni|juli|augustus|september|oktober|"
                       r"november|december|eeuw|january|february|march|may|june|july|august|october|century)\b", re.IGNORECASE),
    # A capitalised word that does not start the sentence.
    "name": re.compile(r"(?<=\S )[A-Z\u00C0-\u00DE][^\W\d_]+"),
    "reason": re.compile(r"\b(?:omdat|doordat|want|daardoor|vanwege|dankzij|because|due to|since)\b", re.IGNORECASE),
}
# Sentence vectors kept for highlights (~1.5 KB each at 384-d).
SENTENCE_CACHE_SIZE = 20_000


@dataclass(frozen=True)
class Highlight:
    """The answering sentence: text and offsets inside the passage; `score` is its cosine to the
    question, `overlap` the share of the question's terms found in the passage."""

    text: str
    start: int
    end: int
    score: float = 0.0
    overlap: float = 0.0

    @property
    def support(self) -> float:
        """How well the passage answers the question: what the no-answer rule compares."""
        return self.score + ANSWER_OVERLAP_WEIGHT * self.overlap

    def to_dict(self) -> dict:
        return {"text": self.text, "start": self.start, "end": self.end}


@dataclass(frozen=True)
class Citation:
    """One cited passage with its source, fused score and per-leg ranks.

    `source` is what a reader wants to see: the publisher when the corpus names one, else the
    corpus file (`path`). `duplicates` are the other copies of the same (wire) article: each a
    dict with "doc_id", "publisher", "date", "url".
    """

    n: int
    doc_id: str
    title: str
    date: str | None
    source: str
    chunk_id: str
    text: str
    start: int
    end: int
    score: float
    highlight: Highlight
    ranks: dict = field(default_factory=dict)
    found_by: str = "both"
    publisher: str | None = None
    url: str | None = None
    path: str = ""
    duplicates: tuple[dict, ...] = ()

    @classmethod
    def of(cls, n: int, hit: Hit, chunk: Chunk, doc: Document | None, highlight: Highlight,
           copies: Sequence[Document] = ()) -> Citation:
        """The n-th citation: a search hit on a chunk of a document (`copies`: its wire copies)."""
        doc = doc or Document(chunk.doc_id)
        duplicates = tuple({"doc_id": d.doc_id, "publisher": d.publisher, "date": d.date, "url": d.url}
                           for d in sorted(copies, key=lambda d: (d.date or "~", d.doc_id)))
        return cls(n=n, doc_id=chunk.doc_id, title=doc.title, date=doc.date, source=doc.publisher or doc.source,
                   chunk_id=chunk.chunk_id, text=chunk.text, start=chunk.start, end=chunk.end,
                   score=round(hit.score, 6), highlight=highlight, ranks=dict(hit.ranks), found_by=hit.found_by,
                   publisher=doc.publisher, url=doc.url, path=doc.source, duplicates=duplicates)

    def to_dict(self) -> dict:
        return {
            "n": self.n, "doc_id": self.doc_id, "title": self.title, "date": self.date,
            "source": self.source, "publisher": self.publisher, "url": self.url, "path": self.path,
            "chunk_id": self.chunk_id, "text": self.text,
            "start": self.start, "end": self.end, "score": self.score,
            "highlight": self.highlight.to_dict(),
            "ranks": {"bm25": self.ranks.get("bm25"), "dense": self.ranks.get("dense")},
            "duplicates": [dict(d) for d in self.duplicates],
        }


@dataclass(frozen=True)
class Generated:
    """A written answer from a language model (qa/generate.py) and the grounding check's verdict:
    shown as the answer only when verified; `reasons` say why not."""

    text: str
    verified: bool
    reasons: tuple[str, ...] = ()
    model: str = ""

    def to_dict(self) -> dict:
        return {"text": self.text, "verified": self.verified, "reasons": list(self.reasons), "model": self.model}


@dataclass(frozen=True)
class Answer:
    """The answer to a question: its language, whether the corpus answers it, and citations."""

    question: str
    language: str
    answer_found: bool
    citations: tuple[Citation, ...] = ()
    context: tuple[str, ...] = ()   # the earlier questions a follow-up was searched with
    generated: Generated | None = None   # a checked written answer, when a model was asked
    filters: Filters = Filters()         # the articles searched (a date range may come from the question)
    recency: bool = False                # newer articles were weighed up
    time_dropped: str | None = None      # time words not used as a filter: within them nothing answered
    partial: dict | None = None          # a sharded index: the shards that could not be searched, and why

    @property
    def answer_citation(self) -> Citation | None:
        """The citation that supports the question best (Highlight.support; None when no answer
        was found): its highlight is the quoted answer.

        Citations stay in retrieval order; the passage ranked first need not hold the best sentence.
        Choosing by support rather than the cosine alone put the answer string in the quoted
        highlight more often on every set (xquad_nl nl 0.784 -> 0.810, en 0.726 -> 0.730, ntrex_nl
        0.806 -> 0.809, tatoeba 0.903 -> 0.904; EVALUATION.md).
        """
        if not self.answer_found or not self.citations:
            return None
        return max(self.citations, key=lambda c: (c.highlight.support, -c.n))

    def to_dict(self) -> dict:
        """The structure `qa ask --json` prints."""
        return {
            "question": self.question, "language": self.language, "answer_found": self.answer_found,
            "citations": [c.to_dict() for c in self.citations], "context": list(self.context) or None,
            "generated": self.generated.to_dict() if self.generated else None,
            "filters": self.filters.to_dict(), "recency": self.recency, "time_dropped": self.time_dropped,
            "partial": self.partial,
        }


def expected_answer(question: str) -> str | None:
    """What the question word asks for: "number", "time", "name", "reason", or None."""
    return next((kind for kind, pattern in _EXPECTS if pattern.search(question)), None)


def best_sentence(
    passage: str,
    spans: list[tuple[int, int]],
    sentence_vectors: np.ndarray,
    query_vector: np.ndarray,
    query_terms: set[str],
    sentence_terms: list[set[str]],
    expects: str | None = None,
) -> Highlight:
    """Pick the answering sentence: cosine to the question plus the term-overlap and answer-type
    bonuses (see LEXICAL_BONUS). When the answer spans two sentences — one of them points back to
    the other ("Daarvoor …"), and the neighbour holds question terms the best one lacks or is
    nearly as similar (NEIGHBOUR_MARGIN) — both are highlighted
    ("… een „informele bijeenkomst” op de agenda staat. Daarvoor zouden de leiders … zijn
    uitgenodigd"). The highlight's score is the best sentence's cosine; its overlap the share of
    the question's terms in the whole passage."""
    cosines = sentence_vectors @ query_vector
    sentences = [passage[a:b] for a, b in spans]
    points_back = [i > 0 and bool(_POINTS_BACK.match(s)) for i, s in enumerate(sentences)]
    context = [t | (sentence_terms[i - 1] if points_back[i] else set()) for i, t in enumerate(sentence_terms)]
    overlap = np.array([len(query_terms & t) / len(query_terms) if query_terms else 0.0 for t in context])
    holds = np.array([bool(expects and _HOLDS[expects].search(s)) for s in sentences], dtype=float)
    best = int(np.argmax(cosines + LEXICAL_BONUS * overlap + TYPE_BONUS * holds))

    def joins(i: int, pointing: int) -> bool:   # sentence i joins the highlight; `pointing` points back
        return points_back[pointing] and bool(query_terms & sentence_terms[i] - sentence_terms[best]
                                              or cosines[i] >= cosines[best] - NEIGHBOUR_MARGIN)

    first = last = best
    if best + 1 < len(spans) and joins(best + 1, best + 1):
        last = best + 1
    elif best > 0 and joins(best - 1, best):
        first = best - 1
    start, end = spans[first][0], spans[last][1]
    share_in_passage = len(query_terms & set().union(*sentence_terms)) / len(query_terms) if query_terms else 0.0
    return Highlight(passage[start:end], start, end, float(cosines[best]), share_in_passage)


def best_support(citations: Sequence[Citation]) -> float:
    """What the no-answer rule compares: the best citation's support (Highlight.support; 0 for none)."""
    return max((c.highlight.support for c in citations), default=0.0)


def answers_question(citations: Sequence[Citation], language: str) -> bool:
    """The no-answer rule: some citation supports the question enough."""
    return bool(citations) and best_support(citations) >= NO_ANSWER_THRESHOLD_BY_LANGUAGE[language]


def assemble(query: Query, hits: Sequence[Hit], chunks: Sequence[Chunk], docs: Mapping[str, Document], *,
             analyzer: Analyzer, sentence_vectors: SentenceVectors, k: int | None = None) -> Answer:
    """Turn search hits into the answer: up to k citations (default: one per hit), each with its
    answering sentence highlighted, and whether the corpus answers the question at all.

    A hit whose highlight shows nothing an earlier citation's does not is left out, and the next
    hit takes its place: neighbouring chunks of an article share a sentence (the chunks overlap),
    and that sentence is often the best one of both.

    Args:
        query: the prepared question, with its terms and vector.
        hits: the search results, best first (more than k leave room for the ones left out).
        chunks: the chunk table (row -> Chunk); docs: doc_id -> Document.
        analyzer: analyses sentences as the question was analysed.
        sentence_vectors: embeds (and caches) the candidate sentences.
    """
    k = len(hits) if k is None else k
    query_terms, expects = set(query.terms), expected_answer(query.text)
    citations: list[Citation] = []
    shown: dict[str, list[tuple[int, int]]] = {}   # doc_id -> the highlighted spans, in document offsets
    position = 0
    while len(citations) < k and position < len(hits):
        # One encode per round for the sentences of all its passages: batching beats one call per passage.
        batch = hits[position:position + k - len(citations)]
        position += len(batch)
        cited = [chunks[hit.row] for hit in batch]
        spans = [sentence_spans(c.text) for c in cited]
        sentences = [[c.text[a:b] for a, b in sp] for c, sp in zip(cited, spans)]
        vectors = sentence_vectors([s for group in sentences for s in group])
        bounds = np.cumsum([0] + [len(group) for group in sentences])
        for i, (hit, chunk) in enumerate(zip(batch, cited)):
            highlight = best_sentence(chunk.text, spans[i], vectors[bounds[i]:bounds[i + 1]], query.vector,
                                      query_terms, [set(analyzer.analyze(s, chunk.lang)) for s in sentences[i]], expects)
            start, end = chunk.start + highlight.start, chunk.start + highlight.end
            if any(a <= start and end <= b for a, b in shown.get(chunk.doc_id, ())):
                continue
            shown.setdefault(chunk.doc_id, []).append((start, end))
            copies = [d for d in map(docs.get, hit.also) if d is not None]
            citations.append(Citation.of(len(citations) + 1, hit, chunk, docs.get(chunk.doc_id), highlight, copies))
    return Answer(query.text, query.language, answers_question(citations, query.language), tuple(citations),
                  tuple(context_questions(query)), filters=query.filters, recency=query.recency)


class SentenceVectors:
    """Passage-side embeddings of sentences, for highlights: looked up in the index's stored
    sentence vectors when it has them (sentences.py; made by the build's passage encoder), else
    embedded (`embedding.sentence_encoder`), with a bounded LRU cache:
    popular passages come back, and their sentences need not be embedded again. Thread-safe.

    Args:
        embedder: embeds the sentences as passages.
        size: how many sentence vectors to keep.
        stored: the index's sentence vectors, if it was built with them.
    """

    def __init__(self, embedder: Embedder, size: int = SENTENCE_CACHE_SIZE, stored: SentenceStore | None = None):
        self.embedder, self.size, self.stored = embedder, size, stored
        self._cache: OrderedDict[str, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._cache)

    def __call__(self, sentences: list[str]) -> np.ndarray:
        """One vector per sentence, in order (a (0, dim) array for none)."""
        with self._lock:
            found = {s: self._cache[s] for s in sentences if s in self._cache}
            for s in found:
                self._cache.move_to_end(s)
        missing = [s for s in dict.fromkeys(sentences) if s not in found]
        if missing and self.stored is not None:
            rows = self.stored.rows(missing)
            stored = rows >= 0
            found.update(zip(compress(missing, stored), self.stored.vectors_at(rows[stored])))
            missing = list(compress(missing, ~stored))
        if missing:
            found.update(zip(missing, sentence_encoder(self.embedder)(missing)))
            with self._lock:
                self._cache.update((s, found[s]) for s in missing)
                while len(self._cache) > self.size:
                    self._cache.popitem(last=False)
        if not sentences:
            return np.zeros((0, self.embedder.dim), np.float32)
        return np.stack([found[s] for s in sentences])
