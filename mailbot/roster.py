"""The roster: advisors and coordinators, from a TOML file named in the config.

In: `[roster] path` (see roster.example.toml). Out: a ``Roster`` of ``Person`` entries, looked
up by address. Validated at start-up: an error names the file and the entry. Coordinators
listed in `[coordinators] addresses` are coordinators even when the roster does not name them.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from mailbot.config import Config
from mailbot.errors import ConfigError
from mailbot.vocabulary import INCIDENT_TYPES, SERVICES

ROLES = (
    "chief",
    "sheriff",
    "pio",
    "mental_health",
    "victim_services",
    "educator",
    "faith_leader",
    "community_leader",
    "coordinator",
)
REGIONS: dict[str, frozenset[str]] = {
    "northeast": frozenset("CT ME MA NH RI VT NJ NY PA".split()),
    "midwest": frozenset("IL IN MI OH WI IA KS MN MO NE ND SD".split()),
    "south": frozenset("DE FL GA MD NC SC VA DC WV AL KY MS TN AR LA OK TX".split()),
    "west": frozenset("AZ CO ID MT NV NM UT WY AK CA HI OR WA".split()),
}


@dataclass(frozen=True)
class Person:
    name: str
    emails: tuple[str, ...]
    role: str
    incident_types: frozenset[str] = frozenset()
    services: frozenset[str] = frozenset()
    regions: frozenset[str] = frozenset()
    languages: frozenset[str] = frozenset({"en"})
    agencies: tuple[str, ...] = ()
    experience: str = ""
    phone: str = ""
    active: bool = True
    max_open_cases: int = 3

    @property
    def email(self) -> str:
        return self.emails[0]

    @property
    def is_coordinator(self) -> bool:
        return self.role == "coordinator"

    def covers_state(self, state: str | None) -> bool:
        if not state:
            return False
        return state in self.regions or any(state in REGIONS.get(r, ()) for r in self.regions)


@dataclass(frozen=True)
class Roster:
    people: tuple[Person, ...] = ()
    by_email: dict[str, Person] = field(default_factory=dict)

    def find(self, address: str) -> Person | None:
        return self.by_email.get(address.strip().lower())

    @property
    def advisors(self) -> list[Person]:
        return [p for p in self.people if not p.is_coordinator]


_FIELDS = {
    "name": str,
    "emails": list,
    "role": str,
    "incident_types": list,
    "services": list,
    "regions": list,
    "languages": list,
    "agencies": list,
    "experience": str,
    "phone": str,
    "active": bool,
    "max_open_cases": int,
}


def _person(source: str, index: int, raw: Any) -> Person:
    where = f"{source}: person[{index}]"
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: expected a [[person]] table")
    name = raw.get("name")
    if isinstance(name, str) and name.strip():
        where = f"{where} ({name})"
    for key, value in raw.items():
        if key not in _FIELDS:
            raise ConfigError(f"{where}: {key}: unknown field (see roster.example.toml)")
        if not isinstance(value, _FIELDS[key]) or (_FIELDS[key] is int and isinstance(value, bool)):
            raise ConfigError(f"{where}: {key}: expected {_FIELDS[key].__name__}, got {value!r}")
    for required in ("name", "emails", "role"):
        if not raw.get(required):
            raise ConfigError(f"{where}: {required}: required")
    emails = tuple(str(e).strip().lower() for e in raw["emails"])
    if not all("@" in e for e in emails):
        raise ConfigError(f"{where}: emails: {list(emails)} has an entry that is not an address")
    if raw["role"] not in ROLES:
        raise ConfigError(f"{where}: role: {raw['role']!r} is not one of {', '.join(ROLES)}")
    for key, vocabulary in (("incident_types", INCIDENT_TYPES), ("services", SERVICES)):
        unknown = [v for v in raw.get(key, []) if v not in vocabulary]
        if unknown:
            raise ConfigError(f"{where}: {key}: unknown {unknown} (see ../shared/DESIGN.md)")
    regions = [str(r) for r in raw.get("regions", [])]
    bad = [r for r in regions if r not in REGIONS and not (len(r) == 2 and r.isupper())]
    if bad:
        raise ConfigError(f"{where}: regions: {bad}: use USPS state codes or {', '.join(REGIONS)}")
    if raw.get("max_open_cases", 3) < 1:
        raise ConfigError(f"{where}: max_open_cases: must be at least 1")
    return Person(
        name=raw["name"].strip(),
        emails=emails,
        role=raw["role"],
        incident_types=frozenset(raw.get("incident_types", [])),
        services=frozenset(raw.get("services", [])),
        regions=frozenset(regions),
        languages=frozenset(raw.get("languages", ["en"])),
        agencies=tuple(raw.get("agencies", [])),
        experience=raw.get("experience", ""),
        phone=raw.get("phone", ""),
        active=raw.get("active", True),
        max_open_cases=raw.get("max_open_cases", 3),
    )


def parse_roster(source: str, data: dict[str, Any], coordinators: tuple[str, ...]) -> Roster:
    unknown = [k for k in data if k != "person"]
    if unknown:
        raise ConfigError(f"{source}: {unknown[0]}: unknown key (the file holds [[person]] tables)")
    people = [_person(source, i, raw) for i, raw in enumerate(data.get("person", []))]
    by_email: dict[str, Person] = {}
    for person in people:
        for email in person.emails:
            if email in by_email:
                raise ConfigError(f"{source}: {email} is listed for two people")
            by_email[email] = person
    for address in coordinators:
        if address.lower() not in by_email:
            person = Person(name=address, emails=(address.lower(),), role="coordinator")
            people.append(person)
            by_email[address.lower()] = person
    return Roster(tuple(people), by_email)


@lru_cache(maxsize=4)
def _load(path: Path | None, coordinators: tuple[str, ...]) -> Roster:
    if path is None:
        return parse_roster("roster", {}, coordinators)
    try:
        with path.open("rb") as fh:
            data = tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError(f"{path}: roster file not found ([roster] path)") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    return parse_roster(str(path), data, coordinators)


def load(cfg: Config) -> Roster:
    path = cfg.path(cfg.roster.path) if cfg.roster.path else None
    return _load(path, tuple(cfg.coordinators.addresses))
