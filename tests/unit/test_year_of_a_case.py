"""A controllable clock moves through a whole year of a case: exactly which check-ins and
digests go out, once each, with a restart (a new Pipeline and fresh sessions) in the middle."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from mailbot import db
from mailbot.config import Config
from mailbot.inbound import ledger
from mailbot.inbound.ledger import RawMail
from mailbot.inbound.pipeline import Pipeline
from mailbot.jobs import digest, followups
from mailbot.models import Case, FollowUp, OutboundMessage
from tests.conftest import request_message

OPENED = datetime(2026, 11, 16, 14, 0, tzinfo=UTC)


def open_case(cfg: Config, factory: sessionmaker[Session], monkeypatch) -> Case:
    import mailbot.cases.service as service_mod
    import mailbot.models as models

    monkeypatch.setattr(models, "utcnow", lambda: OPENED)
    monkeypatch.setattr(service_mod, "utcnow", lambda: OPENED)
    [ledger_id] = ledger.store_batch(factory, [RawMail("t", request_message(), source_name="a")])
    Pipeline(cfg, factory).process(ledger_id)
    monkeypatch.undo()
    with factory() as session:
        return session.scalars(select(Case)).one()


def sent(factory, kind: str) -> list[OutboundMessage]:
    with factory() as session:
        return list(
            session.scalars(
                select(OutboundMessage)
                .where(OutboundMessage.kind == kind)
                .order_by(OutboundMessage.id)
            )
        )


def test_a_year_of_check_ins_and_digests(make_cfg: Callable[..., Config], factory, tmp_path):
    cfg = make_cfg('[mailbot]\ntimezone = "America/New_York"')
    case = open_case(cfg, factory, __import__("pytest").MonkeyPatch())
    assert case.incident_date.isoformat() == "2026-11-15"  # "Yesterday", sent Nov 16
    with factory() as session:
        planned = {f.phase: f.due_at for f in session.scalars(select(FollowUp))}
    # The 24-hour check-in is a day after the request; the rest count from the incident.
    assert sorted(planned) == sorted(
        [
            "24h",
            "day3",
            "day7",
            "day14",
            "day30",
            "month3",
            "month6",
            "anniversary-30",
            "anniversary-week",
        ]
    )
    assert planned["24h"] == OPENED + timedelta(hours=24)
    assert planned["day3"] == datetime(2026, 11, 18, 15, 0, tzinfo=UTC)  # 10:00 New York

    clock = OPENED
    digests_sent = 0
    phases_sent: list[str] = []
    halfway = OPENED + timedelta(days=180)
    while clock < OPENED + timedelta(days=370):
        if clock >= halfway and factory is not None:
            # A restart: new engine, sessions and pipeline; the state is all in the tables.
            engine = db.make_engine(cfg.database_url)
            factory = db.session_factory(engine)
            halfway = clock + timedelta(days=10_000)
        result = followups.sweep(factory, cfg, now=clock)
        assert result.skipped == 0 and result.cancelled == 0
        digests_sent += len(digest.send(factory, cfg, now=clock))
        digests_sent += len(digest.send(factory, cfg, now=clock))  # twice: still once a day
        phases_sent = [r.dedupe_key.rsplit(".", 1)[1] for r in sent(factory, "checkin")]
        clock += timedelta(hours=6)
    assert phases_sent == [
        "24h",
        "day3",
        "day7",
        "day14",
        "day30",
        "month3",
        "month6",
        "anniversary-30",
        "anniversary-week",
    ]
    assert digests_sent == len({r.dedupe_key for r in sent(factory, "digest")})
    assert 369 <= digests_sent <= 371  # one per local day of the year
    with factory() as session:
        assert {f.status for f in session.scalars(select(FollowUp))} == {"sent"}
    # Each check-in went to the agency contact, threaded with the case.
    first = sent(factory, "checkin")[0]
    assert first.recipients == ["dwhitfield@harlanpd.test"]
    assert b"In-Reply-To: <ack." in first.raw


def test_check_ins_missed_while_down_are_skipped_not_burst(make_cfg, factory):
    cfg = make_cfg()
    open_case(cfg, factory, __import__("pytest").MonkeyPatch())
    # The daemon was down for 40 days: day 3, 7, 14 and 30 are all past their grace.
    result = followups.sweep(factory, cfg, now=OPENED + timedelta(days=40))
    assert result.sent == 0 and result.skipped == 5
    assert sent(factory, "checkin") == []
    # One that is due within the grace period goes out once.
    result = followups.sweep(factory, cfg, now=datetime(2027, 2, 14, 16, 0, tzinfo=UTC))
    assert result.sent == 1
    assert followups.sweep(factory, cfg, now=datetime(2027, 2, 14, 16, 5, tzinfo=UTC)).sent == 0


def test_no_check_ins_for_closed_or_paused_cases(make_cfg, factory):
    cfg = make_cfg()
    case = open_case(cfg, factory, __import__("pytest").MonkeyPatch())
    with factory.begin() as session:
        session.get(Case, case.id).checkins = "paused"
    assert followups.sweep(factory, cfg, now=OPENED + timedelta(days=2)).sent == 0
    with factory.begin() as session:
        current = session.get(Case, case.id)
        current.checkins = "on"
        current.status = "closed"
    result = followups.sweep(factory, cfg, now=OPENED + timedelta(days=2))
    assert result.sent == 0 and result.cancelled == 1
