"""The follow-up sweep: due check-ins -> outbox, once each.

Run by the scheduler every minute (and by tests with a chosen ``now``). Each due row is taken
in its own transaction (`FOR UPDATE SKIP LOCKED` on PostgreSQL, so two workers never take the
same row; SQLite runs one process) and, in that transaction, marked sent together with its
outbox row, whose unique key makes a second copy impossible. A closed case or stopped
check-ins cancel the row; paused check-ins leave it waiting; a row due longer ago than the
cadence's grace (the daemon was down) is skipped and recorded, never sent late in a burst.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from mailbot.cases import service
from mailbot.config import Config
from mailbot.db import reading, transaction
from mailbot.jobs import cadence
from mailbot.models import Case, Contact, FollowUp, utcnow
from mailbot.outbound.compose import enqueue, plus_address, valid_address

log = logging.getLogger(__name__)


@dataclass
class SweepResult:
    sent: int = 0
    skipped: int = 0
    cancelled: int = 0


def due_ids(factory: sessionmaker[Session], now: datetime, limit: int = 500) -> list[int]:
    with reading(factory) as session:
        return list(
            session.scalars(
                select(FollowUp.id)
                .where(FollowUp.status == "pending", FollowUp.due_at <= now)
                .order_by(FollowUp.due_at, FollowUp.id)
                .limit(limit)
            )
        )


def sweep(factory: sessionmaker[Session], cfg: Config, now: datetime | None = None) -> SweepResult:
    now = now or utcnow()
    result = SweepResult()
    plan = cadence.load(cfg.rules_dir)
    for row_id in due_ids(factory, now):
        with transaction(factory) as session:
            row = session.scalars(
                select(FollowUp)
                .where(FollowUp.id == row_id, FollowUp.status == "pending")
                .with_for_update(skip_locked=True)
            ).first()
            if row is None:
                continue
            outcome = _handle(session, cfg, plan, row, now)
            if outcome != "waiting":
                setattr(result, outcome, getattr(result, outcome) + 1)
    if result.sent or result.skipped or result.cancelled:
        log.info(
            "follow-ups: sent=%d skipped=%d cancelled=%d",
            result.sent,
            result.skipped,
            result.cancelled,
        )
    return result


def _handle(
    session: Session, cfg: Config, plan: cadence.Cadence, row: FollowUp, now: datetime
) -> str:
    case = session.get(Case, row.case_id)
    assert case is not None
    if case.status == "closed" or case.checkins == "stopped":
        row.status = "cancelled"
        return "cancelled"
    if case.checkins == "paused":
        return "waiting"
    contact = session.get(Contact, case.contact_id) if case.contact_id else None
    late = now - row.due_at > plan.grace
    if late or contact is None or not valid_address(contact.email):
        row.status = "skipped"
        reason = (
            f"due {row.due_at.isoformat(timespec='minutes')}, too late" if late else "no contact"
        )
        service.event(
            session, case, "checkin_skipped", "mailbot", "system", phase=row.phase, reason=reason
        )
        return "skipped"
    assignment = service.active_assignment(session, case)
    thread = service.thread_ids(session, cfg, case)
    template = plan.template(row.phase)
    enqueue(
        session,
        cfg,
        dedupe_key=f"checkin.{case.ref}.{row.phase}",
        kind="checkin",
        to=[contact.email],
        cc=[assignment.advisor_email] if assignment else [],
        subject=f"Checking in [{case.ref}]",
        template=f"checkin/{template}",
        context={
            "case": service.summary(session, case),
            "advisor": assignment.advisor_name if assignment else None,
            "organisation": cfg.mailbot.organisation,
            "coordinator": cfg.coordinators,
        },
        case_id=case.id,
        case_ref=case.ref,
        in_reply_to=thread[-1] if thread else None,
        references=thread,
        reply_to=plus_address(cfg, case.token),
    )
    row.status, row.sent_at = "sent", now
    service.event(session, case, "checkin_sent", "mailbot", "system", phase=row.phase)
    return "sent"
