"""The one module that changes cases. Everything else asks it.

Each function runs in the caller's transaction: the case change, its audit event and the mail
it causes (written to the outbox) commit together or not at all.
"""

from __future__ import annotations

import secrets
from datetime import date, datetime, time, timedelta
from functools import cache
from typing import Any

from sqlalchemy import bindparam, func, insert, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from mailbot.cases import attachments, crisis, matching
from mailbot.config import Config
from mailbot.inbound.extraction import Extraction
from mailbot.inbound.parse import ParsedMessage
from mailbot.jobs import cadence
from mailbot.jobs.cadence import due_times
from mailbot.models import (
    Agency,
    Assignment,
    Case,
    CaseEvent,
    CaseSequence,
    Contact,
    FollowUp,
    InboundMessage,
    OutboundMessage,
    OutboundRecipient,
    utcnow,
)
from mailbot.outbound.compose import enqueue, one_line, plus_address, valid_address
from mailbot.roster import Person, Roster
from mailbot.vocabulary import INCIDENT_TYPES, SERVICES

AUTOMATIC_KINDS = ("ack", "checkin", "forward", "confirm")


# The statements every new request runs are built once, with bind parameters: building a
# select and working out its cache key each time cost more than running it (on PostgreSQL,
# in process: 530 against 264 us for the count below, 699 against 218 for the agency's).


@cache
def _next_ref_statement(dialect: str) -> Any:
    """One upsert: the year's row is created at 1 or counted up, and the new number returned."""
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    statement = insert(CaseSequence).values(year=bindparam("year"), last=1)
    return statement.on_conflict_do_update(
        index_elements=[CaseSequence.year], set_={"last": CaseSequence.last + 1}
    ).returning(CaseSequence.last)


def next_ref(session: Session, year: int) -> str:
    """The next case reference of ``year``; the row lock serialises concurrent workers."""
    statement = _next_ref_statement(session.get_bind().dialect.name)
    last = session.scalar(statement, {"year": year})
    assert last is not None
    return f"MVAI-{year}-{last:04d}"


_AUTOMATIC_SINCE = select(func.count()).where(
    OutboundRecipient.address == bindparam("address"),
    OutboundRecipient.created_at >= bindparam("since"),
    OutboundRecipient.kind.in_(AUTOMATIC_KINDS),
)


def automatic_mails_today(session: Session, address: str) -> int:
    """How many automatic mails went (or are going) to ``address`` in the last 24 hours."""
    since = utcnow() - timedelta(days=1)
    count = session.scalar(_AUTOMATIC_SINCE, {"address": address.strip().lower(), "since": since})
    return int(count or 0)


_CONTACT = select(Contact).where(Contact.email == bindparam("email"))
_AGENCY = select(Agency).where(
    func.lower(Agency.name) == bindparam("name"),
    Agency.state.is_not_distinct_from(bindparam("state")),  # no state matches no state
)


def _contact(session: Session, ex: Extraction, agency: Agency | None) -> Contact | None:
    if not ex.contact_email:
        return None
    contact = session.scalars(_CONTACT, {"email": ex.contact_email}).first()
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
    agency = session.scalars(_AGENCY, {"name": ex.agency.lower(), "state": ex.state}).first()
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
    session: Session,
    cfg: Config,
    inbound: InboundMessage,
    msg: ParsedMessage,
    ex: Extraction,
    roster: Roster | None = None,
) -> Case:
    """Open a case for a new request, with its acknowledgement and coordinator alert.

    Flushed only where an id is needed (a new agency's, the case's): the contact's changes go
    in with the case's INSERT, the events, mails and ledger row with the commit's. Without
    autoflush, as no query here needs to see what is pending; with it, each query flushed
    first, and a flush costs about 0.3 ms however little it writes."""
    with session.no_autoflush:
        return _open_case(session, cfg, inbound, msg, ex, roster)


def _open_case(
    session: Session,
    cfg: Config,
    inbound: InboundMessage,
    msg: ParsedMessage,
    ex: Extraction,
    roster: Roster | None,
) -> Case:
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
    suggestions = matching.rank(
        roster or Roster(),
        matching.open_cases(session),
        incident_type=ex.incident_type,
        services=ex.services,
        state=ex.state,
        agency=ex.agency,
    )
    case.suggestions = [s.person.email for s in suggestions]
    session.add(case)
    session.flush()
    event(
        session,
        case,
        "opened",
        msg.from_addr or "unknown",
        "email",
        inbound.id,
        touch=False,  # updated_at is opened_at
        priority=ex.priority,
        reason=ex.priority_reason,
    )
    plan_followups(session, cfg, case, new_case=True)
    crisis_sentence = crisis.detect(
        crisis.load_rules(cfg.rules_dir), f"{msg.subject}\n\n{msg.text}"
    )
    if crisis_sentence:
        crisis_alert(session, cfg, case, inbound.id, crisis_sentence, msg.from_addr)
    context = {
        "case": case,
        "organisation": cfg.mailbot.organisation,
        "coordinator": cfg.coordinators,
        "understood": understood(ex),
        "fields": ex,
        "incident_label": INCIDENT_TYPES.get(ex.incident_type or ""),
        "greeting": f"Dear {ex.contact_name}" if ex.contact_name else "Hello",
        "next_step_when": "within the hour" if ex.priority == "P1" else "within one business day",
        "crisis": bool(crisis_sentence),
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
            new_key=True,
        )
    if ack_note:
        event(session, case, "ack_suppressed", "mailbot", "system", inbound.id, reason=ack_note)
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
            "suggestions": suggestions,
        },
        auto_submitted="auto-generated",
        case_id=case.id,
        case_ref=case.ref,
        inbound_id=inbound.id,
        references=thread,
        reply_to=plus_address(cfg, case.token),
        new_key=True,
    )
    return case


def event(
    session: Session,
    case: Case,
    kind: str,
    actor: str,
    via: str,
    inbound_id: int | None = None,
    touch: bool = True,
    **detail: Any,
) -> None:
    """Record what happened to a case; ``touch``: the case's updated_at becomes now."""
    if touch:
        case.updated_at = utcnow()
    session.add(
        CaseEvent(
            case_id=case.id, actor=actor, via=via, kind=kind, detail=detail, inbound_id=inbound_id
        )
    )


def record_reply(
    session: Session, case: Case, inbound: InboundMessage, msg: ParsedMessage, role: str
) -> None:
    """Every reply on a case thread becomes a case event, whoever wrote it."""
    event(
        session,
        case,
        "reply",
        msg.from_addr or "unknown",
        "email",
        inbound.id,
        role=role,
        subject=one_line(msg.subject, 200),
        chars=len(msg.text),
    )


def find(session: Session, ref: str) -> Case | None:
    return session.scalars(select(Case).where(Case.ref == ref.upper())).first()


def thread_ids(session: Session, cfg: Config, case: Case) -> list[str]:
    """Message-IDs a mail about the case refers to: the request, then our acknowledgement."""
    ids = []
    if case.request_id is not None:
        request = session.get(InboundMessage, case.request_id)
        if request is not None and request.message_id:
            ids.append(request.message_id)
    ack = session.scalars(
        select(OutboundMessage.message_id).where(OutboundMessage.dedupe_key == f"ack.{case.ref}")
    ).first()
    return [*ids, ack] if ack else ids


def active_assignment(session: Session, case: Case) -> Assignment | None:
    return session.scalars(
        select(Assignment).where(Assignment.case_id == case.id, Assignment.ended_at.is_(None))
    ).first()


def summary(session: Session, case: Case) -> dict[str, Any]:
    """What mails about a case show of it: no casualty figures, no names of victims."""
    contact = session.get(Contact, case.contact_id) if case.contact_id else None
    place = ", ".join(p for p in (case.city, case.state) if p) or None
    return {
        "ref": case.ref,
        "status": case.status,
        "priority": case.priority,
        "agency": case.agency.name if case.agency else None,
        "place": place,
        "incident": INCIDENT_TYPES.get(case.incident_type or ""),
        "incident_date": case.incident_date.strftime("%B %-d, %Y") if case.incident_date else None,
        "services": [SERVICES[s] for s in case.services or [] if s in SERVICES],
        "contact_name": contact.name if contact else None,
        "contact_title": contact.title if contact else None,
        "contact_email": contact.email if contact else None,
        "contact_phone": contact.phone if contact else None,
    }


def assign(
    session: Session,
    cfg: Config,
    case: Case,
    person: Person,
    actor: str,
    via: str,
    inbound_id: int | None = None,
) -> Assignment:
    """Assign an advisor; the advisor gets the case, the agency an introduction."""
    current = active_assignment(session, case)
    if current is not None and current.advisor_email == person.email:
        return current
    if current is not None:
        current.ended_at = utcnow()
    assignment = Assignment(
        case_id=case.id,
        advisor_email=person.email,
        advisor_name=person.name,
        assigned_by=actor,
        assigned_at=utcnow(),
    )
    session.add(assignment)
    session.flush()
    if case.status == "new":
        case.status = "active"
    event(
        session,
        case,
        "assigned",
        actor,
        via,
        inbound_id,
        advisor=person.email,
        replaced=current.advisor_email if current else None,
    )
    thread = thread_ids(session, cfg, case)
    request = session.get(InboundMessage, case.request_id) if case.request_id else None
    context = {
        "case": summary(session, case),
        "advisor": person,
        "organisation": cfg.mailbot.organisation,
        "coordinator": cfg.coordinators,
        "request_text": _request_text(request),
    }
    reply_to = plus_address(cfg, case.token)
    enqueue(
        session,
        cfg,
        dedupe_key=f"assign.{case.ref}.{assignment.id}",
        kind="assignment",
        to=[person.email],
        subject=f"[{case.ref}] New assignment: {context['case']['agency'] or 'agency'}",
        template="advisor/assignment",
        context=context,
        auto_submitted="auto-generated",
        case_id=case.id,
        case_ref=case.ref,
        inbound_id=inbound_id,
        in_reply_to=thread[0] if thread else None,
        references=thread,
        reply_to=reply_to,
    )
    contact = session.get(Contact, case.contact_id) if case.contact_id else None
    if contact is not None and valid_address(contact.email):
        enqueue(
            session,
            cfg,
            dedupe_key=f"intro.{case.ref}.{assignment.id}",
            kind="intro",
            to=[contact.email],
            subject=f"Your MVAI peer advisor [{case.ref}]",
            template="agency/advisor_intro",
            context=context,
            case_id=case.id,
            case_ref=case.ref,
            inbound_id=inbound_id,
            in_reply_to=thread[-1] if thread else None,
            references=thread,
            reply_to=reply_to,
        )
    return assignment


def _request_text(request: InboundMessage | None) -> str:
    if request is None or request.raw is None:
        return ""
    from mailbot.inbound.parse import parse

    return parse(request.raw).text[:20_000]


def set_status(
    session: Session,
    case: Case,
    status: str,
    actor: str,
    via: str,
    inbound_id: int | None = None,
    reason: str | None = None,
) -> None:
    previous = case.status
    case.status = status
    if status == "closed":
        case.closed_reason = reason
    event(session, case, "status", actor, via, inbound_id, old=previous, new=status, reason=reason)


def set_priority(
    session: Session,
    case: Case,
    priority: str,
    actor: str,
    via: str,
    inbound_id: int | None = None,
) -> None:
    previous = case.priority
    case.priority = priority
    case.priority_reason = f"set by {actor}"
    event(session, case, "priority", actor, via, inbound_id, old=previous, new=priority)


def add_note(
    session: Session, case: Case, text: str, actor: str, via: str, inbound_id: int | None = None
) -> None:
    event(session, case, "note", actor, via, inbound_id, text=text[:2000])


def crisis_alert(
    session: Session, cfg: Config, case: Case, inbound_id: int, sentence: str, sender: str
) -> None:
    """Tell the coordinators at once: a message shows a sign of personal crisis."""
    event(session, case, "crisis_alert", "mailbot", "system", inbound_id, sender=sender)
    enqueue(
        session,
        cfg,
        dedupe_key=f"crisis.{case.ref}.L{inbound_id}",
        kind="alert",
        to=list(cfg.coordinators.addresses),
        subject=f"[{case.ref}] URGENT: possible personal crisis in a message from {sender}",
        template="coordinator/crisis_alert",
        context={"case": summary(session, case), "sentence": sentence, "sender": sender},
        auto_submitted="auto-generated",
        case_id=case.id,
        case_ref=case.ref,
        inbound_id=inbound_id,
        references=thread_ids(session, cfg, case),
        reply_to=plus_address(cfg, case.token),
    )


def _header_block(raw: bytes | None) -> bytes | None:
    if raw is None:
        return None
    end = raw.find(b"\r\n\r\n")
    end = raw.find(b"\n\n") if end < 0 else end
    head = raw if end < 0 else raw[:end]
    return head + b"\r\n\r\n[body removed by retention]\r\n"


def purge_case(session: Session, cfg: Config, case: Case, actor: str, via: str) -> int:
    """Remove the message bodies and attachments of a closed case, keeping headers, the
    case summary and the audit trail; returns how many messages were cut down."""
    files = attachments.remove(cfg, case.ref)
    cut = 0
    for model in (InboundMessage, OutboundMessage):
        for row in session.scalars(select(model).where(model.case_id == case.id)):
            if row.raw and not row.raw.endswith(b"[body removed by retention]\r\n"):
                row.raw = _header_block(row.raw)
                cut += 1
    event(session, case, "purged", actor, via, messages=cut, attachment_files=files)
    return cut


_INSERT_FOLLOW_UPS = insert(FollowUp)


def plan_followups(session: Session, cfg: Config, case: Case, new_case: bool = False) -> int:
    """(Re)create the pending check-ins of a case from the cadence; returns how many.
    Missing ones go in with one INSERT (a new case's whole plan; ``new_case``: the case was
    inserted in this transaction, so it has none to look up)."""
    tz = cfg.tz
    anchor = case.incident_date or case.opened_at.astimezone(tz).date()
    planned = due_times(cadence.load(cfg.rules_dir), anchor, case.opened_at, tz)
    names = {phase.name for phase, _ in planned}
    existing = (
        {}
        if new_case
        else {
            f.phase: f for f in session.scalars(select(FollowUp).where(FollowUp.case_id == case.id))
        }
    )
    for row in existing.values():
        dropped = row.phase not in names and not row.phase.startswith("manual")
        if row.status == "pending" and dropped:
            row.status = "cancelled"
    missing, count = [], 0
    for phase, due in planned:
        row = existing.get(phase.name)
        if row is None:
            missing.append(
                {"case_id": case.id, "phase": phase.name, "due_at": due, "status": "pending"}
            )
        elif row.status == "pending":
            row.due_at = due
            count += 1
    if missing:
        session.execute(_INSERT_FOLLOW_UPS, missing)
    if not new_case:  # a new case's check-ins are all in the INSERT: nothing else changed
        session.flush()
    return count + len(missing)


def schedule_checkin(
    session: Session, cfg: Config, case: Case, when: date, actor: str, inbound_id: int | None
) -> FollowUp:
    """An extra check-in on ``when`` (asked by an advisor or coordinator)."""
    due = datetime.combine(when, time(cadence.load(cfg.rules_dir).send_hour), tzinfo=cfg.tz)
    phase = f"manual-{when.isoformat()}"
    row = session.scalars(
        select(FollowUp).where(FollowUp.case_id == case.id, FollowUp.phase == phase)
    ).first()
    if row is None:
        row = FollowUp(case_id=case.id, phase=phase, due_at=due, status="pending")
        session.add(row)
    else:
        row.status, row.due_at = "pending", due
    if case.checkins == "paused":
        case.checkins = "on"
    event(session, case, "checkin_scheduled", actor, "email", inbound_id, due=when.isoformat())
    session.flush()
    return row


def set_checkins(
    session: Session, case: Case, state: str, actor: str, via: str, inbound_id: int | None
) -> None:
    """Check-ins on, paused or stopped; stopping cancels the pending ones."""
    if state not in ("on", "paused", "stopped"):
        raise ValueError(state)
    previous = case.checkins
    case.checkins = state
    if state == "stopped":
        for row in session.scalars(
            select(FollowUp).where(FollowUp.case_id == case.id, FollowUp.status == "pending")
        ):
            row.status = "cancelled"
    event(session, case, "checkins", actor, via, inbound_id, old=previous, new=state)
