"""The pipeline: one ledger row in, one outcome out.

    pending row -> size check -> parse -> duplicate check -> filters -> thread match
        reply:       case event on the matched case
        new request: extract -> open case (+ acknowledgement and alert in the outbox)

Everything for one message happens in one transaction with the row's new status, so a crash
leaves the row pending and it is simply processed again. A step that cannot go on raises
``Quarantine``; any unexpected exception quarantines the row too, with a one-line reason, and
``mailbot quarantine replay`` puts it back. A database that is locked or unreachable leaves the
row pending for the next round: nothing is lost and the daemon keeps going.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from sqlalchemy import Select, bindparam, select
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, aliased, defer, sessionmaker
from sqlalchemy.orm.attributes import set_committed_value

from mailbot.cases import attachments, replies, service
from mailbot.config import Config
from mailbot.db import transaction
from mailbot.errors import Discard, Quarantine
from mailbot.inbound import filters
from mailbot.inbound.extraction import extract
from mailbot.inbound.parse import ParsedMessage, parse
from mailbot.inbound.reader import Read
from mailbot.inbound.thread_match import match_case
from mailbot.models import Case, InboundMessage, utcnow
from mailbot.outbound.compose import new_mail
from mailbot.roster import Roster
from mailbot.roster import load as load_roster

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Outcome:
    ledger_id: int
    status: str
    kind: str | None
    case_ref: str | None
    reason: str | None
    ms: float
    mail: tuple[int, ...] = ()  # the outbox rows its transaction committed, to send now

    def line(self) -> str:
        return (
            f"ledger={self.ledger_id} kind={self.kind or '-'} case={self.case_ref or '-'} "
            f"outcome={self.status} ms={self.ms:.0f}"
        )

    def log_fields(self) -> dict[str, object]:
        """The same, as the fields of a JSON log line (``[mailbot] log_format = "json"``)."""
        return {
            "ledger_id": self.ledger_id,
            "kind": self.kind,
            "case_ref": self.case_ref,
            "outcome": self.status,
            "ms": round(self.ms),
        }


@dataclass(frozen=True)
class _Result:
    status: str
    kind: str
    case_ref: str | None = None
    case_id: int | None = None
    reason: str | None = None
    duplicate_of: int | None = None


class Pipeline:
    def __init__(self, cfg: Config, factory: sessionmaker[Session]) -> None:
        self.cfg = cfg
        self.factory = factory

    @cached_property
    def roster(self) -> Roster:
        return load_roster(self.cfg)

    @cached_property
    def filter_context(self) -> filters.FilterContext:
        return filters.FilterContext.for_mailbox(self.cfg.mailbot.address, self.cfg.rules_dir)

    def process(self, ledger_id: int, read: Read | None = None) -> Outcome:
        """Handle one ledger row; ``read`` is its extraction made ahead (``reader.Reader``)."""
        started = time.monotonic()
        try:
            with transaction(self.factory) as session:
                raw_given = read is not None and read.raw is not None
                found = session.execute(
                    _ROW_RAW_GIVEN if raw_given else _ROW, {"ledger_id": ledger_id}
                ).first()
                if found is None or found[0].status != "pending":
                    return Outcome(ledger_id, "skipped", None, None, "not pending", 0.0)
                row, earlier = found
                if raw_given:  # the reader loaded them moments ago: not again
                    set_committed_value(row, "raw", read.raw)
                result = self._handle(session, row, read, earlier)
                row.status, row.kind, row.reason = result.status, result.kind, result.reason
                row.case_id, row.duplicate_of = result.case_id, result.duplicate_of
                row.attempts += 1
                row.processed_at = utcnow()
                written = new_mail(session)
            mail = tuple(m.id for m in written)  # ids: the commit has flushed them
        except OperationalError as exc:
            log.warning("ledger=%d outcome=retry database: %s", ledger_id, _one_line(exc.orig))
            return Outcome(ledger_id, "pending", None, None, "database unavailable", _ms(started))
        except Quarantine as exc:
            result, mail = _Result("quarantined", "other", reason=exc.reason), ()
            self._finish(ledger_id, result)
        except Exception as exc:  # one message never stops the daemon
            reason = f"{type(exc).__name__}: {_one_line(exc)}"
            log.error("ledger=%d quarantined after an unexpected error: %s", ledger_id, reason)
            result, mail = _Result("quarantined", "other", reason=reason), ()
            self._finish(ledger_id, result)
        outcome = Outcome(
            ledger_id,
            result.status,
            result.kind,
            result.case_ref,
            result.reason,
            _ms(started),
            mail,
        )
        log.info(outcome.line(), extra=outcome.log_fields())
        return outcome

    def _finish(self, ledger_id: int, result: _Result) -> None:
        with transaction(self.factory) as session:
            row = session.get(InboundMessage, ledger_id)
            if row is None:
                return
            row.status, row.kind, row.reason = result.status, result.kind, result.reason
            row.attempts += 1
            row.processed_at = utcnow()

    def _handle(
        self, session: Session, row: InboundMessage, read: Read | None, earlier: int | None
    ) -> _Result:
        limit = self.cfg.limits.max_message_bytes
        if row.raw is None:
            raise Quarantine("no raw bytes stored for this message")
        if row.size > limit:
            raise Quarantine(
                f"message is {row.size} bytes, over [limits] max_message_bytes = {limit}; "
                "the original stays in the mailbox"
            )
        msg = parse(row.raw)
        message_id = msg.message_id or row.message_id
        if message_id != row.message_id:  # the row's query checked the ledger's reading only
            earlier = session.scalar(_first_earlier(InboundMessage, message_id, row.sha256, row.id))
        result = self._handle_parsed(session, row, msg, read, earlier)
        # Set after the handling's queries, so that they go in the UPDATE of the outcome rather
        # than in one of their own (the ledger stored a first reading of them).
        row.message_id = message_id
        row.from_addr = msg.from_addr or row.from_addr
        row.subject = msg.subject[:500] or row.subject
        return result

    def _handle_parsed(
        self,
        session: Session,
        row: InboundMessage,
        msg: ParsedMessage,
        read: Read | None,
        duplicate: int | None,
    ) -> _Result:
        if duplicate is not None:
            return _Result(
                "ignored",
                "duplicate",
                duplicate_of=duplicate,
                reason=f"same Message-ID and content as ledger #{duplicate}",
            )
        try:
            filters.classify(msg, self.filter_context)
        except Discard as exc:
            return _Result("ignored", exc.kind, reason=exc.reason)
        case = match_case(session, self.cfg, msg)
        if case is not None:
            outcome = replies.handle_reply(session, self.cfg, self.roster, case, row, msg)
            self._attachments(session, case, row, msg)
            return _Result("processed", "reply", case.ref, case.id, reason=outcome)
        if not msg.text.strip() and not msg.subject.strip():
            return _Result("ignored", "other", reason="empty message: no subject and no text")
        return self._open(session, row, msg, read)

    def _open(
        self, session: Session, row: InboundMessage, msg: ParsedMessage, read: Read | None
    ) -> _Result:
        if read is not None and read.error is not None:
            raise Quarantine(read.error)
        if read is not None and read.extraction is not None:
            fields = read.extraction
        else:
            fields = extract(msg, self.cfg.rules_dir)
        case = service.open_case(session, self.cfg, row, msg, fields, self.roster)
        self._attachments(session, case, row, msg)
        return _Result("processed", "request", case.ref, case.id)

    def _attachments(
        self, session: Session, case: Case, row: InboundMessage, msg: ParsedMessage
    ) -> None:
        """Files for the attachments (a full disk raises Quarantine: all of it rolls back)."""
        stored = attachments.save(self.cfg, case.ref, row.id, msg.message)
        if stored:
            actor = msg.from_addr or "unknown"
            service.event(session, case, "attachments", actor, "email", row.id, files=stored)


def _first_earlier(
    rows: type[InboundMessage], message_id: Any, sha256: Any, before: Any
) -> Select[tuple[int]]:
    """The first ledger row before ``before`` with this Message-ID and content: what a
    message is a duplicate of (none without a Message-ID: NULL equals nothing). The
    arguments are values, or the columns of the row being checked (a correlated subquery)."""
    return (
        select(rows.id)
        .where(rows.message_id == message_id, rows.sha256 == sha256, rows.id < before)
        .order_by(rows.id)
        .limit(1)
    )


def _row_statement(raw_given: bool) -> Select[tuple[InboundMessage, int | None]]:
    """The row, locked (another worker, on PostgreSQL, may hold it: skipped rather than
    waited for), with the first earlier row of the same Message-ID and content as the ledger
    stored them: the duplicate check in the same round trip. Without the raw bytes when the
    reader has them. By id alone: the caller checks that it is pending. With the status in
    the WHERE clause PostgreSQL's planner took the status index (it guesses "pending" rare)
    and walked every pending entry, and the dead ones of rows processed since the last
    vacuum, for each request: 49 index pages per lookup with 350 rows in the ledger."""
    duplicate = _first_earlier(
        aliased(InboundMessage), InboundMessage.message_id, InboundMessage.sha256, InboundMessage.id
    ).scalar_subquery()
    statement = (
        select(InboundMessage, duplicate)
        .where(InboundMessage.id == bindparam("ledger_id"))
        .with_for_update(skip_locked=True, of=InboundMessage)
    )
    return statement.options(defer(InboundMessage.raw)) if raw_given else statement


_ROW, _ROW_RAW_GIVEN = _row_statement(False), _row_statement(True)


def _one_line(value: object, limit: int = 300) -> str:
    text = " ".join(str(value).split())
    return text[:limit]


def _ms(started: float) -> float:
    return (time.monotonic() - started) * 1000
