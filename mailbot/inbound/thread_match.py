"""Thread matching: is this message a reply on an existing case?

In: a ``ParsedMessage``. Out: the ``Case`` it belongs to, or None for a new request. Order:
In-Reply-To/References against every Message-ID we sent or received on a case; then the case
token in a plus-address of our mailbox; then a case reference in the subject, but only from a
sender already on that case (so an unrelated message reusing an old subject opens its own case).
"""

from __future__ import annotations

import re

from sqlalchemy import select
from sqlalchemy.orm import Session

from mailbot.config import Config
from mailbot.inbound.parse import ParsedMessage
from mailbot.models import Case, CaseEvent, Contact, InboundMessage, OutboundMessage

_REF = re.compile(r"\bMVAI-(\d{4})-(\d{4,})\b", re.I)


def _by_message_ids(session: Session, ids: list[str]) -> Case | None:
    if not ids:
        return None
    out = session.scalars(
        select(OutboundMessage.case_id).where(
            OutboundMessage.message_id.in_(ids), OutboundMessage.case_id.is_not(None)
        )
    ).first()
    if out is None:
        out = session.scalars(
            select(InboundMessage.case_id).where(
                InboundMessage.message_id.in_(ids), InboundMessage.case_id.is_not(None)
            )
        ).first()
    return session.get(Case, out) if out is not None else None


def _by_token(session: Session, cfg: Config, msg: ParsedMessage) -> Case | None:
    local, _, domain = cfg.mailbot.address.lower().partition("@")
    local = local.split("+", 1)[0]
    for addr in (*msg.to, *msg.cc):
        a_local, _, a_domain = addr.partition("@")
        if a_domain == domain and a_local.startswith(local + "+"):
            token = a_local[len(local) + 1 :]
            case = session.scalars(select(Case).where(Case.token == token)).first()
            if case is not None:
                return case
    return None


def _sender_on_case(session: Session, cfg: Config, case: Case, sender: str) -> bool:
    if sender in {a.lower() for a in cfg.coordinators.addresses}:
        return True
    if case.contact_id is not None:
        contact = session.get(Contact, case.contact_id)
        if contact is not None and contact.email == sender:
            return True
    actor = session.scalars(
        select(CaseEvent.id).where(CaseEvent.case_id == case.id, CaseEvent.actor == sender)
    ).first()
    return actor is not None


def _by_subject(session: Session, cfg: Config, msg: ParsedMessage) -> Case | None:
    for match in _REF.finditer(msg.subject):
        ref = f"MVAI-{match.group(1)}-{match.group(2)}"
        case = session.scalars(select(Case).where(Case.ref == ref)).first()
        if case is not None and _sender_on_case(session, cfg, case, msg.from_addr):
            return case
    return None


def match_case(session: Session, cfg: Config, msg: ParsedMessage) -> Case | None:
    ids = [*msg.in_reply_to, *reversed(msg.references)]
    return (
        _by_message_ids(session, ids)
        or _by_token(session, cfg, msg)
        or _by_subject(session, cfg, msg)
    )
