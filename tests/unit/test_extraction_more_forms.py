"""More ways writers put things, each a general form extraction reads.

Agency names (state troopers, marshal services, a long name before an abbreviation, a rank and
surname before a lower-case agency), places (a town set apart by its county, an agency's seat,
where a suspect was caught, "in wv"), casualty counts (a list after a colon, a part in brackets,
asides and appositions, relative clauses, "along with", "a third", uncounted people), incident
types, dates and times, services implied by described needs, contacts, suspects and venues.
Every sentence is made up for the test.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

import pytest

from mailbot.inbound.extraction import agency, asks, classify, contact, nlp, suspect, text
from mailbot.inbound.extraction.dates import incident_when
from mailbot.inbound.extraction.places import resolve_place
from mailbot.inbound.extraction.quantities import casualties
from tests.conftest import ROOT

RULES = ROOT / "rules"
CST = timezone(timedelta(hours=-6))
SENT = datetime(2026, 3, 4, 9, 30, tzinfo=CST)  # a Wednesday


def agency_of(body: str, sender: str = "x@example.gov") -> str | None:
    prepared = text.prepare(body)
    full = prepared.full
    doc = nlp.load(RULES)(full)
    rules = agency.load_rules(RULES)
    return agency.find_agency(rules, doc, len(full) - len(prepared.signature), sender).name


@pytest.fixture(scope="module")
def rules() -> classify.ClassifyRules:
    return classify.load_rules(RULES)


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (
            "I run the post in Bethel.\n\nThanks,\nSgt. Ann Lee\nAlaska State Troopers\n",
            "Alaska State Troopers",
        ),
        (
            "We need help.\n\nThanks,\nJo Ward\nDeputy Marshal\nMuscogee Nation Marshal Service\n",
            "Muscogee Nation Marshal Service",
        ),
        (
            "I am the director of Pine Hills Community College DPS in Ocala.",
            "Pine Hills Community College Department of Public Safety",
        ),
        ("The Columbus Division of Police asked for help.", "Columbus Division of Police"),
        # all lower case: a rank and a surname come before the agency's town
        ("hi its sgt ward harlan pd. we had a shooting", "Harlan Police Department"),
        ("its lt gary ward springfield pd here", "Springfield Police Department"),
        # the signature names the agency in full where the first line is hurried
        (
            "hey its officer kane from dale pd. need help\n\n"
            "thanks\nbo kane\nlakeview police dept\n",
            "Lakeview Police Department",
        ),
        (
            "im chief at hale isd pd\n\nthanks\nbo kane\nhale isd police dept\n",
            "Hale ISD Police Department",
        ),
    ],
)
def test_agency_more_forms(body, expected):
    assert agency_of(body) == expected


@pytest.mark.parametrize(
    ("body", "signature", "agency_name", "city", "state"),
    [
        # a town set apart by its county outranks the signature's city
        (
            "The rally in Clark, Union County drew thousands. Later that evening a car hit "
            "the crowd and many were hurt.",
            "Chief A. Bell\nUnion County Police Department\nWestfield, NJ",
            "Union County Police Department",
            "Clark",
            "NJ",
        ),
        # the agency's seat is not where it happened
        (
            "I'm the lieutenant with the Harris County School Police Department in Houston, "
            "Texas. "
            "I'm writing about the shooting at Oak Elementary in Pasadena last week.",
            "",
            "Harris County School Police Department",
            "Pasadena",
            "TX",
        ),
        # where the suspect was caught is not where it happened
        (
            "we had a shooting at the bowling alley in augusta maine, three hurt. "
            "we arrested him the next day at his sisters in bangor.",
            "",
            None,
            "Augusta",
            "ME",
        ),
        # ... but an arrest after the shooting there leaves the place as it is
        (
            "The gunman was arrested after the shooting in Harlan.",
            "Chief Bo Lutz\nLee County Sheriff's Office\nBeattyville, KY",
            "Lee County Sheriff's Office",
            "Harlan",
            "KY",
        ),
        # a comparison set far from its cue
        (
            "People here compared it to the Club Q shooting in Colorado Springs. Our shooting "
            "was at a bar downtown.",
            "Chief Jo Vance\nFort Collins Police Services\nFort Collins, Colo.",
            "Fort Collins Police Services",
            "Fort Collins",
            "CO",
        ),
        # "in wv", written all in lower case
        ("this is sgt poe with mercer county so in wv. we had a shooting", "", None, None, "WV"),
        ("This is Sgt. Poe with the Mercer County SO in WV.", "", None, None, "WV"),
    ],
)
def test_place_more_forms(body, signature, agency_name, city, state):
    place = resolve_place(body, signature, agency_name)
    assert (place.city, place.state) == (city, state)


def test_a_state_code_that_is_also_a_word_is_no_state_after_in():
    assert resolve_place("we were in or near the park when it started").state is None


@pytest.mark.parametrize(
    ("sentence", "killed", "injured"),
    [
        # a sentence that introduces a list with a colon
        ("Three people were wounded: two customers and a clerk.", None, 3),
        # a count in brackets is a part of the one before it
        ("Killed: 2\nInjured: 9 (two still hospitalized)", 2, 9),
        # an aside about the dead before more people
        ("Three people died, one of them a child, and four more were hurt.", 3, 4),
        # an apposition that names the people counted
        ("A man shot four workers. Two of them, a nurse and a clerk, were killed.", 2, 2),
        # a relative clause set off by commas, and more people after the verb
        (
            "Officer Dan Reyes, who had just come on shift, was killed, along with a cashier.",
            2,
            None,
        ),
        # the perpetrator told by what he did
        ("The explosion killed three people, one of them the man who planted it.", 2, None),
        ("Two men were killed and a third was wounded.", 2, 1),
        # everyone attacked, less the dead
        ("A man attacked four people with a machete. One of them died.", 1, 3),
        # people no one counted leave the field open
        ("Several others were hurt, and one man was hospitalized.", None, None),
        ("Two were killed and several others were injured.", 2, None),
    ],
)
def test_casualty_more_forms(sentence, killed, injured):
    found = casualties(sentence)
    assert (found.killed, found.injured) == (killed, injured)


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("A shooting at Club Onyx on Saturday left two dead.", "nightclub_venue"),
        (
            "A man left a device at the loading dock. The blast killed two workers.",
            "bombing",
        ),
        ("A shotgun blast killed a man on his porch.", "other_shooting"),
    ],
)
def test_incident_type_more_forms(rules, body, expected):
    assert classify.incident_type(rules, body)[0] == expected


def test_short_weekday_with_an_ordinal():
    found = incident_when("we had the shooting at the tavern sat the 28th, 2 died", SENT)
    assert found.date == date(2026, 2, 28)


def test_a_time_row_of_a_table_is_the_incident_time():
    body = "Our summary:\n\nDateMonday, March 2, 2026\n\nTimeapprox. 2:15 a.m.\n\nKilled1"
    assert incident_when(body, SENT).time == "02:15"


def test_a_rammed_crowd_sentence_gives_its_time():
    body = (
        "The parade was on Saturday, Feb. 28. At about 6:40 p.m., a man drove a pickup "
        "through the barricade and down the route."
    )
    assert incident_when(body, SENT).time == "18:40"


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        # typed on a phone: "familys", "deputys"; a church that needs help is a congregation
        (
            "the church is going to need help and so are the familys and my deputys.",
            ["community_wellness", "first_responder_wellness", "victim_witness_wellness"],
        ),
        # a title is not a question of who leads
        (
            "I'm the sergeant in charge of the Nome post. Please help the families.",
            ["victim_witness_wellness"],
        ),
        # the people who were there, and those who need support after
        (
            "We have not done much for the people who were inside that night.",
            ["victim_witness_wellness"],
        ),
        (
            "We need help with messaging and with support for the injured.",
            ["public_information", "victim_witness_wellness"],
        ),
        # keeping the public with the investigation, and working reluctant witnesses
        (
            "I need advice on how to keep the public engaged and how to work witnesses "
            "who won't talk to police.",
            ["criminal_investigation", "public_information"],
        ),
        (
            "We'd like guidance on getting accurate information out to the neighborhood.",
            ["community_wellness", "public_information"],
        ),
        # plain facts about the coverage are no need
        (
            "You probably saw it on the news. Our officers need peer support.",
            ["first_responder_wellness"],
        ),
        # an ask put as what would mean a lot, and officers named by what they did
        (
            "A call would mean a lot for my troopers. The two officers who boarded first "
            "have not been back to work.",
            ["first_responder_wellness"],
        ),
        # a plan for the weeks ahead, a few words apart
        (
            "We need help organizing the funeral and the next several weeks.",
            ["incident_management"],
        ),
        # timing, not management
        (
            "I'd like help with how we support our officers over the next few weeks.",
            ["first_responder_wellness"],
        ),
        (
            "Out of town visitors were there. We need help with the media.",
            ["public_information"],
        ),
    ],
)
def test_services_more_forms(rules, body, expected):
    assert asks.services(rules, body) == expected


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("Need a call from someone who's been through this, asap.", False),
        ("A Teams meeting with an advisor next week would be ideal.", False),
    ],
)
def test_in_person_more_forms(body, expected):
    assert asks.in_person_requested(body) is expected


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("A man opened fire. We don't have a suspect yet.", "at_large"),
        ("Shots were fired at the bar. We still don’t have him identified.", "at_large"),
        ("3 dead, that dont count the shooter, he shot hisself in the lot.", "deceased"),
        ("Four people died, plus the gunman, who was shot by a guest.", "deceased"),
        ("The blast killed two, one of them the man who set it.", "deceased"),
        ("LocationMain St.\n\nSuspectArrested March 1, held without bail", "in_custody"),
        ("The man was unarrested and overbooked.", "unknown"),
    ],
)
def test_suspect_more_forms(body, expected):
    assert suspect.suspect_status(" ".join(body.split()), True) == expected


def test_a_forward_quoted_line_by_line_is_unwrapped():
    raw = (
        "See below from Capt. Ruiz.\n\nSheriff Diaz\n\nBegin forwarded message:\n\n"
        "> From: Ana Ruiz <aruiz@so.example>\n> Date: March 3, 2026 at 9:00 PM\n"
        "> To: Diaz <d@so.example>\n> Subject: Request\n>\n"
        "> The Lee County Sheriff's Office requests support after a shooting.\n>\n"
        "> Thank you,\n>\n> Ana Ruiz\n> Lee County Sheriff's Office\n> 239-555-0101\n"
    )
    prepared = text.prepare(raw)
    assert prepared.author_email == "aruiz@so.example"
    assert "requests support after a shooting" in prepared.body
    assert "239-555-0101" in prepared.signature


def test_a_reply_history_stays_quoted():
    raw = (
        "Thanks, we will call.\n\n-----Original Message-----\n> From: MVAI <m@mvai.example>\n"
        "> Sent: Monday\n> Subject: Re: Request\n> We received your request.\n"
    )
    prepared = text.prepare(raw)
    assert "We received your request" not in prepared.full


@pytest.mark.parametrize(
    ("signature", "title"),
    [
        ("sgt dwayne poe\nmercer county so", "Sergeant"),
        (
            "Theresa Moss\nInspector, Patrol Operations Bureau\nMetro Transit Police",
            "Inspector, Patrol Operations Bureau",
        ),
    ],
)
def test_contact_title_more_forms(signature, title):
    found = contact.find_contact(
        contact.load_rules(RULES),
        text.prepare(f"We need help.\n\nThanks,\n{signature}\n"),
        "",
        "x@pd.gov",
        (),
        "mvai.test",
    )
    assert found.title == title


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (
            "Location: Maple Ridge High School, 40 Elm Road. Two students were shot.",
            "Maple Ridge High School",
        ),
        ("A man opened fire in Dunmore Hall last Friday evening.", "Dunmore Hall"),
        ("A man stabbed two riders on a train as it neared 30th Street.", None),
        ("Shots were fired at the Broadway Bar & Grill late Friday.", "Broadway Bar & Grill"),
    ],
)
def test_venue_more_forms(rules, body, expected):
    assert classify.venue(rules, body, set()) == expected
