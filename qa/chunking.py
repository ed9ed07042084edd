"""Split article text into sentences and pack them into overlapping, offset-exact chunks."""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass, replace
from typing import ClassVar

# Lower-cased, with their final period. Dotted letter runs ("o.a.", "J.P.") are also caught by
# _INITIALS, but they are listed so the list documents what we protect.
ABBREVIATIONS = frozenset("""
    a.s. aanv. afb. afd. afk. alg. art. bijv. bijvoorbeeld. bv. blz. bros. btw. ca. cf. co. corp.
    d.d. d.i. d.m.v. d.w.z. dhr. dr. drs. e.a. e.d. e.e.a. e.g. e.v. enz. etc. excl. fa. fig.
    gebr. gem. i.c. i.e. i.h.a. i.o. i.p.v. i.s.m. i.v.m. inc. incl. ing. ir. jhr. jl. jr. kand.
    lt. ltd. m.a.w. m.b.t. m.i. m.m.v. mevr. mgr. min. mln. mr. mrd. mrs. ms. mw. n.a.v. n.b.
    nl. no. nr. nrs. o.a. o.b.v. o.i.d. o.m. p. p.p. pag. pct. ph.d. prof. red. resp. sen.
    sr. st. t.a.v. t.b.v. t.o.v. t/m. tel. ts. v. v.chr. v.d. vgl. viz. vlg. vnl. vs. w.o.
    z.g.a.n. z.g. z.s.m. zg. zgn. zn.
""".split())

# Characters that start a new line; each one ends a sentence (paragraph boundaries).
_LINE = re.compile(r"[^\n\r\v\f\x1c-\x1e\x85\u2028\u2029]+")
# Sentence-final punctuation plus any closing quotes/brackets, then whitespace on the same line.
_END = re.compile(r"[.!?…]+[\"'”’»)\]]*(?=\s)")
_CLOSERS = "\"'”’»)]"
_OPENERS = "„“‚‘\"'«([¿¡"
# "J.P", "W", "o.a", "d.w.z": single letters joined by periods (the final period is not included).
_INITIALS = re.compile(r"(?:[^\W\d_]\.)*[^\W\d_]")
_WORD = re.compile(r"\S+")
_FINAL_PUNCT = re.compile(r"[.!?…:;,][\"'”’»)\]]*$")
_HEADING_MAX_WORDS = 6
# A sentence far longer than max_words is cut at word boundaries so that no chunk runs past the
# embedding model's 512-token window.
_HARD_SPLIT_FACTOR = 3


@dataclass(frozen=True)
class Chunk:
    """A span of one article's text: ``article.text[start:end] == text``.

    The one shape of a chunk from the chunker to the index's chunk table to a citation; `lang`
    (the language its words are analysed in) is set when it is indexed.
    """

    REQUIRED: ClassVar[dict] = {"chunk_id": str, "doc_id": str, "ordinal": int, "start": int, "end": int, "text": str}

    chunk_id: str
    doc_id: str
    ordinal: int
    start: int
    end: int
    text: str
    lang: str | None = None


@dataclass(frozen=True)
class ChunkSettings:
    """How articles are chunked; stored in the index manifest."""

    max_words: int = 120
    overlap: int = 1

    def __post_init__(self) -> None:
        if isinstance(self.max_words, bool) or not isinstance(self.max_words, int) or self.max_words < 10:
            raise ValueError(f"max_words must be an integer >= 10, got {self.max_words!r}")
        if isinstance(self.overlap, bool) or not isinstance(self.overlap, int) or not 0 <= self.overlap < 5:
            raise ValueError(f"overlap must be an integer from 0 to 4, got {self.overlap!r}")

    def to_dict(self) -> dict[str, int]:
        """Return the settings as a plain dict for the index manifest."""
        return asdict(self)


@dataclass(frozen=True)
class _Unit:
    """What chunks are packed from: a sentence, a heading plus its sentence, or a piece of one."""

    start: int
    end: int
    words: int
    heading: bool = False


def split_sentences(text: str) -> list[tuple[int, int]]:
    """Split Dutch (or English) text into sentence spans.

    Splits after ``. ! ? …`` (plus closing quotes/brackets) when whitespace and an uppercase
    letter, digit or opening quote follow, and at every line break. Abbreviations, initials and
    numbers such as ``1.127`` do not end a sentence.

    Args:
        text: The text to split.

    Returns:
        ``(start, end)`` offsets into ``text``, in order, without surrounding whitespace; together
        they cover every non-whitespace character.
    """
    return [(s, e) for s, e, _ in _split(text)]


def chunk_text(doc_id: str, text: str, *, max_words: int = 120, overlap: int = 1) -> list[Chunk]:
    """Pack consecutive sentences of ``text`` into chunks of at most ``max_words`` words.

    Args:
        doc_id: Id of the article; chunk ids are ``f"{doc_id}#{ordinal}"``.
        text: The article text; chunk offsets index into it.
        max_words: Word budget per chunk. A longer sentence becomes a chunk of its own, and one
            longer than three times the budget is cut at word boundaries into pieces of at most
            ``max_words`` words.
        overlap: How many sentences at the end of a chunk start the next one. A short heading
            line (no final punctuation, at most six words) is never a chunk alone: it starts a
            new chunk, without overlap, together with the text after it.

    Returns:
        The chunks in order; ``[]`` for empty or whitespace-only text.

    Raises:
        ValueError: If ``max_words < 10`` or ``overlap`` is not in ``0..4``.
    """
    ChunkSettings(max_words, overlap)  # validates
    units = _units(text, max_words)
    chunks: list[Chunk] = []
    i = 0
    while i < len(units):
        j, words = i, units[i].words
        while j + 1 < len(units) and not units[j + 1].heading and words + units[j + 1].words <= max_words:
            j += 1
            words += units[j].words
        start, end = units[i].start, units[j].end
        n = len(chunks)
        chunks.append(Chunk(f"{doc_id}#{n}", doc_id, n, start, end, text[start:end]))
        if j == len(units) - 1:
            break
        # The next chunk must contain unit j+1, so it always adds text and the loop advances;
        # overlapping sentences are dropped when they would push it past the budget, and a
        # section that opens with a heading starts its chunk at the heading.
        nxt = j + 1 if units[j + 1].heading else max(i + 1, j + 1 - overlap)
        while nxt <= j and sum(u.words for u in units[nxt : j + 2]) > max_words:
            nxt += 1
        i = nxt
    return chunks


def _split(text: str) -> list[tuple[int, int, bool]]:
    """Sentence spans plus whether each one is a whole line."""
    spans: list[tuple[int, int, bool]] = []
    for line in _LINE.finditer(text):
        pieces: list[tuple[int, int]] = []
        pos = line.start()
        for m in _END.finditer(text, line.start(), line.end()):
            if _is_boundary(text, m, line.end()):
                pieces.append((pos, m.end()))
                pos = m.end()
        pieces.append((pos, line.end()))
        trimmed = [p for p in (_trim(text, s, e) for s, e in pieces) if p]
        spans.extend((s, e, len(trimmed) == 1) for s, e in trimmed)
    return spans


def _trim(text: str, start: int, end: int) -> tuple[int, int] | None:
    seg = text[start:end]
    body = seg.strip()
    if not body:
        return None
    start += len(seg) - len(seg.lstrip())
    return start, start + len(body)


def _is_boundary(text: str, m: re.Match[str], line_end: int) -> bool:
    nxt = m.end()
    while nxt < line_end and text[nxt].isspace():
        nxt += 1
    if nxt >= line_end:
        return False  # the line break ends the sentence anyway
    c = text[nxt]
    if not (c.isupper() or c.istitle() or c.isdigit() or c in _OPENERS):
        return False
    if m.group().rstrip(_CLOSERS) != ".":
        return True  # "!", "?", "…" and "..." always end a sentence here
    word_start = m.start()
    while word_start > 0 and not text[word_start - 1].isspace():
        word_start -= 1
    word = text[word_start : m.start()].lstrip(_OPENERS)
    return not (f"{word.lower()}." in ABBREVIATIONS or _INITIALS.fullmatch(word))


def _units(text: str, max_words: int) -> list[_Unit]:
    """Sentences with headings merged into the sentence that follows them."""
    spans = _split(text)
    units: list[_Unit] = []
    heading_start: int | None = None
    for k, (s, e, whole_line) in enumerate(spans):
        if whole_line and k + 1 < len(spans) and _is_heading(text[s:e]):
            heading_start = s if heading_start is None else heading_start
            continue
        pieces = _hard_split(text, s if heading_start is None else heading_start, e, max_words)
        pieces[0] = replace(pieces[0], heading=heading_start is not None)
        units.extend(pieces)
        heading_start = None
    return units


def _is_heading(sentence: str) -> bool:
    return len(sentence.split()) <= _HEADING_MAX_WORDS and not _FINAL_PUNCT.search(sentence)


def _hard_split(text: str, start: int, end: int, max_words: int) -> list[_Unit]:
    words = [m.span() for m in _WORD.finditer(text, start, end)]
    if len(words) <= _HARD_SPLIT_FACTOR * max_words:
        return [_Unit(start, end, len(words))]
    # Equal-sized pieces, so the last one is not a stub of a few words.
    size = math.ceil(len(words) / math.ceil(len(words) / max_words))
    return [
        _Unit(words[k][0], words[min(k + size, len(words)) - 1][1], min(size, len(words) - k))
        for k in range(0, len(words), size)
    ]
