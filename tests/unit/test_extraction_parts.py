"""The parts of extraction written here: text preparation, agency, classify, contact, triage."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from mailbot.errors import RulesError
from mailbot.inbound import extraction
from mailbot.inbound.extraction import agency, asks, classify, contact, nlp, suspect, text, triage
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
    assert asks.services(rules, body) == [
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
    assert suspect.suspect_status(body, True) == expected
    assert suspect.suspect_status(body, False) is None


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
    assert asks.in_person_requested(body) is expected


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
        "incident within 7 days (2 days before)",
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


def test_prepare_unwraps_a_forward_of_a_forward_to_the_innermost_author():
    prepared = text.prepare(
        "Please reply to the chief directly.\n\nKelsey Ortega\nAssistant\n575-555-0161\n\n"
        "---------- Forwarded message ---------\nFrom: Patricia Lowe <plowe@hobbs.gov>\n"
        "Date: Mon, Jul 13, 2026 at 8:52 AM\nSubject: FW: request\nTo: Kelsey Ortega "
        "<kortega@hobbs.gov>\n\nKelsey, can you send this? His cell is 575-555-0163.\n\n"
        "Patricia Lowe\nCity Manager\n575-555-0160\n\n________________________________\n"
        "From: Eli Navarro <enavarro@hobbs.gov>\nSent: Sunday, July 12, 2026 9:47 PM\n"
        "To: Patricia Lowe <plowe@hobbs.gov>\nSubject: request\n\nWe had a shooting.\n\n"
        "Eli Navarro, Chief of Police\nHobbs Police Department\n575-555-0162\n"
    )
    assert (prepared.author_name, prepared.author_email) == ("Eli Navarro", "enavarro@hobbs.gov")
    assert prepared.body.startswith("We had a shooting.")
    assert "His cell is 575-555-0163" in prepared.body
    assert "575-555-0160" not in prepared.body and "575-555-0161" not in prepared.body
    assert prepared.signature.startswith("Eli Navarro, Chief of Police")


def test_prepare_knows_more_sign_offs():
    prepared = text.prepare("Please help.\n\nWith thanks,\n\nAnn Cole\n\nChief of Police\n")
    assert prepared.signature == "Ann Cole\nChief of Police"


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        # the fullest form: an acronym of the signed name
        (
            "I write for DART PD.\n\nThanks,\nTerry Ash\nDallas Area Rapid Transit Police "
            "Department\n",
            "Dallas Area Rapid Transit Police Department",
        ),
        # "Chief of University Police" is a title
        (
            "Please help.\n\nRebecca Thorsen\nChief of University Police\nHigh Plains State "
            "University Police Department\n",
            "High Plains State University Police Department",
        ),
        # a bare "Sheriff's Office" line takes the county on the line under it
        (
            "A Kalispell PD officer tackled him.\n\nThanks,\nSgt. Luke Brennan\nSheriff's "
            "Office\nFlathead County, Montana\n",
            "Flathead County Sheriff's Office",
        ),
        ("Signed,\nLuis Cabrera\nMiami-Dade Sheriff’s Office\n", "Miami-Dade Sheriff's Office"),
        # all lower case: the name starts after the last word that is no name's
        (
            "hi this is chief pike from sturgis police dept in michigan.",
            "Sturgis Police Department",
        ),
        (
            "sheriff ruiz here, yuma county so in arizona. we need help",
            "Yuma County Sheriff's Office",
        ),
        ("how to get these kids and there families some support so they will talk", None),
    ],
)
def test_agency_forms(body, expected):
    assert agency_of(body) == expected


def find(body: str, from_name: str = "", from_addr: str = "x@pd.gov") -> contact.Contact:
    return contact.find_contact(
        contact.load_rules(RULES), text.prepare(body), from_name, from_addr, (), "mvai.test"
    )


@pytest.mark.parametrize(
    ("body", "phone"),
    [
        ("Her cell is 541-555-0186; call that.\n\nJo Ek\nSheriff\n541-555-0181\n", "+15415550186"),
        (
            "can somebody call me today. 269-555-0118 is my cell\n\n-al pike, chief\n",
            "+12695550118",
        ),
        ("Please call me at (212) 555-0111.\n\nAnn Cole\nChief\n(212) 555-0100\n", "+12125550111"),
        # a number the writer does not offer as theirs
        (
            "The family hotline is 212-555-0155.\n\nAnn Cole\nChief\n(212) 555-0100\n",
            "+12125550100",
        ),
    ],
)
def test_contact_phone_asked_for_wins_over_the_signature(body, phone):
    assert find(body, "Ann Cole").phone == phone


def test_contact_name_as_signed_and_rank_title():
    found = find("3 dead. Need a call.\n\nLt. Pam Rourke\n352-555-0114\n", "Rourke, Pamela")
    assert (found.name, found.title) == ("Pam Rourke", "Lieutenant")


@pytest.mark.parametrize(
    ("signature", "from_name", "title"),
    [
        ("Eli Navarro, Chief of Police\nHobbs Police Department", "Eli Navarro", "Chief of Police"),
        (
            "Kendra Mills, Captain, Investigative Services Bureau\nColumbia PD",
            "Kendra Mills",
            "Captain, Investigative Services Bureau",
        ),
        ("Mia Chen | Detective Sergeant | Santa Fe PD", "Mia Chen", "Detective Sergeant"),
        ("-al pike, chief", "Al Pike", "Chief"),
        (
            "Walt Kimbrough, City Marshal\nBlanco City Marshal's Office",
            "Walt Kimbrough",
            "City Marshal",
        ),
        ("Sgt. Luke Brennan\nSheriff's Office\nFlathead County, Montana", "", "Sergeant"),
        (
            "Sgt Mike Dvorak\nPeer Support Team Leader\nGrand Island PD",
            "",
            "Peer Support Team Leader",
        ),
        ("Ann Cole, Springfield Police Department", "Ann Cole", None),
    ],
)
def test_contact_title_forms(signature, from_name, title):
    assert find(f"We need help.\n\nThanks,\n{signature}\n", from_name).title == title


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("a guy drove his pickup thru the crowd at the parade. one lady died", "vehicle_ramming"),
        (
            "On Saturday a driver deliberately steered an SUV through a barricade and into the "
            "crowd. Sixteen people were struck.",
            "vehicle_ramming",
        ),
        # "after the game" is no comparison with another incident
        (
            "On Friday, after the varsity football game at Marley Creek High School, a "
            "19-year-old drove his car into a crowd of students. Nine people were struck.",
            "vehicle_ramming",
        ),
        ("Student stabbed 3 classmates at Catawba Ridge High School. No one killed.", "stabbing"),
        ("A pipe bomb went off at the farmers market. Six people hurt.", "bombing"),
        # a gun named with the casualties is a shooting unless it was never fired
        (
            "A student drew a handgun in a crowded hallway at Cedar Bend Middle School. One "
            "student was killed.",
            "school_shooting",
        ),
        (
            "A man with a handgun walked into the Prairie Lakes Credit Union and held seven "
            "hostages. He beat the manager with the gun. None of the hostages were killed. He "
            "never fired at them. He was shot and killed when he raised the gun at officers.",
            "other",
        ),
        (
            "A former patient walked into the Zumbro Medical Plaza and shot staff members at "
            "the front desk. Five people are dead.",
            "workplace_shooting",
        ),
    ],
)
def test_incident_type_forms(rules, body, expected):
    assert classify.incident_type(rules, body)[0] == expected


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        # the sentence next to the one that tells the shooting
        (
            "Officers responded to a disturbance call at the Twin Oaks Apartments. A man inside "
            "opened fire through the door.",
            "Twin Oaks Apartments",
        ),
        # the longer of two mentions of the same name
        (
            "First anniversary of First Presbyterian shooting\n\nA gunman opened fire at First "
            "Presbyterian Church in Hutchinson.",
            "First Presbyterian Church",
        ),
        # "St." does not end the sentence
        (
            "During Sunday Mass at St. Casimir Catholic Church a man opened fire.",
            "St. Casimir Catholic Church",
        ),
        (
            "A man began attacking passengers at Downtown Garland Station with a knife.",
            "Downtown Garland Station",
        ),
        (
            "I am a sergeant in Elgin IL, shots were fired into the crowd at Lords Park",
            "Lords Park",
        ),
    ],
)
def test_venue_forms(rules, body, expected):
    assert classify.venue(rules, body, {"garland", "elgin"}) == expected


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("The student who fired took his own life in a stairwell.", "deceased"),
        ("Our deputy confronted him, and he was killed in the exchange.", "deceased"),
        ("Officers stopped him. He died at the scene.", "deceased"),
        ("A man stabbed six people before a park employee subdued him.", "in_custody"),
        (
            "My deputy held one of those men while he died. He has been in jail since.",
            "in_custody",
        ),
    ],
)
def test_suspect_status_forms(body, expected):
    assert suspect.suspect_status(body, True) == expected


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        # items of a list the writer introduced as a request ask for what they name
        (
            "What I need help with:\n\n- My two deputies. They aren't sleeping.\n- The family. "
            "Nobody has talked to them.",
            ["first_responder_wellness", "victim_witness_wellness"],
        ),
        # an ask that points back to the sentences before it
        (
            "The clinic staff who survived have been through a great deal. The officers who "
            "cleared that building found terrible things. I'd welcome guidance on supporting "
            "both groups.",
            ["first_responder_wellness", "victim_witness_wellness"],
        ),
        # plain facts are no ask
        (
            "The investigation is still going and my detectives have the case. Our officers "
            "responded quickly. His trial starts in May. We need help with the media.",
            ["public_information"],
        ),
        (
            "I'd like an advisor to meet with our command staff about the press.",
            ["public_information"],
        ),
        # how the public is now
        (
            "A lot of the vendors are scared. Any advice on how to bring people back downtown "
            "would help.",
            ["community_wellness"],
        ),
        (
            "my guys arent sleeping, two of them did cpr in the street.",
            ["first_responder_wellness"],
        ),
        (
            "Who would be in charge between us and the county? Could we set up a call?",
            ["incident_management"],
        ),
        (
            "Parents are flooding the school and I have nothing to tell them.",
            ["public_information"],
        ),
    ],
)
def test_services_forms(rules, body, expected):
    assert asks.services(rules, body) == expected


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("I don't need anybody to come out. I just need somebody on the phone.", False),
        ("I don't think we need anyone to come out. A phone consult would be fine.", False),
        ("We are not looking for an advisor. Sample policies would help.", False),
        ("We're small, so a call with someone who has done this would help a lot.", False),
        ("Documents are all we need for now.", False),
        ("Could an advisor join us for the remembrance on the 18th?", True),
        ("I would welcome an advisor in Bowling Green as soon as possible.", True),
        ("We need someone on the ground tonight if possible.", True),
        ("Nearly all of the workers were on site or arriving at the time.", None),
    ],
)
def test_in_person_forms(body, expected):
    assert asks.in_person_requested(body) is expected


@pytest.mark.parametrize(
    ("body", "incident", "sent", "expected"),
    [
        (
            "His trial starts Thursday, Aug. 20, and will last weeks.",
            date(2025, 11, 18),
            date(2026, 8, 10),
            "P2",
        ),
        # fifteen days away is not within 14
        (
            "The parish holds a one-year remembrance on Sunday, October 18.",
            date(2025, 10, 19),
            date(2026, 10, 3),
            "P3",
        ),
        # the incident's anniversary, told without its date
        ("The first anniversary falls next month.", date(2025, 10, 12), date(2026, 10, 1), "P2"),
        # a school reopening is no milestone
        ("The school reopens on Wednesday, August 12.", date(2026, 3, 12), date(2026, 8, 3), "P3"),
    ],
)
def test_milestone_within_14_days(body, incident, sent, expected):
    rules = triage.load_rules(RULES)
    assert triage.priority(rules, body, incident, sent, True)[0] == expected


@pytest.mark.parametrize(
    "body",
    [
        "Five people were hit, including Deputy Aaron Fisk, who ran toward the shots.",
        "Officer Daniel Hoyt was killed and another officer was wounded.",
        "Two of our officers were wounded and a neighbor was grazed.",
    ],
)
def test_officer_down(body):
    rules = triage.load_rules(RULES)
    found = triage.priority(rules, body, date(2025, 1, 1), date(2026, 8, 27), True)
    assert found == ("P1", "officer down")


def test_warm_up_extracts_every_bundled_sample() -> None:
    # the workers' fork server warms the rules and the model with these before it forks
    found = extraction.warm_up(RULES)
    assert len(found) == len(list(extraction.SAMPLES.glob("*.eml"))) == 3
    assert all(ex.agency for ex in found), found
