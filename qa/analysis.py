"""The analyzer of the lexical leg: Dutch and English text into index terms."""

from __future__ import annotations

import re
import threading
import unicodedata
from dataclasses import dataclass
from typing import ClassVar

import Stemmer

from .compounds import split_compound
from .language import LANGUAGES, detect_language, fold_diacritics

__all__ = ["VERSION", "Analyzer"]

# Bump whenever analyze() can return different tokens for the same input: indexes record it.
VERSION = "2"   # 2: Dutch compounds also give their parts (compounds.py)

# Snowball's Dutch and English stop-word lists (ASCII, so folding leaves them unchanged), plus
# question words Snowball keeps ("hoeveel", "how many") and the fragments English contractions
# split into ("isn't" -> "isn", "t"; "won't" is left alone because "won" is a real word).
_STOP_NL = frozenset(
    """
    aan al alles als altijd andere ben bij daar dan dat de der deze die dit doch doen door dus
    een eens en er ge geen geweest haar had heb hebben heeft hem het hier hij hoe hun iemand
    iets ik in is ja je kan kon kunnen maar me meer men met mij mijn moet na naar niet niets nog
    nu of om omdat onder ons ook op over reeds te tegen toch toen tot u uit uw van veel voor
    want waren was wat werd wezen wie wil worden wordt zal ze zelf zich zij zijn zo zonder zou
    hoeveel waar waarom wanneer welk welke
    """.split()
)
_STOP_EN = frozenset(
    """
    i me my myself we our ours ourselves you your yours yourself yourselves he him his himself
    she her hers herself it its itself they them their theirs themselves what which who whom
    this that these those am is are was were be been being have has had having do does did
    doing would should could ought a an the and but if or because as until while of at by for
    with about against between into through during before after above below to from up down in
    out on off over under again further then once here there when where why how all any both
    each few more most other some such no nor not only own same so than too very cannot
    isn aren wasn weren hasn haven hadn doesn don didn wouldn shan shouldn couldn mustn ll ve re
    many much
    """.split()
)
STOPWORDS = {"nl": _STOP_NL, "en": _STOP_EN}
_STEMMER_NAMES = {"nl": "dutch", "en": "english"}

# Numbers stay whole with their internal separators ("1.127", "2,5", "10.000"); an ordinal
# suffix ("19e", "21ste", "2nd") is swallowed so "19e eeuw" matches "19". Words are runs of
# letters and digits that start with a letter, so hyphens and apostrophes split them.
_TOKEN = re.compile(
    r"(\d+(?:[.,]\d+)*)(?:(?:ste|st|nd|rd|th|de|e)(?![^\W_]))?"
    r"|([^\W\d_][^\W_]*)"
)
# Invisible characters that sit *inside* words in scraped news (soft hyphens, joiners, BOM);
# deleting them keeps "bevrij\u00addingen" one word. Zero-width space stays a separator.
_INVISIBLE = dict.fromkeys(map(ord, "\u00ad\u200c\u200d\u2060\ufeff"), None)

# PyStemmer objects are not thread-safe, so each thread keeps its own.
_local = threading.local()


def _stemmer(lang: str) -> Stemmer.Stemmer:
    stemmers = _local.__dict__.setdefault("stemmers", {})
    if lang not in stemmers:
        stemmers[lang] = Stemmer.Stemmer(_STEMMER_NAMES[lang])
    return stemmers[lang]


@dataclass(frozen=True)
class Analyzer:
    """Turns text into index terms: tokenise, lowercase, fold, drop stop words, split Dutch
    compounds (the whole word stays a term too, its parts follow it), stem.

    Single letters count as stop words: they are mostly leftovers of apostrophes and
    initials ("Poetin's", "zo'n", "J. Smith").
    """

    VERSION: ClassVar[str] = VERSION

    stem: bool = True
    fold_diacritics: bool = True
    stopwords: bool = True
    compounds: bool = True

    def __post_init__(self) -> None:
        for name in ("stem", "fold_diacritics", "stopwords", "compounds"):
            value = getattr(self, name)
            if not isinstance(value, bool):
                raise TypeError(f"{name} must be True or False, got {value!r}")

    def to_dict(self) -> dict[str, bool]:
        """Describe the settings for an index manifest.

        Returns:
            The settings, such that ``Analyzer(**analyzer.to_dict()) == analyzer``.
        """
        return {"stem": self.stem, "fold_diacritics": self.fold_diacritics,
                "stopwords": self.stopwords, "compounds": self.compounds}

    def analyze(self, text: str, lang: str | None = None) -> list[str]:
        """Split ``text`` into index terms.

        Args:
            text: Any string, including empty, control characters or lone surrogates.
            lang: ``"nl"`` or ``"en"`` (or a tag such as ``"nl-NL"``) chooses stop words and
                stemmer; None, or a language other than these two, is detected from ``text``.

        Returns:
            The terms in text order, possibly empty. Numbers are kept whole and never stemmed.

        Raises:
            TypeError: ``lang`` is neither a string nor None.
        """
        if lang is not None and not isinstance(lang, str):
            raise TypeError(f"lang must be a language code such as 'nl' or None, got {lang!r}")
        # Corpus metadata may say "nl-NL" or "de"; only Dutch and English have stemmers here,
        # so anything else is treated like a missing tag rather than failing a whole build.
        lang = (lang or "").split("-")[0].split("_")[0].lower()
        if lang not in LANGUAGES:
            lang = detect_language(text)
        text = text.translate(_INVISIBLE).casefold()
        if self.fold_diacritics:
            text = fold_diacritics(text)
        else:
            text = unicodedata.normalize("NFKC", text)
        stop = STOPWORDS[lang] if self.stopwords else frozenset()
        split = self.compounds and lang == "nl"
        terms: list[str] = []
        word_positions: list[int] = []
        for number, word in _TOKEN.findall(text):
            if number:
                terms.append(number)
            elif not self.stopwords or (len(word) > 1 and word not in stop):
                parts = [p for p in split_compound(word) if p not in stop] if split else []
                for w in (word, *parts):
                    word_positions.append(len(terms))
                    terms.append(w)
        if self.stem and word_positions:
            stems = _stemmer(lang).stemWords([terms[i] for i in word_positions])
            for position, stem in zip(word_positions, stems):
                terms[position] = stem
        return terms
