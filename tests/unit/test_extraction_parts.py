"""The parts of extraction written here: text preparation, agency, classify, contact, triage."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from mailbot.errors import RulesError
from mailbot.inbound.extraction import agency, classify, contact, nlp, text, triage
from tests.conftest import ROOT

RULES = ROOT / "rules"


def test_prepare_unwraps_a_gmail_forward_and_keeps_the_note():
    prepared = text.prepare(
        "Can you help with this?\n\nSam Lee, PIO\n\n---------- Forwarded message ---------\n"
        "From: Dana Whitfield <DWhitfield@harlanpd.gov>\nDate: Mon, Nov 16, 2026 at 7:42 AM\n"
        "Subject: help\nTo: Sam Lee <slee@harlanpd.gov>\n\nWe had a shooting yesterday.\n\n"
        "Thank you,\nDana Whitfield\nChief of Police\n(606) 555-0142\n"
    )
    assert prepared.forwarded
    assert (prepared.author_name, prepared.author_email) == (
        "Dana Whitfield",
        "dwhitfield@harlanpd.gov",
    )
    assert prepared.body.startswith("We had a shooting yesterday.")
    assert "Can you help with this?" in prepared.body
    assert prepared.signature.splitlines()[0] == "Dana Whitfield"


def test_prepare_outlook_forward_without_marker_line():
    prepared = text.prepare(
        "See below.\n\nFrom: Ortega, Maria [mailto:mortega@kernso.gov]\nSent: Monday, March 2, "
        "2026 9:14 AM\nTo: Ops\nSubject: request\n\nOur county needs help.\n"
    )
    assert prepared.forwarded and prepared.author_email == "mortega@kernso.gov"
    assert prepared.body.startswith("Our county needs help.")


@pytest.mark.parametrize(
    ("raw", "body_end", "signature_start"),
    [
        ("We need help.\n\nRespectfully,\nLt. Ann Cole\nOps\n", "We need help.", "Lt. Ann Cole"),
        ("We need help.\n-- \nAnn Cole\n555-555-0100\n", "We need help.", "Ann Cole"),
        (
            "We need help.\n\nAnn Cole\nSpringfield PD\n(555) 555-0100\n",
            "We need help.",
            "Ann Cole",
        ),
        ("We need help. Please call.\n", "Please call.", ""),
    ],
)
def test_prepare_finds_the_signature(raw, body_end, signature_start):
    prepared = text.prepare(raw)
    assert prepared.body.endswith(body_end)
    assert prepared.signature.startswith(signature_start)


def agency_of(body: str, sender: str = "x@example.gov") -> str | None:
    prepared = text.prepare(body)
    full = prepared.full
    doc = nlp.load(RULES)(full)
    rules = agency.load_rules(RULES)
    return agency.find_agency(rules, doc, len(full) - len(prepared.signature), sender).name


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("The Harlan PD needs help after a shooting.", "Harlan Police Department"),
        ("We need help.\n\nThanks,\nBob Ames\nKern County SO\n", "Kern County Sheriff's Office"),
        (
            "Like the Uvalde Police Department, we were overwhelmed. Our Perry Police Department "
            "needs peer support.",
            "Perry Police Department",
        ),
        (
            "The Texas Department of Public Safety assisted. I am the chief of the Allen Police "
            "Department.",
            "Allen Police Department",
        ),
        ("Help from Lakeview DPS.", "Lakeview Department of Public Safety"),
        ("No agency named here, just a shooting.", None),
    ],
)
def test_agency(body, expected):
    assert agency_of(body) == expected


def test_agency_from_sender_domain_breaks_ties():
    body = "The Salem Police Department and the Marion County Sheriff's Office responded."
    assert agency_of(body, "chief@marioncountyso.gov") == "Marion County Sheriff's Office"


@pytest.fixture(scope="module")
def rules() -> classify.ClassifyRules:
    return classify.load_rules(RULES)


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("A gunman opened fire at Lincoln High School, killing two students.", "school_shooting"),
        ("Shots fired inside the Walmart on Main Street.", "retail_business"),
        ("A man drove his truck into the parade crowd.", "vehicle_ramming"),
        ("A shooting at First Baptist Church during Sunday service.", "house_of_worship"),
        ("An employee opened fire at the distribution center warehouse.", "workplace_shooting"),
        ("A stabbing at the bus station left three hurt.", "stabbing"),
        ("A shooting at a house party on Elm Street.", "other_shooting"),
        ("We are updating our emergency plans.", None),
    ],
)
def test_incident_type(rules, body, expected):
    assert classify.incident_type(rules, body)[0] == expected


def test_services_explicit_and_inferred(rules):
    body = (
        "We need help handling the media and press. Our officers are struggling and need peer "
        "support. The families of the victims need a family assistance center."
    )
    assert classify.services(rules, body) == [
        "first_responder_wellness",
        "public_information",
        "victim_witness_wellness",
    ]


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("The suspect remains at large.", "at_large"),
        ("The shooter took his own life.", "deceased"),
        ("The suspect was arrested at the scene.", "in_custody"),
        ("A shooting happened.", "unknown"),
    ],
)
def test_suspect_status(body, expected):
    assert classify.suspect_status(body, True) == expected
    assert classify.suspect_status(body, False) is None


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("Could someone come out in person next week?", True),
        ("A phone call would be enough, no need to travel.", False),
        ("We do not need an in-person visit.", False),
        ("We need help.", None),
    ],
)
def test_in_person(body, expected):
    assert classify.in_person_requested(body) is expected


def test_venue(rules):
    text = "A gunman opened fire at Harlan Middle School on Sunday in Harlan, KY."
    assert classify.venue(rules, text, {"harlan"}) == "Harlan Middle School"
    assert classify.venue(rules, "We had a shooting at the school.", set()) is None
    assert classify.venue(rules, "Shots were fired in Harlan on Sunday.", set()) is None
    comparison = (
        "People compared it to the Club Q shooting in Colorado Springs. Two weeks ago a gunman "
        "opened fire inside The Mercury Room, a nightclub."
    )
    assert classify.venue(rules, comparison, set()) == "Mercury Room"


def test_contact_from_signature_and_from_header():
    rules = contact.load_rules(RULES)
    prepared = text.prepare(
        "We need help.\n\nThank you,\nDana Whitfield\nChief of Police\nHarlan Police Department"
        "\nFax: (606) 555-0199\nCell: (606) 555-0142\n"
    )
    found = contact.find_contact(
        rules, prepared, "Chief Dana Whitfield", "dw@harlanpd.gov", (), "mvai.test"
    )
    assert found == contact.Contact(
        "Dana Whitfield", "Chief of Police", "+16065550142", "dw@harlanpd.gov"
    )


def test_contact_of_a_forward_is_the_original_author():
    rules = contact.load_rules(RULES)
    prepared = text.prepare(
        "FYI\n\n-----Original Message-----\nFrom: Maria Ortega <mortega@kernso.gov>\n"
        "Sent: Monday\nTo: PIO\nSubject: help\n\nPlease help.\n\nSheriff Maria Ortega\n"
        "Kern County Sheriff's Office\n661.555.0100\n"
    )
    found = contact.find_contact(rules, prepared, "Sam PIO", "pio@kernso.gov", (), "mvai.test")
    assert (found.name, found.email, found.phone) == (
        "Maria Ortega",
        "mortega@kernso.gov",
        "+16615550100",
    )
    assert found.title == "Sheriff"


def test_triage_rules_in_order():
    rules = triage.load_rules(RULES)
    sent = date(2026, 11, 16)
    assert triage.priority(rules, "A shooting.", None, sent, True, "at_large")[0] == "P1"
    assert triage.priority(rules, "Please send us your templates.", None, sent, False)[0] == "P3"
    assert triage.priority(rules, "A shooting.", date(2026, 11, 14), sent, True) == (
        "P1",
        "incident within the last 7 days (2 days before)",
    )
    assert triage.priority(rules, "A shooting.", date(2026, 11, 1), sent, True)[0] == "P2"
    assert triage.priority(rules, "A shooting.", date(2025, 11, 1), sent, True)[0] == "P3"
    assert triage.priority(rules, "Planning ahead.", None, sent, False)[0] == "P4"
    assert triage.priority(
        rules, "Schools reopen next week after the shooting.", date(2026, 9, 1), sent, True
    ) == ("P2", "milestone within 14 days")


def test_bad_rule_file_names_file_and_line(tmp_path: Path):
    for name in ("agencies.toml", "incident_types.toml", "services.toml", "contacts.toml"):
        (tmp_path / name).write_text((RULES / name).read_text())
    (tmp_path / "triage.toml").write_text('[[rule]]\npriority = "P1"\npatterns = ["(unclosed"]\n')
    with pytest.raises(RulesError, match=r"triage.toml:3: rule\[0\].patterns: bad pattern"):
        triage.load_rules(tmp_path)
    (tmp_path / "services.toml").write_text("min_score = 2\n[weights.hugs]\n'hug' = 1\n")
    with pytest.raises(RulesError, match="services.toml: weights.hugs: not in the vocabulary"):
        classify.load_rules(tmp_path)
