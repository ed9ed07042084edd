"""Follow-up questions (qa/conversation.py): when a question leans on the one before it, and how
it is searched then. Fast: the hashing embedder."""

from __future__ import annotations

import numpy as np
import pytest

from qa import QuestionError
from qa.conversation import CONTEXT_WEIGHT, context_questions, leans_on_context, search_terms, search_vector
from qa.query import Query


def _q(text: str, language: str = "nl", terms=("a", "b", "c")) -> Query:
    return Query(text, language, tuple(terms), np.ones(4, np.float32) / 2)


@pytest.mark.parametrize("text, language, terms, leans", [
    ("Hoeveel gebied is daar al bevrijd?", "nl", ("gebied", "bevrijd"), True),            # points back, few terms
    ("Wat zei hij over de Krim tijdens het bezoek?", "nl", ("zei", "krim", "bezoek"), True),
    ("En in Cherson?", "nl", ("cherson",), True),                                          # ellipsis
    ("Sinds wanneer?", "nl", (), True),                                                   # says too little
    ("And what did the Belarusian president say?", "en", ("belarusian", "presid", "say"), True),
    ("How much territory was liberated there?", "en", ("much", "territori", "liber"), True),
    ("Wie won het WK voetbal in Qatar?", "nl", ("won", "wk", "voetbal", "qatar"), False),  # stands alone
    ("Hoeveel procent bedroeg de inflatie die het CBS mat?", "nl", ("procent", "bedroeg", "inflatie", "cbs", "mat"), False),
    ("Which planet did the astronomers in Leiden discover?", "en", ("planet", "astronom", "leiden", "discov"), False),
])
def test_a_question_leans_on_context_when_it_points_back_continues_or_says_too_little(text, language, terms, leans):
    assert leans_on_context(_q(text, language, terms)) is leans


def test_the_earlier_question_joins_the_search_at_a_lower_weight():
    earlier = Query("Wat doet het leger in het zuiden?", "nl", ("leger", "zuid"), np.array([1, 0, 0, 0], np.float32))
    follow = Query("Hoeveel is daar bevrijd?", "nl", ("bevrijd",), np.array([0, 1, 0, 0], np.float32), context=earlier)
    assert search_terms(follow) == ("bevrijd", "bevrijd", "leger", "zuid")
    v = search_vector(follow)
    assert np.linalg.norm(v) == pytest.approx(1.0) and v[1] / v[0] == pytest.approx(1 / CONTEXT_WEIGHT)
    assert context_questions(follow) == ["Wat doet het leger in het zuiden?"]
    alone = Query("Wie won?", "nl", ("won",), np.array([0, 0, 1, 0], np.float32))
    assert search_terms(alone) == ("won",) and search_vector(alone) is alone.vector and context_questions(alone) == []


def test_ask_with_history_uses_the_previous_question_only_for_a_follow_up(hash_qa):
    first = "Wat gebeurde er in de oorlog in Oekraïne?"
    follow = hash_qa.ask("Hoeveel kilometer is daar bevrijd?", history=[first])
    assert follow.context == (first,) and follow.to_dict()["context"] == [first]
    assert follow.question == "Hoeveel kilometer is daar bevrijd?"
    # A chain: the third turn leans on the second, which leaned on the first.
    third = hash_qa.ask("En daarna?", history=[first, "Hoeveel kilometer is daar bevrijd?"])
    assert third.context == (first, "Hoeveel kilometer is daar bevrijd?")
    # A question that stands alone is answered exactly as if asked alone.
    alone = "Wie werd uitgeroepen tot beste speler van het WK voetbal?"
    with_history = hash_qa.ask(alone, history=[first])
    assert with_history.context == () and with_history == hash_qa.ask(alone)
    # The highlight is chosen for the follow-up itself, inside its own passage.
    for c in follow.citations:
        assert c.text[c.highlight.start:c.highlight.end] == c.highlight.text


def test_a_bad_earlier_question_is_a_question_error(hash_qa):
    with pytest.raises(QuestionError):
        hash_qa.ask("En daar?", history=[""])


@pytest.mark.parametrize("text, language, leans", [
    ("Wanneer gebeurde dat?", "nl", True), ("Wie zei het?", "nl", True), ("Who said it?", "en", True),
    ("Wat is het nieuwe plan van het kabinet voor de woningbouw?", "nl", False),  # "het" early in a full question
    ("Is that the largest harbour of Europe by tonnage?", "en", False),
])
def test_articles_and_relative_pronouns_point_back_only_at_the_end(text, language, leans):
    assert leans_on_context(_q(text, language, ("a", "b", "c", "d"))) is leans
