"""The outbox sender: pending rows -> transport, each row sent at most once.

A row is claimed by a conditional UPDATE that sets a lease (atomic on SQLite and PostgreSQL),
sent, and marked ``sent`` in a short transaction. A temporary failure reschedules it with
exponential backoff and jitter; after ``max_attempts`` tries, or on a permanent failure, it is
marked ``failed`` with the error (the dead letter). A process that dies holding a lease leaves
the row to be taken again when the lease expires.
"""

from __future__ import annotations

import logging
import random
import time
from datetime import datetime, timedelta

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session, sessionmaker

from mailbot.config import Config
from mailbot.db import transaction
from mailbot.errors import TransportError
from mailbot.models import OutboundMessage, utcnow
from mailbot.outbound.transport import Transport

log = logging.getLogger(__name__)

LEASE = timedelta(minutes=2)


def _claim(factory: sessionmaker[Session], row_id: int, now: datetime) -> bool:
    with transaction(factory) as session:
        result = session.execute(
            update(OutboundMessage)
            .where(
                OutboundMessage.id == row_id,
                OutboundMessage.status == "pending",
                or_(OutboundMessage.lease_until.is_(None), OutboundMessage.lease_until < now),
            )
            .values(lease_until=now + LEASE)
        )
        return result.rowcount == 1


def backoff(cfg: Config, attempts: int) -> timedelta:
    base = cfg.outgoing.retry_base_seconds * 2 ** max(0, attempts - 1)
    return timedelta(seconds=min(cfg.outgoing.retry_max_seconds, base) * random.uniform(0.8, 1.2))


def release_leases(factory: sessionmaker[Session]) -> int:
    """Free every lease (single-process SQLite start-up: no other holder can exist)."""
    with transaction(factory) as session:
        result = session.execute(
            update(OutboundMessage)
            .where(OutboundMessage.status == "pending", OutboundMessage.lease_until.is_not(None))
            .values(lease_until=None)
        )
        return result.rowcount


def send_due(
    factory: sessionmaker[Session], transport: Transport, cfg: Config, limit: int = 200
) -> int:
    """Send the rows that are due; returns how many were sent."""
    now = utcnow()
    with factory() as session:
        due = list(
            session.scalars(
                select(OutboundMessage.id)
                .where(
                    OutboundMessage.status == "pending",
                    OutboundMessage.next_attempt_at <= now,
                    or_(OutboundMessage.lease_until.is_(None), OutboundMessage.lease_until < now),
                )
                .order_by(OutboundMessage.id)
                .limit(limit)
            )
        )
    sent = 0
    for row_id in due:
        if not _claim(factory, row_id, now):
            continue
        with factory() as session:
            row = session.get(OutboundMessage, row_id)
            assert row is not None
            started = time.monotonic()
            error: TransportError | None = None
            try:
                transport.send(row)
            except TransportError as exc:
                error = exc
            _record(factory, row, error, cfg)
            outcome = "sent" if error is None else ("failed" if error.permanent else "retry")
            log.info(
                "outbox=%d kind=%s case=%s outcome=%s attempt=%d ms=%d",
                row.id,
                row.kind,
                row.case_id or "-",
                outcome,
                row.attempts + 1,
                (time.monotonic() - started) * 1000,
            )
            if error is None:
                sent += 1
    return sent


def _record(
    factory: sessionmaker[Session], row: OutboundMessage, error: TransportError | None, cfg: Config
) -> None:
    with transaction(factory) as session:
        current = session.get(OutboundMessage, row.id)
        assert current is not None
        current.attempts += 1
        current.lease_until = None
        if error is None:
            current.status = "sent"
            current.sent_at = utcnow()
            current.last_error = row.last_error
        elif error.permanent or current.attempts >= cfg.outgoing.max_attempts:
            current.status = "failed"
            current.last_error = str(error)
        else:
            current.last_error = str(error)
            current.next_attempt_at = utcnow() + backoff(cfg, current.attempts)
