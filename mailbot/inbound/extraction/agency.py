"""The requesting agency: AGENCY entities from the ruler, scored by where they stand.

In: the spaCy doc of the request, its signature, the sender's address. Out: the agency as
named, with abbreviations expanded (Harlan PD -> Harlan Police Department), and a confidence.
The signature, first-person phrases ("our department", "I am the chief of ...") and the
sender's domain count for a candidate; comparison and mutual-aid cues count against it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from mailbot.inbound.extraction.gazetteer import gazetteer
from mailbot.rules import load_toml, require


@dataclass(frozen=True)
class AgencyRules:
    abbreviations: dict[str, str]
    leading_noise: frozenset[str]
    other_cues: re.Pattern[str]


@dataclass(frozen=True)
class Agency:
    name: str | None
    confidence: float


@lru_cache(maxsize=4)
def load_rules(rules_dir: Path) -> AgencyRules:
    path = rules_dir / "agencies.toml"
    data = load_toml(path)
    cues = require(path, data, "other_agency_cues", list)
    return AgencyRules(
        abbreviations=dict(require(path, data, "abbreviations", dict)),
        leading_noise=frozenset(require(path, data, "leading_noise", list)),
        other_cues=re.compile(
            r"\b(" + "|".join(re.escape(c) for c in cues) + r")\W+(\w+\W+){0,4}$", re.I
        ),
    )


def split_noise(rules: AgencyRules, text: str) -> tuple[str, list[str]]:
    """(leading noise words, the rest) of an entity's text."""
    words = text.replace("\n", " ").split()
    noise = []
    while words and (words[0] in rules.leading_noise or words[0].lower() in ("of", "the", "&")):
        noise.append(words.pop(0))
    return " ".join(noise), words


_SUFFIX_WORDS = re.compile(
    r"\b(Police|Sheriff|Marshals?|Department|Dept|Public Safety|State Patrol|Highway Patrol|"
    r"State Troopers|Constable|PD|SO|SD|DPS|UPD)\b"
)
# Words that do not name an agency on their own: "Chief of University Police" is a title.
_GENERIC = frozenset(
    ["university", "state", "county", "city", "town", "campus", "school", "tribal"]
)


def normalise(rules: AgencyRules, text: str) -> str | None:
    """Strip leading noise words and expand abbreviations; None if nothing is left."""
    _noise, words = split_noise(rules, text.replace("’", "'"))
    if len(words) < 2:
        return None
    suffix = _SUFFIX_WORDS.search(" ".join(words))
    if suffix and all(w.lower() in _GENERIC for w in " ".join(words)[: suffix.start()].split()):
        return None
    expanded: list[str] = []
    for word in words:
        expanded.extend(rules.abbreviations.get(word, word).split())
    name = " ".join(expanded)
    for short, full in rules.abbreviations.items():
        if " " in short:
            name = name.replace(short, full)
    return name


def _domain_words(sender: str) -> set[str]:
    domain = sender.rpartition("@")[2].split(".")[0].lower()
    return {domain} | {domain.removesuffix(s) for s in ("pd", "so", "police", "sheriff", "dps")}


_LOWER_AGENCY = re.compile(
    r"\b((?:[a-z][\w.'’-]* ){1,3}?)(police department|police dept\.?|police services|"
    r"sheriff'?s office|sheriff'?s department|department of public safety|state police|"
    r"(?:c?isd )police (?:department|dept\.?)|(?:c?isd )police|university police department|"
    r"police|pd|so|dps)\b"
)
_LOWER_STOP = frozenset(
    [
        "the",
        "of",
        "a",
        "an",
        "in",
        "at",
        "from",
        "with",
        "for",
        "and",
        "to",
        "this",
        "is",
        "we",
        "our",
        "my",
        "i",
        "am",
        "chief",
        "sheriff",
        "here",
        "with",
        "local",
        "city",
        "county",
        "town",
        "small",
    ]
)
# "lt pelletier waterville pd": a rank, then a surname, then the agency's place
_RANK_WORDS = frozenset(
    "lt sgt capt cpl det ofc officer deputy detective sergeant lieutenant captain cmdr "
    "commander chief sheriff undersheriff".split()
)
_LOWER_STOP |= _RANK_WORDS


_PLACE_WORDS = frozenset(["county", "city", "town"])  # "yuma county so"


def lowercase_agency(rules: AgencyRules, text: str) -> str | None:
    """An agency in text written all in lower case ("chief of the ellsworth police dept")."""
    for match in _LOWER_AGENCY.finditer(text):
        words = match.group(1).split()
        # "lt gary ward springfield pd": the rank may stand before the words matched
        after_rank = bool(
            _RANK_WORDS & set(text[max(0, match.start() - 20) : match.start()].split()[-2:])
        )
        while words and words[0] in _LOWER_STOP:
            after_rank = words.pop(0) in _RANK_WORDS
        # "pettway with greenwood pd": the name starts after the last word that is no name's
        stops = [i for i, w in enumerate(words) if w in _LOWER_STOP and w not in _PLACE_WORDS]
        if stops:
            after_rank = words[stops[-1]] in _RANK_WORDS
            words = words[stops[-1] + 1 :]
        if after_rank and len(words) > 1:  # "lt pelletier waterville pd": a surname first
            words = _after_surname(words)
        if not words or (match.group(2) == "so" and words[-1] not in ("county", "co.", "parish")):
            continue  # "some support so they will talk"
        name = normalise(
            rules, " ".join(w.capitalize() for w in words) + " " + _suffix(match.group(2))
        )
        if name:
            return name
    return None


def _after_surname(words: list[str]) -> list[str]:
    """The place words of "pelletier waterville" after a rank: the longest trailing run that
    is a town or a county somewhere, else all but the first word (the surname)."""
    gaz = gazetteer()
    for i in range(len(words)):
        run = words[i:]
        if run[-1] == "county" and len(run) > 1 and gaz.states_for_county(" ".join(run[:-1])):
            return run
        if gaz.cities_named(" ".join(run)):
            return run
    return words[1:]


def _suffix(raw: str) -> str:
    parts = []
    for word in raw.split():
        parts.append(word.upper() if word in ("pd", "so", "dps", "isd", "cisd") else word.title())
    return " ".join(parts).replace("'S", "'s")


def find_agency(rules: AgencyRules, doc: Any, signature_start: int, sender: str) -> Agency:
    found = _from_entities(rules, doc, signature_start, sender)
    if found.name is None:  # lower-case writing, or a name the ruler's patterns missed
        # the signature names the agency in full more often than a hurried first line does
        signed = lowercase_agency(rules, doc.text[signature_start:].lower())
        name = signed or lowercase_agency(rules, doc.text.lower())
        return Agency(name, 0.6 if signed else 0.5 if name else 0.0)
    return found


def _from_entities(rules: AgencyRules, doc: Any, signature_start: int, sender: str) -> Agency:
    candidates: dict[str, float] = {}
    text = doc.text
    domain = _domain_words(sender)
    for ent in doc.ents:
        if ent.label_ != "AGENCY":
            continue
        name = normalise(rules, ent.text)
        if name is None:
            continue
        score = 1.0
        if ent.start_char >= signature_start:
            score += 3.0
        noise, _words = split_noise(rules, ent.text)
        before = text[max(0, ent.start_char - 60) : ent.start_char] + noise + " "
        if rules.other_cues.search(before):
            score -= 3.0
        if re.search(
            r"\b(our|my|i am|i'm|we are|we're|on behalf of|here at|with the)\W+(\w+\W+){0,3}$",
            before,
            re.I,
        ):
            score += 2.0
        if re.search(
            r"\b(chief|sheriff|director|commissioner|officer|pio)\s+(of|for|with)\s+(the\s+)?$",
            before,
            re.I,
        ):
            score += 1.5
        first = name.split()[0].lower().strip(".,")
        if first in domain or any(first.startswith(d) for d in domain if len(d) >= 4):
            score += 1.5
        key = name.lower()
        if key in (k.lower() for k in candidates):
            existing = next(k for k in candidates if k.lower() == key)
            candidates[existing] += 0.5 + max(0.0, score - 1.0)
        else:
            candidates[name] = score
    for name, score in _signature_names(rules, text[signature_start:]):
        candidates[name] = candidates.get(name, 0.0) + score
    if not candidates:
        return Agency(None, 0.0)
    candidates = _merge_short_forms(candidates)
    best = max(candidates.items(), key=lambda item: (item[1], len(item[0])))
    confidence = 0.9 if best[1] >= 3 else 0.6 if best[1] >= 1 else 0.3
    return Agency(best[0], confidence)


def _initials(words: list[str]) -> str:
    return "".join(w[0] for w in words if w[0].isupper())


def _merge_short_forms(candidates: dict[str, float]) -> dict[str, float]:
    """Add a short form's score to the fullest form of the same agency, which then stands.

    "DART Police Department" is "Dallas Area Rapid Transit Police Department" (its initials);
    "University Police Department" is the end of "High Plains State University Police
    Department".
    """
    merged = dict(candidates)
    for short in candidates:
        head, *rest = short.split()
        for full in candidates:
            words = full.split()
            if len(words) <= len(rest) + 1:
                continue
            lead = words[: len(words) - len(rest)]
            acronym = len(head) >= 2 and head.isupper() and _initials(lead) == head
            ends_with = f" {full.lower()}".endswith(f" {short.lower()}")
            if (ends_with or (acronym and words[len(lead) :] == rest)) and short in merged:
                merged[full] += merged.pop(short)
                break
    return merged


_BARE_SUFFIX = re.compile(
    r"^(Sheriff'?s Office|Police Department|Sheriff'?s Department|Marshal'?s Office|"
    r"Department of Public Safety|Police)$",
    re.I,
)
_PLACE_LINE = re.compile(r"^((?:[A-Z][\w.'-]*\s){1,3}(?:County|Parish))\b")


def _signature_names(rules: AgencyRules, signature: str) -> list[tuple[str, float]]:
    """An agency signed as a bare suffix line with its county on the next line.

    "Sheriff's Office" over "Flathead County, Montana" is the Flathead County Sheriff's
    Office; it scores as a name in the signature does.
    """
    lines = [line.strip().replace("’", "'") for line in signature.splitlines() if line.strip()]
    found = []
    for line, after in zip(lines, lines[1:], strict=False):
        place = _PLACE_LINE.match(after)
        if _BARE_SUFFIX.match(line) and place:
            name = normalise(rules, f"{place.group(1)} {line}")
            if name:
                found.append((name, 4.0))
    return found
