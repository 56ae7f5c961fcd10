"""The pipeline on a real SQLite database: cases, acknowledgements, duplicates, replies."""

from __future__ import annotations

import email
from collections.abc import Callable

import pytest
from sqlalchemy import event, func, select
from sqlalchemy.orm import Session, sessionmaker

from mailbot.config import Config
from mailbot.db import transaction
from mailbot.inbound import ledger
from mailbot.inbound.ledger import RawMail
from mailbot.inbound.pipeline import Outcome, Pipeline
from mailbot.inbound.reader import Read
from mailbot.models import Agency, Case, CaseEvent, Contact, InboundMessage, OutboundMessage
from tests.conftest import request_message

OUTCOMES: list[tuple[int, Outcome]] = []  # (ledger id, outcome) of ``ingest``, in order


@pytest.fixture(autouse=True)
def _forget_outcomes() -> None:
    OUTCOMES.clear()


def ingest(cfg: Config, factory: sessionmaker[Session], raw: bytes, name: str) -> int:
    [ledger_id] = ledger.store_batch(factory, [RawMail("test", raw, source_name=name)])
    OUTCOMES.append((ledger_id, Pipeline(cfg, factory).process(ledger_id)))
    return ledger_id


def outbox(factory: sessionmaker[Session]) -> list[OutboundMessage]:
    with factory() as session:
        return list(session.scalars(select(OutboundMessage).order_by(OutboundMessage.id)))


def test_request_opens_case_with_ack_and_alert(cfg: Config, factory: sessionmaker[Session]):
    raw = request_message(message_id="<req-1@harlanpd.test>")
    ledger_id = ingest(cfg, factory, raw, "a")
    with factory() as session:
        row = session.get(InboundMessage, ledger_id)
        assert (row.status, row.kind) == ("processed", "request")
        case = session.scalars(select(Case)).one()
        assert row.case_id == case.id
        assert case.ref.startswith("MVAI-2026-") and case.ref.endswith("0001")
        assert case.state == "KY" and case.city == "Harlan"
        assert [e.kind for e in case.events] == ["opened"]
    ack, alert = outbox(factory)
    assert (ack.kind, ack.recipients) == ("ack", ["dwhitfield@harlanpd.test"])
    [(_, outcome)] = OUTCOMES
    assert outcome.mail == (ack.id, alert.id)  # handed to the daemon's sender at once
    assert (alert.kind, alert.recipients) == ("alert", ["coord@mvai.test"])
    msg = email.message_from_bytes(ack.raw)
    assert msg["Message-ID"] == f"<ack.{case.ref}@mvai.test>"
    assert msg["In-Reply-To"] == "<req-1@harlanpd.test>"
    assert "<req-1@harlanpd.test>" in msg["References"]
    assert msg["Auto-Submitted"] == "auto-replied"
    assert case.ref in msg["Subject"]
    assert msg["Reply-To"] == f"mvai+{case.token}@mvai.test"
    assert email.message_from_bytes(alert.raw)["Auto-Submitted"] == "auto-generated"


def test_an_agency_and_a_contact_writing_again_are_found_not_made_again(
    cfg: Config, factory: sessionmaker[Session]
):
    no_state = (
        "Yesterday we had a shooting at our high school. We need help with the media.\n\n"
        "Sam Ortiz\nChief of Police\nLakeview Police Department\n"
    )
    for n in range(2):  # with the state written, then without one
        ingest(cfg, factory, request_message(), f"ky-{n}")
        ingest(
            cfg,
            factory,
            request_message(sender="Sam Ortiz <so@lakeview.test>", body=no_state),
            f"x-{n}",
        )
    with factory() as session:
        agencies = session.execute(select(Agency.name, Agency.state).order_by(Agency.id)).all()
        assert agencies == [
            ("Harlan Police Department", "KY"),
            ("Lakeview Police Department", None),
        ]
        assert session.scalar(select(func.count(Contact.id))) == 2
        cases = session.scalars(select(Case).order_by(Case.id)).all()
        assert [c.ref[-4:] for c in cases] == ["0001", "0002", "0003", "0004"]
        assert [c.agency_id for c in cases] == [1, 2, 1, 2]


def test_a_new_request_costs_few_statements_and_one_update_of_its_ledger_row(
    cfg: Config, factory: sessionmaker[Session]
):
    # the daemon's side of the backlog: its statements are most of its time per request
    ingest(cfg, factory, request_message(message_id="<warm@harlanpd.test>"), "warm")
    raw = request_message(message_id="<req-2@harlanpd.test>", sender="chief@other.test")
    [ledger_id] = ledger.store_batch(factory, [RawMail("test", raw, source_name="b")])
    engine = factory.kw["bind"]
    statements: list[str] = []

    def seen(conn, cursor, statement, params, context, executemany):  # type: ignore[no-untyped-def]
        statements.append(" ".join(statement.split()))

    event.listen(engine, "before_cursor_execute", seen)
    try:  # as the daemon hands it over: the raw bytes the reader loaded come with it
        Pipeline(cfg, factory).process(ledger_id, Read(raw=raw))
    finally:
        event.remove(engine, "before_cursor_execute", seen)
    with factory() as session:
        row = session.get(InboundMessage, ledger_id)
        assert (row.status, row.kind, row.from_addr) == ("processed", "request", "chief@other.test")
    updates = [s for s in statements if s.startswith("UPDATE")]
    assert len(updates) == 1 and updates[0].startswith("UPDATE inbound_messages"), statements
    # no look-ups of what a case opened in this transaction cannot have yet
    assert not any(s.startswith("SELECT follow_ups") for s in statements), statements
    assert not any(s.startswith("SELECT outbound_messages") for s in statements), statements
    # the row comes without its raw bytes (given) and with the duplicate check (one query)
    assert "inbound_messages.raw" not in statements[0] and "sha256 =" in statements[0]
    assert sum(s.startswith("SELECT") and "FROM inbound_messages" in s for s in statements) == 1
    assert len(statements) <= 14, statements


def test_a_message_id_the_ledger_read_otherwise_is_still_checked_for_duplicates(
    cfg: Config, factory: sessionmaker[Session]
):
    """The row's query checks the Message-ID the ledger stored; when the parser reads another
    (here: the ledger found none), the parser's is checked on its own."""
    raw = request_message(message_id="<dup2@harlanpd.test>")
    ingest(cfg, factory, raw, "a")
    [second] = ledger.store_batch(factory, [RawMail("test", raw, source_name="b")])
    with transaction(factory) as session:
        session.get(InboundMessage, second).message_id = None
    Pipeline(cfg, factory).process(second, Read(raw=raw))
    with factory() as session:
        row = session.get(InboundMessage, second)
        assert (row.status, row.kind) == ("ignored", "duplicate")
        assert row.message_id == "dup2@harlanpd.test"
        assert session.scalar(select(func.count(Case.id))) == 1


def test_ack_never_repeats_casualty_numbers(cfg: Config, factory: sessionmaker[Session]):
    body = (
        "On Saturday a gunman killed 7 people and wounded 12 at the Lakeside Mall in "
        "Rapid City, SD. Among the dead was Officer Jane Quill. The shooter, John Roe, "
        "is dead.\n\nRapid City Police Department\n"
    )
    ingest(cfg, factory, request_message(body=body), "a")
    ack = outbox(factory)[0]
    text = email.message_from_bytes(ack.raw).get_payload()[0].get_payload(decode=True).decode()
    assert "Rapid City" in text
    for word in ("7", "12", "Quill", "Roe", "killed", "wounded"):
        assert word not in text.replace("MVAI-2026-0001", ""), word


def test_duplicate_delivery_opens_no_second_case(cfg: Config, factory: sessionmaker[Session]):
    raw = request_message(message_id="<dup@harlanpd.test>")
    redelivered = b"Received: from relay.example by mx.example; Sat, 21 Nov 2026\r\n" + raw
    ingest(cfg, factory, raw, "a")
    second = ingest(cfg, factory, redelivered, "b")
    with factory() as session:
        assert session.scalar(select(func.count(Case.id))) == 1
        row = session.get(InboundMessage, second)
        assert (row.status, row.kind) == ("ignored", "duplicate")
    assert [o.kind for o in outbox(factory)] == ["ack", "alert"]
    assert OUTCOMES[1][1].mail == ()  # nothing new for the sender


def test_same_message_id_different_content_is_not_a_duplicate(
    cfg: Config, factory: sessionmaker[Session]
):
    ingest(cfg, factory, request_message(message_id="<same@x.test>"), "a")
    ingest(cfg, factory, request_message(message_id="<same@x.test>", subject="Other"), "b")
    with factory() as session:
        assert session.scalar(select(func.count(Case.id))) == 2


def test_reply_joins_case_and_is_not_acknowledged(cfg: Config, factory: sessionmaker[Session]):
    ingest(cfg, factory, request_message(message_id="<req-2@harlanpd.test>"), "a")
    with factory() as session:
        case = session.scalars(select(Case)).one()
    reply = request_message(
        subject=f"Re: Request for help [{case.ref}]",
        body="Thank you. Our PIO is Sam.\n",
        headers={"In-Reply-To": f"<ack.{case.ref}@mvai.test>"},
    )
    ledger_id = ingest(cfg, factory, reply, "b")
    with factory() as session:
        row = session.get(InboundMessage, ledger_id)
        assert (row.kind, row.case_id) == ("reply", case.id)
        kinds = [e.kind for e in session.scalars(select(CaseEvent).order_by(CaseEvent.id))]
        assert kinds == ["opened", "reply"]
        assert session.scalar(select(func.count(Case.id))) == 1
    # No second acknowledgement: the agency's reply is forwarded (to the coordinators while no
    # advisor is assigned), never answered automatically.
    assert [(o.kind, o.recipients) for o in outbox(factory)] == [
        ("ack", ["dwhitfield@harlanpd.test"]),
        ("alert", ["coord@mvai.test"]),
        ("forward", ["coord@mvai.test"]),
    ]


def test_reply_by_plus_address_token(cfg: Config, factory: sessionmaker[Session]):
    ingest(cfg, factory, request_message(), "a")
    with factory() as session:
        case = session.scalars(select(Case)).one()
    reply = request_message(subject="more details", to=f"mvai+{case.token}@mvai.test")
    ledger_id = ingest(cfg, factory, reply, "b")
    with factory() as session:
        assert session.get(InboundMessage, ledger_id).case_id == case.id


def test_old_subject_from_stranger_opens_new_case(cfg: Config, factory: sessionmaker[Session]):
    ingest(cfg, factory, request_message(), "a")
    with factory() as session:
        ref = session.scalars(select(Case.ref)).one()
    other = request_message(sender="someone@elsewhere.test", subject=f"Fwd: {ref} question")
    ledger_id = ingest(cfg, factory, other, "b")
    with factory() as session:
        row = session.get(InboundMessage, ledger_id)
        assert row.kind == "request" and row.case.ref != ref


def test_autoreply_gets_no_ack(cfg: Config, factory: sessionmaker[Session]):
    raw = request_message(
        subject="Out of Office: Request", headers={"Auto-Submitted": "auto-replied"}
    )
    ledger_id = ingest(cfg, factory, raw, "a")
    with factory() as session:
        row = session.get(InboundMessage, ledger_id)
        assert (row.status, row.kind) == ("ignored", "autoreply")
        assert row.reason
    assert outbox(factory) == []


def test_own_mail_is_ignored(cfg: Config, factory: sessionmaker[Session]):
    ledger_id = ingest(cfg, factory, request_message(sender="MVAI <mvai@mvai.test>"), "a")
    with factory() as session:
        assert session.get(InboundMessage, ledger_id).kind == "own"
    assert outbox(factory) == []


def test_rate_limit_caps_automatic_mail_per_sender(
    make_cfg: Callable[..., Config], factory: sessionmaker[Session]
):
    cfg = make_cfg("[limits]\nauto_replies_per_sender_per_day = 2")
    for n in range(4):
        ingest(cfg, factory, request_message(subject=f"request {n}"), str(n))
    kinds = [o.kind for o in outbox(factory)]
    assert kinds.count("ack") == 2 and kinds.count("alert") == 4
    with factory() as session:
        suppressed = session.scalars(select(CaseEvent).where(CaseEvent.kind == "ack_suppressed"))
        assert len(list(suppressed)) == 2


def test_oversize_message_is_quarantined_with_reason(
    make_cfg: Callable[..., Config], factory: sessionmaker[Session]
):
    cfg = make_cfg("[limits]\nmax_message_bytes = 2048")
    raw = request_message(body="x" * 5000)
    [ledger_id] = ledger.store_batch(factory, [RawMail("t", raw, source_name="big", size=len(raw))])
    Pipeline(cfg, factory).process(ledger_id)
    with factory() as session:
        row = session.get(InboundMessage, ledger_id)
        assert row.status == "quarantined"
        assert "max_message_bytes" in row.reason


def test_unexpected_error_quarantines_and_replay_recovers(
    cfg: Config, factory: sessionmaker[Session], monkeypatch
):
    import mailbot.inbound.pipeline as pipeline_mod

    def broken(*args, **kwargs):
        raise RuntimeError("extractor exploded\nsecond line")

    monkeypatch.setattr(pipeline_mod, "extract", broken)
    ledger_id = ingest(cfg, factory, request_message(), "a")
    with factory() as session:
        row = session.get(InboundMessage, ledger_id)
        assert row.status == "quarantined"
        assert row.reason == "RuntimeError: extractor exploded second line"
        assert session.scalar(select(func.count(Case.id))) == 0
    assert outbox(factory) == []
    monkeypatch.undo()
    with factory.begin() as session:
        session.get(InboundMessage, ledger_id).status = "pending"
    Pipeline(cfg, factory).process(ledger_id)
    with factory() as session:
        assert session.get(InboundMessage, ledger_id).status == "processed"
    assert [o.kind for o in outbox(factory)] == ["ack", "alert"]


def test_processed_row_is_not_processed_again(cfg: Config, factory: sessionmaker[Session]):
    ledger_id = ingest(cfg, factory, request_message(), "a")
    outcome = Pipeline(cfg, factory).process(ledger_id)
    assert outcome.status == "skipped"
    with factory() as session:
        assert session.scalar(select(func.count(Case.id))) == 1


def test_crisis_sign_alerts_at_once_and_ack_gives_988(cfg: Config, factory: sessionmaker[Session]):
    body = (
        "Last month we had a shooting at the Main Street Mall in Harlan, KY. Things are calm "
        "now. Honestly I can't do this anymore and one of my sergeants talked about ending "
        "his life.\n\nChief Dana Whitfield\nHarlan Police Department\n"
    )
    ingest(cfg, factory, request_message(body=body), "a")
    rows = outbox(factory)
    assert [r.kind for r in rows] == ["alert", "ack", "alert"]
    crisis_alert = rows[0]
    assert crisis_alert.recipients == ["coord@mvai.test"]
    assert "URGENT: possible personal crisis" in crisis_alert.subject
    ack = email.message_from_bytes(rows[1].raw).get_payload()[0].get_payload(decode=True)
    assert b"call or text 988" in ack


def test_perpetrator_suicide_is_not_a_crisis(cfg: Config, factory: sessionmaker[Session]):
    body = (
        "Yesterday a gunman killed three at Harlan High School in Harlan, KY, then took his "
        "own life."
    )
    ingest(cfg, factory, request_message(body=body), "a")
    assert [r.kind for r in outbox(factory)] == ["ack", "alert"]
    ack = email.message_from_bytes(outbox(factory)[0].raw).get_payload()[0].get_payload(decode=True)
    assert b"988" not in ack
