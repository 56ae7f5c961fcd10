"""The ledger and the Maildir source: bytes first, once per source key, marked after commit."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import event, func, select
from sqlalchemy.orm import Session, sessionmaker

from mailbot.inbound import ledger
from mailbot.inbound.ledger import RawMail, content_hash
from mailbot.inbound.mailbox import MaildirSource
from mailbot.models import InboundMessage
from tests.conftest import request_message


def test_content_hash_ignores_trace_headers_only():
    raw = request_message(message_id="<h@x.test>").replace(b"\n", b"\r\n")
    traced = (
        b"Return-Path: <a@b.test>\r\nReceived: from a\r\n by b; Sat, 21 Nov 2026\r\n"
        b"Delivered-To: mvai@mvai.test\r\n" + raw.replace(b"\r\n", b"\n")
    )
    assert content_hash(raw) == content_hash(traced)
    assert content_hash(raw) != content_hash(raw.replace(b"Harlan", b"Harlen"))
    assert content_hash(raw) != content_hash(raw.replace(b"Subject: ", b"Subject: Re: "))


def test_store_batch_is_idempotent_per_source_key(factory: sessionmaker[Session]):
    raw = request_message()
    first = ledger.store_batch(factory, [RawMail("imap:x", raw, uidvalidity=7, uid=1)])
    again = ledger.store_batch(factory, [RawMail("imap:x", raw, uidvalidity=7, uid=1)])
    other = ledger.store_batch(factory, [RawMail("imap:x", raw, uidvalidity=8, uid=1)])
    assert first == again and other != first
    with factory() as session:
        row = session.get(InboundMessage, first[0])
        assert row.raw == raw and row.status == "pending" and row.size == len(raw)
        assert row.sha256 == content_hash(raw)
        assert session.scalar(select(func.count(InboundMessage.id))) == 2
    assert ledger.known(factory, "imap:x", 7, [1, 2, 3]) == {1}


def test_a_batch_is_looked_up_and_stored_in_a_few_statements_in_order(
    factory: sessionmaker[Session],
):
    raws = [request_message(message_id=f"<b{n}@x.test>") for n in range(5)]
    [old_uid] = ledger.store_batch(factory, [RawMail("imap:x", raws[0], uidvalidity=7, uid=1)])
    [old_name] = ledger.store_batch(factory, [RawMail("cli", raws[1], source_name="n1")])
    mails = [
        RawMail("imap:x", raws[2], uidvalidity=7, uid=2),
        RawMail("imap:x", raws[0], uidvalidity=7, uid=1),  # stored before
        RawMail("cli", raws[1], source_name="n1"),  # stored before
        RawMail("imap:x", raws[3], uidvalidity=7, uid=3),
        RawMail("imap:x", raws[3], uidvalidity=7, uid=3),  # twice in this batch
        RawMail("imap:x", raws[4], uidvalidity=9, uid=1),  # another UIDVALIDITY: new
        RawMail("cli", raws[4]),  # no name: always new
    ]
    engine = factory.kw["bind"]
    statements: list[str] = []

    def seen(conn, cursor, statement, params, context, executemany):  # type: ignore[no-untyped-def]
        statements.append(statement)

    event.listen(engine, "before_cursor_execute", seen)
    ids = ledger.store_batch(factory, mails)
    event.remove(engine, "before_cursor_execute", seen)
    assert ids[1:3] == [old_uid, old_name] and ids[3] == ids[4]
    assert len(set(ids)) == 6 and ids[0] > old_name
    with factory() as session:
        rows = {r.id: r for r in session.scalars(select(InboundMessage))}
    assert len(rows) == 2 + 4
    for ledger_id, mail in zip(ids, mails, strict=True):
        row = rows[ledger_id]
        assert (row.raw, row.uidvalidity, row.uid) == (mail.raw, mail.uidvalidity, mail.uid)
    looked_up = [s for s in statements if s.startswith("SELECT")]
    assert len(looked_up) == 3  # one per mailbox and UIDVALIDITY (or names), not per message
    if engine.dialect.name == "postgresql":  # the new rows in one INSERT ... RETURNING
        assert len([s for s in statements if s.startswith("INSERT")]) == 1


def test_a_header_the_database_refuses_keeps_no_message_out_of_the_ledger(
    factory: sessionmaker[Session],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
):
    if factory.kw["bind"].dialect.name != "postgresql":
        pytest.skip("a value the database refuses (NUL in text): PostgreSQL only")
    raws = [request_message(message_id=f"<r{n}@x.test>") for n in range(3)]
    sniff = ledger._sniff  # noqa: SLF001

    def refused_for_the_second(raw: bytes):  # type: ignore[no-untyped-def]
        message_id, sender, subject = sniff(raw)
        return (
            (message_id, "nul\x00here", subject)
            if raw == raws[1]
            else (message_id, sender, subject)
        )

    monkeypatch.setattr(ledger, "_sniff", refused_for_the_second)
    mails = [RawMail("imap:x", raw, uidvalidity=7, uid=n) for n, raw in enumerate(raws)]
    ids = ledger.store_batch(factory, mails)
    assert len(set(ids)) == 3
    with factory() as session:
        rows = [session.get(InboundMessage, i) for i in ids]
    assert [r.raw for r in rows] == raws and [r.status for r in rows] == ["pending"] * 3
    assert rows[1].from_addr is None and rows[1].message_id is None  # read again later
    assert rows[0].from_addr and rows[2].from_addr
    assert "imap:x UID 1 stored without its header fields" in caplog.text
    assert ledger.store_batch(factory, mails) == ids  # and stored once


def test_store_accepts_any_bytes(factory: sessionmaker[Session]):
    junk = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(range(256)) * 4
    [ledger_id] = ledger.store_batch(factory, [RawMail("cli", junk, source_name="junk")])
    with factory() as session:
        assert session.get(InboundMessage, ledger_id).raw == junk


def deliver(root: Path, name: str, raw: bytes) -> Path:
    path = root / "INBOX" / "new" / name
    path.write_bytes(raw)
    return path


def test_maildir_source_commits_then_moves(factory: sessionmaker[Session], tmp_path: Path):
    source = MaildirSource(tmp_path / "mail", max_bytes=1 << 20)
    source.connect()
    deliver(tmp_path / "mail", "1700000000.a.host", request_message())
    deliver(tmp_path / "mail", "1700000001.b.host", request_message(subject="second"))
    seen: list[list[str]] = []

    def store(mails):
        # When the ledger is asked to store, the files are still in new/.
        seen.append(sorted(p.name for p in (tmp_path / "mail/INBOX/new").iterdir()))
        return ledger.store_batch(factory, mails)

    assert source.poll(store) == 2
    assert seen == [["1700000000.a.host", "1700000001.b.host"]]
    assert list((tmp_path / "mail/INBOX/new").iterdir()) == []
    assert sorted(p.name for p in (tmp_path / "mail/INBOX/cur").iterdir()) == [
        "1700000000.a.host:2,S",
        "1700000001.b.host:2,S",
    ]
    assert source.poll(store) == 0


def test_maildir_crash_before_move_stores_once(factory: sessionmaker[Session], tmp_path: Path):
    source = MaildirSource(tmp_path / "mail", max_bytes=1 << 20)
    source.connect()
    path = deliver(tmp_path / "mail", "1700000000.a.host", request_message())
    ledger.store_batch(
        factory, [RawMail(source.name, path.read_bytes(), source_name="1700000000.a.host")]
    )
    source.poll(lambda mails: ledger.store_batch(factory, mails))
    with factory() as session:
        assert session.scalar(select(func.count(InboundMessage.id))) == 1


def test_maildir_oversize_keeps_headers_and_real_size(factory, tmp_path: Path):
    source = MaildirSource(tmp_path / "mail", max_bytes=4096)
    source.connect()
    raw = request_message(body="y" * 20_000)
    deliver(tmp_path / "mail", "big", raw)

    def store(mails):
        ids = ledger.store_batch(factory, mails)
        ledger_ids.extend(ids)
        return ids

    ledger_ids: list[int] = []
    source.poll(store)
    with factory() as session:
        row = session.get(InboundMessage, ledger_ids[0])
        assert row.size == len(raw)
        assert len(row.raw) < 4096 and b"Subject: Request for help" in row.raw
    assert (tmp_path / "mail/INBOX/cur/big:2,S").read_bytes() == raw


def test_maildir_wait_returns_on_stop(tmp_path: Path):
    source = MaildirSource(tmp_path / "mail", max_bytes=1 << 20, poll_seconds=30)
    stop = threading.Event()
    stop.set()
    started = time.monotonic()
    source.wait(30, stop)
    assert time.monotonic() - started < 1
