"""Follow-up questions (qa/conversation.py): when a question leans on the one before it, and how
it is searched then. Fast: the hashing embedder."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from conftest import NEWS, write_news

from qa import QuestionError
from qa.conversation import CONTEXT_WEIGHT, context_questions, leans_on_context, search_terms, search_vector
from qa.news import Filters
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


@pytest.mark.parametrize("text, language, leans", [
    # A pronoun after a name in the question itself stands for that name; an object pronoun never does.
    ("How old was Peyton Manning when he played in the Super Bowl?", "en", False),
    ("Tegen welke ploeg speelt LeBron James zijn eerste wedstrijd?", "nl", False),
    ("Naar welk ziekenhuis is hij gebracht?", "nl", True),
    ("And how did Lukashenko describe him?", "en", True),
    ("What did Pyongyang accuse him of?", "en", True),
    # A demonstrative before a noun points back; after a noun or verb it is a relative pronoun or conjunction.
    ("Wie zit achter dat onderzoek?", "nl", True),
    ("Waar kwamen die medewerkers vandaan?", "nl", True),
    ("Who was about to fight at that moment?", "en", True),
    ("Wat is de naam van de speler die uiteindelijk de bal herstelde?", "nl", False),
    ("How many seconds were left when the Broncos intercepted the pass that won the game?", "en", False),
    # English "it" as the subject of a question; "there is/are" and the verb "zijn" say nothing.
    ("How many inmates does it hold?", "en", True),
    ("How many extended metropolitan areas are there?", "en", False),
    ("Wat zijn de uitzonderingen in de grondwet?", "nl", False),
    ("Hoeveel mensen zijn omgekomen bij de aardbeving?", "nl", False),
    ("Waarom zijn prijzen gestegen?", "nl", False),
    ("Hoe hoog is zijn borg?", "nl", True),
    ("Hoe heette de boot waarop zijn affaire plaatsvond?", "nl", True),
    ("When was her first album released?", "en", True),
    # A capitalised word that opens a sentence is no name a pronoun could stand for.
    ("Thanks. How old is he?", "en", True),
    # An article before a noun at the end is no pointer; a demonstrative before a particle is.
    ("Wat doet het Oekraïense leger in het zuiden?", "nl", False),
    ("Wie voerde die uit?", "nl", True),
])
def test_pointers_are_read_in_their_place_in_the_question(text, language, leans):
    assert leans_on_context(_q(text, language, ("a", "b", "c", "d"))) is leans


def test_few_terms_lean_unless_a_name_or_number_carries_the_question_and_many_terms_never_lean():
    assert leans_on_context(_q("When was the wedding?", "en", ("wed",))) is True
    assert leans_on_context(_q("Wat is de NASUWT?", "nl", ("nasuwt",))) is False
    long = "Deelt u de mening dat dit soort voorvallen schadelijk zijn voor het functioneren van de hulpdiensten?"
    assert leans_on_context(_q(long, "nl", tuple("abcdefghijk"))) is False


def test_a_follow_up_favours_the_article_of_the_previous_answer(hash_qa, monkeypatch):
    import qa.conversation

    first = "Hoeveel vierkante kilometer heeft het Oekraïense leger bevrijd?"
    assert hash_qa.ask(first).citations[0].path.endswith("oorlog.txt")
    follow = "En wie werd daar uitgeroepen tot beste speler van het WK voetbal?"
    monkeypatch.setattr(qa.conversation, "ARTICLE_PASSAGES", 0)   # the bonus alone here; the next test: the passages
    monkeypatch.setattr(qa.conversation, "ARTICLE_BONUS", 0.0)
    plain = {c.path.rsplit("/", 1)[-1]: c.score for c in hash_qa.ask(follow, history=[first]).citations}
    assert max(plain, key=plain.get) == "sport.txt"      # its own words find the football article
    monkeypatch.setattr(qa.conversation, "ARTICLE_BONUS", 1.0)
    favoured = hash_qa.ask(follow, history=[first])
    assert favoured.context == (first,) and favoured.citations[0].path.endswith("oorlog.txt")
    assert {c.path.rsplit("/", 1)[-1]: c.score for c in favoured.citations} == pytest.approx(
        {**plain, "oorlog.txt": plain["oorlog.txt"] + max(plain.values())})  # (1.0 x the best hit's score)
    # A question that stands alone is not favoured towards anything.
    alone = "Wie werd uitgeroepen tot beste speler van het WK voetbal?"
    assert hash_qa.ask(alone, history=[first]) == hash_qa.ask(alone)


_LONG_WAR = " ".join(
    f"In {place} meldde het Oekraïense leger op dag {day} nieuwe gevechten, {n} gewonde soldaten en vernielde "
    f"bruggen over de rivier, terwijl hulpverleners voedsel en medicijnen brachten naar de dorpen in de regio."
    for day, (place, n) in enumerate(zip(["Cherson", "Charkiv", "Izjoem", "Lyman", "Kupjansk", "Balaklija",
                                          "Mykolajiv", "Snihurivka", "Bachmoet", "Soledar", "Avdiivka",
                                          "Marioepol", "Melitopol", "Enerhodar"], range(10, 150, 10)), start=1))


@pytest.fixture
def long_article_qa(tmp_path):
    """The small corpus with the war article long enough for several passages."""
    from qa import QA

    folder = write_news(tmp_path / "news")
    (folder / "oorlog.txt").write_text(f"date 2022-10 {NEWS['oorlog.txt'][13:]} {_LONG_WAR}", encoding="utf-8")
    return QA.build([folder], tmp_path / "index", model="hash-64")


def test_a_follow_up_cites_the_best_passages_within_the_previous_answers_article_first(long_article_qa, monkeypatch):
    import qa.conversation

    qa_ = long_article_qa
    monkeypatch.setattr(qa.conversation, "ARTICLE_BONUS", 0.0)
    first = "Hoeveel vierkante kilometer heeft het Oekraïense leger bevrijd?"
    follow = "En wie werd daar uitgeroepen tot beste speler van het WK voetbal?"
    article = qa_.ask(first).citations[0].doc_id
    passages = [c for c in qa_.chunks if c.doc_id == article]
    assert article.startswith("oorlog") and len(passages) > qa.conversation.ARTICLE_PASSAGES
    answer = qa_.ask(follow, history=[first], k=5)
    # The article's best ARTICLE_PASSAGES passages for the follow-up's own words, found by a search within it ...
    within = qa_.retrieve(replace(qa_.prepare(follow), filters=Filters(article=article)), qa_.settings.but(k=10))
    assert len(within) == len(passages) and {qa_.chunks[h.row].doc_id for h in within} == {article}
    leading = [qa_.chunks[h.row].chunk_id for h in within[:qa.conversation.ARTICLE_PASSAGES]]
    assert [c.chunk_id for c in answer.citations[:len(leading)]] == leading
    # ... then the follow-up's other hits in their own order (the bonus is off here; a passage whose
    # highlight an earlier citation already shows is skipped).
    searched = [qa_.chunks[h.row].chunk_id for h in qa_.retrieve(qa_.prepare(follow, history=[first]),
                                                                 qa_.settings.but(k=20)) if qa_.chunks[h.row].chunk_id not in leading]
    rest = [c.chunk_id for c in answer.citations[len(leading):]]
    assert searched[0].startswith("sport.txt") and rest[0] == searched[0]   # its own words find football
    remaining = iter(searched)
    assert all(c in remaining for c in rest)
    assert answer.filters == Filters()   # the answer says what the user filtered on, not the inner search


def test_an_article_filter_searches_that_article_only(hash_qa):
    query = hash_qa.prepare("Wie werd uitgeroepen tot beste speler van het WK voetbal?")
    article = hash_qa.retrieve(query, hash_qa.settings)[0]
    doc_id = hash_qa.chunks[article.row].doc_id
    for mode in ("hybrid", "bm25", "dense"):
        hits = hash_qa.retrieve(replace(query, filters=Filters(article=doc_id)), hash_qa.settings.but(mode=mode))
        assert hits and {hash_qa.chunks[h.row].doc_id for h in hits} == {doc_id}
    assert hash_qa.retrieve(replace(query, filters=Filters(article="no such article")), hash_qa.settings) == []
