"""Dates for news: the days an article covers, and the time words in a question.

Rules (the tests in tests/test_when.py hold one row per rule):

- A `DayRange` is inclusive at both ends; None is an open end.
- An article's date covers what it says: "2022" the whole year, "2022-10" the month, a date or a
  datetime its day. A datetime counts in the zone it is written in, a Unix timestamp in UTC.
- A question's time words become a range relative to `now`, the archive's "today". A month or
  day without a year is the latest one starting on or before `now`. Weeks run Monday to Sunday:
  "vorige week"/"last week" is the previous such week, "deze week" this one; "afgelopen
  week"/"past week"/"the last week" are the 7 days ending today, and "de afgelopen 3
  maanden"/"the past 3 months" the three months ending today. No number with a plural
  ("de afgelopen dagen") means 3.
- A month name alone counts only after a preposition ("in mei", "sinds maart", "tot juni") or
  with a day, a year or "begin/half/eind/early/mid/late": "minister Mei", "May I ask" and "March
  Madness" stay text. Seasons, quarters and halves ("het eerste kwartaal van 2022") need a year. A bare
  year needs a preposition too, so "Expo 2020" and "2000 soldaten" stay text, while "de Tour van 2022" means 2022 (news about an event is mostly from its year);
  a year followed by an amount word ("tot 2000 euro") is an amount.
- "sinds/vanaf/since X" starts at X, "na/after X" after it; "tot/tot en met/until X" ends with X
  (inclusive: a filter a day too wide loses nothing), "vóór/before X" before it. Plain "voor" is
  left alone: in "plannen voor 2024" it means "for".
- The first expression in the question wins; `rest` is the question without it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta, timezone

__all__ = ["DayRange", "TimeFilter", "article_range", "asks_for_latest", "find_time", "parse_day"]

_MONTH_NAMES = {
    "nl": "januari februari maart april mei juni juli augustus september oktober november december".split(),
    "en": "January February March April May June July August September October November December".split(),
}
_MONTHS = {name.casefold(): i for names in _MONTH_NAMES.values() for i, name in enumerate(names, 1)}
_THIRDS = {"begin": 0, "early": 0, "half": 1, "midden": 1, "mid": 1, "eind": 2, "end of": 2, "late": 2}
_SEASONS = {"lente": (3, 5), "voorjaar": (3, 5), "spring": (3, 5), "zomer": (6, 8), "summer": (6, 8),
            "herfst": (9, 11), "najaar": (9, 11), "autumn": (9, 11)}  # fmt: skip
_QUARTERS = {f"{word} {unit}": (3 * q - 2, 3 * q) for unit, words in (("kwartaal", "eerste tweede derde vierde"),
                                                                      ("quarter", "first second third fourth"))
             for q, word in enumerate(words.split(), 1)} | {
    "eerste helft": (1, 6), "tweede helft": (7, 12), "first half": (1, 6), "second half": (7, 12)}  # fmt: skip
_PREPOSITIONS = {
    **dict.fromkeys(["in", "in het jaar", "in the year", "op", "on", "tijdens", "during", "van", "from"], "in"),
    **dict.fromkeys(["sinds", "vanaf", "since"], "since"),
    **dict.fromkeys(["na", "after"], "after"),
    **dict.fromkeys(["tot", "tot en met", "t/m", "until", "till", "through", "up to"], "until"),
    **dict.fromkeys(["vóór", "before"], "before"),
}
_DAY_WORDS = {"vandaag": 0, "today": 0, "vanochtend": 0, "vanmorgen": 0, "vanmiddag": 0, "vanavond": 0,
              "vannacht": 0, "this morning": 0, "tonight": 0, "gisteren": -1, "yesterday": -1,
              "eergisteren": -2, "the day before yesterday": -2}  # fmt: skip
_CALENDAR = {"deze": 0, "dit": 0, "this": 0, "huidige": 0, "current": 0,
             "vorige": -1, "vorig": -1, "verleden": -1, "last": -1, "previous": -1}  # fmt: skip
_UNITS = {"dag": "day", "dagen": "day", "day": "day", "days": "day", "week": "week", "weken": "week",
          "weeks": "week", "maand": "month", "maanden": "month", "month": "month", "months": "month",
          "jaar": "year", "jaren": "year", "year": "year", "years": "year"}  # fmt: skip
_PLURALS = {"dagen", "days", "weken", "weeks", "maanden", "months", "jaren", "years"}
_NUMBERS = {word: n for words in ("een één twee drie vier vijf zes zeven acht negen tien elf twaalf",
                                  "one one two three four five six seven eight nine ten eleven twelve")
            for n, word in enumerate(words.split(), 1)} | {"paar": 3, "few": 3, "enkele": 3, "several": 3}  # fmt: skip
# A number after "tot"/"van"/"in" followed by one of these is an amount, not a year.
_AMOUNTS = "euro dollar dollars pond procent percent mensen people personen keer times doden deaths".split()


def _words(words) -> str:
    """A regex alternation of `words`, longest first, spaces matching any whitespace."""
    return "(?:" + "|".join(re.escape(w).replace(r"\ ", r"\s+") for w in sorted(words, key=len, reverse=True)) + ")"


_MONTH, _YEAR = _words(_MONTHS), r"(?:19|20)\d\d\b"
_DAY = r"(?:[12]\d|3[01]|0?[1-9])(?:ste|de|e|st|nd|rd|th)?\b"
_THIRD = _words(_THIRDS) + r"(?:\s+|-)"
_NUMERIC = r"\d{4}-\d\d?-\d\d?\b|\d\d?[-/.]\d\d?[-/.]\d{4}\b"
_POINT = (rf"(?:{_NUMERIC}|{_DAY}\s+{_MONTH}(?:\s+{_YEAR})?|{_MONTH}\s+{_DAY}(?:,?\s+{_YEAR})?|(?:{_THIRD})?{_MONTH}\s+{_YEAR}"
          rf"|{_THIRD}(?:{_MONTH}|{_YEAR})|(?:(?:de|het|the)\s+)?{_words(_SEASONS | _QUARTERS)}\s+(?:(?:van|of)\s+)?{_YEAR})")  # fmt: skip
_ANY = rf"(?:{_POINT}|{_MONTH}|{_YEAR})"
_SEPARATOR = r"(?:\s*[-–]\s*|\s+(?:tot\s+en\s+met|tot|t/m|to|until|till|through)\s+)"
_COUNT = rf"(?:\d{{1,3}}|(?:een\s+|a\s+)?{_words(_NUMBERS)})"
# The leftmost expression wins; at one position the alternatives are tried in this order: ranges
# ("tussen 1 en 15 maart", "van maart tot mei"), a preposition and a date or a bare month or year,
# a date that needs no preposition, day words, calendar units ("vorige week"), rolling periods
# ("de afgelopen 7 dagen"). "laatste week van oktober" is not a rolling week (hence the lookahead).
_PATTERN = re.compile(
    rf"""(?<![\w.,/-])(?:
      (?:tussen|between)\s+(?P<s>{_ANY}|{_DAY})\s+(?:en|and)\s+(?P<e>{_ANY})
    | (?:(?:van|from|in|tijdens|during)\s+)?(?P<s2>{_ANY}|{_DAY}){_SEPARATOR}(?P<e2>{_ANY})
    | (?P<prep>{_words(_PREPOSITIONS)})\s+(?P<p>{_ANY})
    | (?P<point>{_POINT})
    | (?:(?:van|from|of)\s+)?(?P<day>{_words(_DAY_WORDS)})
    | (?:(?:van|from|of)\s+)?(?P<calendar>{_words(_CALENDAR)}\s+{_words(_UNITS)})(?!\s+(?:van|of)\b)
    | (?:(?:in|over|during|tijdens|gedurende)\s+)?(?P<rolling>(?:(?:de|the)\s+(?:afgelopen|past|last|laatste)|afgelopen|past)
          \s+(?:{_COUNT}\s+)?{_words(_UNITS)}|(?:last|laatste)\s+{_COUNT}\s+{_words(_UNITS)})(?!\s+(?:van|of)\b)
    )(?!\w)(?!\s*(?:%|€|{_words(_AMOUNTS)}\b))""",
    re.IGNORECASE | re.VERBOSE,
)


@dataclass(frozen=True)
class DayRange:
    """Days from `since` to `until`, both inclusive; None is an open end."""

    since: date | None
    until: date | None

    def __post_init__(self) -> None:
        if self.since and self.until and self.since > self.until:
            raise ValueError(f"since ({self.since}) is after until ({self.until})")

    def overlaps(self, other: DayRange) -> bool:
        """Whether the two ranges share at least one day."""
        return (self.since is None or other.until is None or self.since <= other.until) and (
            other.since is None or self.until is None or other.since <= self.until
        )

    def to_dict(self) -> dict[str, str | None]:
        return {"since": self.since and self.since.isoformat(), "until": self.until and self.until.isoformat()}

    def label(self, language: str = "nl") -> str:
        """A short label: "oktober 2022", "2021", "1–7 oktober 2022", "sinds 1 oktober 2022"."""
        months = _MONTH_NAMES["en" if language == "en" else "nl"]
        words = ("since", "until", "any date") if language == "en" else ("sinds", "tot en met", "alle data")
        a, b = self.since, self.until
        if not (a and b):
            return f"{words[0]} {_say(a, 'day', months)}" if a else f"{words[1]} {_say(b, 'day', months)}" if b else words[2]
        whole_months = a.day == 1 and (b + timedelta(1)).day == 1
        unit = ("year" if (a.month, b.month) == (1, 12) else "month") if whole_months else "day"
        first, last = _say(a, unit, months), _say(b, unit, months)
        if first == last:
            return first
        if unit != "year" and a.year == b.year:  # the shared year (and month) is said once, at the end
            first = str(a.day) if unit == "day" and a.month == b.month else first.rsplit(" ", 1)[0]
        return f"{first}–{last}" if " " not in first else f"{first} – {last}"


def _say(day: date, unit: str, months: list[str]) -> str:
    return {"year": f"{day.year}", "month": f"{months[day.month - 1]} {day.year}"}.get(
        unit, f"{day.day} {months[day.month - 1]} {day.year}"
    )


@dataclass(frozen=True)
class TimeFilter:
    """A time expression found in a question: its days, where it stood, and the question without it."""

    range: DayRange
    start: int
    end: int
    text: str
    rest: str

    def label(self, language: str = "nl") -> str:
        return self.range.label(language)


@dataclass(frozen=True)
class _Partial:
    """A date as written, parts possibly missing: a day, a month, a year, a third or a season of them."""

    year: int | None = None
    month: int | None = None
    day: int | None = None
    third: int | None = None
    season: tuple[int, int] | None = None


def _month_end(year: int, month: int) -> date:
    return date(year + month // 12, month % 12 + 1, 1) - timedelta(1)


def _days(p: _Partial, year: int) -> DayRange:
    """The days `p` covers in `year`; ValueError for a day that does not exist."""
    if p.day is not None:
        return DayRange(date(year, p.month, p.day), date(year, p.month, p.day))
    if p.month is not None:
        first, last = ((1, 10), (11, 20), (21, 31))[p.third] if p.third is not None else (1, 31)
        return DayRange(date(year, p.month, first), min(date(year, p.month, 1) + timedelta(last - 1), _month_end(year, p.month)))
    first, last = p.season or ((p.third * 4 + 1, p.third * 4 + 4) if p.third is not None else (1, 12))
    return DayRange(date(year, first, 1), _month_end(year, last))


def _partial(text: str) -> _Partial:
    """Read the parts of a date the pattern matched: "3 oktober", "eind 2022", "2022-10-07"."""
    numeric = re.fullmatch(r"(\d{4})-(\d+)-(\d+)|(\d+)\D(\d+)\D(\d{4})", text)
    if numeric:  # ISO is year first; otherwise day first, as in Dutch and British writing
        y, m, d = numeric.groups()[:3] if numeric[1] else numeric.groups()[:2:-1]
        return _Partial(int(y), int(m), int(d))
    p, folded = _Partial(), re.sub(r"\s+", " ", text.casefold())
    for word in re.findall(r"end of|\d+|[^\W\d_]+", folded):
        if word in _MONTHS:
            p = replace(p, month=_MONTHS[word])
        elif word in _THIRDS or word in _SEASONS:
            p = replace(p, third=_THIRDS.get(word), season=_SEASONS.get(word))
        elif word.isdigit():
            p = replace(p, **{"year" if len(word) == 4 else "day": int(word)})
    part = next((months for phrase, months in _QUARTERS.items() if phrase in folded), None)
    return replace(p, third=None, season=part) if part else p


def _latest(p: _Partial, now: date) -> DayRange:
    """The days of `p`, in its own year or else the latest year in which it starts on or before `now`."""
    if p.year:
        return _days(p, p.year)
    for year in range(now.year, now.year - 8, -1):  # 8 years always hold a 29 February
        try:
            days = _days(p, year)
        except ValueError:
            continue
        if days.since <= now:
            return days
    raise ValueError(f"no such day: {p}")


def _minus(day: date, n: int, unit: str) -> date:
    if unit in ("day", "week"):
        return day - timedelta(n * (7 if unit == "week" else 1))
    months = day.year * 12 + day.month - 1 - n * (12 if unit == "year" else 1)
    year, month = divmod(months, 12)
    return date(year, month + 1, min(day.day, _month_end(year, month + 1).day))


def _calendar(now: date, unit: str, offset: int) -> DayRange:
    """The day, ISO week, month or year `offset` units from the one holding `now`."""
    if unit in ("day", "week"):
        first = _minus(now, -offset, unit) - timedelta(now.weekday() if unit == "week" else 0)
        return DayRange(first, first + timedelta(6 if unit == "week" else 0))
    first = _minus(now.replace(day=1, month=1 if unit == "year" else now.month), -offset, unit)
    return DayRange(first, _minus(first, -1, unit) - timedelta(1))


def _resolve(m: re.Match, now: date) -> DayRange:
    """The days of one match of the pattern; ValueError when its parts make no date."""
    words = re.findall(r"\d+|[^\W\d_]+", (m["day"] or m["calendar"] or m["rolling"] or "").casefold())
    if m["day"]:
        return _calendar(now, "day", _DAY_WORDS[" ".join(words)])
    if m["calendar"]:
        return _calendar(now, _UNITS[words[-1]], _CALENDAR[words[0]])
    if m["rolling"]:
        counts = [int(w) if w.isdigit() else _NUMBERS[w] for w in words[:-1] if w.isdigit() or w in _NUMBERS]
        n = counts[-1] if counts else 3 if words[-1] in _PLURALS else 1
        return DayRange(_minus(now, n, _UNITS[words[-1]]) + timedelta(1), now)
    if m["point"] or m["p"]:
        days = _latest(_partial(m["point"] or m["p"]), now)
        kind = _PREPOSITIONS.get(re.sub(r"\s+", " ", (m["prep"] or "in").casefold()))
        return {"in": days, "since": DayRange(days.since, None), "after": DayRange(days.until + timedelta(1), None),
                "until": DayRange(None, days.until), "before": DayRange(None, days.since - timedelta(1))}[kind]  # fmt: skip
    first, last = _partial(m["s"] or m["s2"]), _partial(m["e"] or m["e2"])
    if first.month is None and first.year is None:  # "1 en 15 maart": the first day borrows the month
        first = replace(first, month=last.month if last.month and not last.season else None)
        if first.month is None:
            raise ValueError("a day without a month")
    end = _latest(last, now)
    start = _latest(first, end.until)
    return DayRange(start.since, end.until)


def find_time(question: str, language: str, now: date) -> TimeFilter | None:
    """Find the first time expression in `question` and the days it means.

    Args:
        question: The question as typed; expressions of both languages are read, since
            questions mix them.
        language: The question's language, "nl" or "en" (checked; the reading does not depend on it).
        now: The archive's today, that relative expressions count from.

    Returns:
        The filter, or None when the question holds no time expression.

    Raises:
        ValueError: If `language` is not "nl" or "en".
    """
    if language not in _MONTH_NAMES:
        raise ValueError(f"language must be 'nl' or 'en', not {language!r}")
    now = now.date() if isinstance(now, datetime) else now
    pos = 0
    while m := _PATTERN.search(question, pos):
        try:
            days = _resolve(m, now)
        except ValueError:  # words that make no date ("31 februari 2023"): look past them
            pos = m.end()
            continue
        return TimeFilter(days, m.start(), m.end(), m[0], _tidy(question[: m.start()] + " " + question[m.end() :]))
    return None


def _tidy(text: str) -> str:
    """Collapse the whitespace and stray punctuation a removed expression leaves behind."""
    text = re.sub(r"\s+", " ", text)
    text = re.sub(r"\s+([?!.,;:])", r"\1", text)
    text = re.sub(r"([,;:])(?=[,;:?!.])", "", text)
    return text.strip(" ,;:")


def article_range(value: object) -> DayRange | None:
    """The days an article's date covers; None for anything unreadable, never an exception.

    Reads "2022" (the year), "2022-10" (the month), "2022-10-07" and ISO datetimes (the day as
    written: an article's own zone is the day its readers saw, and a naive time has no other),
    Unix timestamps in seconds (9-11 digits) or milliseconds (13 digits) as ints, floats or
    strings (their UTC day), and written dates with a year ("7 oktober 2022").
    """
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        return None
    text = value.strip() if isinstance(value, str) else f"{value:.3f}" if isinstance(value, float) else str(value)
    try:
        if re.fullmatch(r"\d{4}(-\d\d){0,2}", text):
            return parse_day(text)
        if stamp := re.fullmatch(r"(\d{9,11}|\d{13})(\.\d+)?", text):
            seconds = float(text) / (1000 if len(stamp[1]) == 13 else 1)
            day = datetime.fromtimestamp(seconds, timezone.utc).date()
            return DayRange(day, day)
        if re.fullmatch(r"\d{4}-\d\d-\d\d[T ]\d\d:\d\d.*", text):
            day = datetime.fromisoformat(text).date()
            return DayRange(day, day)
        if re.fullmatch(_POINT, text, re.IGNORECASE) and (p := _partial(text)).year:
            return _days(p, p.year)
    except (ValueError, OverflowError, OSError):
        pass
    return None


def parse_day(text: str) -> DayRange:
    """The days a CLI date means: "2022" the year, "2022-10" the month, "2022-10-07" the day.

    A range rather than a day, so that `--since 2022-10` starts on 1 October and `--until 2022-10`
    ends on 31 October (news.as_day).

    Raises:
        ValueError: If `text` is not one of those forms or not a real date.
    """
    m = re.fullmatch(r"(\d{4})(?:-(\d\d)(?:-(\d\d))?)?", text.strip())
    try:
        if m:
            year, month, day = (int(part) if part else None for part in m.groups())
            date(year, month or 1, day or 1)  # month or day 00 is no date
            return _days(_Partial(year, month, day), year)
    except ValueError:
        pass
    raise ValueError(f"a date is YYYY, YYYY-MM or YYYY-MM-DD (such as 2022-10-07); got {text!r}")


_LATEST = re.compile(
    r"""\b(?:recentste|meest\s+recente|nieuwste|most\s+recent|newest)\b | (?<!\bat\sthe\s)\blatest\b
    | \b(?:laatste|recente?|actuele)\s+(?:nieuws|ontwikkelingen|berichten|updates?|stand\s+van\s+zaken|news|developments|events)\b
    | \bhet\s+laatste\s+(?:over|rond|omtrent|van\s+het\s+nieuws)\b | \bstand\s+van\s+zaken\b""",
    re.IGNORECASE | re.VERBOSE,
)


def asks_for_latest(question: str) -> bool:
    """Whether `question` asks for the most recent news.

    True for "laatste nieuws/ontwikkelingen/berichten/updates/stand van zaken", "het laatste
    over X", "recentste", "meest recente", "nieuwste", "recent(e) nieuws/ontwikkelingen",
    "stand van zaken", "latest" (not "at the latest"), "most recent", "newest", "recent news/
    developments/updates/events". False for "laatste"/"last" before any other word ("de laatste
    keer", "laatste ronde", "the last time") and for "recent" alone.
    """
    return bool(_LATEST.search(question))
