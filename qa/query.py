"""A question prepared once for every leg: checked text, language, analysed terms, vector."""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from .errors import QuestionError
from .news import Filters

MAX_QUESTION_CHARS = 2000
# A lone surrogate (an undecodable byte in argv, "\ud800" in a JSON request) is not text, and the
# model's tokenizer raises TypeError on it; U+FFFD keeps the rest of the question usable.
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


@dataclass(frozen=True)
class Query:
    """What retrieval and answer assembly need of a question, computed once.

    `terms` is None when the BM25 leg does not run, `vector` None when the dense leg does not.
    `context` is the earlier question a follow-up leans on (prepared the same way, with its own
    context), None for a question that stands alone; see conversation.py. `filters` limit the
    articles searched (a date range read from the question says so in `from_question`; the terms
    and vector are then of the question without it); `recency` weighs newer articles up.
    """

    text: str
    language: str
    terms: tuple[str, ...] | None = None
    vector: np.ndarray | None = None
    context: Query | None = None
    filters: Filters = Filters()
    recency: bool = False


def check_question(question: str) -> str:
    """Return the stripped question (lone surrogates as U+FFFD); raise QuestionError if empty or too long."""
    if not isinstance(question, str) or not question.strip():
        raise QuestionError("the question is empty; type a question in Dutch or English")
    if len(question) > MAX_QUESTION_CHARS:
        raise QuestionError(
            f"the question is {len(question):,} characters long; the limit is {MAX_QUESTION_CHARS:,}. "
            "Ask a shorter question."
        )
    return _LONE_SURROGATE.sub("\ufffd", question.strip())
