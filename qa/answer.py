"""Answers as cited passages: citations, the highlighted answer sentence, and the no-answer rule."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .chunking import split_sentences

# A passage answers the question only if its best sentence is this similar to the question
# (cosine of the e5 query and passage embeddings). Calibrated (`qa eval data/xquad_nl --calibrate
# data/ntrex_nl data/tatoeba_nld_eng`, see EVALUATION.md) on 2,380 xquad_nl questions: against
# their own passages (answerable, median best cosine 0.861) and against ntrex_nl + tatoeba
# passages (unanswerable, median 0.803). 0.835 maximises balanced accuracy (0.854: 79% of
# answerable questions found, 92% of unanswerable ones refused). e5 cosines are compressed into
# roughly 0.75-0.95 and English questions over Dutch text score ~0.04 lower than Dutch ones, so
# one threshold is a compromise: it finds 96% of answerable Dutch but only 61% of English questions.
# `ask` therefore uses the per-language thresholds below; this one is the fallback.
NO_ANSWER_COSINE = 0.835
# English questions over Dutch passages score lower cosines than Dutch ones (median best-sentence
# cosine 0.842 vs 0.883 for answerable questions), so one threshold refused 39% of answerable
# English questions. Per question language (same calibration data; EVALUATION.md) the balanced
# accuracy goes from 0.905 to 0.921 for Dutch and from 0.804 to 0.892 for English.
NO_ANSWER_COSINE_BY_LANGUAGE = {"nl": 0.845, "en": 0.811}
# Added to the cosine per fraction of query terms a sentence contains: breaks near-ties towards
# the sentence that names the asked-for entity or number.
LEXICAL_BONUS = 0.05


@dataclass(frozen=True)
class Highlight:
    """The answering sentence: text and offsets inside the passage."""

    text: str
    start: int
    end: int
    score: float = 0.0

    def to_dict(self) -> dict:
        return {"text": self.text, "start": self.start, "end": self.end}


@dataclass(frozen=True)
class Citation:
    """One cited passage with its source, fused score and per-leg ranks."""

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

    def to_dict(self) -> dict:
        return {
            "n": self.n, "doc_id": self.doc_id, "title": self.title, "date": self.date,
            "source": self.source, "chunk_id": self.chunk_id, "text": self.text,
            "start": self.start, "end": self.end, "score": self.score,
            "highlight": self.highlight.to_dict(),
            "ranks": {"bm25": self.ranks.get("bm25"), "dense": self.ranks.get("dense")},
        }


@dataclass(frozen=True)
class Answer:
    """The answer to a question: its language, whether the corpus answers it, and citations."""

    question: str
    language: str
    answer_found: bool
    citations: tuple[Citation, ...] = ()

    @property
    def answer_citation(self) -> Citation | None:
        """The citation whose highlighted sentence answers best (None when no answer was found).

        Citations stay in retrieval order; the passage ranked first need not hold the best sentence.
        """
        if not self.answer_found or not self.citations:
            return None
        return max(self.citations, key=lambda c: (c.highlight.score, -c.n))

    def to_dict(self) -> dict:
        """The structure `qa ask --json` prints."""
        return {
            "question": self.question, "language": self.language, "answer_found": self.answer_found,
            "citations": [c.to_dict() for c in self.citations],
        }


def sentence_spans(passage: str) -> list[tuple[int, int]]:
    """Sentence spans inside a passage (the whole passage if it has no sentence boundary)."""
    spans = split_sentences(passage)
    return spans or [(0, len(passage))]


def best_sentence(
    passage: str,
    spans: list[tuple[int, int]],
    sentence_vectors: np.ndarray,
    query_vector: np.ndarray,
    query_terms: set[str],
    sentence_terms: list[set[str]],
) -> Highlight:
    """Pick the sentence most similar to the question: cosine plus a small term-overlap bonus."""
    cosines = sentence_vectors @ query_vector
    overlap = np.array([len(query_terms & t) / len(query_terms) if query_terms else 0.0 for t in sentence_terms])
    best = int(np.argmax(cosines + LEXICAL_BONUS * overlap))
    start, end = spans[best]
    return Highlight(passage[start:end], start, end, float(cosines[best]))
