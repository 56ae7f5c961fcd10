"""Milestones ahead: a trial, an anniversary, a remembrance the request ties to a day.

In: the request text, the day it was sent, the incident's date when known, and the phrases
that name a milestone (rules/triage.toml). Out: how many days from the request to the nearest
milestone ahead, or None. A milestone is ahead when a sentence that names one also names a
day on or after the request ("His trial starts Thursday, Aug. 20", "the remembrance on the
18th", "The first anniversary falls on Monday"), or when the text speaks of an anniversary and
the incident's next one is near. Pure; never raises.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from datetime import date, timedelta

from mailbot.inbound.extraction.date_phrases import (
    EXPLICIT_KINDS,
    expressions,
    named_day,
    weekday_of,
)
from mailbot.inbound.extraction.sentences import sentence_spans

_PAST_BEFORE = re.compile(r"\b(?:last|this past|past)\s+$", re.I)
_ANNIVERSARY = re.compile(r"\b(?:anniversary|one[- ]year|remembrance)\b", re.I)


def _on_or_after(sent: date, month: int, day: int) -> date | None:
    for year in (sent.year, sent.year + 1):
        try:
            found = date(year, month, day)
        except ValueError:
            continue
        if found >= sent:
            return found
    return None


def _ordinal_ahead(sent: date, day: int) -> date | None:
    """The next "18th" on or after ``sent``."""
    year, month = sent.year, sent.month
    for _ in range(3):
        try:
            found = date(year, month, day)
        except ValueError:
            found = None
        if found and found >= sent:
            return found
        year, month = (year, month + 1) if month < 12 else (year + 1, 1)
    return None


def days_ahead(text: str, sent: date) -> Iterator[date]:
    """The days on or after ``sent`` that ``text`` names: dates, "the 30th", "on Monday"."""
    for kind, match, start, _end in expressions(text):
        if kind in EXPLICIT_KINDS:
            month, day, year = named_day(match)
            if year:
                try:
                    found: date | None = date(year, month, day)
                except ValueError:
                    continue
            else:
                found = _on_or_after(sent, month, day)
        elif kind == "ordinal":
            found = _ordinal_ahead(sent, int(match["day"]))
        elif kind == "weekday" and not _PAST_BEFORE.search(text, max(0, start - 12), start):
            found = sent + timedelta(days=(weekday_of(match) - sent.weekday()) % 7 or 7)
        else:
            continue
        if found and found >= sent:
            yield found


def days_to_milestone(
    text: str, sent: date, incident: date | None, phrases: Sequence[re.Pattern[str]]
) -> int | None:
    """Days from ``sent`` to the nearest milestone ahead that the text names, or None."""
    ahead = []
    for start, end in sentence_spans(text):
        sentence = text[start:end]
        if any(p.search(sentence) for p in phrases):
            ahead.extend((day - sent).days for day in days_ahead(sentence, sent))
    if incident and incident < sent and _ANNIVERSARY.search(text):
        years = sent.year - incident.year
        for year in (incident.year + years, incident.year + years + 1):
            try:
                anniversary = incident.replace(year=year)
            except ValueError:  # February 29
                anniversary = incident.replace(year=year, day=28)
            if anniversary >= sent:
                ahead.append((anniversary - sent).days)
                break
    return min(ahead, default=None)
