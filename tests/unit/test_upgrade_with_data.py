"""`mailbot db upgrade` on a database that already holds cases.

The database is made at revision 0001 (the first release: ledger, cases, outbox; no follow-ups,
assignments or digests yet) and filled the way that release filled it, through the tables as
they were then (reflected from the database, not from today's models). Then the same command a
user runs, `mailbot db upgrade`, brings it to the newest revision, and the data must be all
there, the columns added since have their defaults, and the application works on the old
cases: the CLI reads them, the case service changes them, a reply on an old thread finds its
case, a new request takes the next case number. Runs on SQLite and, with
MAILBOT_TEST_DB=postgresql, on PostgreSQL.
"""

from __future__ import annotations

import json
from datetime import date, timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic import command
from sqlalchemy import select

from mailbot import config as config_mod
from mailbot import db
from mailbot.cases import service
from mailbot.cli import main
from mailbot.inbound import ledger
from mailbot.inbound.pipeline import Pipeline
from mailbot.models import (
    Assignment,
    Case,
    CaseEvent,
    Digest,
    FollowUp,
    InboundMessage,
    OutboundMessage,
    utcnow,
)
from tests.conftest import request_message, write_config

FIRST = "0001"
pytestmark = pytest.mark.empty_database  # on PostgreSQL: an empty database, not the template


def outgoing(message_id: str, to: str, subject: str) -> bytes:
    msg = EmailMessage()
    msg["From"] = "MVAI Intake <mvai@mvai.test>"
    msg["To"] = to
    msg["Subject"] = subject
    msg["Message-ID"] = f"<{message_id}>"
    msg["Auto-Submitted"] = "auto-replied"
    msg.set_content("Thank you for writing to MVAI. A coordinator will call you.")
    return msg.as_bytes()


def fill_at_first_revision(engine: sa.Engine) -> dict[str, Any]:
    """Rows as revision 0001 wrote them: two cases with their ledger rows, events and outbox,
    an ignored auto-reply, a quarantined message, and two messages still pending."""
    meta = sa.MetaData()
    meta.reflect(engine)
    t = meta.tables
    assert "follow_ups" not in t and "checkins" not in t["cases"].c  # really the old schema
    now = utcnow().replace(microsecond=0)
    opened = now - timedelta(days=2)
    req1 = request_message(message_id="<req-1@harlanpd.test>")
    req2 = request_message(
        sender="Lt. Maria Ortiz <mortiz@pinecrestso.test>",
        subject="Festival shooting - need PIO support",
        body="Saturday a man fired into the crowd at the Pinecrest County fair in Bend, OR. "
        "One killed, six injured. We need help with public information.\n\nLt. Maria Ortiz\n"
        "Pinecrest County Sheriff's Office\n(541) 555-0199\n",
        message_id="<req-2@pinecrestso.test>",
    )
    reply = request_message(
        subject="Re: Request for help after shooting [MVAI-2026-0001]",
        body="Thank you. We would like the call tomorrow morning.\n\nDana Whitfield\n",
        message_id="<reply-1@harlanpd.test>",
        headers={
            "In-Reply-To": "<ack.MVAI-2026-0001@mvai.test>",
            "References": "<req-1@harlanpd.test> <ack.MVAI-2026-0001@mvai.test>",
        },
    )
    new_request = request_message(
        sender="Sheriff Tom Reyes <treyes@lakecountyso.test>",
        subject="Stabbing at Lake County fairgrounds",
        body="On Friday a man stabbed four people at the Lake County fairgrounds in Lakeport, "
        "CA. We need help with victim services.\n\nSheriff Tom Reyes\n(707) 555-0133\n",
        message_id="<req-3@lakecountyso.test>",
    )
    ids: dict[str, Any] = {"now": now, "req1": req1}
    with engine.begin() as conn:

        def add(table: str, **values: Any) -> int:
            return conn.execute(t[table].insert().values(**values)).inserted_primary_key[0]

        harlan = add("agencies", name="Harlan Police Department", state="KY", created_at=opened)
        pinecrest = add(
            "agencies", name="Pinecrest County Sheriff's Office", state="OR", created_at=opened
        )
        dana = add(
            "contacts",
            email="dwhitfield@harlanpd.test",
            name="Dana Whitfield",
            title="Chief of Police",
            phone="+16065550142",
            agency_id=harlan,
            created_at=opened,
        )
        maria = add(
            "contacts",
            email="mortiz@pinecrestso.test",
            name="Maria Ortiz",
            title="Lieutenant",
            phone="+15415550199",
            agency_id=pinecrest,
            created_at=opened,
        )
        add("case_sequences", year=2026, last=2)
        cases = {}
        for ref, token, agency, contact, extra in (
            (
                "MVAI-2026-0001",
                "a1b2c3d4e5",
                harlan,
                dana,
                dict(
                    status="new",
                    priority="P1",
                    priority_reason="incident within 7 days",
                    city="Harlan",
                    state="KY",
                    county="Harlan County",
                    incident_type="school_shooting",
                    incident_date=date(2026, 11, 15),
                    killed=2,
                    injured=None,
                    services=["public_information", "first_responder_wellness"],
                    extraction={"agency": "Harlan Police Department", "needs_review": ["injured"]},
                    subject="Request for help after shooting",
                ),
            ),
            (
                "MVAI-2026-0002",
                "f6e5d4c3b2",
                pinecrest,
                maria,
                dict(
                    status="active",
                    priority="P2",
                    priority_reason="incident 8-30 days ago",
                    city="Bend",
                    state="OR",
                    county="Deschutes County",
                    incident_type="public_event",
                    incident_date=None,
                    killed=1,
                    injured=6,
                    services=["public_information"],
                    extraction={"needs_review": []},
                    subject="Festival shooting - need PIO support",
                ),
            ),
        ):
            cases[ref] = add(
                "cases",
                ref=ref,
                token=token,
                agency_id=agency,
                contact_id=contact,
                request_id=None,
                opened_at=opened,
                updated_at=opened,
                **extra,
            )
        c1, c2 = cases["MVAI-2026-0001"], cases["MVAI-2026-0002"]

        def inbound(raw: bytes, name: str, status: str, **values: Any) -> int:
            return add(
                "inbound_messages",
                mailbox="imap:mvai@mvai.test@imap.mvai.test/INBOX",
                uidvalidity=1700000000,
                uid=int(name),
                source_name=None,
                sha256=ledger.content_hash(raw),
                raw=raw,
                size=len(raw),
                received_at=opened,
                status=status,
                attempts=0 if status == "pending" else 1,
                processed_at=None if status == "pending" else opened,
                **values,
            )

        l1 = inbound(
            req1,
            "41",
            "processed",
            kind="request",
            message_id="<req-1@harlanpd.test>",
            from_addr="dwhitfield@harlanpd.test",
            subject="Request for help after shooting",
            case_id=c1,
        )
        l2 = inbound(
            req2,
            "42",
            "processed",
            kind="request",
            message_id="<req-2@pinecrestso.test>",
            from_addr="mortiz@pinecrestso.test",
            subject="Festival shooting - need PIO support",
            case_id=c2,
        )
        inbound(
            b"From: someone@example.test\r\nSubject: Out of office\r\n\r\nAway.\r\n",
            "43",
            "ignored",
            kind="autoreply",
            reason="auto-reply (Auto-Submitted: auto-replied)",
        )
        inbound(
            b"garbage",
            "44",
            "quarantined",
            kind="other",
            reason="ParseError: no header block",
        )
        ids["reply"] = inbound(reply, "45", "pending")
        ids["new_request"] = inbound(new_request, "46", "pending")
        conn.execute(t["cases"].update().where(t["cases"].c.id == c1).values(request_id=l1))
        conn.execute(t["cases"].update().where(t["cases"].c.id == c2).values(request_id=l2))
        for case_id, ledger_id, priority in ((c1, l1, "P1"), (c2, l2, "P2")):
            add(
                "case_events",
                case_id=case_id,
                at=opened,
                actor="mailbot",
                via="email",
                kind="opened",
                detail={"priority": priority},
                inbound_id=ledger_id,
            )
        for key, case_id, ledger_id, to, status, error in (
            ("ack.MVAI-2026-0001", c1, l1, "dwhitfield@harlanpd.test", "sent", None),
            ("alert.MVAI-2026-0001", c1, l1, "coord@mvai.test", "sent", None),
            ("ack.MVAI-2026-0002", c2, l2, "mortiz@pinecrestso.test", "sent", None),
            ("alert.MVAI-2026-0002", c2, l2, "coord@mvai.test", "failed", "550 5.1.1 no such"),
        ):
            add(
                "outbound_messages",
                dedupe_key=key,
                case_id=case_id,
                inbound_id=ledger_id,
                kind=key.split(".")[0],
                recipients=[to],
                subject=f"[{key.split('.', 1)[1]}] {key.split('.')[0]}",
                message_id=f"<{key}@mvai.test>",
                raw=outgoing(f"{key}@mvai.test", to, key),
                status=status,
                attempts=1 if status == "sent" else 8,
                next_attempt_at=opened,
                last_error=error,
                created_at=opened,
                sent_at=opened if status == "sent" else None,
            )
        add(
            "mailbox_state",
            mailbox="imap:mvai@mvai.test@imap.mvai.test/INBOX",
            uidvalidity=1700000000,
            last_uid=46,
            last_poll_at=now,
        )
    return ids


def table_counts(engine: sa.Engine) -> dict[str, int]:
    meta = sa.MetaData()
    meta.reflect(engine)
    with engine.connect() as conn:
        return {
            name: conn.scalar(select(sa.func.count()).select_from(table))
            for name, table in meta.tables.items()
            if name != "alembic_version"
        }


def cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    assert err == "", err
    return code, out


def test_db_upgrade_keeps_the_cases_of_the_first_release(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
):
    conf = write_config(tmp_path, "[database]\nauto_upgrade = false")
    cfg = config_mod.load(conf)
    engine = db.make_engine(cfg.database_url)
    command.upgrade(db._alembic_config(engine), FIRST)
    assert db.current_revision(engine) == FIRST
    ids = fill_at_first_revision(engine)
    before = table_counts(engine)

    # the command a user runs, and a second run that finds nothing to do
    head = db.head_revision()
    code, out = cli(capsys, "db", "upgrade", "--config", str(conf))
    assert code == 0 and f"upgraded from {FIRST} to {head}" in out
    assert "is up to date" in cli(capsys, "db", "upgrade", "--config", str(conf))[1]
    assert db.current_revision(engine) == head
    if engine.dialect.name == "sqlite":  # off during the migration only
        with engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1

    after = table_counts(engine)
    assert {name: after[name] for name in before} == before  # every old row is still there
    for new_table in ("follow_ups", "assignments", "digests"):
        assert after[new_table] == 0, new_table
    # 0003 fills it from the old outbox: one address each
    assert after["outbound_recipients"] == before["outbound_messages"]

    factory = db.session_factory(engine)
    with factory() as session:
        c1 = service.find(session, "MVAI-2026-0001")
        c2 = service.find(session, "MVAI-2026-0002")
        assert c1 is not None and c2 is not None
        # the old values, types intact
        assert (c1.status, c1.priority, c1.city, c1.state, c1.county) == (
            "new",
            "P1",
            "Harlan",
            "KY",
            "Harlan County",
        )
        assert (c1.incident_type, c1.incident_date, c1.killed, c1.injured) == (
            "school_shooting",
            date(2026, 11, 15),
            2,
            None,
        )
        assert c1.services == ["public_information", "first_responder_wellness"]
        assert c1.extraction["needs_review"] == ["injured"]
        assert c1.opened_at == ids["now"] - timedelta(days=2)
        assert c1.agency is not None and c1.agency.name == "Harlan Police Department"
        assert c1.contact is not None and c1.contact.phone == "+16065550142"
        request = session.get(InboundMessage, c1.request_id)
        assert request is not None and request.raw == ids["req1"]
        assert [e.kind for e in c1.events] == ["opened"]
        assert c1.events[0].detail == {"priority": "P1"}
        # the columns added since 0001, with their defaults
        for case in (c1, c2):
            assert (case.suggestions, case.closed_reason, case.checkins) == ([], None, "on")
        failed = session.scalars(
            select(OutboundMessage).where(OutboundMessage.status == "failed")
        ).one()
        assert (failed.dedupe_key, failed.attempts) == ("alert.MVAI-2026-0002", 8)

    # read through the CLI
    code, out = cli(capsys, "cases", "list", "--json", "--config", str(conf))
    rows = {r["ref"]: r for r in map(json.loads, out.splitlines())}
    assert set(rows) == {"MVAI-2026-0001", "MVAI-2026-0002"}
    assert rows["MVAI-2026-0002"]["agency"] == "Pinecrest County Sheriff's Office"
    assert rows["MVAI-2026-0001"]["checkins"] == "on"
    code, out = cli(capsys, "status", "--json", "--config", str(conf))
    status = json.loads(out)
    assert (status["received"], status["processed"], status["ignored"]) == (6, 2, 1)
    assert (status["quarantined"], status["pending"], status["outbox_failed"]) == (1, 2, 1)
    assert status["last_successful_poll"] is not None

    # changed through the case service
    with db.transaction(factory) as session:
        c1 = service.find(session, "MVAI-2026-0001")
        c2 = service.find(session, "MVAI-2026-0002")
        assert c1 is not None and c2 is not None
        service.add_note(session, c1, "called the chief", "coord@mvai.test", "cli")
        planned = service.plan_followups(session, cfg, c2)
        service.set_checkins(session, c2, "paused", "coord@mvai.test", "cli", None)
        service.set_status(session, c1, "closed", "coord@mvai.test", "cli", reason="resolved")
    with factory() as session:
        c1 = service.find(session, "MVAI-2026-0001")
        c2 = service.find(session, "MVAI-2026-0002")
        assert c1 is not None and c2 is not None
        assert (c1.status, c1.closed_reason) == ("closed", "resolved")
        assert [e.kind for e in c1.events] == ["opened", "note", "status"]
        assert c2.checkins == "paused"
        follow_ups = session.scalars(select(FollowUp).where(FollowUp.case_id == c2.id)).all()
        assert planned > 0 and len(follow_ups) == planned

    # the messages left pending by the old release: a reply on an old thread, a new request
    pipeline = Pipeline(cfg, factory)
    reply = pipeline.process(ids["reply"])
    assert (reply.status, reply.kind, reply.case_ref) == ("processed", "reply", "MVAI-2026-0001")
    new = pipeline.process(ids["new_request"])
    assert (new.status, new.kind, new.case_ref) == ("processed", "request", "MVAI-2026-0003")
    with factory() as session:
        assert session.scalar(select(sa.func.count(Case.id))) == 3
        assert session.scalars(
            select(CaseEvent.kind).where(CaseEvent.inbound_id == ids["reply"])
        ).all() == ["reply"]
        assert session.scalar(select(sa.func.count(Assignment.id))) == 0
        assert session.scalar(select(sa.func.count(Digest.id))) == 0
    engine.dispose()


def test_downgrade_to_the_first_revision_and_back(tmp_path: Path):
    """The migrations also go back: 0002's downgrade drops what it added and keeps the rest."""
    cfg = config_mod.load(write_config(tmp_path))
    engine = db.make_engine(cfg.database_url)
    command.upgrade(db._alembic_config(engine), FIRST)
    fill_at_first_revision(engine)
    db.upgrade(engine)
    command.downgrade(db._alembic_config(engine), FIRST)
    assert db.current_revision(engine) == FIRST
    meta = sa.MetaData()
    meta.reflect(engine)
    assert "follow_ups" not in meta.tables and "checkins" not in meta.tables["cases"].c
    assert table_counts(engine)["cases"] == 2
    db.upgrade(engine)
    assert db.current_revision(engine) == db.head_revision()
    engine.dispose()
