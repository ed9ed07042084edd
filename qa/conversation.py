"""Follow-up questions: does a question lean on the one before it, and what to search with if so.

LLM-free. "Hoeveel gebied is daar al bevrijd?" after "Wat doet het Oekraïense leger in het zuiden?"
points back ("daar"), and "En in Cherson?" is an ellipsis; both are searched together with the
earlier question: its terms join the lexical leg at half the weight of the question's own terms,
and the dense leg searches with the normalised sum of both question vectors. A question that stands on its own ("Wie won het WK voetbal in 2022?") is searched
alone, whatever came before. The highlight is always chosen for the follow-up itself. Measured on
data/followups_nl (EVALUATION.md).
"""

from __future__ import annotations

import re

import numpy as np

from .query import Query

# How much the earlier question's vector counts in the follow-up's search vector: on
# data/followups_nl, 1.0 answered 0.53 of English follow-ups against 0.47 at 0.5 and 0.33 at 0.3
# (Dutch 0.81 / 0.79 / 0.77); 1.5 lost 0.04 (EVALUATION.md).
CONTEXT_WEIGHT = 1.0
# A question with at most this many analysed terms says too little to be searched alone.
FEW_TERMS = 2
# At most this many earlier questions are read (a chain of follow-ups).
MAX_HISTORY = 3
# Words that point back to something said before. Articles and relative pronouns ("het", "dat",
# "die", "it", "that") count only among a question's last two words ("Wanneer gebeurde dat?",
# "Who said it?"): elsewhere full questions are full of them.
_POINTERS = {
    "nl": frozenset("daar daarvan daarover daarbij daarna daarvoor daarom daardoor daarmee daarin daaruit hierover "
                    "hiervan toen hij zij ze hem hen hun haar zijn diens ervan erover erbij".split()),
    "en": frozenset("there then he she they him her them his hers their theirs its those".split()),
}
_POINTERS_AT_END = {"nl": frozenset("dat die dit deze het er".split()), "en": frozenset("it that this these".split())}
# A question that opens like this continues the previous one: "En in 2019?", "And why?".
_CONTINUES = re.compile(r"\s*(?:en|maar|of|and|but|or|ook|also|what about|en hoe zit het met)\b", re.IGNORECASE)
_WORD = re.compile(r"[^\W\d_]+")


def leans_on_context(query: Query) -> bool:
    """Whether a question leans on an earlier one: it points back, continues, or says too little."""
    words = [w.casefold() for w in _WORD.findall(query.text)]
    return (bool(_POINTERS.get(query.language, frozenset()).intersection(words))
            or bool(_POINTERS_AT_END.get(query.language, frozenset()).intersection(words[-2:]))
            or bool(_CONTINUES.match(query.text)) or (query.terms is not None and len(query.terms) <= FEW_TERMS))


def search_terms(query: Query) -> tuple[str, ...] | None:
    """The lexical leg's terms: the question's own twice, each earlier question's once."""
    if query.terms is None or query.context is None:
        return query.terms
    return query.terms * 2 + _context_terms(query.context)


def search_vector(query: Query) -> np.ndarray | None:
    """The dense leg's vector: the question's own plus the earlier questions' (times CONTEXT_WEIGHT), normalised."""
    if query.vector is None or query.context is None:
        return query.vector
    combined = query.vector + CONTEXT_WEIGHT * search_vector(query.context)
    return (combined / np.linalg.norm(combined)).astype(np.float32)


def _context_terms(query: Query) -> tuple[str, ...]:
    return (query.terms or ()) + (_context_terms(query.context) if query.context else ())


def context_questions(query: Query) -> list[str]:
    """The earlier questions a follow-up was searched with, oldest first ([] for a question on its own)."""
    chain, q = [], query.context
    while q is not None:
        chain.append(q.text)
        q = q.context
    return chain[::-1]
