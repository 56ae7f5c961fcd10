"""Clock times in a request's text: "7:40 p.m.", "1:10 in the afternoon", "0740 hours".

In: plain text. Out: the matches of clock times, whether one names the time of an event (not
office hours, and an hour alone only with a part of the day), and its value as "HH:MM" (24 h),
read with the part of the day the sentence gives. ``dates`` decides which time is the
incident's. Pure; never raises.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

# "at 0740" counts as a clock time only after "at"/"about" (not "in 2019").
_TIME = re.compile(
    r"(?=[\dmn])\b(?:(?P<noon>noon|midday)|(?P<midnight>midnight)"
    r"|(?P<hour>[01]?\d|2[0-3]):(?P<minute>[0-5]\d)(?:\s*(?P<meridiem>[ap])\.?\s?m\b\.?)?"
    r"|(?P<hour12>1[0-2]|0?[1-9])\s*(?P<meridiem12>[ap])\.?\s?m\b\.?"
    r"|(?P<military>(?:[01]\d|2[0-3])[0-5]\d)\s*(?:hours|hrs|hr)\b"
    r"|(?<=at |ut )(?P<bare>(?:[01]\d|2[0-3])[0-5]\d)\b(?![-/.,]\d)"
    # "Tuesday night around 11 we were called": an hour alone, read with the part of the day
    r"|(?:(?<=around )|(?<=about )|(?<=at ))(?P<hour_only>1[0-2]|[1-9])"
    r"(?=[,;.]?\s+(?:we|they|he|she|a|an|the|when|and|in the)\b|[,;]))",
    re.I,
)
_RANGE_AFTER = re.compile(r"\s*(?:-|\u2013|to|until)\s*\d", re.I)
_EVENING = re.compile(r"\b(?:evening|night|nite|tonight|tonite)\b", re.I)
_AFTERNOON = re.compile(r"\bafternoon\b", re.I)
_PART_OF_DAY = re.compile(r"\b(?:morning|afternoon|evening|night|nite|tonight|tonite)\b", re.I)


def times(text: str) -> Iterator[re.Match[str]]:
    """Every clock time in ``text``, in order."""
    return _TIME.finditer(text)


def is_event_time(match: re.Match[str], text: str, sentence: str) -> bool:
    """Not "8:00-5:00" (office hours); "about 11" only with "night", "morning"..."""
    if _RANGE_AFTER.match(text, match.end()):
        return False
    return not match["hour_only"] or _PART_OF_DAY.search(sentence) is not None


def time_value(match: re.Match[str], sentence: str) -> str:
    """ "HH:MM": a time without a.m./p.m. takes the part of the day its sentence names."""
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
