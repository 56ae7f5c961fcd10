"""The roster file, its validation, and advisor matching."""

from __future__ import annotations

from pathlib import Path

import pytest

from mailbot.cases import matching
from mailbot.errors import ConfigError
from mailbot.roster import parse_roster
from tests.conftest import ROOT, write_config


def person(**fields) -> dict:
    base = {"name": "A", "emails": ["a@adv.test"], "role": "chief"}
    return {**base, **fields}


def test_example_roster_loads(tmp_path: Path):
    from mailbot import config, roster

    cfg = config.load(write_config(tmp_path, f'[roster]\npath = "{ROOT / "roster.example.toml"}"'))
    loaded = roster.load(cfg)
    assert {p.role for p in loaded.advisors} == {"chief", "pio", "mental_health"}
    assert loaded.find("COORD@MVAI.TEST").is_coordinator  # from [coordinators] addresses
    assert loaded.find("coordinator@mvai.example.org").is_coordinator


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        (person(role="cheif"), "person[0] (A): role: 'cheif' is not one of"),
        (person(emails=["nobody"]), "person[0] (A): emails:"),
        (person(services=["hugs"]), "person[0] (A): services: unknown ['hugs']"),
        (person(regions=["Texas"]), "person[0] (A): regions: ['Texas']"),
        (person(max_open_cases=0), "person[0] (A): max_open_cases: must be at least 1"),
        (person(colour="red"), "person[0] (A): colour: unknown field"),
        ({"emails": ["x@y.test"], "role": "pio"}, "person[0]: name: required"),
    ],
)
def test_bad_entries_are_named(entry, message):
    with pytest.raises(ConfigError) as err:
        parse_roster("roster.toml", {"person": [entry]}, ())
    assert str(err.value).startswith("roster.toml: ") and message in str(err.value)


def test_an_address_may_belong_to_one_person_only():
    with pytest.raises(ConfigError, match="a@adv.test is listed for two people"):
        parse_roster("r.toml", {"person": [person(), person(name="B")]}, ())


def roster_of(*entries):
    return parse_roster("r.toml", {"person": list(entries)}, ("coord@mvai.test",))


def test_ranking_prefers_lived_experience_services_and_region():
    roster = roster_of(
        person(
            name="Near",
            emails=["near@a.test"],
            incident_types=["school_shooting"],
            services=["public_information"],
            regions=["KY"],
        ),
        person(
            name="Far",
            emails=["far@a.test"],
            role="pio",
            services=["public_information"],
            regions=["west"],
        ),
        person(name="Other", emails=["other@a.test"], role="faith_leader"),
    )
    ranked = matching.rank(
        roster,
        {},
        incident_type="school_shooting",
        services=["public_information"],
        state="KY",
        agency="Harlan PD",
    )
    assert [s.person.name for s in ranked] == ["Near", "Far", "Other"]
    assert ranked[0].reason == (
        "lived through a school shooting; advises on public information and media; "
        "role: chief; in KY; 0 of 3 open cases"
    )


def test_conflicts_inactive_and_full_advisors_are_never_suggested():
    roster = roster_of(
        person(name="Conflict", emails=["c@a.test"], agencies=["Harlan Police Department"]),
        person(name="Away", emails=["w@a.test"], active=False),
        person(name="Full", emails=["f@a.test"], max_open_cases=2),
        person(name="Free", emails=["free@a.test"]),
    )
    ranked = matching.rank(
        roster,
        {"f@a.test": 2},
        incident_type=None,
        services=[],
        state=None,
        agency="Harlan Police Department",
    )
    assert [s.person.name for s in ranked] == ["Free"]


def test_load_lowers_the_score():
    roster = roster_of(
        person(name="Busy", emails=["b@a.test"]), person(name="Idle", emails=["i@a.test"])
    )
    ranked = matching.rank(
        roster, {"b@a.test": 2}, incident_type=None, services=[], state=None, agency=None
    )
    assert [s.person.name for s in ranked] == ["Idle", "Busy"]
