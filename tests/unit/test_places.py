"""The place of a request: the shipped gazetteer, state names and resolve_place."""

from __future__ import annotations

import gzip
import time
from importlib import resources

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mailbot.inbound.extraction import gazetteer as gz
from mailbot.inbound.extraction.place_mentions import normalize_state
from mailbot.inbound.extraction.places import Place, resolve_place

SIGNATURE = "Chief Jane Doe\nPerry Police Department\n1102 Willis Ave\nPerry, Iowa 50220"


def test_shipped_data_names_its_source_and_loads() -> None:
    raw = (resources.files("mailbot") / "data" / gz.DATA_FILE).read_bytes()
    assert len(raw) < 1_000_000
    first = gzip.decompress(raw).decode().splitlines()[0]
    assert first.startswith("#") and "zipcodes 3.0.0" in first
    assert len(gz.gazetteer()) > 25_000
    for city, state in [("Uvalde", "TX"), ("Perry", "IA"), ("Hollister", "CA")]:
        assert gz.is_city(city, state)
    assert "Uvalde" in gz.cities_in("tx")


def test_read_rows_names_a_broken_line() -> None:
    text = "# source\n" + "\t".join(gz.COLUMNS) + "\nUvalde\tTX\n"
    with pytest.raises(ValueError, match="line 3"):
        gz.read_rows(text)


@pytest.mark.parametrize(
    ("name", "state"),
    [
        ("uvalde", "tx"),
        ("ST. LOUIS", "MO"),
        ("Saint Louis", "MO"),
        ("Ft. Worth", "TX"),
        ("Mt. Pleasant", "SC"),
        ("Coeur d'Alene", "ID"),
        ("Parkland", "FL"),  # a USPS alias: its ZIP codes are Pompano Beach's
    ],
)
def test_city_names_match_loosely(name: str, state: str) -> None:
    assert gz.is_city(name, state)


def test_gazetteer_lookups() -> None:
    assert not gz.is_city("Police", "KY")
    assert not gz.is_city("Uvalde", "CA")
    assert gz.states_for_city("Springfield")[0] == "IL"  # most ZIP codes
    assert gz.states_for_city("Uvalde") == ["TX"]
    assert gz.county_of("Hollister", "CA") == "San Benito"
    assert gz.county_of("Nowhere Special", "CA") is None
    assert gz.states_for_area_code("515") == {"IA"}
    assert "MO" in gz.states_for_area_code("417")
    assert gz.is_county("Kern County", "CA") and gz.is_county("kern", "ca")
    assert gz.is_county("St. Mary's", "MD") and gz.is_county("Orleans Parish", "LA")
    assert not gz.is_county("Kern", "TX")


@pytest.mark.parametrize(
    ("token", "code"),
    [
        ("TX", "TX"),
        ("tx", "TX"),
        ("Texas", "TX"),
        ("NEW YORK", "NY"),
        ("district of columbia", "DC"),
        ("Calif.", "CA"),
        ("Ariz.", "AZ"),
        ("N.H.", "NH"),
        ("W.Va.", "WV"),
        ("Wash.", "WA"),
        ("Penn.", "PA"),
        ("Cal.", "CA"),
        ("Tex.", "TX"),
        ("Puerto Rico", "PR"),
        ("Texass", None),
        ("", None),
    ],
)
def test_normalize_state(token: str, code: str | None) -> None:
    assert normalize_state(token) == code


def where(place: Place) -> tuple[str | None, str | None, str | None]:
    return place.city, place.state, place.county


@pytest.mark.parametrize(
    ("body", "signature", "expected"),
    [
        ("A shooting occurred at the mall in Hollister, CA on Saturday.", "", ("Hollister", "CA")),
        ("A gunman opened fire in Hollister, Calif. on Saturday.", "", ("Hollister", "CA")),
        ("The shooting at Perry High School in Perry IA left two dead.", "", ("Perry", "IA")),
        ("We had a shooting in Perry, Iowa this week.", "", ("Perry", "IA")),
        ("UVALDE, TEXAS SHOOTING: request for help", "", ("Uvalde", "TX")),
        ("Shooting in Downtown Perry, IA.", "", ("Perry", "IA")),
        ("Shots fired in St. Louis, MO last night.", "", ("Saint Louis", "MO")),
        ("A shooting in Kansas City, Missouri.", "", ("Kansas City", "MO")),
        ("A shooting in Washington, D.C. yesterday.", "", ("Washington", "DC")),
        ("The attack happened in Oxford Township, Michigan.", "", ("Oxford", "MI")),
        ("Our shooting happened downtown.", SIGNATURE, ("Perry", "IA")),
        ("The shooting happened in Perry.", SIGNATURE, ("Perry", "IA")),
    ],
)
def test_city_and_state(body: str, signature: str, expected: tuple[str, str]) -> None:
    assert where(resolve_place(body, signature))[:2] == expected


def test_a_capitalised_word_before_a_state_is_no_city() -> None:
    place = resolve_place("We are requesting peer support.", "John Smith\nChief of Police, KY")
    assert where(place) == (None, "KY", None)
    assert place.evidence == "state in signature"


def test_state_words_need_setting_off() -> None:
    assert where(resolve_place("PLEASE CALL ME OR EMAIL ME ASAP")) == (None, None, None)
    assert resolve_place("Nothing here.") == Place(None, None, None, 0.0, "none")


def test_body_near_the_incident_beats_the_signature() -> None:
    body = "Our officers responded to a mass shooting at the Walmart in El Paso, TX."
    signature = "Chief X\nHorizon City Police Department\nHorizon City, TX 79928"
    place = resolve_place(body, signature)
    assert where(place) == ("El Paso", "TX", None)
    assert place.evidence == "city-state in body"
    from_signature = resolve_place("Our shooting happened downtown.", SIGNATURE)
    assert from_signature.evidence == "city-state in signature"
    assert from_signature.confidence < place.confidence


def test_a_state_in_the_body_outranks_a_city_in_another_state_in_the_signature() -> None:
    body = "A deputy was shot during the attack in rural Oklahoma; I am helping them."
    place = resolve_place(body, "Chief X\nDallas Police Department\nDallas, TX")
    assert where(place) == (None, "OK", None)


@pytest.mark.parametrize(
    "body",
    [
        "Like what happened in Uvalde, Texas, our town is devastated after the shooting in "
        "Hollister, California.",
        "After Uvalde, our agency had its own shooting in Hollister, CA.",
        "We had a shooting in Hollister, CA, similar to the tragedy in Parkland, Florida.",
    ],
)
def test_comparisons_lose_to_the_incident(body: str) -> None:
    assert where(resolve_place(body))[:2] == ("Hollister", "CA")


def test_a_comparison_alone_is_still_a_place_but_a_doubtful_one() -> None:
    place = resolve_place("We want to avoid mistakes like those made in Uvalde, Texas.")
    assert where(place)[:2] == ("Uvalde", "TX")
    assert place.confidence < 0.7


def test_agency_name_fallback() -> None:
    quiet = "The shooting happened last night; we need help."
    uvalde = resolve_place(quiet, agency="Uvalde Police Department")
    assert where(uvalde) == ("Uvalde", "TX", None)
    assert uvalde.evidence == "agency name"
    # Perry is a city in sixteen states: the agency alone does not say which.
    assert where(resolve_place(quiet, agency="Perry Police Department")) == (None, None, None)
    assert where(resolve_place(f"{quiet} We are in Iowa.", agency="Perry Police Department")) == (
        "Perry",
        "IA",
        None,
    )
    kern = resolve_place(quiet, agency="Kern County Sheriff's Office")
    assert where(kern) == (None, "CA", "Kern")


def test_agency_named_in_the_text() -> None:
    body = "I am the chief of the Uvalde Police Department. The shooting occurred yesterday."
    assert where(resolve_place(body)) == ("Uvalde", "TX", None)


@pytest.mark.parametrize(
    ("body", "signature", "agency", "expected"),
    [
        ("A shooting in Bakersfield, Kern County, California.", "", None, "Kern"),
        (
            "The Kern County Sheriff's Office responded to a shooting in Bakersfield.",
            "",
            None,
            "Kern",
        ),
        ("A shooting in Bakersfield, CA.", "", "Kern County Sheriff's Office", "Kern"),
        ("Shots were fired in Orange County.", "Sheriff X\nSanta Ana, CA", None, "Orange"),
        ("The shooting happened in Bakersfield, CA.", "", None, None),  # never inferred
        ("A shooting in Bakersfield, CA; Nowhere County helped.", "", None, None),
    ],
)
def test_county_only_when_named(
    body: str, signature: str, agency: str | None, expected: str | None
) -> None:
    place = resolve_place(body, signature, agency)
    assert place.state == "CA"
    assert place.county == expected


def test_county_and_state_without_a_city() -> None:
    place = resolve_place("A shooting occurred in Washington County, Oregon last night.")
    assert where(place) == (None, "OR", "Washington")
    assert place.evidence == "county in body"


def test_ambiguous_names() -> None:
    assert where(resolve_place("The shooting happened in Springfield.")) == (None, None, None)
    # Nashville, Tennessee has far more ZIP codes than any other Nashville.
    assert where(resolve_place("The shooting happened in Nashville."))[:2] == ("Nashville", "TN")
    assert where(resolve_place("Shooting in Springfield.", "Chief X\nSpringfield, Illinois"))[
        :2
    ] == (
        "Springfield",
        "IL",
    )


def test_area_codes_break_ties_only() -> None:
    body = "The shooting happened in Springfield."
    place = resolve_place(body, area_codes=["417"])
    assert where(place)[:2] == ("Springfield", "MO")
    assert "area code" in place.evidence
    found = resolve_place(body, "Chief X\n(413) 555-0100")
    assert where(found)[:2] == ("Springfield", "MA")
    assert where(resolve_place("We need help.", area_codes=["515"])) == (None, None, None)
    stated = resolve_place("A shooting in Springfield, Illinois.", area_codes=["417"])
    assert where(stated)[:2] == ("Springfield", "IL")


def test_words_after_in_that_are_not_places() -> None:
    body = "Thanks in Advance. The shooting was in May in Texas."
    assert where(resolve_place(body)) == (None, "TX", None)


def test_state_names_inside_city_names() -> None:
    assert where(resolve_place("A shooting in Virginia Beach last week."))[:2] == (
        "Virginia Beach",
        "VA",
    )
    assert where(resolve_place("A shooting in Iowa City."))[:2] == ("Iowa City", "IA")
    assert where(resolve_place("Georgia Smith, Chief of Police")) == (None, None, None)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.sampled_from(
            [
                "Perry",
                "IA",
                "Iowa",
                ",",
                "in",
                "Springfield",
                "County",
                "Kern",
                "Police",
                "shooting",
                "Chief",
                "of",
                "St.",
                "Louis",
                "MO",
                "KY",
                "like",
                "\n",
                "Calif.",
                "Uvalde",
                "Department",
                "Washington",
                "D.C.",
                "Sheriff",
                "May",
                "Orange",
            ]
        ),  # fmt: skip
        max_size=30,
    )
)
def test_only_gazetteer_cities_come_back(words: list[str]) -> None:
    place = resolve_place(" ".join(words), agency=" ".join(reversed(words)))
    assert 0.0 <= place.confidence <= 1.0
    if place.city:
        assert place.state and gz.is_city(place.city, place.state)
    if place.county:
        assert place.state and gz.is_county(place.county, place.state)


def test_fast_per_message() -> None:
    body = (
        "Chief,\n\nOn Thursday morning a student opened fire at Perry High School in Perry, "
        "Iowa. One student was killed and several were injured. Like Uvalde and Parkland, our "
        "community is grieving. We would be grateful for peer support.\n" * 4
    )
    resolve_place(body, SIGNATURE)  # the gazetteer loads once, on first use
    start = time.perf_counter()
    for _ in range(50):
        resolve_place(body, SIGNATURE, "Perry Police Department")
    assert (time.perf_counter() - start) / 50 < 0.005


def test_a_city_before_its_county_takes_the_state_where_that_county_holds_it() -> None:
    body = "A man shot two clerks in Hawley, Wayne County, then fled into New York."
    signature = "Troop Commander\nPennsylvania State Police\nDunmore, Pa."
    assert where(resolve_place(body, signature)) == ("Hawley", "PA", "Wayne")


def test_text_written_in_lower_case() -> None:
    body = "this is the chief in rumford maine. we had a shooting at the mill tuesday."
    assert where(resolve_place(body, "bob\nchief\nrumford pd")) == ("Rumford", "ME", None)


def test_a_city_starting_a_venue_name_is_the_last_resort() -> None:
    body = "A man fired into a crowd at the Silver Spring Transit Center on Monday."
    signature = "Captain X\nMontgomery County Police Department\nMontgomery County, Md."
    assert where(resolve_place(body, signature)) == ("Silver Spring", "MD", "Montgomery")
    school = "A shooting at Lincoln Elementary School yesterday."
    assert where(resolve_place(school, "Chief X\nPerry Police Department\nIowa")) == (
        "Perry",
        "IA",
        None,
    )


def test_a_state_the_text_does_not_write_is_marked_unwritten() -> None:
    # Fort Mill is only in South Carolina, but the email never says so
    place = resolve_place("Student stabbed 3 classmates.", agency="Fort Mill Police Department")
    assert (place.city, place.written) == ("Fort Mill", False)
    written = resolve_place("Lake County SO (Fla.) - shooting at a Leesburg nightclub.")
    assert (where(written), written.written) == (("Leesburg", "FL", "Lake"), True)


def test_a_lower_case_state_code_after_its_city() -> None:
    body = "this is chief pettway with greenwood pd in greenwood ms. call me"
    assert where(resolve_place(body))[:2] == ("Greenwood", "MS")
    assert where(resolve_place("please call me asap"))[:2] == (None, None)


def test_another_agencys_county_is_not_the_county() -> None:
    body = (
        "A fired employee opened fire in the yard on the west side of Hobbs, N.M. Lea County "
        "deputies and New Mexico State Police helped us lock down the yard."
    )
    place = resolve_place(body, agency="Hobbs Police Department")
    assert where(place) == ("Hobbs", "NM", None)
    own = resolve_place(body.replace("Hobbs, N.M.", "Hobbs"), agency="Lea County Sheriff's Office")
    assert own.county == "Lea"


def test_a_parish_is_not_labelled_a_county() -> None:
    place = resolve_place("A student fired into a classroom in Keithville, La., Caddo Parish.")
    assert where(place) == ("Keithville", "LA", None)


def test_a_town_read_from_a_venue_is_the_last_resort() -> None:
    body = "Student stabbed 3 classmates at Catawba Ridge High School this morning."
    place = resolve_place(
        body, "Chief X\nFort Mill Police Department", "Fort Mill Police Department"
    )
    assert place.city == "Fort Mill"
