"""The facts of a text that a grounding check compares: numbers, dates and proper names.

A generated answer restates passages in other words and often in another language, so facts are
compared in a normal form: "1.127" = "1127" = "1,127", "9,6" = "9.6", "vierhonderd" = "400",
"oktober" = "October", "donderdag" = "Thursday", and names are compared after a rough
transliteration ("Zelensky" = "Zelenski", "Kherson" = "Cherson", "Lukashenko" = "Loekasjenko"),
by prefix for derived forms ("Ukrainian" ~ "Oekraïense") and through a short list of Dutch and
English exonyms ("Russia" = "Rusland", "United States" = "Verenigde Staten").
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from difflib import SequenceMatcher
from functools import lru_cache

from .chunking import split_sentences
from .language import fold_diacritics
from .lexical import Analyzer

_NUMBER = re.compile(r"(?<![\w.,])\d+(?:[.,]\d+)*")
# A word: letters first, then letters, digits, hyphens or an apostrophe ("Jong-un", "Beacon's").
_WORD = re.compile(r"[^\W\d_](?:[\w]|[-'’](?=\w))*")
_MONTH_WORDS = {w: i for i, pair in enumerate(("januari january", "februari february", "maart march", "april",
                                               "mei may", "juni june", "juli july", "augustus august", "september",
                                               "oktober october", "november", "december"), start=1)
                for w in pair.split()}
_DAY_WORDS = {w: i for i, pair in enumerate(("maandag monday", "dinsdag tuesday", "woensdag wednesday",
                                             "donderdag thursday", "vrijdag friday", "zaterdag saturday",
                                             "zondag sunday")) for w in pair.split()}
# English month and day names that are also common words count only when capitalised.
_ENGLISH_CALENDAR = {"may", "march", "august", "sunday"}
_UNITS = {w: i for words in ("nul een twee drie vier vijf zes zeven acht negen tien elf twaalf dertien veertien "
                             "vijftien zestien zeventien achttien negentien",
                             "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen "
                             "fifteen sixteen seventeen eighteen nineteen")
          for i, w in enumerate(words.split())}
_UNITS["één"] = _UNITS["eén"] = 1
_TENS = {w: 10 * i for words in ("twintig dertig veertig vijftig zestig zeventig tachtig negentig",
                                 "twenty thirty forty fifty sixty seventy eighty ninety")
         for i, w in enumerate(words.split(), start=2)}
_SCALES = {"honderd": 100, "hundred": 100, "duizend": 1000, "thousand": 1000}
_DUTCH_NUMBER = re.compile(r"(\w*?)(honderd|duizend)|(\w+?)(?:en|ën)(" + "|".join(_TENS) + ")")
# Dutch and English names of the same place or people that no spelling rule maps onto each other.
# A word belongs to a group when its normal form starts with one of the group's (stems of three
# letters or fewer must match whole).
_EXONYMS = """russia russian rusland russisch russen | belarus witrus | united verenigd | states staten | nation natie |
kingdom koninkrijk | us usa vs | uk vk | un vn | eu | nato navo | north noord | south zuid | east oost | new nieuw |
germany german duitsland duits | france french frankrijk frans | england english engeland engels |
britain british brittannie brits | netherlands dutch nederland | belgium belgian belgie belgisch |
spain spanish spanje spaans | italy italian italie italiaans | greece greek griekenland grieks |
turkey turkish turkije turks | scotland scottish schotland schots | ireland irish ierland iers |
sweden swedish zweden zweeds | poland polish polen pools | china chinese | japan japanese japans | egypt egypte |
moscow moskou | kiev kyiv kiew | ukrai oekrai | brussels brussel | hague haag | london londen | paris parijs | lisbon lissabon |
security veiligheid | council veiligheidsraad raad | assembly vergadering""".split("|")
# Titles and ranks are capitalised before a name in English ("Prime Minister Zoran Zaev") but are
# not names; the Dutch passage says "premier". Checked as words, not as names.
_TITLES = frozenset("""president prime minister secretary chancellor king queen prince princess pope general colonel
lieutenant major captain sergeant senator governor mayor judge justice chairman chairwoman spokesman spokeswoman
correspondent mr mrs ms miss dr sir lord lady dhr mevrouw meneer""".split())
# After these a capitalised word may just start a sentence or a quotation.
_OPENERS = ".:!?‘'\"“„«(["
_NEGATION = frozenset("niet geen nooit niets niemand nergens zonder not no never none nobody nothing nowhere without "
                      "cannot n't".split())


def numbers(text: str, *, min_word_value: int = 0) -> list[tuple[str, frozenset[str]]]:
    """The numbers of a text as written, each with every value it can stand for (canonical
    decimal strings).

    "1.127" gives {"1127", "1.127"} (Dutch thousands or an English decimal point), "9,6" gives
    {"9.6"}, "1,000" gives {"1000", "1"}; number words count too ("vier", "vierhonderd",
    "four hundred", "vijfentwintig").

    Args:
        text: any text.
        min_word_value: number words below this value are left out ("een"/"one" is mostly an article).

    Returns:
        (as written, values) per number, digits first, then number words.
    """
    found = [(token, frozenset(_readings(token))) for token in _NUMBER.findall(text)]
    return found + [(word, frozenset({str(value)})) for word, value in _word_numbers(text) if value >= min_word_value]


def number_values(text: str) -> set[str]:
    """The union of the values of all numbers in a text (see `numbers`)."""
    return set().union(*(values for _, values in numbers(text)))


def dates(text: str) -> list[tuple[str, tuple[str, int]]]:
    """The months and weekdays a text names, in either language.

    Args:
        text: any text; English "May", "March", "August" and "Sunday" count only capitalised.

    Returns:
        (as written, key) per word, the key ("month", 10) for both "oktober" and "October", or
        ("day", 3) for "donderdag" and "Thursday".
    """
    found = []
    for match in _WORD.finditer(text):
        word = match.group().casefold()
        if word in _ENGLISH_CALENDAR and not match.group()[0].isupper():
            continue
        if word in _MONTH_WORDS:
            found.append((match.group(), ("month", _MONTH_WORDS[word])))
        elif word in _DAY_WORDS:
            found.append((match.group(), ("day", _DAY_WORDS[word])))
    return found


def calendar_words(text: str) -> set[tuple[str, int]]:
    """The months and weekdays of a text (see `dates`), without how they were written."""
    return {key for _, key in dates(text)}


def date_facts(date: str | None) -> tuple[set[str], set[tuple[str, int]]]:
    """The year and month of an article date: facts an answer may state without a sentence
    saying them ("in oktober 2022").

    Args:
        date: "2022-10", "2023-01-15", or None.

    Returns:
        ({"2022"}, {("month", 10)}) for "2022-10"; empty sets without a date.
    """
    parts = re.findall(r"\d+", date or "")
    if not parts:
        return set(), set()
    month = {("month", int(parts[1]))} if len(parts) > 1 and 1 <= int(parts[1]) <= 12 else set()
    return {str(int(parts[0]))}, month


def names(text: str, *, known: set[str] = frozenset()) -> list[tuple[str, ...]]:
    """The proper names of a sentence, as runs of capitalised words ("Kim Jong-un" is ("Kim",
    "Jong-un")). The first word of a sentence or quotation counts only when it is known to be a
    name (capitalised inside a sentence of the passages or the answer); stop words of either
    language ("De", "The": an answer may quote the other one), titles ("President", "Prime
    Minister") and months and weekdays (dates) never count.

    Args:
        text: one sentence.
        known: normal forms (see `normal`) of words seen capitalised inside sentences.

    Returns:
        The names in text order, each a tuple of its words.
    """
    runs: list[list[str]] = []
    last = -2
    for i, match in enumerate(_WORD.finditer(text)):
        word = match.group()
        lowered = word.casefold()
        if (len(word) < 2 or not word[0].isupper() or lowered in _MONTH_WORDS or lowered in _DAY_WORDS
                or lowered in _TITLES or not word.isupper() and _is_stopword(word)):
            continue
        before = text[:match.start()].rstrip()
        if (i == 0 or before[-1] in _OPENERS) and normal(word) not in known:
            continue
        if i == last + 1 and not before.endswith(","):
            runs[-1].append(word)
        else:
            runs.append([word])
        last = i
    return [tuple(run) for run in runs]


def capitalised_inside(text: str) -> set[str]:
    """Normal forms of the words capitalised inside the sentences of a text (so most likely names)."""
    found = set()
    for start, end in split_sentences(text):
        sentence = text[start:end]
        for i, match in enumerate(_WORD.finditer(sentence)):
            before = sentence[:match.start()].rstrip()
            if i and match.group()[0].isupper() and before and before[-1] not in _OPENERS:
                found.add(normal(match.group()))
    return found


@dataclass
class Vocabulary:
    """The normal forms of the words of a text (hyphenated words also whole and in parts), for
    matching names against it."""

    forms: set[str] = field(default_factory=set)

    @classmethod
    def of(cls, text: str) -> Vocabulary:
        """The vocabulary of a text (a passage sentence, its headline)."""
        forms = set()
        for word in _WORD.findall(text):
            forms.add(normal(word))
            if "-" in word:
                forms |= {normal(part) for part in word.split("-") if part}
        return cls(forms)

    def has_name(self, name: str) -> bool:
        """Whether a name occurs here, allowing for transliteration, derived forms and exonyms.

        Args:
            name: one word of a name as an answer writes it; a hyphenated one ("Jong-un") occurs
                when it does whole or all its parts do.

        Returns:
            True if some word here is the same name.
        """
        if "-" in name and all(self.has_name(p) for p in name.split("-") if p):
            return True
        word = normal(name)
        if word in self.forms:
            return True
        groups = _exonym_groups(word)
        if groups and any(groups & _exonym_groups(form) for form in self.forms):
            return True
        return any(_similar(word, form) for form in self.forms)


def negated(text: str) -> bool:
    """Whether a sentence holds a negation ("niet", "geen", "not", "never", "cannot", "n't")."""
    lowered = text.casefold().replace("’", "'")
    return "n't" in lowered or any(w in _NEGATION for w in re.findall(r"[^\W\d_]+", lowered))


@lru_cache(maxsize=65536)
def normal(word: str) -> str:
    """A word's normal form for comparing names across Dutch and English spelling: diacritics
    folded, lowercased, possessive and hyphens dropped, a rough transliteration (oe -> u, sj -> sh,
    ch/kh -> h, c -> k, x -> ks, y/j -> i, w -> v) and double letters single."""
    w = fold_diacritics(word).casefold().replace("’", "'")
    w = re.sub(r"'s?$", "", w).replace("-", "").replace("'", "")
    for a, b in (("x", "ks"), ("oe", "u"), ("sj", "sh"), ("kh", "h"), ("ch", "h"), ("ph", "f"), ("c", "k"),
                 ("y", "i"), ("j", "i"), ("w", "v")):
        w = w.replace(a, b)
    return re.sub(r"(.)\1+", r"\1", w)


def _readings(token: str) -> set[str]:
    """The values a written number can have: separators as thousands marks, and the last one as
    a decimal mark (Dutch "9,6", English "9.6")."""
    digits = re.split(r"[.,]", token)
    seps = re.findall(r"[.,]", token)
    readings = {"".join(digits)} if not seps or all(len(g) == 3 for g in digits[1:]) and len(set(seps)) == 1 else set()
    if seps and len(set(seps[:-1]) - {"." if seps[-1] == "," else ","}) == 0:
        readings.add("".join(digits[:-1]) + "." + digits[-1])
    return {_canonical(r) for r in readings if r}


def _canonical(number: str) -> str:
    try:
        return format(Decimal(number).normalize(), "f")  # "400", "9.6", "1.05"
    except InvalidOperation:
        return number


def _word_numbers(text: str) -> list[tuple[str, int]]:
    words = [w.casefold() for w in _WORD.findall(text)]
    values, i = [], 0
    while i < len(words):
        head = _UNITS.get(words[i], _TENS.get(words[i]))
        if head and i + 1 < len(words) and words[i + 1] in _SCALES:  # "four hundred"
            values.append((f"{words[i]} {words[i + 1]}", head * _SCALES[words[i + 1]]))
            i += 2
            continue
        value = _simple_number(words[i])
        if value is not None:
            values.append((words[i], value))
        i += 1
    return values


def _simple_number(word: str) -> int | None:
    if word in _UNITS:
        return _UNITS[word]
    if word in _TENS:
        return _TENS[word]
    if word in _SCALES:
        return _SCALES[word]
    m = _DUTCH_NUMBER.fullmatch(word)
    if not m:
        return None
    if m.group(2):  # "vierhonderd", "tweeduizend"
        head = _UNITS.get(m.group(1), 1 if not m.group(1) else None)
        return None if head is None else head * _SCALES[m.group(2)]
    unit = _UNITS.get(m.group(3))  # "vijfentwintig"
    return None if unit is None or unit > 9 else unit + _TENS[m.group(4)]


@lru_cache(maxsize=1)
def _exonym_stems() -> list[tuple[int, tuple[str, ...]]]:
    return [(i, tuple(normal(stem) for stem in group.split())) for i, group in enumerate(_EXONYMS)]


@lru_cache(maxsize=65536)
def _exonym_groups(word: str) -> frozenset[int]:
    return frozenset(i for i, stems in _exonym_stems()
                     if any(word == s if len(s) <= 3 else word.startswith(s) for s in stems))


def _similar(a: str, b: str) -> bool:
    """Spelling variants and derived forms: a long shared prefix ("ukrainian" ~ "ukrainse",
    "sovietlanden" ~ "soviet"), or nearly the same letters ("aleksander" ~ "aleksandr")."""
    if min(len(a), len(b)) < 4:
        return False
    prefix = 0
    for x, y in zip(a, b):
        if x != y:
            break
        prefix += 1
    if prefix >= 5 and prefix >= 0.7 * min(len(a), len(b)):
        return True
    if min(len(a), len(b)) < 6:  # "yunan" and "yuan" are different places
        return False
    matcher = SequenceMatcher(None, a, b)
    return matcher.real_quick_ratio() >= 0.8 and matcher.quick_ratio() >= 0.8 and matcher.ratio() >= 0.8


_ANALYZER = Analyzer(stem=False, compounds=False)


def _is_stopword(word: str) -> bool:
    return not _ANALYZER.analyze(word, "nl") or not _ANALYZER.analyze(word, "en")
