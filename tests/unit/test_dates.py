"""Tests of mailbot.inbound.extraction.dates: when the incident happened.

Unless a row says otherwise, the message was sent on Wednesday 4 March 2026 at 09:30 in
Chicago's winter time (UTC-6). Each row is how a writer might put it and the date and time a
coordinator would take from it (README of tests/corpus/requests for the conventions).
"""

from __future__ import annotations

import time
from datetime import date, datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mailbot.inbound.extraction.dates import When, incident_when

CST = timezone(timedelta(hours=-6))
SENT = datetime(2026, 3, 4, 9, 30, tzinfo=CST)  # a Wednesday


def _day(text: str, sent: datetime = SENT) -> date | None:
    return incident_when(text, sent).date


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Yesterday afternoon we had a shooting at the middle school.", date(2026, 3, 3)),
        ("Last night a gunman opened fire at a bar.", date(2026, 3, 3)),
        ("Late last night shots were fired into a crowd.", date(2026, 3, 3)),
        ("This morning a man opened fire in our courthouse.", date(2026, 3, 4)),
        ("Earlier today a gunman opened fire.", date(2026, 3, 4)),
        ("This afternoon there was a shooting at the plant.", date(2026, 3, 4)),
        ("Tonight a gunman opened fire at the mall.", date(2026, 3, 4)),
        ("The day before yesterday a gunman opened fire.", date(2026, 3, 2)),
        ("The night before last a shooting happened downtown.", date(2026, 3, 2)),
    ],
)
def test_relative_days(text: str, expected: date) -> None:
    assert _day(text) == expected


def test_last_night_written_in_the_small_hours_is_the_previous_date() -> None:
    sent = datetime(2026, 3, 4, 3, 10, tzinfo=CST)
    assert _day("Last night a gunman opened fire at a bar.", sent) == date(2026, 3, 3)


def test_last_night_after_midnight_is_the_sent_date() -> None:
    when = incident_when("Last night at about 1:30 a.m. a gunman opened fire at a bar.", SENT)
    assert (when.date, when.time) == (date(2026, 3, 4), "01:30")


def test_the_date_is_the_senders_local_date_not_utc() -> None:
    evening = datetime(2026, 3, 4, 21, 30, tzinfo=CST)  # already 5 March in UTC
    assert _day("Yesterday a gunman opened fire at our school.", evening) == date(2026, 3, 3)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("The shooting happened Sunday night.", date(2026, 3, 1)),
        ("On Saturday a gunman killed three people.", date(2026, 2, 28)),
        ("This past Saturday we had a shooting.", date(2026, 2, 28)),
        ("Last Friday there was a shooting at the plant.", date(2026, 2, 27)),
        ("Monday's shooting left two dead.", date(2026, 3, 2)),
        ("Early Tuesday morning a gunman opened fire.", date(2026, 3, 3)),
        ("On Wednesday morning a shooting occurred.", date(2026, 2, 25)),  # strictly before
        ("This morning, Wednesday, a shooting occurred.", date(2026, 3, 4)),
        ("A week ago Saturday a gunman opened fire.", date(2026, 2, 21)),
    ],
)
def test_weekdays_are_the_most_recent_before_the_sent_date(text: str, expected: date) -> None:
    assert _day(text) == expected


def test_a_holiday_named_after_a_weekday_is_not_that_weekday() -> None:
    sent = datetime(2026, 1, 5, 10, 10, tzinfo=CST)
    text = "On November 28 a man started shooting during the Black Friday sales."
    assert _day(text, sent) == date(2025, 11, 28)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("The shooting occurred on the 14th.", date(2026, 2, 14)),
        ("The shooting occurred on the 2nd.", date(2026, 3, 2)),
        ("The shooting occurred on the 4th.", date(2026, 3, 4)),
        ("The shooting occurred on the 31st.", date(2026, 1, 31)),
        ("The shooting on 14th Street was terrible.", None),
    ],
)
def test_day_of_the_month(text: str, expected: date | None) -> None:
    assert _day(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Two weeks ago a student opened fire.", date(2026, 2, 18)),
        ("3 days ago a gunman opened fire.", date(2026, 3, 1)),
        ("A week ago a gunman opened fire at the mall.", date(2026, 2, 25)),
        ("A few days ago a gunman opened fire.", None),
        ("Last week we had a shooting at a church.", date(2026, 2, 25)),
    ],
)
def test_time_ago(text: str, expected: date | None) -> None:
    assert _day(text) == expected


def test_last_week_has_low_confidence_and_loses_to_a_better_date() -> None:
    assert incident_when("Last week we had a shooting at a church.", SENT).confidence < 0.5
    text = "Last week we had a shooting at a church. It happened on Monday, February 23."
    assert _day(text) == date(2026, 2, 23)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("On March 3 a gunman opened fire.", date(2026, 3, 3)),
        ("On Mar. 3rd a gunman opened fire.", date(2026, 3, 3)),
        ("On 3 March 2026 a gunman opened fire.", date(2026, 3, 3)),
        ("On the 3rd of March a gunman opened fire.", date(2026, 3, 3)),
        ("On 3/3/2026 a gunman opened fire.", date(2026, 3, 3)),
        ("On 03/03/26 a gunman opened fire.", date(2026, 3, 3)),
        ("The shooting (2026-03-03) shocked us.", date(2026, 3, 3)),
        ("On 3/3 a gunman opened fire.", date(2026, 3, 3)),
        ("Friday night (2/27) a shooting occurred at the bar.", date(2026, 2, 27)),
        ("the shooting happened 2/27 around 11 pm", date(2026, 2, 27)),
        ("The shooting on Tuesday, March 3, left two dead.", date(2026, 3, 3)),
        ("On Sept. 20 a gunman opened fire.", date(2025, 9, 20)),
        ("On December 6, a gunman opened fire inside the lounge.", date(2025, 12, 6)),
        ("The shooting happened on Christmas Eve.", date(2025, 12, 24)),
    ],
)
def test_explicit_dates(text: str, expected: date) -> None:
    assert _day(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("On March 20 a gunman opened fire.", date(2025, 3, 20)),  # not this year: not yet
        ("On March 20, 2026 a gunman opened fire.", None),
        ("On 3/20/2026 a gunman opened fire.", None),
        ("Tomorrow a gunman will be sentenced.", None),
        ("We are planning for next Saturday.", None),
        ("The drill happens this coming Friday.", None),
    ],
)
def test_never_after_the_date_header(text: str, expected: date | None) -> None:
    assert _day(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("The shooting was on Monday. The funerals are Saturday.", date(2026, 3, 2)),
        ("The vigil is on Friday.", None),
        ("We had a shooting on Monday. Can we meet Thursday at 2 pm?", date(2026, 3, 2)),
        ("A vigil was held Sunday for the victims of Saturday's shooting.", date(2026, 2, 28)),
        ("Tomorrow we will hold a vigil.", None),
        ("We are holding a tabletop exercise with our partners on April 16.", None),
        (
            "His trial is scheduled for July 8. The shooting happened on Saturday.",
            date(2026, 2, 28),
        ),
    ],
)
def test_other_events_are_not_the_incident(text: str, expected: date | None) -> None:
    assert _day(text) == expected


@pytest.mark.parametrize(
    ("text", "sent", "expected"),
    [
        (
            "One year ago on May 24 our town lost 19 children in the shooting.",
            SENT,
            date(2025, 5, 24),
        ),
        (
            "A year ago, on May 2, 2025, a gunman opened fire inside the market. The one-year "
            "remembrance is on Saturday, May 2, and I am worried about it.",
            datetime(2026, 4, 22, 9, 5, tzinfo=CST),
            date(2025, 5, 2),
        ),
    ],
)
def test_anniversaries(text: str, sent: datetime, expected: date) -> None:
    assert _day(text, sent) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "Like Parkland, where 17 died on February 14, 2018, we lost students yesterday "
            "in a shooting.",
            date(2026, 3, 3),
        ),
        (
            "After Uvalde, on May 24, 2022, we trained for this. Our shooting happened Saturday.",
            date(2026, 2, 28),
        ),
        ("We have watched what happened in Uvalde, where 21 died on May 24.", None),
    ],
)
def test_a_comparison_incident_is_not_taken(text: str, expected: date | None) -> None:
    assert _day(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "-----Original Message-----\nFrom: Chief X <x@y.gov>\nSent: Monday, March 2, "
            "2026 9:14 AM\nTo: MVAI\nSubject: help\n\nYesterday a gunman opened fire at our "
            "school.",
            date(2026, 3, 1),  # yesterday as the quoted message was written
        ),
        (
            "Thanks!\n\nOn Mon, Mar 2, 2026 at 9:14 AM Chief X <x@y.gov> wrote:\n> We had a "
            "shooting.",
            None,
        ),
        (
            "The shooting happened on Saturday.\n\nFrom: X <x@y.gov>\nSent: Monday, March 2, "
            "2026 9:14 AM\nTo: Y\nSubject: shooting",
            date(2026, 2, 28),
        ),
        (
            "---------- Forwarded message ---------\nFrom: Dale <d@so.gov>\nDate: Tue, Mar 3, "
            "2026 at 8:47 AM\nSubject: church shooting\n\nOn Sunday morning a man began firing "
            "in the sanctuary.",
            date(2026, 3, 1),
        ),
    ],
)
def test_quoted_mail_headers_are_not_incident_dates(text: str, expected: date | None) -> None:
    assert _day(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Around 7:40 p.m. on Monday a gunman opened fire.", "19:40"),
        ("The shooting started at 19:40 yesterday.", "19:40"),
        ("Shortly after 2 a.m. Sunday shots were fired into a crowd.", "02:00"),
        ("Shortly after 6 p.m. on Monday a gunman opened fire.", "18:00"),
        ("The attack happened Monday at noon.", "12:00"),
        ("Units responded at 2215 hours on Monday to a shooting.", "22:15"),
        ("Sunday, 3/1, around 2330 hrs, deputies responded to a shooting.", "23:30"),
        ("At 0740 this morning a student opened fire.", "07:40"),
        ("The shooting happened at 7:40pm on Monday.", "19:40"),
        ("Last night around 10:15 a man opened fire.", "22:15"),
        ("This morning at 7:05 a student opened fire.", "07:05"),
        (
            "I am writing after Saturday's attack. On Saturday, around 1:10 in the afternoon, a "
            "driver steered an SUV into the crowd.",
            "13:10",
        ),
        ("The shooting happened Monday. Please call me at 3 pm.", None),
        ("The shooting happened Monday. Our office hours are 8:00-5:00.", None),
        ("Late that evening a shooting happened.", None),
        ("We had a shooting on Monday. Can we meet Thursday at 2 pm?", None),
    ],
)
def test_time_of_day(text: str, expected: str | None) -> None:
    assert incident_when(text, SENT).time == expected


def test_evidence_and_confidence() -> None:
    when = incident_when("On Saturday, at around 7:40 p.m., a gunman opened fire.", SENT)
    assert when == When(date(2026, 2, 28), "19:40", "Saturday | 7:40 p.m.", when.confidence)
    assert when.confidence > 0.7
    assert incident_when("Thank you for your help.", SENT) == When()
    vague = incident_when("Thank you. We met last week about our plan.", SENT)
    assert vague.confidence < when.confidence


REQUEST = (
    "Good morning,\n\nI am reaching out after a mass shooting that occurred at the Riverside "
    "Mall food court on Saturday evening at approximately 7:40 p.m. A lone gunman opened fire "
    "on shoppers. The funerals are scheduled for Thursday and a vigil is planned for Wednesday "
    "at 6 p.m. I am available most afternoons after 2 pm.\n\n"
    + "We would benefit from talking with a chief who has led an agency through this. "
    * 20
    + "\n\n-----Original Message-----\nFrom: MVAI <mvai@mvai.example.org>\nSent: Monday, "
    "March 2, 2026 9:14 AM\nTo: Chief\nSubject: RE: request\n\nOur office hours are "
    "8:00-5:00 Monday through Friday.\n"
)


def test_dates_a_request_quickly() -> None:
    text = REQUEST[:3000]
    when = incident_when(text, SENT)
    assert (when.date, when.time) == (date(2026, 2, 28), "19:40")
    best = min(_seconds(text) for _ in range(5))
    assert best < 0.005  # per message, with room to spare on a slow machine


def _seconds(text: str) -> float:
    start = time.perf_counter()
    for _ in range(10):
        incident_when(text, SENT)
    return (time.perf_counter() - start) / 10


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.sampled_from(
            [
                "yesterday",
                "on",
                "March 20",
                "12/31",
                "the 31st",
                "Saturday",
                "next",
                "2026",
                "shooting",
                "happened",
                "ago",
                "two weeks",
                "tonight",
                "vigil",
                "at 7:40 p.m.",
                "Feb. 29",
                "Sent: Monday, March 2, 2027",
                "From: x",
                ".",
                "\n",
                "last night",
            ]
        )
        | st.text(max_size=6),
        max_size=30,
    ),
    st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2099, 12, 31)),
    st.integers(min_value=-12, max_value=14),
)
def test_never_after_the_sent_date_and_never_raises(
    words: list[str], sent: datetime, offset: int
) -> None:
    sent = sent.replace(tzinfo=timezone(timedelta(hours=offset)))
    when = incident_when(" ".join(words), sent)
    assert when.date is None or when.date <= sent.date()
    assert when.time is None or (len(when.time) == 5 and when.time[2] == ":")
    assert 0 <= when.confidence <= 1


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # short weekday names before a part of the day (SENT is Wednesday, 4 March)
        ("we had a shooting at a house party sat night around 11:30", date(2026, 2, 28)),
        ("Shots were fired Fri. evening outside the bar.", date(2026, 2, 27)),
        ("He sat down and waited; nobody was hurt.", None),
        # a weekday with its day of the month
        ("On Friday the 27th a gunman opened fire at the game.", date(2026, 2, 27)),
        # "on the 20th" followed by a lower-case word
        ("On the 20th a man attacked shoppers with a knife.", date(2026, 2, 20)),
        # "a Friday" describes the day given, it does not count back to the last Friday
        ("On the 13th, a Friday afternoon, a man shot five people.", date(2026, 2, 13)),
        # "this am"
        ("Shooting at Dixon HS this am. 2 dead.", date(2026, 3, 4)),
    ],
)
def test_more_date_phrases(text: str, expected: date | None) -> None:
    assert _day(text) == expected


def test_last_with_a_month_and_day_is_last_year_even_when_soon() -> None:
    sent = datetime(2026, 10, 3, 12, 5, tzinfo=CST)
    text = "Last October 19, during Sunday Mass, a man opened fire."
    assert _day(text, sent) == date(2025, 10, 19)


def test_an_event_the_incident_happened_at_is_not_another_event() -> None:
    text = "we had a shooting at a graduation party last night around 10:15, 1 dead"
    when = incident_when(text, SENT)
    assert (when.date, when.time) == (date(2026, 3, 3), "22:15")
    # the event still counts as another one when the incident is not told as happening at it
    assert _day("The graduation party is on Friday; the shooting was in May.") is None


def test_of_two_incident_days_scored_alike_the_earlier_is_the_incident() -> None:
    text = (
        "Last night at about 11:40 p.m. two gunmen fired into a party, killing three. One of "
        "the wounded died this morning."
    )
    when = incident_when(text, SENT)
    assert (when.date, when.time) == (date(2026, 3, 3), "23:40")


@pytest.mark.parametrize(
    ("text", "sent", "expected"),
    [
        ("A shooting at the parade on Labor Day left two dead.", SENT, date(2025, 9, 1)),
        (
            "On Memorial Day a gunman opened fire.",
            datetime(2026, 6, 1, tzinfo=CST),
            date(2026, 5, 25),
        ),
        ("On Thanksgiving night a man shot three people.", SENT, date(2025, 11, 27)),
        (
            "On Mother's Day a man opened fire.",
            datetime(2026, 5, 20, tzinfo=CST),
            date(2026, 5, 10),
        ),
        ("A shooting over Labor Day weekend left two dead.", SENT, None),
    ],
)
def test_holidays_on_a_weekday_of_the_month(text: str, sent: datetime, expected: date) -> None:
    assert _day(text, sent) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "Tuesday night around 11 we were called to a rental house where a man stabbed four.",
            "23:00",
        ),
        ("friday nite about 7:15 during the parade a guy drove thru the crowd", "19:15"),
        ("Early Sunday morning about 2 a man opened fire, and two died.", "02:00"),
        ("Our team made entry around 6 and the suspect was killed in the shooting.", None),
    ],
)
def test_an_hour_alone_is_a_time_with_a_part_of_the_day(text: str, expected: str | None) -> None:
    assert incident_when(text, SENT).time == expected
