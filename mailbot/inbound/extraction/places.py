"""Where the incident happened: city, state (USPS code) and county, from a request's text.

In: the request body, its signature, the agency name when known, the sender's area codes (found
in the text's phone numbers when none are given). Out: a ``Place``; what the text does not
settle is None, and ``confidence`` (0-1) with ``evidence`` says how it was settled; ``written``
says whether the text writes the state (the gazetteer may settle a state no one wrote).
The mentions come from ``place_mentions``; this module settles them into one place.

Every city is checked against the gazetteer for its state, so a capitalised word before a state
("Chief of Police, KY") is no city. A mention in the body near incident words outranks one in
the signature, which outranks the agency name; a comparison ("like what happened in Parkland")
counts least, and a town that starts a venue's name ("at the Silver Spring Transit Center")
is the last resort. A city or county named without a state takes a state stated elsewhere, or
its only state; area codes only break ties between states. A county is returned only when the
text names it (the agency's name included, another agency's county not). Text written all in
lower case is read title-cased. Pure string work on the first 20,000 characters of each part;
never raises.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace

from mailbot.inbound.extraction.gazetteer import Gazetteer, gazetteer, place_key
from mailbot.inbound.extraction.place_mentions import Mention, Scanner

_PHONE = re.compile(r"(?<!\d)\(?([2-9]\d{2})\)?[-. \t]{0,2}[2-9]\d{2}[-. \t]\d{4}(?!\d)")
_CONFIDENCE = {
    "city-state": 0.9,
    "city-county": 0.85,
    "county": 0.8,
    "city": 0.75,
    "agency name": 0.65,
    "venue": 0.55,
    "state": 0.5,
}
# How a state was found for a city or county named without one: the less sure, the more is
# taken off the mention's score (penalty) and off the place's confidence (doubt).
_SETTLE_PENALTY = {
    "known state": 0.0,
    "only state": 0.5,
    "area code": 0.75,
    "size": 1.0,
}
_SETTLE_DOUBT = {
    "stated": 0.0,
    "known state": 0.0,
    "only state": 0.1,
    "area code": 0.15,
    "size": 0.2,
}


@dataclass(frozen=True)
class Place:
    city: str | None
    state: str | None
    county: str | None
    confidence: float
    evidence: str
    # Whether the text writes the state; else the gazetteer or an area code settled it
    # ("Fort Mill Police Department" is only in SC, but the email never says SC).
    written: bool = True


NOWHERE = Place(None, None, None, 0.0, "none")


def resolve_place(
    body: str, signature: str = "", agency: str | None = None, area_codes: Sequence[str] = ()
) -> Place:
    """The incident's place; see the module docstring for the order of evidence."""
    gaz = gazetteer()
    codes = area_codes or [m.group(1) for m in _PHONE.finditer(f"{body}\n{signature}")]
    code_states = {state for code in codes for state in gaz.states_for_area_code(code)}
    mentions: list[Mention] = []
    offset = 0
    for text, where in ((body, "body"), (signature, "signature"), (agency or "", "agency")):
        mentions.extend(Scanner(gaz, text, where, offset, agency).mentions())
        offset += len(text) + 1
    stated = _tally((m.state, m.score) for m in mentions)
    options = [_options(gaz, m) if m.state is None else [] for m in mentions]
    # States that a name given without one has alone ("Kern County" is only in CA).
    alone = {found[0][0] for found in options if len({o[0] for o in found}) == 1}
    settled = [
        _settle(m, found, stated, alone, code_states)
        for m, found in zip(mentions, options, strict=True)
    ]
    state, by_area_code = _best_state(_tally((s.state, s.score) for s in settled if s), code_states)
    if state is None:
        return NOWHERE
    in_state = []
    for mention, found, first in zip(mentions, options, settled, strict=True):
        if first is None or first.state != state:  # "Wayne County" is in PA too
            first = _settle(mention, found, {state: 0.0}, set(), set())
        if first and first.state == state:
            in_state.append(first)
    # A town read from a venue's name is the last resort: "Catawba Ridge High School".
    named = [m for m in in_state if m.city and m.form != "venue"]
    cities = _tally((m.city, m.score) for m in (named or in_state))
    city = max(cities, key=lambda c: cities[c], default=None)
    city_mention = _best(m for m in in_state if m.city == city) if city else None
    county_mention = _best_county(gaz, in_state, city_mention)
    lead = city_mention or county_mention or _best(in_state)
    if lead is None:
        return NOWHERE
    confidence = _CONFIDENCE[lead.form] - _SETTLE_DOUBT[lead.settled_by]
    confidence -= 0.15 if lead.where != "body" else 0.0
    confidence -= 0.3 if lead.comparison else 0.0
    evidence = "agency name" if lead.where == "agency" else f"{lead.form} in {lead.where}"
    if by_area_code or lead.settled_by == "area code":
        evidence += ", area code"
    return Place(
        city_mention.city if city_mention else None,
        state,
        county_mention.county if county_mention else None,
        round(max(0.1, min(1.0, confidence)), 2),
        evidence,
        written=any(m.state == state for m in mentions),
    )


def _options(gaz: Gazetteer, m: Mention) -> list[tuple[str, str | None, str | None, int]]:
    """Where a mention without a state may be: (state, city, county, ZIP codes), largest first.

    A city named with its county counts only where that county holds it.
    """
    for name in m.city_names:
        found = []
        for city in gaz.cities_named(name):
            county = None
            if m.county_names:
                held = {place_key(c) for c in city.counties}
                counties = (gaz.county(n, city.state) for n in m.county_names)
                county = next((c for c in counties if c and place_key(c) in held), None)
                if county is None:
                    continue
            found.append((city.state, city.name, county, city.zips))
        if found:
            return found
    for name in m.county_names:
        states = sorted(gaz.states_for_county(name))
        if states:
            return [(state, None, gaz.county(name, state), 0) for state in states]
    return []


def _settle(
    m: Mention,
    options: list[tuple[str, str | None, str | None, int]],
    stated: dict[str, float],
    alone: set[str],
    codes: set[str],
) -> Mention | None:
    """A mention with its state settled, or None when the text and gazetteer cannot settle it.

    The state is, in this order: one stated in the text (the best scored), the name's only
    state, one that another name has alone, the one area code's, the far largest city's.
    """
    if m.state:
        return m
    states = [option[0] for option in options]
    in_stated = [s for s in states if s in stated]
    in_alone = sorted(s for s in states if s in alone)
    in_codes = [s for s in states if s in codes]
    if in_stated:
        state, how = max(in_stated, key=lambda s: (stated[s], s in codes)), "known state"
    elif len(states) == 1:
        state, how = states[0], "only state"
    elif in_alone:
        state, how = in_alone[0], "known state"
    elif len(in_codes) == 1:
        state, how = in_codes[0], "area code"
    elif len(options) > 1 and options[1][3] and options[0][3] >= 3 * options[1][3]:
        state, how = states[0], "size"
    else:
        return None
    _, city, county, _ = options[states.index(state)]
    score = m.score - _SETTLE_PENALTY[how]
    return replace(m, city=city, county=county, state=state, settled_by=how, score=score)


def _tally(scored: Iterable[tuple[str | None, float]]) -> dict[str, float]:
    """For each state (or city): its best mention's score, plus a little for two more."""
    best: dict[str, float] = {}
    count: dict[str, int] = {}
    for key, score in scored:
        if key:
            best[key] = max(best.get(key, score), score)
            count[key] = count.get(key, 0) + 1
    return {key: score + 0.2 * min(2, count[key] - 1) for key, score in best.items()}


def _best_state(scores: dict[str, float], codes: set[str]) -> tuple[str | None, bool]:
    """The top state, and whether an area code chose it among states within a tie's reach."""
    if not scores:
        return None, False
    ranked = sorted(scores, key=lambda s: -scores[s])
    tied = [s for s in ranked if scores[ranked[0]] - scores[s] < 0.5]
    by_code = [s for s in tied if s in codes]
    if len(tied) > 1 and by_code and by_code[0] != ranked[0]:
        return by_code[0], True
    return ranked[0], False


def _best(mentions: Iterable[Mention]) -> Mention | None:
    return max(mentions, key=lambda m: (m.score, -m.order), default=None)


def _best_county(gaz: Gazetteer, mentions: list[Mention], city: Mention | None) -> Mention | None:
    """The county named for the state, one that holds the city first."""
    named = [m for m in mentions if m.county]
    if city and city.city and city.state:
        holding = gaz.city(city.city, city.state)
        if holding:
            held = {place_key(c) for c in holding.counties}
            inside = [m for m in named if place_key(m.county or "") in held]
            return _best(inside) or _best(named)
    return _best(named)
