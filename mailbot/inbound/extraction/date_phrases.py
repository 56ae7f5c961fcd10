"""Date phrases, and the day each one names.

In: plain text, and the day it was written (the anchor). Out: the date expressions of the
text ("March 3", "10/2", "last night", "this past Saturday", "on the 14th", "two weeks ago",
"Friday the 9th", "sat night") with their spans, and the day each names on or before the
anchor (``resolve``), or for an explicit date its month, day and year (``named_day``).
``dates`` weighs which one is the incident's; ``milestones`` reads the days ahead. Pure.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import date, timedelta

from mailbot.inbound.extraction.counts import parse_count

_WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_MONTHS = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
_MONTH = (
    r"(?P<month>jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|(?-i:May)|june?|july?"
    r"|aug(?:ust)?|sept?(?:ember)?|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?)\b\.?"
)
# "Saturday", and the short forms before a part of the day: "sat night", "Fri. evening".
_WEEKDAY = (
    r"(?P<weekday>(?:mon|tues?|wed(?:nes)?|thu(?:rs?)?|fri|sat(?:ur)?|sun)day"
    r"|(?:mon|tues?|wed|thu(?:rs?)?|fri|sat|sun)(?=\.?\s+(?:night|nite|morning|afternoon|evening)\b))"
)
_DAY = r"(?P<day>[12]\d|3[01]|0?[1-9])(?:st|nd|rd|th)?"
_YEAR = r"(?P<year>(?:19|20)\d\d)"

_RELATIVE_DAYS = {
    "the day before yesterday": 2,
    "the night before last": 2,
    "yesterday": 1,
    "last night": 1,
    "overnight": 1,
}
_HOLIDAYS = {
    "christmas eve": (12, 24),
    "christmas day": (12, 25),
    "new year's eve": (12, 31),
    "new year's day": (1, 1),
    "fourth of july": (7, 4),
    "independence day": (7, 4),
    "halloween": (10, 31),
    "valentine's day": (2, 14),
}
# Holidays on the nth weekday of a month (n = -1: the last): (month, weekday, n).
_FLOATING = {
    "martin luther king day": (1, 0, 3),
    "mlk day": (1, 0, 3),
    "presidents' day": (2, 0, 3),
    "mother's day": (5, 6, 2),
    "memorial day": (5, 0, -1),
    "father's day": (6, 6, 3),
    "labor day": (9, 0, 1),
    "columbus day": (10, 0, 2),
    "thanksgiving": (11, 3, 4),
    "thanksgiving day": (11, 3, 4),
}


def _bare(name: str) -> str:
    """A holiday's name as a key: lower case, without apostrophes ("mothers day")."""
    return " ".join(re.sub(r"['\u2019]", "", name.lower()).split())


_FIXED_BY_KEY = {_bare(name): day for name, day in _HOLIDAYS.items()}
_FLOATING_BY_KEY = {_bare(name): rule for name, rule in _FLOATING.items()}
# "on Labor Day weekend" names no day
_HOLIDAY_NAMES = (
    "(?:" + "|".join(sorted([*_HOLIDAYS, *_FLOATING], key=len, reverse=True)) + ")(?! weekend)"
).replace("'", "['\u2019]?")

# Each expression, tried in this order; a later match that overlaps an earlier one is
# dropped. Every pattern starts at its fixed core (a digit, a month, a weekday) so that a
# scan stays fast; words before the core ("last", "Saturday,") are read by looking back.
# A pattern with a word in _NEEDS is only scanned for when the text has that word.
_EXPRESSIONS = [
    ("iso", rf"\b{_YEAR}-(?P<month>0?[1-9]|1[0-2])-(?P<day>0?[1-9]|[12]\d|3[01])\b"),
    (
        "numeric",
        r"(?<![\w/.-])(?P<month>0?[1-9]|1[0-2])/(?P<day>0?[1-9]|[12]\d|3[01])"
        r"(?:/(?P<year>(?:19|20)?\d\d))?(?![\w/]|\.\d)",
    ),
    ("month_day", rf"(?=[adfjmnos])\b{_MONTH}\s+{_DAY}\b(?![:%]|\.\d)(?:,?\s+{_YEAR}\b)?"),
    ("day_month", rf"(?=[t\d])\b(?:the\s+)?{_DAY}\s+(?:of\s+)?{_MONTH}(?:,?\s+{_YEAR}\b)?"),
    ("ago", r"\b(?P<count>(?:a\s+)?couple\s+of|[\w-]+)\s+(?P<unit>day|week|month|year)s?\s+ago\b"),
    (
        "relative",
        r"(?=[eloty])\b(?P<word>the (?:day|night) before (?:yesterday|last)|yesterday|last night"
        r"|overnight|tonight"
        r"|(?:early |earlier |late )?this (?:morning|afternoon|evening|a\.m\.|am\b|pm\b|p\.m\.)"
        r"|earlier today|today)\b",
    ),
    (  # "on the 14th", "Friday the 9th", "sat the 24th" (before the weekday it contains)
        "ordinal",
        r"\b(?:on|of|(?:mon|tues|wednes|thurs|fri|satur|sun)day"
        r"|(?:mon|tues?|wed|thu(?:rs?)?|fri|sat|sun)\.?)\s+the\s+"
        r"(?P<day>[12]\d|3[01]|0?[1-9])(?:st|nd|rd|th)\b"
        r"(?!\s+(?:of\s+)?(?-i:[A-Z])|\s+(?:street|st|avenue|ave|floor|grade|district|precinct"
        r"|ward|century|anniversary|birthday|annual)\b)",
    ),
    ("weekday", rf"(?=[fmstw])(?<!black )(?<!good )(?<!cyber )(?<!ash )\b{_WEEKDAY}(?:'s)?\b"),
    ("weekend", r"\b(?:last|this past|over the|this) weekend\b"),
    ("holiday", rf"(?=[cfhilmnptv])\b(?P<holiday>{_HOLIDAY_NAMES})\b"),
    ("last_week", r"\b(?:last|this past) week\b"),
]
_PATTERNS = [(kind, re.compile(pattern, re.I)) for kind, pattern in _EXPRESSIONS]
_NEEDS = {"ago": "ago", "weekend": "weekend", "last_week": "week"}
EXPLICIT_KINDS = ("iso", "numeric", "month_day", "day_month")
_WEEKDAY_BEFORE = re.compile(rf"\b{_WEEKDAY},?\s+$", re.I)
_MODIFIER_BEFORE = re.compile(
    r"\b(?P<mod>last|this past|past|this coming|coming|next|this|until|by)\s+$", re.I
)
SHIFT_BEFORE = re.compile(
    r"\b(?:(?P<count>[\w-]+)\s+(?P<unit>week|year)s?\s+ago|(?P<last>last) year)"
    r"\s*,?\s*(?:on\s+|this\s+past\s+|last\s+)?$",
    re.I,
)
_DATE_AFTER = re.compile(
    rf"\s*,?\s+(?:on\s+|this\s+past\s+|last\s+)?(?:{_MONTH}|{_WEEKDAY}|\d)", re.I
)
_ARTICLE_BEFORE = re.compile(r"\ban?\s+$", re.I)
_SAME_DAY = re.compile(r"\b(?:today|this (?:morning|afternoon|evening)|tonight)\b", re.I)


def expressions(text: str) -> Iterator[tuple[str, re.Match[str], int, int]]:
    """The date expressions of ``text``: (kind, match, start, end with the words before it);
    of two that overlap, the kind tried first."""
    lower = text.lower()
    taken: list[tuple[int, int]] = []
    for kind, pattern in _PATTERNS:
        if kind in _NEEDS and _NEEDS[kind] not in lower:
            continue
        for match in pattern.finditer(text):
            start, end = _with_words_before(kind, match, text)
            if not any(s < end and start < e for s, e in taken):
                taken.append((start, end))
                yield kind, match, start, end


def _with_words_before(kind: str, match: re.Match[str], text: str) -> tuple[int, int]:
    """The span of an expression with the words that belong to it: "Saturday, March 1",
    "this past Saturday"."""
    start, end = match.span()
    if kind in EXPLICIT_KINDS or kind == "weekday":
        lead = _MODIFIER_BEFORE if kind == "weekday" else _WEEKDAY_BEFORE
        words = lead.search(text, max(0, start - 12), start)
        start = words.start() if words else start
    return start, end


def _nth_weekday(year: int, month: int, weekday: int, n: int) -> date:
    if n > 0:
        first = date(year, month, 1)
        return first + timedelta(days=(weekday - first.weekday()) % 7 + 7 * (n - 1))
    last = date(year + month // 12, month % 12 + 1, 1) - timedelta(days=1)
    return last - timedelta(days=(last.weekday() - weekday) % 7)


def _holiday(name: str, anchor: date) -> date | None:
    """The most recent such holiday on or before ``anchor``: "Christmas Eve", "Labor Day"."""
    key = _bare(name)
    if key in _FIXED_BY_KEY:
        return _on_or_before(anchor, *_FIXED_BY_KEY[key])
    month, weekday, n = _FLOATING_BY_KEY[key]
    this_year = _nth_weekday(anchor.year, month, weekday, n)
    return this_year if this_year <= anchor else _nth_weekday(anchor.year - 1, month, weekday, n)


def _on_or_before(anchor: date, month: int, day: int) -> date | None:
    """The most recent ``month``/``day`` that is not after ``anchor``."""
    for year in (anchor.year, anchor.year - 1):
        try:
            found = date(year, month, day)
        except ValueError:
            continue
        if found <= anchor:
            return found
    return None


def _count(word: str) -> int | None:
    return 1 if word.lower() in ("a", "an") else parse_count(word)


def named_day(match: re.Match[str]) -> tuple[int, int, int | None]:
    """(month, day, year or None) of an explicit date expression ("Aug. 20", "10/6/26")."""
    name, year = match["month"], match["year"]
    month = int(name) if name.isdigit() else _MONTHS.index(name[:3].lower()) + 1
    full_year = int(year) + (2000 if len(year) == 2 else 0) if year else None
    return month, int(match["day"]), full_year


def weekday_of(match: re.Match[str]) -> int:
    """The weekday a weekday expression names, Monday 0."""
    return _WEEKDAYS.index(match["weekday"][:3].lower())


def _explicit(kind: str, match: re.Match[str], anchor: date, text: str) -> date | None:
    month, day, year = named_day(match)
    if year:
        try:
            found = date(year, month, day)
        except ValueError:
            return None
        return found if found <= anchor else None
    before = text[max(0, match.start() - 30) : match.start()]
    shift = SHIFT_BEFORE.search(before)
    if shift and (shift["last"] or shift["unit"].lower() == "year"):
        years = 1 if shift["last"] else _count(shift["count"])
        try:
            return date(anchor.year - years, month, day) if years else None
        except ValueError:
            return None  # "one year ago on May 24"
    return _on_or_before(anchor, month, day)


def _weekday(match: re.Match[str], anchor: date, text: str, sentence: str) -> date | None:
    before = text[max(0, match.start() - 30) : match.start()]
    modifier = _MODIFIER_BEFORE.search(before)
    said = modifier["mod"].lower() if modifier else ""
    if said in ("this coming", "coming", "next", "until", "by") or _ARTICLE_BEFORE.search(before):
        return None  # "on the 3rd, a Friday afternoon": a description, not a day counted back
    delta = (anchor.weekday() - weekday_of(match)) % 7 or 7
    if delta == 7 and said not in ("last", "this past", "past") and _SAME_DAY.search(sentence):
        delta = 0  # "this morning, Wednesday"
    shift = SHIFT_BEFORE.search(before)
    if shift and shift["unit"] and shift["unit"].lower() == "week":
        delta += 7 * (_count(shift["count"]) or 0)  # "a week ago Saturday"
    return anchor - timedelta(days=delta)


def _years_before(day: date, years: int) -> date:
    try:
        return day.replace(year=day.year - years)
    except ValueError:  # February 29
        return day.replace(year=day.year - years, day=28)


def _ordinal(day: int, anchor: date) -> date | None:
    """The most recent "14th" on or before ``anchor``; the 31st may be two months back."""
    year, month = anchor.year, anchor.month
    for _ in range(3):
        try:
            found = date(year, month, day)
        except ValueError:
            found = None
        if found and found <= anchor:
            return found
        year, month = (year, month - 1) if month > 1 else (year - 1, 12)
    return None


def resolve(kind: str, match: re.Match[str], anchor: date, text: str, sentence: str) -> date | None:
    """The date an expression names, or None when it names none on or before ``anchor``."""
    if kind in EXPLICIT_KINDS:
        return _explicit(kind, match, anchor, text)
    if kind == "ago":
        count = _count(match["count"])
        unit = match["unit"].lower()
        if not count or _DATE_AFTER.match(text, match.end()):
            return None  # "a few days ago"; "a year ago on May 2": the date follows
        if unit == "year":
            return _years_before(anchor, count)
        return anchor - timedelta(days=count * {"day": 1, "week": 7, "month": 30}[unit])
    if kind == "relative":
        return anchor - timedelta(days=_RELATIVE_DAYS.get(match["word"].lower(), 0))
    if kind == "weekday":
        return _weekday(match, anchor, text, sentence)
    if kind == "ordinal":
        return _ordinal(int(match["day"]), anchor)
    if kind == "holiday":
        return _holiday(match["holiday"], anchor)
    if kind == "weekend":
        return anchor - timedelta(days=(anchor.weekday() - 5) % 7 or 7)
    return anchor - timedelta(days=7)  # "last week"
