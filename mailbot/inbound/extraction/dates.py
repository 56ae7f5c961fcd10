"""When the incident happened, from a request's text.

In: plain text and the message's sent time (its Date header, timezone-aware). Out: ``When``
with the incident's date, resolved against the sent date in the sender's own timezone and
never after it, the time of day as "HH:MM" when stated, the words that gave them, and a
confidence. Expressions tied to the incident (in or next to a sentence about the shooting)
win over others; future events (vigils, funerals, a meeting), dates inside quoted mail
headers and the date of another incident the writer compares with are not taken. Relative
words in a quoted message ("yesterday") count from that message's own date. A date the text
does not give is None. Pure; odd text gives None, never an exception.
"""

from __future__ import annotations

import bisect
import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from mailbot.inbound.extraction.quantities import (
    mentions_other_incident,
    parse_count,
    sentence_spans,
)

_WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_MONTHS = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
_MONTH = (
    r"(?P<month>jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|(?-i:May)|june?|july?"
    r"|aug(?:ust)?|sept?(?:ember)?|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?)\b\.?"
)
# "Saturday", and the short forms before a part of the day: "sat night", "Fri. evening".
_WEEKDAY = (
    r"(?P<weekday>(?:mon|tues?|wed(?:nes)?|thu(?:rs?)?|fri|sat(?:ur)?|sun)day"
    r"|(?:mon|tues?|wed|thu(?:rs?)?|fri|sat|sun)\.?(?=\s+(?:night|nite|morning|afternoon|evening)\b))"
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
_HOLIDAY_NAMES = "|".join(_HOLIDAYS).replace("'", "['\u2019]")

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
        r"|(?:early |earlier |late )?this (?:morning|afternoon|evening)|earlier today|today)\b",
    ),
    (  # "on the 14th", "Friday the 9th" (before the weekday, which it contains)
        "ordinal",
        r"\b(?:on|of|(?:mon|tues|wednes|thurs|fri|satur|sun)day)\s+the\s+"
        r"(?P<day>[12]\d|3[01]|0?[1-9])(?:st|nd|rd|th)\b"
        r"(?!\s+(?:of\s+)?(?-i:[A-Z])|\s+(?:street|st|avenue|ave|floor|grade|district|precinct"
        r"|ward|century|anniversary|birthday|annual)\b)",
    ),
    ("weekday", rf"(?=[fmstw])(?<!black )(?<!good )(?<!cyber )(?<!ash )\b{_WEEKDAY}(?:'s)?\b"),
    ("weekend", r"\b(?:last|this past|over the|this) weekend\b"),
    ("holiday", rf"(?=[cfhinv])\b(?P<holiday>{_HOLIDAY_NAMES})"),
    ("last_week", r"\b(?:last|this past) week\b"),
]
_PATTERNS = [(kind, re.compile(pattern, re.I)) for kind, pattern in _EXPRESSIONS]
_NEEDS = {"ago": "ago", "weekend": "weekend", "last_week": "week"}
_EXPLICIT_KINDS = ("iso", "numeric", "month_day", "day_month")
# How much each kind of expression is worth before its context is weighed.
_KIND_WEIGHT = {
    "iso": 1.0,
    "numeric": 0.9,
    "month_day": 1.0,
    "day_month": 1.0,
    "relative": 1.0,
    "weekday": 0.8,
    "ordinal": 0.8,
    "ago": 0.7,
    "weekend": 0.4,
    "holiday": 0.7,
    "last_week": 0.2,
}
_RELATIVE_WEIGHT = {"today": 0.6, "tonight": 0.8}  # "I am writing today" is common

_WEEKDAY_BEFORE = re.compile(rf"\b{_WEEKDAY},?\s+$", re.I)
_MODIFIER_BEFORE = re.compile(
    r"\b(?P<mod>last|this past|past|this coming|coming|next|this|until|by)\s+$", re.I
)
_SHIFT_BEFORE = re.compile(
    r"\b(?:(?P<count>[\w-]+)\s+(?P<unit>week|year)s?\s+ago|(?P<last>last) year)"
    r"\s*,?\s*(?:on\s+|this\s+past\s+|last\s+)?$",
    re.I,
)
_DATE_AFTER = re.compile(
    rf"\s*,?\s+(?:on\s+|this\s+past\s+|last\s+)?(?:{_MONTH}|{_WEEKDAY}|\d)", re.I
)
_ARTICLE_BEFORE = re.compile(r"\ban?\s+$", re.I)
_LAST_BEFORE = re.compile(r"\blast\s+$", re.I)
_NUMERIC_CONTEXT = re.compile(r"(?:\bon|\bof|\bsince|\(|day,?)\s*$", re.I)
_SAME_DAY = re.compile(r"\b(?:today|this (?:morning|afternoon|evening)|tonight)\b", re.I)
_FUTURE_BEFORE = re.compile(r"\b(?:is|are|will be|be)\s+(?:on\s+|this\s+)?$", re.I)

# "at 0740" counts as a clock time only after "at"/"about" (not "in 2019").
_TIME = re.compile(
    r"(?=[\dmn])\b(?:(?P<noon>noon|midday)|(?P<midnight>midnight)"
    r"|(?P<hour>[01]?\d|2[0-3]):(?P<minute>[0-5]\d)(?:\s*(?P<meridiem>[ap])\.?\s?m\b\.?)?"
    r"|(?P<hour12>1[0-2]|0?[1-9])\s*(?P<meridiem12>[ap])\.?\s?m\b\.?"
    r"|(?P<military>(?:[01]\d|2[0-3])[0-5]\d)\s*(?:hours|hrs|hr)\b"
    r"|(?<=at |ut )(?P<bare>(?:[01]\d|2[0-3])[0-5]\d)\b(?![-/.,]\d)"
    # "Tuesday night around 11 we were called": an hour alone, read with the part of the day
    r"|(?:(?<=around )|(?<=about )|(?<=at ))(?P<hour_only>1[0-2]|[1-9])(?=[,;.]?\s+(?:we|they|he|she|a|an"
    r"|the|when|and|in the)\b|[,;]))",
    re.I,
)
_RANGE_AFTER = re.compile(r"\s*(?:-|\u2013|to|until)\s*\d", re.I)
_EVENING = re.compile(r"\b(?:evening|night|nite|tonight|tonite)\b", re.I)
_PART_OF_DAY = re.compile(r"\b(?:morning|afternoon|evening|night|nite|tonight|tonite)\b", re.I)
_AFTERNOON = re.compile(r"\bafternoon\b", re.I)

_INCIDENT = re.compile(
    r"\b(?:shoot(?:ing|ings|er)?|shot|shots|gunfire|gunm[ae]n|opened fire|open fire|fired"
    r"|attack(?:ed|er)?|incident|happened|occurred|took place|kill(?:ed|ing|ings)?|died"
    r"|stabb(?:ing|ed)|bomb(?:ing)?|explosion|ramm(?:ed|ing)|steered|drove (?:into|through)"
    r"|massacre|tragedy|homicides?"
    r"|murder(?:ed|s)?|active (?:shooter|threat)|lockdown|responded|call came|9-?1-?1)\b",
    re.I,
)
_OTHER_EVENT = re.compile(
    r"\b(?:vigils?|funerals?|memorial(?: service)?s?|services (?:are|will|is)|visitation"
    r"|burial|wake|meeting|meet|conference|briefing|hearing|arraignment|court date|town hall"
    r"|debrief(?:ing)?|training|tabletop|exercise|drill|ceremony|graduation|scheduled|planned"
    r"|upcoming|tomorrow|anniversary|remembrance|trial|sentencing|threats?"
    r"|available|availability|call (?:me|us|you)|(?:a|phone|conference|zoom|teams) call"
    r"|talk|speak|reopens?|reopening|resumes?|return(?:s|ing)? to|webinar|session"
    r"|appointment|interview|office hours|deadline)\b",
    re.I,
)

# The words between an incident word and the event it happened at: "shooting at a ...".
_AT_EVENT = re.compile(
    r"\s+(?:at|during|outside|near|inside|in)\s+(?:(?:an?|the|our|their|this|that)\s+)?"
    r"(?:[\w'-]+\s+){0,2}",
    re.I,
)

_HEADER_LINE = re.compile(r"^[ \t>]*\**(from|sent|date|to|cc|subject)\**[ \t]*:.*$", re.I | re.M)
_WROTE = re.compile(r"^[ \t>]*On\b[^\n]{0,200}?(?:\n[ \t>]*[^\n]{0,200}?)?\bwrote:[ \t]*$", re.M)


@dataclass(frozen=True)
class When:
    date: date | None = None
    time: str | None = None
    evidence: str | None = None
    confidence: float = 0.0


@dataclass(frozen=True)
class _Found:
    kind: str
    day: date
    start: int
    end: int
    score: float
    near: float  # 1 in the incident's sentence, 0.5 next to it, 0 elsewhere


class _Text:
    """The text with quoted headers blanked out, its sentences, and the date each part
    was written on."""

    def __init__(self, text: str, sent: date) -> None:
        headers = _quoted_headers(text)
        chars = list(text)
        for start, end in headers:
            chars[start:end] = [c if c == "\n" else " " for c in chars[start:end]]
        self.text = "".join(chars)
        self.sent = sent
        self.spans = sentence_spans(self.text)
        self._starts = [start for start, _ in self.spans]
        self._written = [
            (end, day) for start, end in headers if (day := _header_date(text[start:end], sent))
        ]
        self.lower = self.text.lower()
        self._cues: dict[int, tuple[list[tuple[int, int]], list[tuple[int, int]]]] = {}

    def sentence_at(self, pos: int) -> int | None:
        index = bisect.bisect_right(self._starts, pos) - 1
        return index if index >= 0 and pos < self.spans[index][1] else None

    def sentence(self, index: int) -> str:
        return self.text[slice(*self.spans[index])]

    def cues(self, index: int) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
        """Spans of incident words and of other-event words in a sentence."""
        if index not in self._cues:
            within = self.spans[index]
            self._cues[index] = (
                [m.span() for m in _INCIDENT.finditer(self.text, *within)],
                [m.span() for m in _OTHER_EVENT.finditer(self.text, *within)],
            )
        return self._cues[index]

    def written(self, pos: int) -> date:
        """The date the words at ``pos`` were written: a quoted message's own date."""
        earlier = [day for end, day in self._written if end <= pos]
        return earlier[-1] if earlier else self.sent


def _quoted_headers(text: str) -> list[tuple[int, int]]:
    """Spans of quoted mail headers: "On ... wrote:" lines and From/Sent/Date blocks."""
    spans = [m.span() for m in _WROTE.finditer(text)]
    block: list[re.Match[str]] = []
    for line in [*_HEADER_LINE.finditer(text), None]:
        if line is not None and (not block or line.start() <= block[-1].end() + 2):
            block.append(line)
            continue
        labels = {m[1].lower() for m in block}
        if "from" in labels and labels & {"sent", "date"}:
            spans.extend(m.span() for m in block)
        block = [line] if line is not None else []
    return sorted(spans)


def _header_date(header: str, sent: date) -> date | None:
    """The date in a quoted header ("Sent: Monday, March 2, 2026 9:14 AM"), if it has a year."""
    for kind, pattern in _PATTERNS[: len(_EXPLICIT_KINDS)]:
        match = pattern.search(header)
        if match and match["year"]:
            return _explicit(kind, match, sent, header)
    return None


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


def _explicit(kind: str, match: re.Match[str], anchor: date, text: str) -> date | None:
    name = match["month"]
    month = int(name) if name.isdigit() else _MONTHS.index(name[:3].lower()) + 1
    day, year = int(match["day"]), match["year"]
    if year:
        try:
            found = date(int(year) + (2000 if len(year) == 2 else 0), month, day)
        except ValueError:
            return None
        return found if found <= anchor else None
    before = text[max(0, match.start() - 30) : match.start()]
    shift = _SHIFT_BEFORE.search(before)
    if shift and (shift["last"] or shift["unit"].lower() == "year"):
        years = 1 if shift["last"] else _count(shift["count"])
        try:
            return date(anchor.year - years, month, day) if years else None
        except ValueError:
            return None  # "one year ago on May 24"
    return _on_or_before(anchor, month, day)


def _introduced(text: str, start: int) -> bool:
    """Whether a bare "10/2" is introduced as a date ("on 10/2", "Friday 10/2", "(10/2)")."""
    return _NUMERIC_CONTEXT.search(text, max(0, start - 12), start) is not None


def _soon_after(day: date, anchor: date) -> bool:
    """Whether ``day``, put back into ``anchor``'s year, falls in the four months after it."""
    if day.year == anchor.year or (day.month, day.day) == (2, 29):
        return False
    return 0 < (day.replace(year=anchor.year) - anchor).days <= 120


def _weekday(match: re.Match[str], anchor: date, text: str, sentence: str) -> date | None:
    before = text[max(0, match.start() - 30) : match.start()]
    modifier = _MODIFIER_BEFORE.search(before)
    said = modifier["mod"].lower() if modifier else ""
    if said in ("this coming", "coming", "next", "until", "by") or _ARTICLE_BEFORE.search(before):
        return None  # "on the 3rd, a Friday afternoon": a description, not a day counted back
    delta = (anchor.weekday() - _WEEKDAYS.index(match["weekday"][:3].lower())) % 7 or 7
    if delta == 7 and said not in ("last", "this past", "past") and _SAME_DAY.search(sentence):
        delta = 0  # "this morning, Wednesday"
    shift = _SHIFT_BEFORE.search(before)
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


def _resolve(
    kind: str, match: re.Match[str], anchor: date, text: str, sentence: str
) -> date | None:
    """The date an expression names, or None when it names none on or before ``anchor``."""
    if kind in _EXPLICIT_KINDS:
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
        return _on_or_before(anchor, *_HOLIDAYS[match["holiday"].lower().replace("\u2019", "'")])
    if kind == "weekend":
        return anchor - timedelta(days=(anchor.weekday() - 5) % 7 or 7)
    return anchor - timedelta(days=7)  # "last week"


def _gap(spans: list[tuple[int, int]], start: int, end: int) -> int | None:
    """Characters between [start, end) and the nearest of ``spans``."""
    return min((max(start - e, s - end, 0) for s, e in spans), default=None)


def _context(doc: _Text, index: int, start: int, end: int) -> tuple[float, float] | None:
    """(score bonus, nearness to the incident) of an expression; None when it must not be taken:
    another incident, or a future event nearer to it than the incident."""
    first = doc.spans[index][0]
    sentence = doc.sentence(index)
    if mentions_other_incident(sentence, start - first):
        return None
    incidents, others = doc.cues(index)
    # "a shooting at a graduation party last night": the event the incident happened at
    others = [
        o for o in others if not any(_AT_EVENT.fullmatch(doc.text, e, o[0]) for _, e in incidents)
    ]
    incident, other = _gap(incidents, start, end), _gap(others, start, end)
    if other is not None and (incident is None or other < incident):
        return None  # "the vigil is on Friday", "can we meet Thursday"
    if _FUTURE_BEFORE.search(doc.text, max(first, start - 12), start):
        return None
    neighbours = [i for i in (index - 1, index + 1) if 0 <= i < len(doc.spans)]
    if incident is not None:  # nearness only breaks ties within a sentence
        bonus, near = 3.0 + 0.3 / (1.0 + incident / 20.0), 1.0
    elif any(doc.cues(i)[0] for i in neighbours):
        bonus, near = 1.5, 0.5
    else:
        bonus, near = 0.0, 0.0
    if sentence.rstrip().endswith("?"):
        bonus -= 1.0
    return bonus - 0.02 * index, near


def _dates(doc: _Text) -> list[_Found]:
    """Every date expression that names a day on or before the Date header, scored."""
    found: list[_Found] = []
    taken: list[tuple[int, int]] = []
    for kind, pattern in _PATTERNS:
        if kind in _NEEDS and _NEEDS[kind] not in doc.lower:
            continue
        for match in pattern.finditer(doc.text):
            start, end = _with_words_before(kind, match, doc.text)
            if any(s < end and start < e for s, e in taken):
                continue
            taken.append((start, end))
            index = doc.sentence_at(start)
            if index is None:
                continue
            anchor = doc.written(start)
            day = _resolve(kind, match, anchor, doc.text, doc.sentence(index))
            context = _context(doc, index, start, end) if day and day <= doc.sent else None
            if day is None or context is None:
                continue
            bonus, near = context
            score = _weight(kind, match) + bonus + _doubt(kind, match, doc.text, day, anchor)
            found.append(_Found(kind, day, start, end, score, near))
    return found


def _with_words_before(kind: str, match: re.Match[str], text: str) -> tuple[int, int]:
    """The span of an expression with the words that belong to it: "Saturday, March 1",
    "this past Saturday"."""
    start, end = match.span()
    if kind in _EXPLICIT_KINDS or kind == "weekday":
        lead = _MODIFIER_BEFORE if kind == "weekday" else _WEEKDAY_BEFORE
        words = lead.search(text, max(0, start - 12), start)
        start = words.start() if words else start
    return start, end


def _weight(kind: str, match: re.Match[str]) -> float:
    if kind == "relative":
        return _RELATIVE_WEIGHT.get(match["word"].lower(), _KIND_WEIGHT[kind])
    return _KIND_WEIGHT[kind]


def _doubt(kind: str, match: re.Match[str], text: str, day: date, anchor: date) -> float:
    """A penalty for dates that are more often something other than the incident."""
    start = match.start()
    shifted = _SHIFT_BEFORE.search(text, max(0, start - 30), start) is not None
    penalty = 0.0
    if (anchor - day).days > 400 and not shifted:
        penalty -= 1.5  # an old date is more often a comparison than the incident
    last = _LAST_BEFORE.search(text, max(0, start - 8), start) is not None  # "Last October 19"
    if (
        kind in _EXPLICIT_KINDS
        and not (match["year"] or shifted or last)
        and _soon_after(day, anchor)
    ):
        penalty -= 2.0  # "April 16" written in February: a plan more than a memory
    if kind == "numeric" and not match["year"] and not _introduced(text, start):
        penalty -= 1.5  # a bare "3/4" may be a fraction or a score
    return penalty


def _time_value(match: re.Match[str], sentence: str) -> str:
    if match["noon"]:
        return "12:00"
    if match["midnight"]:
        return "00:00"
    military = match["military"] or match["bare"]
    if military:
        return f"{military[:2]}:{military[2:]}"
    hour = int(match["hour"] or match["hour12"] or match["hour_only"])
    minute = int(match["minute"] or 0)
    meridiem = (match["meridiem"] or match["meridiem12"] or "").lower()
    if meridiem:
        hour = hour % 12 + (12 if meridiem == "p" else 0)
    elif (_EVENING.search(sentence) and 5 <= hour < 12) or (
        _AFTERNOON.search(sentence) and 1 <= hour < 7
    ):
        hour += 12
    return f"{hour:02d}:{minute:02d}"


def _time(
    doc: _Text, chosen: _Found | None, found: list[_Found]
) -> tuple[str, tuple[int, int]] | None:
    """The time of day in the chosen date's sentence, or else one tied to the incident."""
    chosen_index = doc.sentence_at(chosen.start) if chosen else None
    # "following Saturday's attack. On Saturday, July 18, around 1:10 ...": every sentence
    # that names the chosen day can hold its time
    same_day = {doc.sentence_at(f.start) for f in found if chosen and f.day == chosen.day}
    other_day = {doc.sentence_at(f.start) for f in found if chosen and f.day != chosen.day}
    best: tuple[float, str, tuple[int, int]] | None = None
    for match in _TIME.finditer(doc.text):
        index = doc.sentence_at(match.start())
        if index is None or _RANGE_AFTER.match(doc.text, match.end()):
            continue  # "8:00-5:00": office hours, not an event
        if match["hour_only"] and not _PART_OF_DAY.search(doc.sentence(index)):
            continue  # "about 11" is a clock time only with "night", "morning"...
        if index in other_day - same_day:
            continue  # the time of another day's event
        context = _context(doc, index, *match.span())
        if context is None:
            continue
        score = context[0]
        if chosen and index == chosen_index:
            score += 3.0 - min(abs(match.start() - chosen.start), 200) / 200
        elif index in same_day:
            score += 2.0
        if score >= 2.0 and (best is None or score > best[0]):
            best = (score, _time_value(match, doc.sentence(index)), match.span())
    return (best[1], best[2]) if best else None


def incident_when(text: str, sent: datetime) -> When:
    """The date (and time, when stated) of the incident the text is about."""
    doc = _Text(text, sent.date())
    found = _dates(doc)
    best = max(found, key=lambda f: f.score, default=None)
    time = _time(doc, best, found)
    time_words = doc.text[slice(*time[1])] if time else None
    if best is None:
        return When(None, time[0] if time else None, time_words)
    day, words = best.day, doc.text[best.start : best.end]
    if (
        time
        and words.lower() in ("last night", "overnight")
        and time[0] < "06:00"
        and time[0] <= sent.strftime("%H:%M")
        and doc.written(best.start) == doc.sent
    ):
        day = doc.sent  # "last night at 1:30 a.m.", written later that morning
    evidence = words
    if time and time_words and not best.start <= time[1][0] < best.end:
        evidence = f"{words} | {time_words}"
    confidence = _KIND_WEIGHT[best.kind] * (0.55 + 0.4 * best.near)
    if any(f.day != best.day and best.score - f.score < 1.0 for f in found):
        confidence -= 0.15  # a rival date nearly as well placed
    return When(day, time[0] if time else None, evidence, round(max(confidence, 0.05), 2))
