"""The grounding check: a generated answer is shown only if the passages it cites support it.

Small language models write fluent, wrong answers: the wrong number, the wrong leader's quote,
Dutch leaking into an English answer, a [n] that points nowhere. The check reads the answer the
way a careful editor would, sentence by sentence, against the passages each sentence cites:

1. every [n] is one of the cited passages, and the answer cites at least one;
2. the answer (and every longer sentence of it) is in the question's language;
3. every number, date and proper name occurs in the passages the sentence cites (`qa.facts`
   normalises "1.127" = "1127", "9,6" = "9.6", "vier" = "4", "oktober" = "October",
   "Zelensky" = "Zelenski"), and the facts of one clause occur together in one sentence of one
   such passage (so a quote moved to the wrong leader, or a number taken from another sentence, fails);
4. every sentence is supported by a sentence of a passage it cites: e5 cosine at least
   SUPPORT_COSINE_BY_LANGUAGE, and a negation ("niet", "never") in the answer sentence exactly
   when its closest passage sentence has one.

Each failure is a reason, in plain words; an answer with no reasons is verified.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from .chunking import split_sentences
from .embedding import Embedder
from .facts import Vocabulary, calendar_words, capitalised_inside, date_facts, dates, names, negated, numbers
from .language import detect_language

# An answer sentence is supported when some sentence of a passage it cites is at least this
# similar (cosine of e5 "query: " embeddings of both), per answer language: English sentences
# restating Dutch passages score lower than Dutch ones (median best cosine 0.92 vs 0.96 for the
# hand-written correct answers). Calibrated with scripts/calibrate_grounding.py on the fixed
# answers of tests/data/grounding: per language, the threshold at which the whole check scores
# best, a wrongly verified answer counting double; the figures are in EVALUATION.md. Both sit
# at the edge of a plateau: 0.005 higher loses several correct answers (English 0.890: 0.90 ->
# 0.77 accepted), which says more about 60 correct answers than about the model.
SUPPORT_COSINE_BY_LANGUAGE = {"nl": 0.92, "en": 0.885}
# A sentence this long (in words, quotations left out) must itself be in the question's language;
# shorter ones give detect_language too little to go on.
LANGUAGE_CHECK_WORDS = 6
LANGUAGE_NAMES = {"nl": "Dutch", "en": "English"}
# A garbled answer can fail everywhere; the first few reasons say enough.
MAX_REASONS = 5

_MARKER = re.compile(r"\[\s*(\d{1,4}(?:\s*[,;]\s*\d{1,4})*)\s*\]")
_LEADING_MARKERS = re.compile(r"^(?:\s*\[\s*\d{1,4}(?:\s*[,;]\s*\d{1,4})*\s*\])+")
# Clauses joined by a conjunction state separate facts, each of which must sit in one sentence.
_CLAUSE = re.compile(r";|,\s+(?=(?:and|but|while|whereas|en|maar|terwijl|want|waarmee|waarna)\b)", re.IGNORECASE)
# A passage sentence that opens like this continues the one before it ("Daarvoor zouden ...", "Hij ...").
_POINTS_BACK = re.compile(r"\W*(?:daar\w*|hier\w*|dat|dit|deze|die|hij|zij|ze|hun|zijn|haar|this|that|these|those|he|"
                          r"she|it|they|there|its|their|his|her|het (?:is|was|werd|wordt|zou|zal|heeft|had))\b",
                          re.IGNORECASE)
# Quoted words may be in the passage's language ("de waardigheid en belangen").
_QUOTED = re.compile(r"(?<!\w)[„“\"‘'«][^„“”\"‘’'«»]{1,300}[”\"’'»](?!\w)")


@dataclass(frozen=True)
class Source:
    """A cited passage as the generator saw it: its text, and the article's title and date."""

    text: str
    title: str = ""
    date: str | None = None


@dataclass(frozen=True)
class Verdict:
    """The outcome of the check: verified, or the reasons it is not."""

    verified: bool
    reasons: tuple[str, ...] = ()


@dataclass(frozen=True)
class _Sentence:
    text: str                 # without its [n] markers
    cites: frozenset[int]


@dataclass
class _Unit:
    """A passage sentence (or a sentence with the one it points back to, or the title) and its facts."""

    text: str
    numbers: set[str]
    calendar: set[tuple[str, int]]
    words: Vocabulary


def check_answer(text: str, language: str, sources: Mapping[int, Source], embedder: Embedder, *,
                 thresholds: Mapping[str, float] | None = None) -> Verdict:
    """Check a generated answer against the passages it cites.

    Args:
        text: the generated answer, with [n] markers.
        language: the question's language, "nl" or "en".
        sources: the cited passages by their number n.
        embedder: embeds sentences for the support check (the index's e5 model; `HashEmbedder`
            in fast tests).
        thresholds: support cosine per language (default SUPPORT_COSINE_BY_LANGUAGE).

    Returns:
        The verdict: verified when no reason was found.
    """
    sentences = answer_sentences(text)
    if not sentences:
        return Verdict(False, ("the answer is empty",))
    reasons = []
    cited = set().union(*(s.cites for s in sentences))
    reasons += [f"[{n}] is not one of the cited passages" for n in sorted(cited - set(sources))]
    if not cited:
        reasons.append("the answer cites no passage with [n]")
    reasons += _language_reasons(sentences, language)
    if cited & set(sources):
        threshold = (thresholds or SUPPORT_COSINE_BY_LANGUAGE)[language]
        reasons += _content_reasons(sentences, sources, embedder, threshold)
    if len(reasons) > MAX_REASONS:
        reasons = reasons[:MAX_REASONS - 1] + [f"and {len(reasons) - MAX_REASONS + 1} more problems"]
    return Verdict(not reasons, tuple(reasons))


def answer_sentences(text: str) -> list[_Sentence]:
    """The answer's sentences without their [n] markers, each with the passages it cites.

    Markers after the full stop ("... bevrijd. [1]") belong to the sentence before them; a
    sentence without markers cites what the next sentence with markers cites (else the one before).
    """
    text = text.strip()
    parts: list[tuple[str, set[int]]] = []
    for start, end in split_sentences(text):
        sentence = text[start:end]
        lead = _LEADING_MARKERS.match(sentence)
        if lead and parts:
            parts[-1][1].update(_numbers_in(lead.group()))
            sentence = sentence[lead.end():]
        plain = " ".join(_MARKER.sub(" ", sentence).split())
        plain = re.sub(r"\s+([.,;:!?])", r"\1", plain)
        cites = set(_numbers_in(sentence))
        if re.search(r"\w", plain):
            parts.append((plain, cites))
        elif parts:
            parts[-1][1].update(cites)
    out = []
    for i, (plain, cites) in enumerate(parts):
        if not cites:
            later = [c for _, c in parts[i + 1:] if c]
            earlier = [c for _, c in parts[:i] if c]
            cites = later[0] if later else (earlier[-1] if earlier else set())
        out.append(_Sentence(plain, frozenset(cites)))
    return out


def _numbers_in(markers: str) -> list[int]:
    return [int(n) for group in _MARKER.findall(markers) for n in re.findall(r"\d+", group)]


def _language_reasons(sentences: Sequence[_Sentence], language: str) -> list[str]:
    unquoted = [_QUOTED.sub(" ", s.text) for s in sentences]
    found = detect_language(" ".join(unquoted))
    if found != language:
        return [f"the answer is in {LANGUAGE_NAMES[found]}, the question in {LANGUAGE_NAMES[language]}"]
    return [f"sentence {i} is in {LANGUAGE_NAMES[other]}" for i, text in enumerate(unquoted, start=1)
            if len(text.split()) >= LANGUAGE_CHECK_WORDS and (other := detect_language(text)) != language]


def _content_reasons(sentences: Sequence[_Sentence], sources: Mapping[int, Source], embedder: Embedder,
                     threshold: float) -> list[str]:
    """Facts (occurrence and binding) and support, sentence by sentence."""
    passage_sentences = {n: [source.text[a:b] for a, b in split_sentences(source.text)] for n, source in sources.items()}
    units = {n: _units(passage_sentences[n], source.title) for n, source in sources.items()}
    known = set().union(*(capitalised_inside(s.text) | capitalised_inside(s.title) for s in sources.values()),
                        *(capitalised_inside(s.text) for s in sentences))
    # One encode for all answer sentences and one for all passage sentences. e5's "query: " prompt on
    # both sides: this is sentence similarity, not retrieval.
    order = [(n, i) for n in sorted(passage_sentences) for i in range(len(passage_sentences[n]))]
    vectors = embedder.encode_queries([passage_sentences[n][i] for n, i in order])
    answer_vectors = embedder.encode_queries([s.text for s in sentences])
    reasons = []
    for index, (sentence, vector) in enumerate(zip(sentences, answer_vectors), start=1):
        cites = sorted(sentence.cites & set(sources))
        if not cites:
            continue
        label = _label(cites)
        own = [u for n in cites for u in units[n]]
        dated = [date_facts(sources[n].date) for n in cites]
        free_numbers = set().union(*(d[0] for d in dated))
        free_calendar = set().union(*(d[1] for d in dated))
        missing = _missing_facts(sentence.text, own, known, free_numbers, free_calendar)
        reasons += [f"{kind} “{fact}” is not in passage {label}" for kind, fact in missing]
        if not missing:
            reasons += _binding_reasons(sentence.text, own, known, free_numbers, free_calendar, label)
        rows = [j for j, (n, _) in enumerate(order) if n in cites]
        if not rows:
            reasons.append(f"sentence {index} cites passage {label}, which has no text")
            continue
        cosines = vectors[rows] @ vector
        best = int(np.argmax(cosines))
        if cosines[best] < threshold:
            reasons.append(f"sentence {index} is not supported by passage {label} "
                           f"(similarity {cosines[best]:.3f} < {threshold:.3f})")
        elif negated(sentence.text) and not negated(passage_sentences[order[rows[best]][0]][order[rows[best]][1]]):
            # Only this way round: a long passage sentence often negates something in another clause.
            reasons.append(f"sentence {index} denies what passage {label} says")
    return reasons


def _units(sentences: list[str], title: str) -> list[_Unit]:
    """Where the facts of one clause may sit together: a passage sentence, or a sentence that
    points back joined to the one before it ("... op de agenda staat. Daarvoor zouden ..."); each
    with the article's headline, which names what all its sentences are about. A title that ends
    like a sentence is the article's first sentence (how .txt titles are made), not a headline:
    it is a unit of its own."""
    texts = sentences + [f"{prev} {cur}" for prev, cur in zip(sentences, sentences[1:]) if _POINTS_BACK.match(cur)]
    title = title.strip()
    if title and title[-1] not in ".!?”\"'’":
        texts = [f"{title} {text}" for text in texts]
    elif title:
        texts.append(title)
    return [_Unit(t, set().union(*(v for _, v in numbers(t))), calendar_words(t), Vocabulary.of(t)) for t in texts]


def _facts(text: str, known: set[str]) -> list[tuple[str, str, object]]:
    """(kind, as written, value) for the numbers, dates and names of an answer sentence or clause."""
    found = [("number", surface, values) for surface, values in numbers(text, min_word_value=2)]
    found += [("date", surface, key) for surface, key in dates(text)]
    found += [("name", " ".join(run), run) for run in names(text, known=known)]
    return found


def _holds(unit: _Unit, kind: str, value, *, whole: bool = True) -> bool:
    """Whether a fact occurs in a unit; a name whole (every word of it), or with `whole` off by one
    of its words (a later sentence says "Ri" for "Ri Yong Ho")."""
    if kind == "number":
        return bool(unit.numbers & value)
    if kind == "date":
        return value in unit.calendar
    return (all if whole else any)(unit.words.has_name(word) for word in value)


def _is_free(kind: str, value, free_numbers: set[str], free_calendar: set) -> bool:
    """Facts from the article's date ("2022", "oktober" for 2022-10) need no sentence."""
    return (kind == "number" and bool(value & free_numbers)) or (kind == "date" and value in free_calendar)


def _missing_facts(text: str, units: list[_Unit], known: set[str], free_numbers: set[str],
                   free_calendar: set) -> list[tuple[str, str]]:
    missing = []
    for kind, surface, value in _facts(text, known):
        if _is_free(kind, value, free_numbers, free_calendar):
            continue
        if kind == "name":  # each word of a name somewhere: "Steven Gerrard" is two facts
            missing += [(kind, word) for word in value if not any(_holds(u, kind, (word,)) for u in units)]
        elif not any(_holds(u, kind, value) for u in units):
            missing.append((kind, surface))
    return missing


def _binding_reasons(text: str, units: list[_Unit], known: set[str], free_numbers: set[str],
                     free_calendar: set, label: str) -> list[str]:
    reasons = []
    for clause in _CLAUSE.split(text):
        facts = [(kind, surface, value) for kind, surface, value in _facts(clause, known)
                 if not _is_free(kind, value, free_numbers, free_calendar)]
        if len(facts) > 1 and not any(all(_holds(u, kind, value, whole=False) for kind, _, value in facts) for u in units):
            listed = ", ".join(f"“{surface}”" for _, surface, _ in facts)
            reasons.append(f"{listed} are not together in one sentence of passage {label}")
    return reasons


def _label(cites: Sequence[int]) -> str:
    return " ".join(f"[{n}]" for n in cites)
