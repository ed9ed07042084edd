"""Follow-up questions: does a question lean on the one before it, and what to search with if so.

LLM-free. "Hoeveel gebied is daar al bevrijd?" after "Wat doet het Oekraïense leger in het zuiden?"
points back ("daar"), and "En in Cherson?" is an ellipsis; both are searched together with the
earlier question: its terms join the lexical leg at half the weight of the question's own terms,
the dense leg searches with the normalised sum of both question vectors, and the article the
previous answer came from leads: its best ARTICLE_PASSAGES passages for the follow-up first, its
others weighed up by ARTICLE_BONUS (`QA._conversation_hits`). A question
that stands on its own ("Wie won het WK voetbal in 2022?", "How old was Peyton Manning when he
played in Super Bowl 50?") is searched alone, whatever came before. The highlight is always
chosen for the follow-up itself. Tuned on data/followups_nl, checked on data/followups_b_nl and on
the stand-alone questions of the other sets (EVALUATION.md, "Follow-up questions").
"""

from __future__ import annotations

import re

import numpy as np

from .analysis import STOPWORDS
from .query import Query

# How much the earlier question's vector counts in the follow-up's search vector: on
# data/followups_nl, 1.0 answered 0.53 of English follow-ups against 0.47 at 0.5 and 0.33 at 0.3
# (Dutch 0.81 / 0.79 / 0.77); 1.5 lost 0.04. Checked again with the article bonus: 0.5 / 0.7 /
# 1.0 / 1.5 answered 65 / 67 / 69 / 70 of 92 follow-ups, and 39 / 39 / 40 / 40 of the held-out
# set's 63 (EVALUATION.md).
CONTEXT_WEIGHT = 1.0
# A follow-up's passages from the article the previous answer came from gain this share of the
# best hit's score: the conversation is about that article (EVALUATION.md, "Follow-up questions";
# a share rather than a fixed amount, because fused scores differ in scale between fusion modes).
ARTICLE_BONUS = 0.3
# A follow-up's hits start with this many passages of that article, the best for the follow-up's
# own words within it: a vague follow-up ("And how many are missing?") matches short sentences of
# other articles better than the passage of the story that answers it. On data/followups_nl 0 / 1
# / 2 / 3 answered 69 / 70 / 73 / 74 of 92 follow-ups, on the held-out data/followups_b_nl 41 /
# 43 / 44 / 43 of 63; the search within the article with the earlier questions' words too: 69 and
# 71 at 1 and 2 (41 / 41 held out). EVALUATION.md, "Follow-up questions".
ARTICLE_PASSAGES = 2
# A question with at most this many analysed terms, and no name or number among them, says too
# little to be searched alone ("When was the wedding?", "Why the drop?"; not "Wat is de NASUWT?").
FEW_TERMS = 2
# A question with more than this many terms carries its own topic, whatever words it uses ("Deelt
# u de mening dat dit soort voorvallen …"); the longest follow-up of data/followups_nl has 8.
MANY_TERMS = 10
# At most this many earlier questions are read (a chain of follow-ups).
MAX_HISTORY = 3
# Words that point back to something said before:
# - locatives ("daar", "daarvoor", "there"), always;
# - personal pronouns and possessives ("hij", "hun", "he", "its"), unless a name comes before them
#   in the question itself: "How old was Peyton Manning when he played…" does not lean;
# - English "it" as the subject of a question ("When did it fall…", "Where is it …");
# - demonstratives with a noun after a function word ("op die conferentie", "was dat dier", "at
#   that moment"): after a noun or verb they are relative pronouns and conjunctions ("de speler die
#   uiteindelijk", "said that");
# - articles, "toen"/"then" and demonstratives without a noun only at a question's end, before at
#   most a function word ("Wanneer gebeurde dat?", "What happened then?", "Wie voerde die uit?";
#   not "in het zuiden").
# "zijn" is a possessive only after a function word other than a question word and before a noun
# ("Hoe hoog is zijn borg?"; not "Wat zijn de …", "Waarom zijn prijzen gestegen?", "Hoeveel
# mensen zijn omgekomen?"); "there" after "is" / "are" only says something exists.
_PLACES = {
    "nl": frozenset("daar daarvan daarover daarbij daarna daarvoor daarom daardoor daarmee daarin daaruit hierover "
                    "hiervan hiervoor ervan erover erbij".split()),
    "en": frozenset(["there"]),
}
_PRONOUNS = {"nl": frozenset("hij zij ze hun haar zijn diens".split()),
             "en": frozenset("he she they her his hers their theirs its".split())}
# An object pronoun does not stand for the subject of its own clause: "How did Lukashenko describe
# him?" points back even with a name before it.
_OBJECTS = {"nl": frozenset("hem hen".split()), "en": frozenset("him them".split())}
_SUBJECT_IT = re.compile(r"\b(?:do|does|did|is|was|has|had|will|would|can|could)\s+it\b", re.IGNORECASE)
_TO_BE = frozenset("is are was were".split())
_QUESTION_WORDS = frozenset("wat wie waar waarom wanneer hoe hoeveel welk welke".split())
# Prepositions the stop-word lists lack: a demonstrative after one is a determiner ("achter dat onderzoek").
_PREPOSITIONS = frozenset("achter binnen buiten rond sinds tijdens vanwege volgens langs naast behalve "
                          "about after before behind during since into across along around near".split())
_DEMONSTRATIVES = {"nl": frozenset("dat die dit deze".split()), "en": frozenset("that this these those".split())}
_POINTERS_AT_END = {"nl": frozenset("dat die dit deze het toen".split()), "en": frozenset("it that this these then so".split())}
# A question that opens like this continues the previous one: "En in 2019?", "And why?".
_CONTINUES = re.compile(r"\s*(?:en|maar|of|and|but|or|ook|also|what about|en hoe zit het met)\b", re.IGNORECASE)
_WORD = re.compile(r"[^\W_]+")
_SENTENCE_END = re.compile(r"[.!?:]\s*$")


def leans_on_context(query: Query) -> bool:
    """Whether a question leans on an earlier one: it continues, says too little, or points back."""
    if _CONTINUES.match(query.text):
        return True
    found = list(_WORD.finditer(query.text))
    words = [m.group() for m in found]
    # A name: a capitalised word that does not open a sentence.
    named = [i > 0 and m.group()[0].isupper() and not _SENTENCE_END.search(query.text, 0, m.start())
             for i, m in enumerate(found)]
    terms = len(query.terms) if query.terms is not None else len(words)
    if terms > MANY_TERMS:
        return False
    if terms <= FEW_TERMS and not any(named) and not any(w[0].isdigit() for w in words):
        return True
    folded = [w.casefold() for w in words]
    stop, lang = STOPWORDS.get(query.language, frozenset()), query.language
    at_end = folded[-1:] + (folded[-2:-1] if folded[-1:] and folded[-1] in stop else [])
    if _POINTERS_AT_END.get(lang, frozenset()).intersection(at_end) or (lang == "en" and _SUBJECT_IT.search(query.text)):
        return True
    for i, word in enumerate(folded):
        before, after = (folded[i - 1] if i else ""), (folded[i + 1] if i + 1 < len(words) else "")
        if ((word in _PLACES.get(lang, ()) and not (word == "there" and before in _TO_BE)) or word in _OBJECTS.get(lang, ())
                or (word in _PRONOUNS.get(lang, ()) and not any(named[:i])
                    and not (word == "zijn" and not _possessive_zijn(before, after, stop)))
                or (word in _DEMONSTRATIVES.get(lang, ()) and (i <= 2 or before in stop or before in _PREPOSITIONS)
                    and after and words[i + 1].islower() and after not in stop)):
            return True
    return False


def _possessive_zijn(before: str, after: str, stop: frozenset) -> bool:
    """Whether "zijn" between these words is "his" rather than "to be" (see above)."""
    # (after a function word, or a relative "waarop", "waarin", …)
    return ((not before or before not in _QUESTION_WORDS and (before in stop or before.startswith("waar")))
            and bool(after) and after not in stop and not after.startswith("ge"))


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
