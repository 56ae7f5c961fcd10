"""What happened: the incident type and the venue; and the rules of both classifiers.

In: the request body (signature excluded). Out: plain values. Incident types are phrase rules
from rules/incident_types.toml, decided in the steps its header describes (a shooting is
someone firing at the victims, not the police firing at the suspect). The venue is the first
named place in the sentences that describe the incident, else in the sentences next to them.
``load_rules`` also compiles rules/services.toml for ``asks``. Never raises.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from mailbot.errors import RulesError
from mailbot.fastmatch import Gate
from mailbot.inbound.extraction.gazetteer import states_for_city
from mailbot.inbound.extraction.place_mentions import normalize_state
from mailbot.inbound.extraction.sentences import sentences
from mailbot.rules import any_of, compile_patterns, load_toml, require
from mailbot.vocabulary import INCIDENT_TYPES, SERVICES

Weighted = dict[str, list[tuple[re.Pattern[str], float]]]


@dataclass(frozen=True)
class IncidentRules:
    planning: tuple[re.Pattern[str], ...]
    no_incident: tuple[re.Pattern[str], ...]
    weapons: Weighted
    weapon_min: float
    shooting: tuple[re.Pattern[str], ...]
    guns: tuple[re.Pattern[str], ...]
    not_fired: tuple[re.Pattern[str], ...]
    not_the_attack: tuple[re.Pattern[str], ...]
    venues: Weighted
    # One search each instead of one per phrase (extraction runs on every request).
    weapons_any: dict[str, Gate]  # per type, any positive phrase (see `scores`)
    venues_any: dict[str, Gate]
    incident_any: Gate  # any of the file's `incident` statements
    describes_any: Gate  # any of `incident`, `shooting.phrases`, `shooting.weapons`
    # The lists searched with any(...) over the whole text, and the ones counted or applied
    # in turn only after one search has found one of them.
    planning_any: Gate
    no_incident_any: Gate
    shooting_any: Gate
    guns_any: Gate
    not_fired_any: Gate
    not_attack_any: Gate  # any of `not_fired` and `not_the_attack`


@dataclass(frozen=True)
class ClassifyRules:
    incident: IncidentRules
    services: Weighted
    services_min: float
    elsewhere_factor: float
    ask_any: Gate  # any of the file's `ask_cues`
    # Per area, any of its phrases with a positive weight: an area none of them matches in a
    # sentence scores nothing there, so one search skips all its phrases.
    services_any: dict[str, Gate]


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


def gates(table: Weighted) -> dict[str, Gate]:
    """Per key, one pattern for any of its phrases with a positive weight (see ``scores``)."""
    return {
        key: any_of(p for p, w in phrases if w > 0)
        for key, phrases in table.items()
        if any(w > 0 for _, w in phrases)
    }


def _phrases(path: Path, data: dict[str, object], key: str) -> tuple[re.Pattern[str], ...]:
    phrases = require(path, data, key, list)
    return tuple(compile_patterns(path, key, [rf"\b(?:{p})\b" for p in phrases]))


@lru_cache(maxsize=4)
def load_rules(rules_dir: Path) -> ClassifyRules:
    types_path = rules_dir / "incident_types.toml"
    types = load_toml(types_path)
    services_path = rules_dir / "services.toml"
    services = load_toml(services_path)
    weapons = _weighted(types_path, types, "weapons", INCIDENT_TYPES)
    venues = _weighted(types_path, types, "venues", INCIDENT_TYPES)
    stated = _phrases(types_path, types, "incident")
    shooting = _phrases(types_path, types, "shooting.phrases")
    guns = _phrases(types_path, types, "shooting.weapons")
    planning = _phrases(types_path, types, "planning")
    no_incident = _phrases(types_path, types, "no_incident")
    not_fired = _phrases(types_path, types, "shooting.not_fired")
    not_the_attack = _phrases(types_path, types, "shooting.not_the_attack")
    incident = IncidentRules(
        planning=planning,
        no_incident=no_incident,
        weapons=weapons,
        weapon_min=float(require(types_path, types, "weapon_min", int)),
        shooting=shooting,
        guns=guns,
        not_fired=not_fired,
        not_the_attack=not_the_attack,
        venues=venues,
        weapons_any=gates(weapons),
        venues_any=gates(venues),
        incident_any=any_of(stated),
        describes_any=any_of((*stated, *shooting, *guns)),
        planning_any=any_of(planning),
        no_incident_any=any_of(no_incident),
        shooting_any=any_of(shooting),
        guns_any=any_of(guns),
        not_fired_any=any_of(not_fired),
        not_attack_any=any_of((*not_fired, *not_the_attack)),
    )
    service_weights = _weighted(services_path, services, "weights", SERVICES)
    return ClassifyRules(
        incident,
        service_weights,
        float(require(services_path, services, "min_score", float)),
        float(require(services_path, services, "elsewhere_factor", float)),
        any_of(_phrases(services_path, services, "ask_cues")),
        gates(service_weights),
    )


def scores(table: Weighted, text: str, gates: dict[str, Gate] | None = None) -> dict[str, float]:
    """Per key, the weights of its phrases times their matches (at most 3), if above 0.

    ``gates`` (any positive phrase of a key) skip a key whose phrases cannot score."""
    return {
        key: total
        for key, phrases in table.items()
        if (gates is None or (key in gates and gates[key].search(text)))
        and (total := sum(w * min(3, len(p.findall(text))) for p, w in phrases)) > 0
    }


_FIRST_PERSON = re.compile(r"\b(we|our|us|my|here|i)\b", re.I)
# "after the Uvalde shooting" compares; "after the varsity football game" does not.
_COMPARISON = re.compile(
    r"\b(like|similar to|compared|comparison|reminds? (us|me) of|"
    r"after (what happened in|the (?-i:[A-Z]))|colleagues (in|from|there)|lessons from|since)\b",
    re.I,
)


def incident_sentences(rules: IncidentRules, text: str) -> list[str]:
    """The sentences that describe the writer's incident (not a comparison with another)."""
    found = []
    for sentence in sentences(text):
        describes = rules.describes_any.search(sentence) is not None
        own = not _COMPARISON.search(sentence) or bool(_FIRST_PERSON.search(sentence))
        if describes and own:
            found.append(sentence)
    return found


def has_incident(rules: ClassifyRules, text: str) -> bool:
    inc = rules.incident
    if inc.no_incident_any.search(text):
        return False
    stated = [s for s in sentences(text) if inc.incident_any.search(s)]
    stated = [s for s in stated if not _COMPARISON.search(s)] or stated
    if not stated:
        return False
    if len(stated) > 1 or not inc.planning_any.search(text):
        return True  # planning phrases outweigh a single statement only
    return sum(1 for p in inc.planning if p.search(text)) < 2


def _is_shooting(rules: IncidentRules, focus: str) -> bool:
    """Whether someone fired at the victims: not only the police at the suspect, and a gun
    counts only when the text does not say it was never fired."""
    attack = focus
    if rules.not_attack_any.search(focus):  # else no substitution would change it
        for pattern in (*rules.not_fired, *rules.not_the_attack):
            attack = pattern.sub(" ", attack)
    if rules.shooting_any.search(attack):
        return True
    fired = not rules.not_fired_any.search(focus)
    return fired and rules.guns_any.search(attack) is not None


def incident_type(rules: ClassifyRules, text: str) -> tuple[str | None, float]:
    """The incident type and a confidence; None when the text describes no incident."""
    inc = rules.incident
    if not has_incident(rules, text):
        return None, 0.0
    focus = " ".join(incident_sentences(inc, text)) or text
    weapons = scores(inc.weapons, focus, inc.weapons_any)
    if weapons:
        best, score = max(weapons.items(), key=lambda kv: kv[1])
        if score >= inc.weapon_min:
            return best, 0.9
    if not _is_shooting(inc, focus):
        return "other", 0.6
    near = scores(inc.venues, focus, inc.venues_any)
    far = scores(inc.venues, text, inc.venues_any)
    venues = {k: near.get(k, 0.0) + 0.25 * (far.get(k, 0.0) - near.get(k, 0.0)) for k in far}
    if not venues:
        return "other_shooting", 0.7
    best, score = max(venues.items(), key=lambda kv: kv[1])
    if score < 3:
        return "other_shooting", 0.6
    runner_up = max((v for k, v in venues.items() if k != best), default=0.0)
    return best, 0.9 if score >= 2 * max(runner_up, 1) else 0.6


_VENUE = re.compile(
    r"\b(?:at|inside|in|outside|near|into|of|to|entered|during|on the grounds of"
    r"|[Ll]ocation:|[Vv]enue:|[Ss]cene:)\s+"
    r"(?:[Tt]he\s+|[Aa]n?\s+)?"
    r"((?:[A-Z][\w'’&.-]*|\d+\w*)(?:\s+(?:[A-Z][\w'’&.-]*|(?:of|de|del|la|El|N)\b|&))*)"
)
_PART_OF_TOWN = re.compile(r"^(Downtown|Old Town|Uptown|Midtown)\b\s*")
_NOT_VENUE = re.compile(
    r"^(January|February|March|April|May|June|July|August|September|October|November|December|"
    r"Monday|Tuesday|Wednesday|Thursday|Friday|Saturday|Sunday|Route|Highway|I-\d+|Our|We|"
    r"The|This|That|MVAI)\b|\b(County|Parish|Police|Sheriff'?s?|Department|"
    r"Office|Township|Troopers|Patrol|Marshals?|"
    r"Street|Avenue|Road|Boulevard|Drive|Lane|Creek|River|Overpass)$"
)


def _is_place(name: str, places: set[str]) -> bool:
    """A town, a state or a county rather than a venue: "Elgin IL", "Downtown Garland"."""
    name = _PART_OF_TOWN.sub("", name)
    head, _, last = name.rpartition(" ")
    if head and normalize_state(last) and states_for_city(head):
        return True
    return not name or name.lower() in places or bool(states_for_city(name))


def _venues_in(sentence: str, places: set[str]) -> list[str]:
    found = []
    for match in _VENUE.finditer(sentence):
        name = match.group(1).strip(" .,'’")
        words = name.split()
        if _NOT_VENUE.search(name) or _is_place(name, places):
            continue
        if len(words) == 1 and not any(c.isupper() for c in name[1:]) and "-" not in name:
            continue
        found.append(name)
    return found


def venue(rules: ClassifyRules, text: str, places: set[str]) -> str | None:
    """The named place where it happened: the first in the sentences that describe the
    incident, else in the sentences next to them ("officers responded to a call at the Twin
    Oaks Apartments. A man inside opened fire"), written out in full where a later mention
    is longer ("First Presbyterian" in the subject, "First Presbyterian Church" in the text).
    """
    all_sentences = sentences(text)
    incident = set(incident_sentences(rules.incident, text))
    described = [i for i, s in enumerate(all_sentences) if s in incident]
    beside = [j for i in described for j in (i - 1, i + 1) if 0 <= j < len(all_sentences)]
    names: list[str] = []
    for group in (described, beside):
        names = [n for i in dict.fromkeys(group) for n in _venues_in(all_sentences[i], places)]
        if names:
            break
    if not names:
        return None
    first = names[0]
    return max((n for n in names if n.startswith(first)), key=len)
