"""Extraction: what a request says, as the fields a case stores.

In: a ``ParsedMessage`` of a new request. Out: an ``Extraction`` with the JSON field names of
the extraction issue (agency, city, state, incident_type, incident_date, killed, injured,
services, contact_*, priority, priority_reason, needs_review). Keyword data comes from
rules/extraction.toml. This is the first, rules-only version; a missing field is None and is
listed in ``needs_review``, never guessed. Never raises on odd text.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from datetime import date, datetime, timedelta
from functools import lru_cache
from pathlib import Path
from typing import Any

import phonenumbers
import us

from mailbot.inbound.parse import ParsedMessage
from mailbot.rules import load_toml

_NUMBER_WORDS = {
    w: i
    for i, w in enumerate(
        [
            "zero",
            "one",
            "two",
            "three",
            "four",
            "five",
            "six",
            "seven",
            "eight",
            "nine",
            "ten",
            "eleven",
            "twelve",
            "thirteen",
            "fourteen",
            "fifteen",
            "sixteen",
            "seventeen",
            "eighteen",
            "nineteen",
            "twenty",
        ]
    )
}
_COUNT = r"(\d{1,3}|" + "|".join(_NUMBER_WORDS) + r")"
_KILLED = re.compile(
    _COUNT + r"\s+(?:\w+\s+){0,3}?(?:killed|dead|died|deceased|fatalit|murdered|lost their lives)",
    re.I,
)
_INJURED = re.compile(_COUNT + r"\s+(?:\w+\s+){0,3}?(?:injured|wounded|hurt|hospitali[sz]ed)", re.I)
_WEEKDAYS = ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"]
_MONTHS = [
    "january",
    "february",
    "march",
    "april",
    "may",
    "june",
    "july",
    "august",
    "september",
    "october",
    "november",
    "december",
]
_MONTH_DAY = re.compile(
    r"\b(" + "|".join(m[:3] for m in _MONTHS) + r")[a-z]*\.?\s+(\d{1,2})(?:st|nd|rd|th)?"
    r"(?:,?\s+(\d{4}))?",
    re.I,
)
_NUMERIC_DATE = re.compile(r"\b(\d{1,2})/(\d{1,2})(?:/(\d{2,4}))?\b")
_STATE_NAMES = {s.name.lower(): s.abbr for s in us.states.STATES_AND_TERRITORIES}
_STATE_ABBRS = {s.abbr for s in us.states.STATES_AND_TERRITORIES}
_CITY_STATE = re.compile(
    r"\b((?:[A-Z][a-zA-Z.'-]+[ \t]){0,2}[A-Z][a-zA-Z.'-]+),?[ \t]+("
    + "|".join(sorted(_STATE_ABBRS))
    + r"|"
    + "|".join(s.name for s in us.states.STATES_AND_TERRITORIES)
    + r")\b"
)
_CITY_STOPWORDS = {
    "The",
    "In",
    "Of",
    "At",
    "Our",
    "We",
    "From",
    "Dear",
    "Chief",
    "Sheriff",
    "Hello",
}


@dataclass
class Extraction:
    agency: str | None = None
    city: str | None = None
    state: str | None = None
    county: str | None = None
    incident_type: str | None = None
    incident_date: date | None = None
    killed: int | None = None
    injured: int | None = None
    services: list[str] = field(default_factory=list)
    contact_name: str | None = None
    contact_title: str | None = None
    contact_phone: str | None = None
    contact_email: str | None = None
    priority: str = "P3"
    priority_reason: str = ""
    needs_review: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["incident_date"] = self.incident_date.isoformat() if self.incident_date else None
        return data


@dataclass(frozen=True)
class ExtractionRules:
    incident_types: dict[str, list[re.Pattern[str]]]
    services: dict[str, list[re.Pattern[str]]]
    agency: re.Pattern[str]
    abbreviations: dict[str, str]


@lru_cache(maxsize=4)
def load_rules(rules_dir: Path) -> ExtractionRules:
    path = rules_dir / "extraction.toml"
    data = load_toml(path)

    def phrases(table: dict[str, list[str]]) -> dict[str, list[re.Pattern[str]]]:
        return {
            key: [re.compile(r"\b" + p + r"\b" if p.isalnum() else r"\b" + p, re.I) for p in ps]
            for key, ps in table.items()
        }

    agency = data["agency"]
    suffixes = "|".join(re.escape(s) for s in agency["suffixes"] + list(agency["abbreviations"]))
    pattern = re.compile(
        r"\b((?:(?:[A-Z][a-zA-Z.'-]+|of|the)[ \t]){1,5}?)(" + suffixes + r")\b"
    )
    return ExtractionRules(
        phrases(data["incident_types"]),
        phrases(data["services"]),
        pattern,
        dict(agency["abbreviations"]),
    )


def _count(pattern: re.Pattern[str], text: str) -> int | None:
    match = pattern.search(text)
    if not match:
        return None
    word = match.group(1).lower()
    return int(word) if word.isdigit() else _NUMBER_WORDS.get(word)


def _best(table: dict[str, list[re.Pattern[str]]], text: str) -> list[tuple[str, int]]:
    scores = [(key, sum(len(p.findall(text)) for p in pats)) for key, pats in table.items()]
    return sorted((s for s in scores if s[1]), key=lambda s: -s[1])


def _incident_date(text: str, sent: datetime | None) -> date | None:
    anchor = (sent or datetime.now().astimezone()).date()
    lower = text.lower()
    if re.search(r"\b(yesterday|last night)\b", lower):
        return anchor - timedelta(days=1)
    if re.search(r"\b(today|this morning|earlier today|tonight)\b", lower):
        return anchor
    match = _MONTH_DAY.search(text)
    if match:
        month = [m[:3] for m in _MONTHS].index(match.group(1).lower()[:3]) + 1
        year = int(match.group(3)) if match.group(3) else anchor.year
        try:
            found = date(year, month, int(match.group(2)))
        except ValueError:
            found = None
        if found and found > anchor and not match.group(3):
            found = found.replace(year=year - 1)
        if found and found <= anchor:
            return found
    for index, name in enumerate(_WEEKDAYS):
        if re.search(rf"\b(last |this past |on )?{name}\b", lower):
            delta = (anchor.weekday() - index) % 7 or 7
            return anchor - timedelta(days=delta)
    return None


def _place(text: str, agency: str | None) -> tuple[str | None, str | None]:
    for match in _CITY_STATE.finditer(text):
        city = match.group(1).strip()
        words = [w for w in city.split() if w not in _CITY_STOPWORDS]
        state_word = match.group(2)
        state = state_word if state_word in _STATE_ABBRS else _STATE_NAMES.get(state_word.lower())
        if words and state:
            return " ".join(words), state
    for name, abbr in _STATE_NAMES.items():
        if re.search(rf"\b{re.escape(name)}\b", text, re.I):
            return None, abbr
    return None, None


def _agency(rules: ExtractionRules, text: str) -> str | None:
    for match in rules.agency.finditer(text):
        words = match.group(1).split()
        while words and (words[0] in _CITY_STOPWORDS or words[0].lower() in ("of", "the")):
            words.pop(0)
        if not words or words[-1] == "of":
            continue
        suffix = rules.abbreviations.get(match.group(2), match.group(2))
        return " ".join([*words, suffix])
    return None


def _phone(text: str) -> str | None:
    for match in phonenumbers.PhoneNumberMatcher(text, "US"):
        return phonenumbers.format_number(match.number, phonenumbers.PhoneNumberFormat.E164)
    return None


def _priority(ex: Extraction, sent: datetime | None, text: str) -> tuple[str, str]:
    anchor = (sent or datetime.now().astimezone()).date()
    if re.search(r"\b(at large|officer down|call me (now|asap|immediately))\b", text, re.I):
        return "P1", "suspect at large, officer down or an urgent call requested"
    if ex.incident_date is None:
        if ex.incident_type is None:
            return "P4", "no incident described: planning or preparedness"
        return "P3", "incident date not stated"
    age = (anchor - ex.incident_date).days
    if age <= 7:
        return "P1", f"incident {age} day(s) before the request"
    if age <= 30:
        return "P2", f"incident {age} days before the request"
    return "P3", f"incident {age} days before the request"


def extract(msg: ParsedMessage, rules_dir: Path) -> Extraction:
    rules = load_rules(rules_dir)
    text = f"{msg.subject}\n{msg.text}"
    ex = Extraction()
    ex.agency = _agency(rules, text)
    ex.city, ex.state = _place(text, ex.agency)
    types = _best(rules.incident_types, text)
    ex.incident_type = types[0][0] if types else None
    ex.incident_date = _incident_date(text, msg.date)
    ex.killed = _count(_KILLED, text)
    ex.injured = _count(_INJURED, text)
    ex.services = [key for key, _ in _best(rules.services, text)]
    ex.contact_name = msg.from_name or None
    ex.contact_email = (msg.reply_to[0] if msg.reply_to else msg.from_addr) or None
    ex.contact_phone = _phone(msg.text)
    ex.priority, ex.priority_reason = _priority(ex, msg.date, text)
    ex.needs_review = [
        name
        for name in ("agency", "city", "state", "incident_type", "incident_date", "contact_phone")
        if getattr(ex, name) is None
    ] + ([] if ex.services else ["services"])
    return ex
