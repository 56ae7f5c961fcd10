"""The coordinators' daily digest: what needs a decision, and counts that would show a loss.

In: the database and a period end (`now`). Out: per coordinator, one outbox row and one
`digests` row for the local day, written in one transaction, so a restart never sends a
second digest for the same day. The digest carries references, counts and the extracted
fields of cases, never message bodies or victims' names.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session, selectinload, sessionmaker

from mailbot.config import Config
from mailbot.db import reading, transaction
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
from mailbot.outbound.compose import enqueue
from mailbot.vocabulary import INCIDENT_TYPES, SERVICES

ACTIVITY = ("reply", "assigned", "checkin_sent", "note", "status", "opened")


@dataclass
class DigestData:
    period: str
    since: datetime
    until: datetime
    new_cases: list[dict[str, Any]] = field(default_factory=list)
    urgent_unassigned: list[dict[str, Any]] = field(default_factory=list)
    checkins_due: list[dict[str, Any]] = field(default_factory=list)
    checkins_overdue: list[dict[str, Any]] = field(default_factory=list)
    unanswered: list[dict[str, Any]] = field(default_factory=list)
    quiet_cases: list[dict[str, Any]] = field(default_factory=list)
    milestones: list[dict[str, Any]] = field(default_factory=list)
    quarantined: list[dict[str, Any]] = field(default_factory=list)
    failed_mail: list[dict[str, Any]] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)


def _line(case: Case, advisors: dict[int, str]) -> dict[str, Any]:
    return {
        "ref": case.ref,
        "priority": case.priority,
        "status": case.status,
        "agency": case.agency.name if case.agency else "agency unknown",
        "place": ", ".join(p for p in (case.city, case.state) if p) or "place unknown",
        "type": INCIDENT_TYPES.get(case.incident_type or "", "no incident"),
        "services": ", ".join(SERVICES[s] for s in case.services or [] if s in SERVICES) or "none",
        "advisor": advisors.get(case.id),
    }


def _hours(delta: timedelta) -> str:
    hours = int(delta.total_seconds() // 3600)
    return f"{hours // 24}d {hours % 24}h" if hours >= 24 else f"{hours}h"


def _activity(session: Session, case_ids: list[int]) -> dict[int, list[CaseEvent]]:
    """The activity events of the open cases, oldest first, in one query."""
    by_case: dict[int, list[CaseEvent]] = {}
    for ev in session.scalars(
        select(CaseEvent)
        .where(CaseEvent.kind.in_(ACTIVITY), CaseEvent.case_id.in_(case_ids))
        .order_by(CaseEvent.id)
    ):
        by_case.setdefault(ev.case_id, []).append(ev)
    return by_case


def collect(session: Session, cfg: Config, since: datetime, now: datetime) -> DigestData:
    """Everything the digest shows, with a handful of queries whatever the number of cases."""
    tz = cfg.tz
    local_now = now.astimezone(tz)
    data = DigestData(local_now.date().isoformat(), since, now)
    advisors = dict(
        session.execute(
            select(Assignment.case_id, Assignment.advisor_name).where(Assignment.ended_at.is_(None))
        ).all()
    )
    with_agency = selectinload(Case.agency)
    open_cases = list(
        session.scalars(
            select(Case).options(with_agency).where(Case.status != "closed").order_by(Case.id)
        )
    )
    for case in session.scalars(
        select(Case)
        .options(with_agency)
        .where(Case.opened_at >= since, Case.opened_at < now)
        .order_by(Case.id)
    ):
        data.new_cases.append(_line(case, advisors))
    activity = _activity(session, [c.id for c in open_cases])
    for case in open_cases:
        line = _line(case, advisors)
        if case.priority == "P1" and line["advisor"] is None:
            data.urgent_unassigned.append({**line, "waiting": _hours(now - case.opened_at)})
        events = activity.get(case.id, [])
        if events and now - events[-1].at > timedelta(days=14):
            data.quiet_cases.append({**line, "quiet": _hours(now - events[-1].at)})
        replies = [e for e in events if e.kind == "reply"]
        last = replies[-1] if replies else None
        if last is not None and last.detail.get("role") == "agency":
            answered = any(e.id > last.id and e.actor != last.actor for e in events)
            if not answered and now - last.at > timedelta(hours=24):
                data.unanswered.append({**line, "waiting": _hours(now - last.at)})
    end_of_day = datetime.combine(local_now.date() + timedelta(days=1), datetime.min.time(), tz)
    for row, ref in session.execute(
        select(FollowUp, Case.ref)
        .join(Case, Case.id == FollowUp.case_id)
        .where(FollowUp.status == "pending", FollowUp.due_at < end_of_day + timedelta(days=14))
        .order_by(FollowUp.due_at)
    ):
        entry = {
            "ref": ref,
            "phase": row.phase,
            "due": row.due_at.astimezone(tz).strftime("%b %-d %H:%M"),
        }
        if row.due_at < now:
            data.checkins_overdue.append(entry)
        elif row.due_at < end_of_day:
            data.checkins_due.append(entry)
        elif row.phase.startswith("anniversary"):
            data.milestones.append(entry)
    for row in session.scalars(
        select(InboundMessage)
        .where(InboundMessage.status == "quarantined")
        .order_by(InboundMessage.id)
    ):
        data.quarantined.append(
            {
                "id": row.id,
                "since": _hours(now - row.received_at),
                "reason": (row.reason or "")[:120],
            }
        )
    for row in session.scalars(
        select(OutboundMessage)
        .where(OutboundMessage.status == "failed")
        .order_by(OutboundMessage.id)
    ):
        data.failed_mail.append(
            {
                "id": row.id,
                "kind": row.kind,
                "error": (row.last_error or "")[:120],
                "ref": row.case.ref if row.case else None,
            }
        )
    received = session.execute(
        select(InboundMessage.status, func.count(InboundMessage.id))
        .where(InboundMessage.received_at >= since, InboundMessage.received_at < now)
        .group_by(InboundMessage.status)
    ).all()
    data.counts = {s: 0 for s in ("processed", "ignored", "quarantined", "pending")}
    data.counts.update({status: n for status, n in received})
    data.counts["received"] = sum(n for _, n in received)
    return data


def _since(session: Session, recipient: str, now: datetime) -> datetime:
    last = session.scalar(select(func.max(Digest.created_at)).where(Digest.recipient == recipient))
    return last if last is not None else now - timedelta(days=1)


def preview(
    factory: sessionmaker[Session], cfg: Config, recipient: str, now: datetime | None = None
) -> DigestData:
    now = now or utcnow()
    with reading(factory) as session:
        return collect(session, cfg, _since(session, recipient, now), now)


def missed_today(factory: sessionmaker[Session], cfg: Config, now: datetime | None = None) -> bool:
    """Whether today's digest time has passed while the database was already in use.

    At start, the daemon sends the digest it missed. A database with no mail and no case from
    before today's digest time (a new install, started after that time) missed nothing: it
    waits for tomorrow's, rather than greeting the coordinators with an empty one.
    """
    now = (now or utcnow()).astimezone(cfg.tz)
    hour, minute = (int(x) for x in cfg.digest.time.split(":"))
    due = now.replace(hour=hour, minute=minute, second=0, microsecond=0)
    if now < due:
        return False
    with transaction(factory) as session:
        for column in (InboundMessage.received_at, Case.opened_at):
            if session.scalars(select(column).where(column < due).limit(1)).first() is not None:
                return True
    return False


def send(
    factory: sessionmaker[Session],
    cfg: Config,
    now: datetime | None = None,
    recipients: list[str] | None = None,
) -> list[str]:
    """Write today's digest for each coordinator not yet served today; returns who got one."""
    now = now or utcnow()
    served = []
    for recipient in recipients or list(cfg.coordinators.addresses):
        recipient = recipient.lower()
        with transaction(factory) as session:
            period = now.astimezone(cfg.tz).date().isoformat()
            exists = session.scalars(
                select(Digest.id).where(Digest.recipient == recipient, Digest.period == period)
            ).first()
            if exists:
                continue
            since = _since(session, recipient, now)
            data = collect(session, cfg, since, now)
            session.add(Digest(recipient=recipient, period=period, since=since, created_at=now))
            enqueue(
                session,
                cfg,
                dedupe_key=f"digest.{recipient}.{period}",
                kind="digest",
                to=[recipient],
                subject=f"MVAI daily digest {period}: {len(data.new_cases)} new, "
                f"{len(data.urgent_unassigned)} urgent without advisor",
                template="digest/daily",
                context={"d": data, "organisation": cfg.mailbot.organisation},
                auto_submitted="auto-generated",
            )
            served.append(recipient)
    return served
