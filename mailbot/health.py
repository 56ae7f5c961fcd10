"""Health counters: one set of queries behind `mailbot status` and the Prometheus endpoint.

``counters`` reads the ledger, the outbox, the follow-ups, the cases and the mailbox state in
one short read-only session. The values are the whole database's, so on PostgreSQL every
worker reports the same numbers.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from mailbot.db import reading
from mailbot.models import Case, FollowUp, InboundMessage, MailboxState, OutboundMessage, utcnow

LEDGER_STATUSES = ("processed", "ignored", "quarantined", "pending")


def counters(factory: sessionmaker[Session]) -> dict[str, Any]:
    """received, processed, ignored, quarantined, pending; outbox_pending, outbox_sent,
    outbox_failed; followups_due; open_cases; last_successful_poll (an aware datetime or
    None: only IMAP records its polls)."""
    with reading(factory) as session:
        ledger_counts = dict(
            session.execute(
                select(InboundMessage.status, func.count(InboundMessage.id)).group_by(
                    InboundMessage.status
                )
            ).all()
        )
        outbox_counts = dict(
            session.execute(
                select(OutboundMessage.status, func.count(OutboundMessage.id)).group_by(
                    OutboundMessage.status
                )
            ).all()
        )
        due = session.scalar(
            select(func.count(FollowUp.id)).where(
                FollowUp.status == "pending", FollowUp.due_at <= utcnow()
            )
        )
        last_poll: datetime | None = session.scalar(select(func.max(MailboxState.last_poll_at)))
        open_cases = session.scalar(select(func.count(Case.id)).where(Case.status != "closed"))
    return {
        "received": sum(ledger_counts.values()),
        **{status: ledger_counts.get(status, 0) for status in LEDGER_STATUSES},
        "outbox_pending": outbox_counts.get("pending", 0),
        "outbox_sent": outbox_counts.get("sent", 0),
        "outbox_failed": outbox_counts.get("failed", 0),
        "followups_due": due or 0,
        "open_cases": open_cases or 0,
        "last_successful_poll": last_poll,
    }
