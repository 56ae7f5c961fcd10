"""The one module that changes cases. Everything else asks it.

Each function runs in the caller's transaction: the case change, its audit event and the mail
it causes (written to the outbox) commit together or not at all.
"""

from __future__ import annotations

import secrets
from datetime import timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from mailbot.config import Config
from mailbot.inbound.extraction import Extraction
from mailbot.inbound.parse import ParsedMessage
from mailbot.models import (
    Agency,
    Case,
    CaseEvent,
    CaseSequence,
    Contact,
    InboundMessage,
    OutboundMessage,
    utcnow,
)
from mailbot.outbound.compose import enqueue, one_line, plus_address, valid_address
from mailbot.vocabulary import INCIDENT_TYPES, SERVICES

AUTOMATIC_KINDS = ("ack", "checkin", "forward", "confirm")


def next_ref(session: Session, year: int) -> str:
    seq = session.get(CaseSequence, year, with_for_update=True)
    if seq is None:
        seq = CaseSequence(year=year, last=0)
        session.add(seq)
    seq.last += 1
    session.flush()
    return f"MVAI-{year}-{seq.last:04d}"


def automatic_mails_today(session: Session, address: str) -> int:
    """How many automatic mails went (or are going) to ``address`` in the last 24 hours."""
    since = utcnow() - timedelta(days=1)
    rows = session.scalars(
        select(OutboundMessage.recipients).where(
            OutboundMessage.kind.in_(AUTOMATIC_KINDS), OutboundMessage.created_at >= since
        )
    )
    return sum(1 for recipients in rows if address in recipients)


def _contact(session: Session, ex: Extraction, agency: Agency | None) -> Contact | None:
    if not ex.contact_email:
        return None
    contact = session.scalars(select(Contact).where(Contact.email == ex.contact_email)).first()
    if contact is None:
        contact = Contact(email=ex.contact_email)
        session.add(contact)
    contact.name = ex.contact_name or contact.name
    contact.title = ex.contact_title or contact.title
    contact.phone = ex.contact_phone or contact.phone
    if agency is not None:
        contact.agency_id = agency.id
    return contact


def _agency(session: Session, ex: Extraction) -> Agency | None:
    if not ex.agency:
        return None
    agency = session.scalars(
        select(Agency).where(func.lower(Agency.name) == ex.agency.lower(), Agency.state == ex.state)
    ).first()
    if agency is None:
        agency = Agency(name=ex.agency, state=ex.state)
        session.add(agency)
        session.flush()
    return agency


def understood(ex: Extraction) -> dict[str, Any]:
    """What the acknowledgement reads back: no casualty numbers, no names of people.

    A value the extraction was unsure of is marked for the agency to confirm.
    """
    review = set(ex.needs_review)

    def shown(value: str | None, *fields: str) -> str | None:
        if value is None:
            return None
        return f"{value} (please confirm)" if review & set(fields) else value

    place = ", ".join(p for p in (ex.city, ex.state) if p) or None
    when = ex.incident_date.strftime("%B %-d, %Y") if ex.incident_date else None
    return {
        "agency": shown(ex.agency, "agency"),
        "place": shown(place, "city", "state"),
        "incident_date": shown(when, "incident_date"),
        "services": [SERVICES[s] for s in ex.services if s in SERVICES],
    }


def open_case(
    session: Session, cfg: Config, inbound: InboundMessage, msg: ParsedMessage, ex: Extraction
) -> Case:
    """Open a case for a new request, with its acknowledgement and coordinator alert."""
    now = utcnow()
    agency = _agency(session, ex)
    contact = _contact(session, ex, agency)
    case = Case(
        ref=next_ref(session, now.astimezone(cfg.tz).year),
        token=secrets.token_hex(5),
        status="new",
        priority=ex.priority,
        priority_reason=ex.priority_reason,
        agency_id=agency.id if agency else None,
        contact=contact,
        city=ex.city,
        state=ex.state,
        county=ex.county,
        incident_type=ex.incident_type,
        incident_date=ex.incident_date,
        killed=ex.killed,
        injured=ex.injured,
        services=list(ex.services),
        extraction=ex.to_json(),
        subject=one_line(msg.subject, 500) or None,
        request_id=inbound.id,
        opened_at=now,
        updated_at=now,
    )
    session.add(case)
    session.flush()
    session.add(
        CaseEvent(
            case_id=case.id,
            actor=msg.from_addr or "unknown",
            via="email",
            kind="opened",
            detail={"priority": ex.priority, "reason": ex.priority_reason},
            inbound_id=inbound.id,
        )
    )
    context = {
        "case": case,
        "organisation": cfg.mailbot.organisation,
        "coordinator": cfg.coordinators,
        "understood": understood(ex),
        "fields": ex,
        "incident_label": INCIDENT_TYPES.get(ex.incident_type or ""),
        "greeting": f"Dear {ex.contact_name}" if ex.contact_name else "Hello",
        "next_step_when": "within the hour" if ex.priority == "P1" else "within one business day",
    }
    thread = [*msg.references, msg.message_id] if msg.message_id else list(msg.references)
    ack_to = ex.contact_email
    ack_note = ""
    if not ack_to or not valid_address(ack_to):
        ack_note = "no usable sender address"
    elif automatic_mails_today(session, ack_to) >= cfg.limits.auto_replies_per_sender_per_day:
        ack_note = (
            f"{cfg.limits.auto_replies_per_sender_per_day} automatic mails already went to this "
            "sender in the last 24 hours"
        )
    else:
        enqueue(
            session,
            cfg,
            dedupe_key=f"ack.{case.ref}",
            kind="ack",
            to=[ack_to],
            subject=f"Re: {one_line(msg.subject, 150) or 'Your request'} [{case.ref}]",
            template="ack/request_received",
            context=context,
            case_id=case.id,
            case_ref=case.ref,
            inbound_id=inbound.id,
            in_reply_to=msg.message_id,
            references=thread,
            reply_to=plus_address(cfg, case.token),
        )
    if ack_note:
        session.add(
            CaseEvent(
                case_id=case.id,
                actor="mailbot",
                via="system",
                kind="ack_suppressed",
                detail={"reason": ack_note},
                inbound_id=inbound.id,
            )
        )
    where = ", ".join(p for p in (ex.city, ex.state) if p) or "place unknown"
    agency_name = ex.agency or "agency unknown"
    enqueue(
        session,
        cfg,
        dedupe_key=f"alert.{case.ref}",
        kind="alert",
        to=list(cfg.coordinators.addresses),
        subject=f"[{case.ref}] {case.priority} new request: {agency_name}, {where}",
        template="coordinator/new_case_alert",
        context={
            **context,
            "ack_sent": not ack_note,
            "ack_note": ack_note,
            "received_from": msg.from_addr,
            "request_subject": one_line(msg.subject, 200),
            "request_text": msg.text[:20_000],
        },
        auto_submitted="auto-generated",
        case_id=case.id,
        case_ref=case.ref,
        inbound_id=inbound.id,
        references=thread,
        reply_to=plus_address(cfg, case.token),
    )
    return case


def record_reply(session: Session, case: Case, inbound: InboundMessage, msg: ParsedMessage) -> None:
    """A reply on a case thread becomes a case event; commands come with the advisors issue."""
    case.updated_at = utcnow()
    session.add(
        CaseEvent(
            case_id=case.id,
            actor=msg.from_addr or "unknown",
            via="email",
            kind="reply",
            detail={"subject": one_line(msg.subject, 200), "chars": len(msg.text)},
            inbound_id=inbound.id,
        )
    )


def find(session: Session, ref: str) -> Case | None:
    return session.scalars(select(Case).where(Case.ref == ref.upper())).first()
