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
from datetime import date, datetime

from mailbot.inbound.extraction import clock
from mailbot.inbound.extraction.date_phrases import (
    EXPLICIT_KINDS,
    SHIFT_BEFORE,
    expressions,
    resolve,
)
from mailbot.inbound.extraction.sentences import mentions_other_incident, sentence_spans

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

_EARLIER_WITHIN = 0.5  # score between two incident dates within which the earlier wins
_LAST_BEFORE = re.compile(r"\blast\s+$", re.I)
_NUMERIC_CONTEXT = re.compile(r"(?:\bon|\bof|\bsince|\(|day,?)\s*$", re.I)
_FUTURE_BEFORE = re.compile(r"\b(?:is|are|will be|be)\s+(?:on\s+|this\s+)?$", re.I)

_INCIDENT = re.compile(
    r"\b(?:shoot(?:ing|ings|er)?|shot|shots|gunfire|gunm[ae]n|opened fire|open fire|fired"
    r"|attack(?:ed|er)?|incident|happened|occurred|took place|kill(?:ed|ing|ings)?|died"
    r"|stabb(?:ing|ed)|bomb(?:ing)?|explosion|ramm(?:ed|ing)|steered"
    r"|drove (?:[\w-]+ ){0,3}?(?:into|through|thru)|ran over"
    r"|massacre|tragedy|homicides?"
    r"|murder(?:ed|s)?|active (?:shooter|threat)|lockdown|responded|call came|9-?1-?1)\b",
    re.I,
)
_OTHER_EVENT = re.compile(
    r"\b(?:vigils?|funerals?|memorial(?: service)?s?(?! day)|services (?:are|will|is)|visitation"
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

# A row of a summary or a table that gives the time ("Time: about 1:45", "Timeapprox. 1:45"
# when a table's cells were glued together).
_TIME_LABEL = re.compile(
    r"(?:^|\n)[ \t>*\u2022-]*(?:time|time of (?:incident|call|day)|approx(?:imate)? time)"
    r"[ \t]*[:=-]?[ \t]*(?:approx\.?|approximately|about|around|at|~)?[ \t]*$",
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
    for kind, match, _start, _end in expressions(header):
        if kind in EXPLICIT_KINDS and match["year"]:
            return resolve(kind, match, sent, header, header)
    return None


def _introduced(text: str, start: int) -> bool:
    """Whether a bare "10/2" is introduced as a date ("on 10/2", "Friday 10/2", "(10/2)")."""
    return _NUMERIC_CONTEXT.search(text, max(0, start - 12), start) is not None


def _soon_after(day: date, anchor: date) -> bool:
    """Whether ``day``, put back into ``anchor``'s year, falls in the four months after it."""
    if day.year == anchor.year or (day.month, day.day) == (2, 29):
        return False
    return 0 < (day.replace(year=anchor.year) - anchor).days <= 120


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
    for kind, match, start, end in expressions(doc.text):
        index = doc.sentence_at(start)
        if index is None:
            continue
        anchor = doc.written(start)
        day = resolve(kind, match, anchor, doc.text, doc.sentence(index))
        context = _context(doc, index, start, end) if day and day <= doc.sent else None
        if day is None or context is None:
            continue
        bonus, near = context
        score = _weight(kind, match) + bonus + _doubt(kind, match, doc.text, day, anchor)
        found.append(_Found(kind, day, start, end, score, near))
    return found


def _weight(kind: str, match: re.Match[str]) -> float:
    if kind == "relative":
        return _RELATIVE_WEIGHT.get(match["word"].lower(), _KIND_WEIGHT[kind])
    return _KIND_WEIGHT[kind]


def _doubt(kind: str, match: re.Match[str], text: str, day: date, anchor: date) -> float:
    """A penalty for dates that are more often something other than the incident."""
    start = match.start()
    shifted = SHIFT_BEFORE.search(text, max(0, start - 30), start) is not None
    penalty = 0.0
    if (anchor - day).days > 400 and not shifted:
        penalty -= 1.5  # an old date is more often a comparison than the incident
    last = _LAST_BEFORE.search(text, max(0, start - 8), start) is not None  # "Last October 19"
    if (
        kind in EXPLICIT_KINDS
        and not (match["year"] or shifted or last)
        and _soon_after(day, anchor)
    ):
        penalty -= 2.0  # "April 16" written in February: a plan more than a memory
    if kind == "numeric" and not match["year"] and not _introduced(text, start):
        penalty -= 1.5  # a bare "3/4" may be a fraction or a score
    return penalty


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
    for match in clock.times(doc.text):
        index = doc.sentence_at(match.start())
        if index is None or not clock.is_event_time(match, doc.text, doc.sentence(index)):
            continue
        if index in other_day - same_day:
            continue  # the time of another day's event
        context = _context(doc, index, *match.span())
        if context is None:
            continue
        score = context[0]
        if _TIME_LABEL.search(doc.text, max(0, match.start() - 40), match.start()):
            score += 3.0  # "Time: approx. 1:45 a.m." in a summary or a table
        if chosen and index == chosen_index:
            score += 3.0 - min(abs(match.start() - chosen.start), 200) / 200
        elif index in same_day:
            score += 2.0
        if score >= 2.0 and (best is None or score > best[0]):
            best = (score, clock.time_value(match, doc.sentence(index)), match.span())
    return (best[1], best[2]) if best else None


def incident_when(text: str, sent: datetime) -> When:
    """The date (and time, when stated) of the incident the text is about."""
    doc = _Text(text, sent.date())
    found = _dates(doc)
    best = max(found, key=lambda f: f.score, default=None)
    if best is not None and best.near == 1.0:
        # "shot last night ... one of the wounded died this morning": of two days told with
        # the incident and scored alike, the incident is the earlier one
        close = [f for f in found if f.near == 1.0 and best.score - f.score < _EARLIER_WITHIN]
        best = min(close, key=lambda f: (f.day, -f.score))
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
