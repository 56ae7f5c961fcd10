"""The ledger: raw bytes are committed before anything else happens.

In: raw messages from a mailbox (IMAP UID or Maildir file name) or the command line.
Out: ``inbound_messages`` rows in status ``pending``, one per (mailbox, uidvalidity, uid) or
(mailbox, source name); storing the same one again returns the existing row. The mailbox marks
a message on the server only after ``store_batch`` has committed. Processing runs from here, so
a crash at any point is recovered at restart without loss.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from email.parser import BytesHeaderParser
from email.policy import compat32

from sqlalchemy import select
from sqlalchemy.exc import DataError
from sqlalchemy.orm import Session, sessionmaker

from mailbot.db import reading, transaction
from mailbot.inbound.parse import decode_text, message_ids
from mailbot.models import InboundMessage

log = logging.getLogger(__name__)

# Headers a delivery adds on the way in; the same message delivered twice differs only here.
_TRACE_HEADERS = frozenset(
    {b"received", b"return-path", b"delivered-to", b"x-original-to", b"x-delivered-to"}
)
_HEADER_END = re.compile(rb"\r?\n\r?\n")


@dataclass(frozen=True)
class RawMail:
    """One message as fetched: where it came from and its bytes."""

    mailbox: str
    raw: bytes
    uidvalidity: int | None = None
    uid: int | None = None
    source_name: str | None = None
    size: int | None = None  # the real size when only the header block was kept


def content_hash(raw: bytes) -> str:
    """sha256 of the message without its trace headers, so redeliveries hash alike."""
    data = raw.replace(b"\r\n", b"\n")
    match = _HEADER_END.search(data)
    head, body = (data[: match.start()], data[match.end() :]) if match else (data, b"")
    kept: list[bytes] = []
    keep = True
    for line in head.split(b"\n"):
        if line[:1] in (b" ", b"\t"):
            if keep:
                kept.append(line)
            continue
        name = line.split(b":", 1)[0].strip().lower()
        keep = name not in _TRACE_HEADERS
        if keep:
            kept.append(line)
    digest = hashlib.sha256(b"\n".join(kept))
    digest.update(b"\n\n")
    digest.update(body)
    return digest.hexdigest()


def _sniff(raw: bytes) -> tuple[str | None, str | None, str | None]:
    """Message-ID, From and Subject from the header block; never raises."""
    try:
        headers = BytesHeaderParser(policy=compat32).parsebytes(raw[:262_144])
        ids = message_ids(str(headers.get("Message-ID") or ""))
        sender = decode_text(headers.get("From") or "")[:320] or None
        subject = decode_text(headers.get("Subject") or "")[:500] or None
    except Exception:  # the ledger must accept any bytes at all
        return None, None, None
    return (ids[0][:998] if ids else None), sender, subject


Key = tuple[str, int | None, int | str]  # (mailbox, uidvalidity, uid) or (mailbox, None, name)


def _key(mail: RawMail) -> Key | None:
    if mail.uid is not None:
        return (mail.mailbox, mail.uidvalidity, mail.uid)
    if mail.source_name is not None:
        return (mail.mailbox, None, mail.source_name)
    return None  # nothing names it: always a new row


def _ids_by_uid(
    session: Session, mailbox: str, uidvalidity: int | None, uids: Sequence[int]
) -> dict[int, int]:
    """{uid: ledger id} of the rows among ``uids`` held for this mailbox and UIDVALIDITY."""
    rows = session.execute(
        select(InboundMessage.uid, InboundMessage.id).where(
            InboundMessage.mailbox == mailbox,
            InboundMessage.uidvalidity == uidvalidity,
            InboundMessage.uid.in_(list(uids)),
        )
    )
    return {int(uid): ledger_id for uid, ledger_id in rows}


def _existing(session: Session, mails: Sequence[RawMail]) -> dict[Key, int]:
    """The ledger ids of those of ``mails`` that are stored already: one query per mailbox
    and UIDVALIDITY (or per mailbox, for named messages), not one per message."""
    uids: dict[tuple[str, int | None], list[int]] = {}
    names: dict[str, list[str]] = {}
    for mail in mails:
        if mail.uid is not None:
            uids.setdefault((mail.mailbox, mail.uidvalidity), []).append(mail.uid)
        elif mail.source_name is not None:
            names.setdefault(mail.mailbox, []).append(mail.source_name)
    found: dict[Key, int] = {}
    for (mailbox, uidvalidity), group in uids.items():
        held = _ids_by_uid(session, mailbox, uidvalidity, group)
        found.update(((mailbox, uidvalidity, uid), i) for uid, i in held.items())
    for mailbox, group in names.items():
        rows = session.execute(
            select(InboundMessage.source_name, InboundMessage.id).where(
                InboundMessage.mailbox == mailbox, InboundMessage.source_name.in_(group)
            )
        )
        found.update(((mailbox, None, name), i) for name, i in rows)
    return found


def store_batch(factory: sessionmaker[Session], mails: Sequence[RawMail]) -> list[int]:
    """Commit the raw bytes of ``mails`` in one transaction; returns their ledger ids (the
    existing row's for a message stored before, or twice in ``mails``).

    A value the database refuses (a header field it cannot hold) must not keep a message, or
    the lot fetched with it, out of the ledger at every poll: the lot is then stored a message
    at a time, and a message refused alone is stored with its raw bytes only (the pipeline
    reads the headers again)."""
    try:
        return _store(factory, mails, sniff=True)
    except DataError as exc:
        if len(mails) > 1:
            return [i for mail in mails for i in store_batch(factory, [mail])]
        # the error's kind only: the server's text may quote the refused value
        kind = f"{type(exc.orig).__name__}, SQLSTATE {getattr(exc.orig, 'sqlstate', '?')}"
        log.warning("ledger: %s stored without its header fields (%s)", _name(mails[0]), kind)
        return _store(factory, mails, sniff=False)


def _name(mail: RawMail) -> str:
    if mail.uid is not None:
        return f"{mail.mailbox} UID {mail.uid}"
    return f"{mail.mailbox} {mail.source_name or '(unnamed)'}"


def _store(factory: sessionmaker[Session], mails: Sequence[RawMail], sniff: bool) -> list[int]:
    with transaction(factory) as session:
        existing: dict[Key, int | InboundMessage] = dict(_existing(session, mails))
        stored: list[int | InboundMessage] = []
        for mail in mails:
            key = _key(mail)
            if key is not None and key in existing:
                stored.append(existing[key])
                continue
            message_id, sender, subject = _sniff(mail.raw) if sniff else (None, None, None)
            row = InboundMessage(
                mailbox=mail.mailbox,
                uidvalidity=mail.uidvalidity,
                uid=mail.uid,
                source_name=mail.source_name,
                message_id=message_id,
                sha256=content_hash(mail.raw),
                raw=mail.raw,
                size=mail.size if mail.size is not None else len(mail.raw),
                from_addr=sender,
                subject=subject,
                status="pending",
            )
            session.add(row)
            stored.append(row)
            if key is not None:
                existing[key] = row
        session.flush()  # the new rows in one INSERT (PostgreSQL), their ids back
        return [item if isinstance(item, int) else item.id for item in stored]


def known(
    factory: sessionmaker[Session], mailbox: str, uidvalidity: int, uids: Sequence[int]
) -> set[int]:
    """The UIDs among ``uids`` that the ledger already holds for this mailbox and UIDVALIDITY."""
    if not uids:
        return set()
    with reading(factory) as session:
        return set(_ids_by_uid(session, mailbox, uidvalidity, uids))


def raw_items(
    factory: sessionmaker[Session], ids: Sequence[int], max_bytes: int
) -> list[tuple[int, bytes]]:
    """The raw bytes of the pending rows among ``ids`` (none over ``max_bytes``), for reading
    ahead of the pipeline. Looked up by id alone, the rest checked here: with the status in
    the query PostgreSQL's planner took the status index (see ``pipeline._row_statement``)."""
    with reading(factory) as session:
        rows = session.execute(
            select(
                InboundMessage.id, InboundMessage.status, InboundMessage.size, InboundMessage.raw
            ).where(InboundMessage.id.in_(list(ids)))
        )
        return [
            (ledger_id, raw)
            for ledger_id, status, size, raw in rows
            if status == "pending" and size <= max_bytes and raw is not None
        ]


def pending_ids(factory: sessionmaker[Session], limit: int = 500, after: int = 0) -> list[int]:
    """Ids of pending rows, oldest first, those above ``after`` only."""
    with reading(factory) as session:
        return list(
            session.scalars(
                select(InboundMessage.id)
                .where(InboundMessage.status == "pending", InboundMessage.id > after)
                .order_by(InboundMessage.id)
                .limit(limit)
            )
        )
