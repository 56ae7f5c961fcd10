"""Replies on a case thread: assignment by reply, advisor commands, refusals, forwards."""

from __future__ import annotations

import email
from collections.abc import Callable
from email.message import EmailMessage
from email.utils import make_msgid

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from mailbot.config import Config
from mailbot.inbound import ledger
from mailbot.inbound.ledger import RawMail
from mailbot.inbound.pipeline import Pipeline
from mailbot.models import Assignment, Case, CaseEvent, FollowUp, InboundMessage, OutboundMessage
from tests.conftest import request_message

ROSTER = """
[[person]]
name = "Maria Alvarez"
emails = ["maria@advisors.test"]
role = "chief"
incident_types = ["school_shooting"]
services = ["public_information"]
regions = ["KY"]
experience = "Retired chief; led the response to a school shooting."

[[person]]
name = "Dan Okoye"
emails = ["dan@advisors.test"]
role = "pio"
services = ["public_information"]

[[person]]
name = "Pat Coordinator"
emails = ["coord@mvai.test"]
role = "coordinator"
"""


@pytest.fixture
def env(tmp_path, make_cfg: Callable[..., Config], factory: sessionmaker[Session]):
    (tmp_path / "roster.toml").write_text(ROSTER)
    cfg = make_cfg('[roster]\npath = "roster.toml"')
    return cfg, factory, Pipeline(cfg, factory)


_names = iter(range(10_000))


def deliver(env, raw: bytes) -> InboundMessage:
    cfg, factory, pipeline = env
    [ledger_id] = ledger.store_batch(factory, [RawMail("t", raw, source_name=str(next(_names)))])
    pipeline.process(ledger_id)
    with factory() as session:
        return session.get(InboundMessage, ledger_id)


def reply(sender: str, to_mid: str, body: str, subject: str = "Re: case", **headers) -> bytes:
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = "mvai@mvai.test"
    msg["Subject"] = subject
    msg["Message-ID"] = make_msgid(domain="x.test")
    msg["In-Reply-To"] = to_mid
    msg["References"] = to_mid
    for name, value in headers.items():
        msg[name.replace("_", "-")] = value
    msg.set_content(body)
    return msg.as_bytes()


def open_case(env) -> Case:
    deliver(env, request_message(message_id="<req@harlanpd.test>"))
    with env[1]() as session:
        return session.scalars(select(Case)).one()


def outbox(factory, kind: str | None = None) -> list[OutboundMessage]:
    with factory() as session:
        query = select(OutboundMessage).order_by(OutboundMessage.id)
        if kind:
            query = query.where(OutboundMessage.kind == kind)
        return list(session.scalars(query))


def events(factory, kind: str) -> list[CaseEvent]:
    with factory() as session:
        return list(session.scalars(select(CaseEvent).where(CaseEvent.kind == kind)))


def text_of(row: OutboundMessage) -> str:
    msg = email.message_from_bytes(row.raw)
    return msg.get_payload()[0].get_payload(decode=True).decode()


def test_alert_suggests_advisors_and_reply_assigns(env):
    cfg, factory, _ = env
    case = open_case(env)
    assert case.suggestions[0] == "maria@advisors.test"
    [alert] = outbox(factory, "alert")
    assert "1. Maria Alvarez <maria@advisors.test> — lived through a school shooting" in text_of(
        alert
    )
    row = deliver(env, reply("Pat <coord@mvai.test>", f"<{alert.message_id}>", "#assign 1\nThanks"))
    assert (row.kind, row.case_id) == ("reply", case.id)
    with factory() as session:
        [assignment] = session.scalars(select(Assignment)).all()
        assert (assignment.advisor_email, assignment.assigned_by) == (
            "maria@advisors.test",
            "coord@mvai.test",
        )
        assert session.get(Case, case.id).status == "active"
    [assign_mail] = outbox(factory, "assignment")
    assert assign_mail.recipients == ["maria@advisors.test"]
    body = text_of(assign_mail)
    assert "#status active|monitoring|closed" in body and "Yesterday we had a shooting" in body
    [intro] = outbox(factory, "intro")
    assert intro.recipients == ["dwhitfield@harlanpd.test"]
    assert "Maria Alvarez" in text_of(intro) and "maria@advisors.test" in text_of(intro)
    intro_msg = email.message_from_bytes(intro.raw)
    assert intro_msg["In-Reply-To"] == f"<ack.{case.ref}@mvai.test>"
    [confirm] = outbox(factory, "confirm")
    assert confirm.recipients == ["coord@mvai.test"]
    assert "#assign 1: done — assigned to Maria Alvarez" in text_of(confirm)


def assigned_case(env) -> tuple[Case, OutboundMessage]:
    cfg, factory, _ = env
    case = open_case(env)
    [alert] = outbox(factory, "alert")
    deliver(env, reply("coord@mvai.test", f"<{alert.message_id}>", "#assign maria@advisors.test"))
    [assign_mail] = outbox(factory, "assignment")
    return case, assign_mail


def test_advisor_commands_change_the_case(env):
    cfg, factory, _ = env
    case, assign_mail = assigned_case(env)
    body = (
        "Spoke with the chief.\n#status monitoring\n#priority P2\n#note Call again Friday\n"
        "#frobnicate\n"
    )
    row = deliver(env, reply("Maria <maria@advisors.test>", f"<{assign_mail.message_id}>", body))
    with factory() as session:
        current = session.get(Case, case.id)
        assert (current.status, current.priority) == ("monitoring", "P2")
        kinds = [
            (e.kind, e.actor, e.inbound_id)
            for e in session.scalars(
                select(CaseEvent).where(CaseEvent.inbound_id == row.id).order_by(CaseEvent.id)
            )
        ]
    assert kinds == [
        ("reply", "maria@advisors.test", row.id),
        ("status", "maria@advisors.test", row.id),
        ("priority", "maria@advisors.test", row.id),
        ("note", "maria@advisors.test", row.id),
        ("command_refused", "maria@advisors.test", row.id),
    ]
    confirm = outbox(factory, "confirm")[-1]
    text = text_of(confirm)
    assert "#status monitoring: done" in text and "#frobnicate: refused — unknown command" in text


def test_commands_in_quoted_text_are_never_executed(env):
    cfg, factory, _ = env
    case, assign_mail = assigned_case(env)
    body = (
        "Thanks, will do.\n\nOn Mon, Nov 16, 2026 at 9:00 AM MVAI wrote:\n"
        "> #close done\n> #status closed\n"
    )
    deliver(env, reply("maria@advisors.test", f"<{assign_mail.message_id}>", body))
    with factory() as session:
        assert session.get(Case, case.id).status == "active"
    assert len(outbox(factory, "confirm")) == 1  # only the coordinator's #assign


def test_forged_and_foreign_commands_change_nothing(env):
    cfg, factory, _ = env
    case, assign_mail = assigned_case(env)
    # Another advisor, on a case that is not theirs.
    deliver(env, reply("dan@advisors.test", f"<{assign_mail.message_id}>", "#status closed"))
    # The agency itself.
    deliver(env, reply("dwhitfield@harlanpd.test", f"<ack.{case.ref}@mvai.test>", "#close now"))
    # A stranger.
    deliver(env, reply("evil@attacker.test", f"<{assign_mail.message_id}>", "#priority P4"))
    with factory() as session:
        current = session.get(Case, case.id)
        assert (current.status, current.priority) == ("active", case.priority)
    refused = events(factory, "command_refused")
    assert [(e.actor, e.detail["reason"]) for e in refused] == [
        ("dan@advisors.test", f"{case.ref} is not assigned to you")
    ]
    ignored = events(factory, "commands_ignored")
    assert {e.actor for e in ignored} == {"dwhitfield@harlanpd.test", "evil@attacker.test"}
    assert "not assigned to you" in text_of(outbox(factory, "confirm")[-1])


def test_agency_reply_is_forwarded_to_the_advisor(env):
    cfg, factory, _ = env
    case, _ = assigned_case(env)
    deliver(
        env,
        reply(
            "Chief Dana Whitfield <dwhitfield@harlanpd.test>",
            f"<ack.{case.ref}@mvai.test>",
            "Our PIO is Sam Lee, 606-555-0150.\n\nOn Mon wrote:\n> old text\n",
        ),
    )
    [forward] = outbox(factory, "forward")
    assert forward.recipients == ["maria@advisors.test"]
    text = text_of(forward)
    assert "Our PIO is Sam Lee" in text and "old text" not in text
    assert events(factory, "reply")[-1].detail["role"] == "agency"


def test_agency_reply_goes_to_coordinators_before_assignment(env):
    cfg, factory, _ = env
    case = open_case(env)
    deliver(
        env, reply("dwhitfield@harlanpd.test", f"<ack.{case.ref}@mvai.test>", "One more thing.")
    )
    [forward] = outbox(factory, "forward")
    assert forward.recipients == ["coord@mvai.test"]


def test_authenticated_sender_required(tmp_path, make_cfg, factory):
    (tmp_path / "roster.toml").write_text(ROSTER)
    cfg = make_cfg(
        '[roster]\npath = "roster.toml"\n\n[security]\n'
        'require_authenticated_sender = true\ntrusted_authserv_ids = ["mx.mvai.test"]'
    )
    env = (cfg, factory, Pipeline(cfg, factory))
    open_case(env)
    [alert] = outbox(factory, "alert")
    spoofed = reply(
        "coord@mvai.test",
        f"<{alert.message_id}>",
        "#assign 1",
        Authentication_Results="evil.test; dkim=pass header.d=mvai.test",
    )
    deliver(env, spoofed)
    assert outbox(factory, "assignment") == []
    assert "could not be authenticated" in events(factory, "command_refused")[0].detail["reason"]
    signed = reply(
        "coord@mvai.test",
        f"<{alert.message_id}>",
        "#assign 1",
        Authentication_Results="mx.mvai.test; dkim=pass header.d=mvai.test",
    )
    deliver(env, signed)
    assert len(outbox(factory, "assignment")) == 1


def test_checkin_commands_move_follow_ups(env):
    cfg, factory, _ = env
    case, assign_mail = assigned_case(env)
    with factory() as session:
        planned = session.scalars(select(FollowUp).where(FollowUp.case_id == case.id)).all()
        assert planned and all(f.status == "pending" for f in planned)
    deliver(env, reply("maria@advisors.test", f"<{assign_mail.message_id}>", "#checkin +3d"))
    with factory() as session:
        manual = [f for f in session.scalars(select(FollowUp)) if f.phase.startswith("manual-")]
        assert len(manual) == 1
    deliver(env, reply("maria@advisors.test", f"<{assign_mail.message_id}>", "#checkin stop"))
    with factory() as session:
        assert session.get(Case, case.id).checkins == "stopped"
        assert {f.status for f in session.scalars(select(FollowUp))} == {"cancelled"}
