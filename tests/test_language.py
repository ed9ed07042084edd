"""Dutch/English detection on short questions."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from qa.language import detect_language

XQUAD_QUESTIONS = Path(__file__).resolve().parents[1] / "data" / "xquad_nl" / "questions.jsonl"


@pytest.mark.parametrize(
    ("text", "lang"),
    [
        ("How many square kilometres were liberated in less than a week?", "en"),
        ("Hoeveel vierkante kilometer is in minder dan een week bevrijd?", "nl"),
        ("Who won the 2018 World Cup?", "en"),
        ("Wie is Zelenski?", "nl"),
        ("What is the capital of Ukraine?", "en"),
        ("Wat is de hoofdstad van Oekraïne?", "nl"),
        ("Where is Kyiv?", "en"),
        ("Waar ligt Kyiv?", "nl"),
        ("When did the war start?", "en"),
        ("Wanneer begon de oorlog?", "nl"),
        ("Why is inflation rising?", "en"),
        ("Waarom stijgt de inflatie?", "nl"),
        ("Which party won the most seats?", "en"),
        ("Welke partij won de meeste zetels?", "nl"),
    ],
)
def test_short_questions(text, lang):
    assert detect_language(text) == lang


@pytest.mark.parametrize("text", ["", "   ", "?!", "2022", "Zelenski", "\x00\ud800\u200f"])
def test_no_evidence_defaults_to_dutch(text):
    assert detect_language(text) == "nl"


@settings(max_examples=200, deadline=None)
@given(st.text())
def test_total(text):
    assert detect_language(text) in ("nl", "en")


def test_accuracy_on_xquad_questions():
    with open(XQUAD_QUESTIONS, encoding="utf-8") as file:
        questions = [json.loads(line) for _, line in zip(range(200), file)]
    correct = sum(detect_language(q["question"]) == q["lang"] for q in questions)
    assert correct / len(questions) >= 0.9
