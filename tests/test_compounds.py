"""Dutch compound splitting for the lexical leg (qa/compounds.py) and its place in the analyzer."""

from __future__ import annotations

import re

import pytest

from qa.compounds import split_compound
from qa.lexical import Analyzer


@pytest.mark.parametrize("word, parts", [
    ("gehoorschade", ("gehoor", "schade")),
    ("kinderopvangtoeslag", ("kinderopvang", "toeslag")),    # fewest parts, not kind+erop+vang+toeslag
    ("energieprijzen", ("energie", "prijzen")),
    ("stikstofuitstoot", ("stikstof", "uitstoot")),           # not stik+stof+uitstoot
    ("verkiezingsuitslag", ("verkiezing", "uitslag")),        # a linking s
    ("wetswijziging", ("wet", "wijziging")),                  # a frequent three-letter part
    ("woningmarkt", ("woning", "markt")),
    ("tegenoffensief", ("tegen", "offensief")),
])
def test_compounds_split_into_known_words(word, parts):
    assert split_compound(word) == parts


@pytest.mark.parametrize("word", [
    "onderzoek", "ziekenhuis", "bijvoorbeeld", "belastingdienst",   # common words stay whole
    "bevrijdingen",                                                # the plural of a common word
    "poetin", "zelenski", "oekraiense",                            # names and unknown words
    "kamer", "", "gehoorschade" * 4,                               # too short, too long
    "xyzxyzxyzxyz",
])
def test_other_words_stay_whole(word):
    assert split_compound(word) == ()


def test_parts_join_back_into_the_word():
    for word in ("gehoorschade", "kinderopvangtoeslag", "verkiezingsuitslag", "wetswijziging", "energieprijzen"):
        parts = split_compound(word)
        assert len(parts) >= 2 and re.fullmatch("(?:s|e|en)?".join(map(re.escape, parts)), word)


def test_the_analyzer_keeps_the_whole_word_and_adds_its_parts_for_dutch_only():
    plain = Analyzer(stem=False)
    assert plain.analyze("Zorgen over gehoorschade", "nl") == ["zorgen", "gehoorschade", "gehoor", "schade"]
    assert plain.analyze("gehoorschade", "en") == ["gehoorschade"]            # English text: no splitting
    assert Analyzer(stem=False, compounds=False).analyze("gehoorschade", "nl") == ["gehoorschade"]
    # A question about "schade aan het gehoor" now shares terms with a passage on "gehoorschade".
    a = Analyzer()
    assert set(a.analyze("schade aan het gehoor", "nl")) <= set(a.analyze("De gehoorschade neemt toe.", "nl"))
    assert a.to_dict()["compounds"] is True and Analyzer(**a.to_dict()) == a
