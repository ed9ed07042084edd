"""Dutch compound splitting for the lexical leg: "gehoorschade" also indexes "gehoor" and "schade".

Dutch writes compounds as one word, so a question about "schade aan het gehoor" shares no term
with a passage about "gehoorschade", and "kinderopvangtoeslag" none with "toeslag". The splitter
uses a list of Dutch word frequencies (qa/data/nl_words.tsv.gz, from wordfreq; see
qa/data/NL_WORDS.md): a word is split when it is itself rare (a common word such as "onderzoek"
or "ziekenhuis" is kept whole however it could be cut) and it can be read as known words, joined
directly or by a linking "s", "e" or "en" ("verkiezing-s-uitslag"); the plural of a common word
("bevrijdingen") counts as common. Of the readings, the one with
the fewest parts wins, then the one whose parts are most frequent, so "kinderopvangtoeslag" is
"kinderopvang" + "toeslag", not "kind" + "erop" + "vang" + "toeslag". Measured on the BM25 leg
alone, it raised R@5 and MRR@10 on every evaluation set (EVALUATION.md).
"""

from __future__ import annotations

import gzip
from functools import lru_cache
from importlib import resources

WORDS_FILE = "nl_words.tsv.gz"
MIN_WORD = 8            # shorter words are left whole
MAX_WORD = 40           # longer "words" (hostile input, run-together text) too: no compound is that long
COMMON_ZIPF = 3.5       # a word at least this frequent is a word of its own, not split
PART_ZIPF = 2.5         # a part must be at least this frequent (every listed word is)...
SHORT_PART_ZIPF = 4.5   # ...and a three-letter part ("wet", "zee") this frequent
MIN_PART = 3
LINKS = ("", "s", "e", "en")


@lru_cache(maxsize=1)
def _lexicon() -> dict[str, float]:
    data = resources.files("qa").joinpath("data", WORDS_FILE).read_bytes()
    lexicon = {}
    for line in gzip.decompress(data).decode("utf-8").splitlines():
        word, _, zipf = line.partition("\t")
        lexicon[word] = int(zipf) / 100
    return lexicon


def _known(part: str) -> bool:
    zipf = _lexicon().get(part, 0.0)
    return len(part) >= MIN_PART and zipf >= (SHORT_PART_ZIPF if len(part) == MIN_PART else PART_ZIPF)


@lru_cache(maxsize=200_000)
def split_compound(word: str) -> tuple[str, ...]:
    """The parts of a Dutch compound, or () when `word` is not one.

    Args:
        word: one lowercased word with diacritics folded, as the analyzer sees it before stemming.

    Returns:
        Two or more known words whose concatenation (with linking letters) is `word`, e.g.
        ("energie", "prijzen") for "energieprijzen"; () for short, common or unknown words.
    """
    if not MIN_WORD <= len(word) <= MAX_WORD or any(_lexicon().get(form, 0.0) >= COMMON_ZIPF for form in _forms(word)):
        return ()
    return _readings(word) or ()


def _forms(word: str) -> tuple[str, ...]:
    # The word and its singular if it looks plural: "bevrijdingen" is the plural of the common
    # "bevrijding", not "bevrijd" + "ingen".
    return (word, *(word[:-len(end)] for end in ("en", "s") if word.endswith(end)))


@lru_cache(maxsize=200_000)
def _readings(word: str) -> tuple[str, ...] | None:
    # The best reading of `word` as two or more known parts, or None.
    lexicon, candidates = _lexicon(), []
    for cut in range(MIN_PART, len(word) - MIN_PART + 1):
        left, right = word[:cut], word[cut:]
        for link in LINKS:
            if not left.endswith(link):
                continue
            head = left[:len(left) - len(link)]
            if not _known(head):
                continue
            if _known(right):
                candidates.append((head, right))
            elif len(right) >= 2 * MIN_PART and (rest := _readings(right)):
                candidates.append((head, *rest))
    if not candidates:
        return None
    return min(candidates, key=lambda parts: (len(parts), -sum(lexicon[p] for p in parts) / len(parts)))
