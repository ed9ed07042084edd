"""Answer assembly (qa/answer.py): citations from hits, the highlighted sentence, the no-answer rule,
the sentence-vector cache. Fast: the hashing embedder and hand-made chunks, no index."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from qa.answer import (
    ANSWER_OVERLAP_WEIGHT,
    NO_ANSWER_THRESHOLD_BY_LANGUAGE,
    Answer,
    Citation,
    Highlight,
    SentenceVectors,
    answers_question,
    assemble,
    best_sentence,
    sentence_spans,
)
from qa.chunking import Chunk
from qa.corpus import Document
from qa.embedding import Embedder, HashEmbedder
from qa.fusion import Hit
from qa.language import LANGUAGES
from qa.lexical import Analyzer
from qa.query import Query

PASSAGES = [
    "Het leger meldt vooruitgang. In minder dan een week werd 400 vierkante kilometer bevrijd. Dat zei de generaal.",
    "De inflatie daalde in december naar 9,6 procent",  # no sentence boundary: the whole passage is one sentence
    "Argentinië won het WK. Messi werd de beste speler.",
]


class CountingEmbedder(HashEmbedder):
    """The hashing embedder, counting the texts it was asked to embed as passages."""

    def __init__(self):
        super().__init__(64)
        self.embedded: list[str] = []

    def encode_passages(self, texts, *, progress=False):
        self.embedded += texts
        return super().encode_passages(texts)


def _chunks() -> list[Chunk]:
    return [Chunk(f"d{i}#0", f"d{i}", 0, 0, len(t), t, "nl") for i, t in enumerate(PASSAGES)]


def _query(text: str, embedder=None, language: str = "nl") -> Query:
    embedder = embedder or HashEmbedder(64)
    return Query(text, language, tuple(Analyzer().analyze(text, language)), embedder.encode_queries([text])[0])


def _assemble(question: str, rows: list[int], *, docs=None, embedder=None) -> Answer:
    embedder = embedder or HashEmbedder(64)
    hits = [Hit(row, 1.0 / (n + 1), {"bm25": n + 1, "dense": None}) for n, row in enumerate(rows)]
    docs = {"d0": Document("d0", "Oorlog", "2022-10", "oorlog.txt")} if docs is None else docs
    return assemble(_query(question, embedder), hits, _chunks(), docs, analyzer=Analyzer(),
                    sentence_vectors=SentenceVectors(embedder))


def test_every_embedder_satisfies_the_protocol():
    assert isinstance(HashEmbedder(8), Embedder) and isinstance(CountingEmbedder(), Embedder)


def test_citations_follow_the_hits_with_exact_offsets_and_sources():
    answer = _assemble("Hoeveel vierkante kilometer werd bevrijd?", [0, 2, 1])
    assert [c.n for c in answer.citations] == [1, 2, 3]
    assert [c.chunk_id for c in answer.citations] == ["d0#0", "d2#0", "d1#0"]
    for c in answer.citations:
        h = c.highlight
        assert c.text[h.start:h.end] == h.text and h.text.strip()
        assert (h.start, h.end) in sentence_spans(c.text)
    first = answer.citations[0]
    assert (first.title, first.date, first.source) == ("Oorlog", "2022-10", "oorlog.txt")
    assert first.highlight.text == "In minder dan een week werd 400 vierkante kilometer bevrijd."
    assert first.ranks == {"bm25": 1, "dense": None} and first.found_by == "bm25"
    # A chunk whose document record is missing is still cited, with empty metadata.
    missing = answer.citations[1]
    assert (missing.doc_id, missing.title, missing.date, missing.source) == ("d2", "", None, "")


def test_a_passage_without_sentence_boundary_is_one_sentence():
    answer = _assemble("inflatie december", [1])
    assert answer.citations[0].highlight.text == PASSAGES[1]


def test_no_hits_give_no_citations_and_no_answer():
    answer = _assemble("Hoeveel vierkante kilometer?", [])
    assert answer.citations == () and not answer.answer_found and answer.answer_citation is None


def test_to_dict_has_the_documented_fields():
    data = _assemble("Hoeveel vierkante kilometer werd bevrijd?", [0]).to_dict()
    assert set(data) == {"question", "language", "answer_found", "citations", "context", "generated", "filters",
                         "recency", "time_dropped", "partial"}
    assert data["context"] is None and data["generated"] is None
    assert set(data["citations"][0]) == {"n", "doc_id", "title", "date", "source", "chunk_id", "text", "start", "end",
                                         "score", "highlight", "ranks", "publisher", "url", "path", "duplicates"}
    assert data["filters"] == {"since": None, "until": None, "publishers": None, "from_question": None}
    assert set(data["citations"][0]["highlight"]) == {"text", "start", "end"}


def _citation(n: int, score: float, overlap: float = 0.0) -> Citation:
    return Citation(n, "d", "", None, "", f"d#{n}", "x.", 0, 2, 0.1, Highlight("x.", 0, 2, score, overlap))


def test_support_is_the_cosine_plus_the_question_terms_found_in_the_passage():
    passage = "Poetin viert zijn verjaardag. Het regent in Moskou."
    terms = [{"poetin", "viert", "verjaardag"}, {"regent", "moskou"}]
    question = {"poetin", "verjaardag", "moskou", "gast"}
    h = best_sentence(passage, sentence_spans(passage), np.eye(2, dtype=np.float32), np.array([0.8, 0.1], np.float32),
                      question, terms)
    # Counted over the whole passage ("moskou" is not in the highlight), not only the highlight.
    assert h.text == "Poetin viert zijn verjaardag." and h.overlap == pytest.approx(0.75)
    assert h.support == pytest.approx(0.8 + ANSWER_OVERLAP_WEIGHT * 0.75)
    assert best_sentence(passage, sentence_spans(passage), np.eye(2, dtype=np.float32),
                         np.array([0.8, 0.1], np.float32), set(), terms).overlap == 0.0
    # The no-answer rule compares the support: a passage that holds the question's words answers
    # at a lower cosine than one that holds none of them.
    threshold = NO_ANSWER_THRESHOLD_BY_LANGUAGE["nl"]
    below = threshold - ANSWER_OVERLAP_WEIGHT / 2
    assert answers_question([_citation(1, below, 1.0)], "nl") and not answers_question([_citation(1, below, 0.0)], "nl")


def test_no_answer_rule_is_per_question_language():
    assert set(NO_ANSWER_THRESHOLD_BY_LANGUAGE) == set(LANGUAGES)  # every language detect_language returns
    for language, threshold in NO_ANSWER_THRESHOLD_BY_LANGUAGE.items():
        assert answers_question([_citation(1, threshold - 0.01), _citation(2, threshold)], language)
        assert not answers_question([_citation(1, threshold - 1e-6)], language)
        assert not answers_question([], language)
    between = (NO_ANSWER_THRESHOLD_BY_LANGUAGE["en"] + NO_ANSWER_THRESHOLD_BY_LANGUAGE["nl"]) / 2
    assert answers_question([_citation(1, between)], "en") and not answers_question([_citation(1, between)], "nl")


def test_answer_citation_is_the_best_highlight_not_the_first_passage():
    answer = Answer("q", "nl", True, (_citation(1, 0.86), _citation(2, 0.91), _citation(3, 0.91)))
    assert answer.answer_citation.n == 2  # ties go to the earlier citation
    # The passage that also holds the question's words supports it best.
    assert Answer("q", "nl", True, (_citation(1, 0.91), _citation(2, 0.90, 0.5))).answer_citation.n == 2
    assert Answer("q", "nl", False, answer.citations).answer_citation is None


def test_best_sentence_breaks_near_ties_towards_the_asked_terms():
    passage = "Eerste zin. Tweede zin."
    spans = sentence_spans(passage)
    vectors = np.eye(2, dtype=np.float32)
    query = np.array([0.8, 0.79], np.float32)  # the first sentence is a little more similar...
    h = best_sentence(passage, spans, vectors, query, {"tweed"}, [{"eerst", "zin"}, {"tweed", "zin"}])
    assert h.text == "Tweede zin." and h.score == pytest.approx(0.79)  # ...the second names the asked term
    h = best_sentence(passage, spans, vectors, query, set(), [set(), set()])
    assert h.text == "Eerste zin." and (h.start, h.end) == spans[0]


def test_answer_type_and_a_sentence_that_points_back():
    from qa.answer import expected_answer

    assert [expected_answer(q) for q in ("Hoeveel mensen?", "Wanneer begon het?", "Wie won?", "Waarom stopte hij?",
                                         "How many?", "In which year?", "Where is it?", "Wat zei hij?")] == \
        ["number", "time", "name", "reason", "number", "time", "name", None]
    passage = "Poetin viert zijn verjaardag met een bijeenkomst. Daarvoor zijn de leiders uitgenodigd. Het regent."
    spans = sentence_spans(passage)
    terms = [{"poetin", "verjaardag", "bijeenkomst"}, {"leider", "uitnodig"}, {"regent"}]
    vectors = np.eye(3, dtype=np.float32)
    query = np.array([0.9, 0.85, 0.1], np.float32)
    # The question's terms are split over the two sentences and the second points back: both are highlighted.
    h = best_sentence(passage, spans, vectors, query, {"uitnodig", "bijeenkomst", "verjaardag"}, terms, "name")
    assert h.text == passage[spans[0][0]:spans[1][1]] and passage[h.start:h.end] == h.text and h.score == pytest.approx(0.9)
    # An English question shares no terms with the Dutch sentences: the neighbour that points back
    # joins when it is nearly as similar (NEIGHBOUR_MARGIN below the best at most), not otherwise.
    english = {"invit", "birthday", "gather"}
    h = best_sentence(passage, spans, vectors, np.array([0.83, 0.79, 0.1], np.float32), english, terms, "name")
    assert h.text == passage[spans[0][0]:spans[1][1]] and h.score == pytest.approx(0.83)
    h = best_sentence(passage, spans, vectors, np.array([0.83, 0.77, 0.1], np.float32), english, terms, "name")
    assert h.text == "Poetin viert zijn verjaardag met een bijeenkomst."
    # Without the pointing back, only the best sentence.
    plain = passage.replace("Daarvoor zijn", "Morgen zijn")
    h = best_sentence(plain, sentence_spans(plain), vectors, query, {"uitnodig", "bijeenkomst", "verjaardag"}, terms)
    assert h.text == "Poetin viert zijn verjaardag met een bijeenkomst."
    # The answer type breaks a near-tie: "hoeveel" wants a number.
    passage = "De oogst was goed. Er werden 400 ton geoogst."
    h = best_sentence(passage, sentence_spans(passage), np.eye(2, dtype=np.float32), np.array([0.80, 0.79], np.float32),
                      set(), [set(), set()], "number")
    assert h.text == "Er werden 400 ton geoogst."


def test_sentence_vectors_are_embedded_once_and_equal_to_a_fresh_encode():
    embedder = CountingEmbedder()
    vectors = SentenceVectors(embedder)
    first = vectors(["Een zin.", "Twee zinnen.", "Een zin."])
    assert embedder.embedded == ["Een zin.", "Twee zinnen."]  # a repeated sentence is embedded once
    np.testing.assert_array_equal(first, HashEmbedder(64).encode_passages(["Een zin.", "Twee zinnen.", "Een zin."]))
    second = vectors(["Twee zinnen.", "Drie."])
    assert embedder.embedded[2:] == ["Drie."]
    np.testing.assert_array_equal(second[0], first[1])
    assert vectors([]).shape == (0, 64)


def test_sentence_cache_is_bounded_and_drops_the_least_recently_used():
    embedder = CountingEmbedder()
    vectors = SentenceVectors(embedder, size=2)
    vectors(["a."])
    vectors(["b."])
    vectors(["a."])  # a is now the most recently used
    vectors(["c."])  # evicts b
    assert len(vectors) == 2
    vectors(["a.", "b."])
    assert embedder.embedded == ["a.", "b.", "c.", "b."]


def test_sentence_vectors_are_thread_safe():
    vectors = SentenceVectors(HashEmbedder(64), size=50)
    sentences = [f"Zin nummer {i}." for i in range(200)]
    expected = HashEmbedder(64).encode_passages(sentences)
    errors = []

    def work(offset: int) -> None:
        for i in range(offset, offset + 200, 7):
            j = i % 200
            if not np.array_equal(vectors([sentences[j]])[0], expected[j]):
                errors.append(j)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and len(vectors) <= 50


def test_a_passage_whose_highlight_an_earlier_citation_already_shows_gives_its_place_to_the_next():
    text = PASSAGES[0]
    second = text.index("In minder")
    overlapping = [Chunk("d0#0", "d0", 0, 0, len(text), text, "nl"),                        # the article's two
                   Chunk("d0#1", "d0", 1, second, len(text), text[second:], "nl"),         # chunks share a sentence
                   *[Chunk(f"d{i}#0", f"d{i}", 0, 0, len(t), t, "nl") for i, t in enumerate(PASSAGES) if i]]
    hits = [Hit(row, 1.0 / (n + 1), {"bm25": n + 1, "dense": None}) for n, row in enumerate([0, 1, 2, 3])]
    embedder = HashEmbedder(64)
    answer = assemble(_query("Hoeveel vierkante kilometer werd bevrijd?", embedder), hits, overlapping, {},
                      analyzer=Analyzer(), sentence_vectors=SentenceVectors(embedder), k=2)
    assert [c.chunk_id for c in answer.citations] == ["d0#0", "d1#0"] and [c.n for c in answer.citations] == [1, 2]
    assert "400 vierkante kilometer" in answer.citations[0].highlight.text
    # Without the repeat, every hit is cited, up to k.
    assert [c.chunk_id for c in assemble(_query("Wie won het WK?", embedder), hits, overlapping, {}, analyzer=Analyzer(),
                                         sentence_vectors=SentenceVectors(embedder), k=3).citations] == ["d0#0", "d0#1", "d1#0"]
