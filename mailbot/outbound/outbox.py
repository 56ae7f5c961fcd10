"""The outbox sender: pending rows -> transport, each row sent at most once.

A row is sent inside the transaction that marks it ``sent``: a conditional UPDATE takes it
(``FOR UPDATE SKIP LOCKED`` first on PostgreSQL, so other workers pass it by), the message is
handed to the transport, and the commit follows the server's reply at once. If the process
dies before that commit the database rolls the mark back and the row is sent again after a
restart; only a death in the instant between the server's reply and the commit can make a
second copy (RFC 1047), and that copy carries the same Message-ID. A temporary failure
reschedules the row with exponential backoff and jitter; after ``max_attempts`` tries, or on a
permanent failure, it is marked ``failed`` with the error (the dead letter).
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Iterable
from datetime import datetime, timedelta

from sqlalchemy import bindparam, select, update
from sqlalchemy.orm import Session, sessionmaker

from mailbot.config import Config
from mailbot.db import engine_of, reading, transaction
from mailbot.errors import TransportError
from mailbot.models import OutboundMessage, utcnow
from mailbot.outbound.transport import Transport

log = logging.getLogger(__name__)


def backoff(cfg: Config, attempts: int) -> timedelta:
    base = cfg.outgoing.retry_base_seconds * 2 ** max(0, attempts - 1)
    return timedelta(seconds=min(cfg.outgoing.retry_max_seconds, base) * random.uniform(0.8, 1.2))


def due_ids(factory: sessionmaker[Session], now: datetime, limit: int) -> list[int]:
    with reading(factory) as session:
        return list(
            session.scalars(
                select(OutboundMessage.id)
                .where(OutboundMessage.status == "pending", OutboundMessage.next_attempt_at <= now)
                .order_by(OutboundMessage.id)
                .limit(limit)
            )
        )


# One statement takes the row and loads it (RETURNING). A row another worker is sending is
# locked: SKIP LOCKED passes it by rather than wait for that worker's SMTP round trip (SQLite,
# one writer at a time, has no row locks and leaves the clause out). Built once, run with the
# row's id and the time on a Connection: an ORM session's set-up, identity map and flush cost
# more than the UPDATE itself (about 0.5 ms of the daemon's CPU per mail on PostgreSQL).
_TABLE = OutboundMessage.__table__
_TAKE = (
    update(_TABLE)
    .where(
        _TABLE.c.id
        == select(_TABLE.c.id)
        .where(
            _TABLE.c.id == bindparam("row_id"),
            _TABLE.c.status == "pending",
            _TABLE.c.next_attempt_at <= bindparam("now"),
        )
        .with_for_update(skip_locked=True)
        .scalar_subquery()
    )
    .values(status="sent", sent_at=bindparam("now"), attempts=_TABLE.c.attempts + 1)
    .returning(*_TABLE.c)
)
_PARTLY_REFUSED = (
    update(_TABLE).where(_TABLE.c.id == bindparam("row_id")).values(last_error=bindparam("error"))
)


def _send_one(
    factory: sessionmaker[Session], transport: Transport, row_id: int, now: datetime
) -> OutboundMessage | None:
    """Send one row in the transaction that marks it sent; None if another worker has it.
    The transport gets the row as a detached OutboundMessage; a ``last_error`` it sets (some
    recipients refused) is written in the same transaction."""
    with engine_of(factory).begin() as conn:
        taken = conn.execute(_TAKE, {"row_id": row_id, "now": now}).mappings().first()
        if taken is None:
            return None
        row = OutboundMessage(**taken)
        transport.send(row)
        if row.last_error:
            conn.execute(_PARTLY_REFUSED, {"row_id": row_id, "error": row.last_error})
        return row


def send_due(
    factory: sessionmaker[Session], transport: Transport, cfg: Config, limit: int = 200
) -> int:
    """Send the rows that are due; returns how many were sent."""
    now = utcnow()
    return send_rows(factory, transport, cfg, due_ids(factory, now, limit), now)


def send_rows(
    factory: sessionmaker[Session],
    transport: Transport,
    cfg: Config,
    row_ids: Iterable[int],
    now: datetime | None = None,
) -> int:
    """Send those of ``row_ids`` that are still pending and due (the daemon gives the rows a
    message has just committed, without asking the database which rows are due); returns how
    many were sent."""
    now = now or utcnow()
    sent = 0
    for row_id in row_ids:
        started = time.monotonic()
        try:
            row = _send_one(factory, transport, row_id, now)
        except TransportError as exc:
            outcome, attempts = _record_failure(factory, row_id, exc, cfg)
            log.info(
                "outbox=%d outcome=%s attempt=%d ms=%d error=%s",
                row_id,
                outcome,
                attempts,
                (time.monotonic() - started) * 1000,
                exc,
                extra={"outbox_id": row_id, "outcome": outcome, "attempt": attempts},
            )
            continue
        if row is None:
            continue
        sent += 1
        log.info(
            "outbox=%d kind=%s case=%s outcome=sent attempt=%d ms=%d",
            row.id,
            row.kind,
            row.case_id or "-",
            row.attempts,
            (time.monotonic() - started) * 1000,
            extra={
                "outbox_id": row.id,
                "kind": row.kind,
                "case_id": row.case_id,
                "outcome": "sent",
                "attempt": row.attempts,
            },
        )
    return sent


def _record_failure(
    factory: sessionmaker[Session], row_id: int, error: TransportError, cfg: Config
) -> tuple[str, int]:
    with transaction(factory) as session:
        row = session.get(OutboundMessage, row_id)
        assert row is not None
        row.attempts += 1
        row.last_error = str(error)
        if error.permanent or row.attempts >= cfg.outgoing.max_attempts:
            row.status = "failed"
        else:
            row.next_attempt_at = utcnow() + backoff(cfg, row.attempts)
        return row.status if row.status == "failed" else "retry", row.attempts
