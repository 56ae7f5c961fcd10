"""What happened and what help is asked: incident type, venue, suspect, services, visit.

In: the request body (signature excluded). Out: plain values. Incident types and services are
weighted phrase rules from rules/incident_types.toml and rules/services.toml; the rest are
short patterns here. A type or service is returned only when its score reaches the file's
`min_score`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from mailbot.errors import RulesError
from mailbot.inbound.extraction.gazetteer import states_for_city
from mailbot.rules import compile_patterns, load_toml, require
from mailbot.vocabulary import INCIDENT_TYPES, SERVICES

Weighted = dict[str, list[tuple[re.Pattern[str], float]]]


@dataclass(frozen=True)
class IncidentRules:
    planning: tuple[re.Pattern[str], ...]
    no_incident: tuple[re.Pattern[str], ...]
    incident: tuple[re.Pattern[str], ...]
    weapons: Weighted
    weapon_min: float
    shooting: tuple[re.Pattern[str], ...]
    venues: Weighted


@dataclass(frozen=True)
class ClassifyRules:
    incident: IncidentRules
    services: Weighted
    services_min: float
    ask_cues: tuple[re.Pattern[str], ...]
    elsewhere_factor: float


def _weighted(
    path: Path, data: dict[str, object], key: str, vocabulary: dict[str, str]
) -> Weighted:
    table = require(path, data, key, dict)
    out: Weighted = {}
    for name, phrases in table.items():
        if name not in vocabulary:
            raise RulesError(
                f"{path}: {key}.{name}: not in the vocabulary ({', '.join(vocabulary)})"
            )
        if not isinstance(phrases, dict):
            raise RulesError(f"{path}: {key}.{name}: expected a table of phrase = weight")
        compiled = compile_patterns(path, f"{key}.{name}", [rf"\b(?:{p})\b" for p in phrases])
        out[name] = [(c, float(w)) for c, w in zip(compiled, phrases.values(), strict=True)]
    return out


def _phrases(path: Path, data: dict[str, object], key: str) -> tuple[re.Pattern[str], ...]:
    phrases = require(path, data, key, list)
    return tuple(compile_patterns(path, key, [rf"\b(?:{p})\b" for p in phrases]))


@lru_cache(maxsize=4)
def load_rules(rules_dir: Path) -> ClassifyRules:
    types_path = rules_dir / "incident_types.toml"
    types = load_toml(types_path)
    services_path = rules_dir / "services.toml"
    services = load_toml(services_path)
    incident = IncidentRules(
        planning=_phrases(types_path, types, "planning"),
        no_incident=_phrases(types_path, types, "no_incident"),
        incident=_phrases(types_path, types, "incident"),
        weapons=_weighted(types_path, types, "weapons", INCIDENT_TYPES),
        weapon_min=float(require(types_path, types, "weapon_min", int)),
        shooting=_phrases(types_path, types, "shooting.phrases"),
        venues=_weighted(types_path, types, "venues", INCIDENT_TYPES),
    )
    return ClassifyRules(
        incident,
        _weighted(services_path, services, "weights", SERVICES),
        float(require(services_path, services, "min_score", float)),
        _phrases(services_path, services, "ask_cues"),
        float(require(services_path, services, "elsewhere_factor", float)),
    )


def scores(table: Weighted, text: str) -> dict[str, float]:
    return {
        key: total
        for key, phrases in table.items()
        if (total := sum(w * min(3, len(p.findall(text))) for p, w in phrases)) > 0
    }


_FIRST_PERSON = re.compile(r"\b(we|our|us|my|here|i)\b", re.I)
_COMPARISON = re.compile(
    r"\b(like|similar to|compared|comparison|reminds? (us|me) of|after (what happened in|the)|"
    r"colleagues (in|from|there)|lessons from|since)\b",
    re.I,
)


def sentences(text: str) -> list[str]:
    """Sentences with their line breaks folded; paragraphs (and a subject line) end one."""
    found = []
    for paragraph in re.split(r"\n\s*\n", text):
        flat = " ".join(paragraph.split())
        found.extend(s for s in re.split(r"(?<=[.!?])\s+", flat) if s)
    return found


def incident_sentences(rules: IncidentRules, text: str) -> list[str]:
    """The sentences that describe the writer's incident (not a comparison with another)."""
    found = []
    for sentence in sentences(text):
        describes = any(p.search(sentence) for p in (*rules.incident, *rules.shooting))
        own = not _COMPARISON.search(sentence) or bool(_FIRST_PERSON.search(sentence))
        if describes and own:
            found.append(sentence)
    return found


def has_incident(rules: ClassifyRules, text: str) -> bool:
    inc = rules.incident
    if any(p.search(text) for p in inc.no_incident):
        return False
    stated = [s for s in sentences(text) if any(p.search(s) for p in inc.incident)]
    stated = [s for s in stated if not _COMPARISON.search(s)] or stated
    if not stated:
        return False
    planning = sum(1 for p in inc.planning if p.search(text))
    return not (planning >= 2 and len(stated) <= 1)


def incident_type(rules: ClassifyRules, text: str) -> tuple[str | None, float]:
    """The incident type and a confidence; None when the text describes no incident."""
    inc = rules.incident
    if not has_incident(rules, text):
        return None, 0.0
    focus = " ".join(incident_sentences(inc, text)) or text
    weapons = scores(inc.weapons, focus)
    if weapons:
        best, score = max(weapons.items(), key=lambda kv: kv[1])
        if score >= inc.weapon_min:
            return best, 0.9
    if not any(p.search(focus) for p in inc.shooting):
        return "other", 0.6
    near = scores(inc.venues, focus)
    far = scores(inc.venues, text)
    venues = {k: near.get(k, 0.0) + 0.25 * (far.get(k, 0.0) - near.get(k, 0.0)) for k in far}
    if not venues:
        return "other_shooting", 0.7
    best, score = max(venues.items(), key=lambda kv: kv[1])
    if score < 3:
        return "other_shooting", 0.6
    runner_up = max((v for k, v in venues.items() if k != best), default=0.0)
    return best, 0.9 if score >= 2 * max(runner_up, 1) else 0.6


def services(rules: ClassifyRules, text: str) -> list[str]:
    """The services asked for: phrases in asking sentences in full, elsewhere a fraction."""
    totals: dict[str, float] = {}
    for sentence in sentences(text):
        factor = 1.0 if any(p.search(sentence) for p in rules.ask_cues) else rules.elsewhere_factor
        for key, value in scores(rules.services, sentence).items():
            totals[key] = totals.get(key, 0.0) + factor * value
    return sorted(k for k, v in totals.items() if v >= rules.services_min)


_AT_LARGE = re.compile(
    r"\b((still|remains?|is|are) (at large|outstanding|on the loose|out there)|at large|manhunt|"
    r"not (yet )?(been )?(apprehended|caught|located|identified|found|in custody)|"
    r"(neither|none|no one|nobody)( of them| one)? (is |are )?(in custody|arrested)|"
    r"(suspects?|shooters?|gunm[ae]n|attackers?) (fled|escaped|got away|outstanding)|on the run|"
    r"(searching|looking) for (the )?(suspects?|shooters?|gunm[ae]n)|(still|remains?) (loose|in "
    r"the area)|no (arrests? (has|have) been|one has been|arrests? (was|were)) (made|arrested|"
    r"charged)|not (yet )?been (arrested|charged|identified))\b",
    re.I,
)
_DECEASED = re.compile(
    r"\b((suspect|shooter|gunman|attacker|perpetrator|he|she)\b[^.]{0,60}\b(took (his|her|their) "
    r"own life|killed (himself|herself)|shot (himself|herself)|was (shot and )?killed|is dead|"
    r"died|was neutralized)|(shot|killed) (and killed )?(him|her|the (suspect|shooter|gunman|"
    r"attacker))|shooter who shot himself|suicide|plus the shooter)\b",
    re.I,
)
_CUSTODY = re.compile(
    r"\b(in (our |their |police |federal |state |county )?custody|into custody|arrested|"
    r"apprehended|detained|booked|surrendered|under arrest|charged with|has been charged|"
    r"held without bond|in (the )?([\w-]+ ){0,3}jail|behind bars|in prison|pleaded guilty|"
    r"convicted|sentenced)\b",
    re.I,
)


def suspect_status(text: str, has_incident: bool) -> str | None:
    """The suspect's status as last stated: at large, in custody, deceased, else unknown."""
    if not has_incident:
        return None
    found = []
    for status, pattern in (
        ("at_large", _AT_LARGE),
        ("deceased", _DECEASED),
        ("in_custody", _CUSTODY),
    ):
        found.extend((m.start(), status) for m in pattern.finditer(text))
    if not found:
        return "unknown"
    # A negated custody ("neither one in custody yet") is at large, not custody.
    last_at_large = max((pos for pos, st in found if st == "at_large"), default=None)
    if last_at_large is not None:
        found = [
            (pos, st)
            for pos, st in found
            if not (st == "in_custody" and 0 <= pos - last_at_large < 40)
        ]
    return max(found)[1]


_IN_PERSON = re.compile(
    r"\b(in[- ]person|on[- ]?site|onsite|(come|travel|coming) (out|down|up|here|over|to (us|our|"
    r"[A-Z]\w+))|visit (us|our|[A-Z]\w+|campus|the (area|city|town|county|department))|"
    r"an? (on-?site )?visit|on the ground with us|boots on the ground|"
    r"send (someone|an advisor|a team|somebody)|be here|be with us)\b",
    re.I,
)
_REMOTE = re.compile(
    r"\b((advisor|someone|somebody) on the phone|phone consultation|by phone|over the phone|"
    r"virtual(ly)?|zoom|teams call|video (call|conference|chat|meeting)|by video|"
    r"no need to travel|don'?t need (anyone|someone|somebody|an advisor) to (travel|come)|"
    r"(don'?t|do not) need an advisor|remote(ly)?|just the (documents|templates|materials)|"
    r"a call or two|phone call)\b",
    re.I,
)
_NEGATED_VISIT = re.compile(
    r"\b(no|not|don'?t|do not|without|instead of|rather than|no need for)\b[^.]{0,25}"
    r"\b(in[- ]person|visit|travel|on[- ]?site)",
    re.I,
)


def in_person_requested(text: str) -> bool | None:
    if _NEGATED_VISIT.search(text):
        return False
    if _IN_PERSON.search(text):
        return True
    if _REMOTE.search(text):
        return False
    return None


_VENUE = re.compile(
    r"\b(?:at|inside|in|outside|near|into|of|to|entered|during|on the grounds of)\s+"
    r"(?:[Tt]he\s+|[Aa]n?\s+)?"
    r"((?:[A-Z][\w'’&.-]*|\d+\w*)(?:\s+(?:[A-Z][\w'’&.-]*|of|de|del|la|El|N|&))*)"
)
_NOT_VENUE = re.compile(
    r"^(January|February|March|April|May|June|July|August|September|October|November|December|"
    r"Monday|Tuesday|Wednesday|Thursday|Friday|Saturday|Sunday|Route|Highway|I-\d+|Our|We|"
    r"The|This|That|Old Town|Downtown|MVAI)\b|\b(County|Parish|Police|Sheriff'?s?|Department|"
    r"Office|Township)$"
)


def venue(rules: ClassifyRules, text: str, places: set[str]) -> str | None:
    """The named place where it happened, from the incident sentences, or None."""
    for sentence in incident_sentences(rules.incident, text):
        for match in _VENUE.finditer(sentence):
            name = match.group(1).strip(" .,'’")
            words = name.split()
            if _NOT_VENUE.search(name) or name.lower() in places or states_for_city(name):
                continue
            if len(words) == 1 and not any(c.isupper() for c in name[1:]) and "-" not in name:
                continue
            return name
    return None
