"""One round of the daemon (Daemon.step) on a Maildir: the mailbox is polled when no pending
row is left, once per idle round, not once more on top of that."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import pytest
from sqlalchemy import select

from mailbot import db
from mailbot.config import Config
from mailbot.daemon import Daemon
from mailbot.models import OutboundMessage
from mailbot.outbound import outbox
from tests.conftest import request_message


def test_a_round_polls_when_the_ledger_runs_dry_and_an_idle_round_polls_once(
    make_cfg: Callable[..., Config],
) -> None:
    cfg = make_cfg("[extraction]\nworkers = 0\n")
    daemon = Daemon(cfg)
    db.upgrade(daemon.engine)
    daemon.source.connect()
    polls: list[int] = []
    poll = daemon.source.poll

    def counted(store, limit=0):  # type: ignore[no-untyped-def]
        polls.append(poll(store, limit))
        return polls[-1]

    daemon.source.poll = counted  # type: ignore[method-assign]
    try:
        assert daemon.step() == 0
        assert polls == [0]  # idle: one poll
        new = daemon.source.inbox / "new"  # type: ignore[attr-defined]
        for i in range(3):
            (new / f"req{i}").write_bytes(request_message(message_id=f"<step{i}@x.test>"))
        polls.clear()
        assert daemon.step() == 3
        assert polls == [3, 0]  # fetched when dry; looked again once the three were handled
    finally:
        daemon.reader.close()
        if daemon.mailbox_lock is not None:  # PostgreSQL: taken at the first round
            daemon.mailbox_lock.release()
        daemon.engine.dispose()


def test_the_sender_sends_the_rows_a_round_commits_without_asking_for_each(
    make_cfg: Callable[..., Config], monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = make_cfg("[extraction]\nworkers = 0\n")
    daemon = Daemon(cfg)
    db.upgrade(daemon.engine)
    daemon.source.connect()
    asked: list[int] = []
    due_ids = outbox.due_ids

    def counted(*args, **kwargs):  # type: ignore[no-untyped-def]
        asked.append(1)
        return due_ids(*args, **kwargs)

    monkeypatch.setattr(outbox, "due_ids", counted)
    sender = threading.Thread(target=daemon._sender, daemon=True)  # noqa: SLF001
    sender.start()
    try:
        new = daemon.source.inbox / "new"  # type: ignore[attr-defined]
        for i in range(6):
            raw = request_message(message_id=f"<send{i}@x.test>", sender=f"c@pd{i}.test")
            (new / f"req{i}").write_bytes(raw)
        assert daemon.step() == 6
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with daemon.factory() as session:
                statuses = list(session.scalars(select(OutboundMessage.status)))
            if statuses and set(statuses) == {"sent"}:
                break
            time.sleep(0.05)
        assert statuses == ["sent"] * 12  # an ack and an alert per request, each sent once
        sent = list((cfg.path(cfg.outgoing.directory)).glob("*.eml"))
        assert len(sent) == 12
        # the first rows handed over and the end of the round: not a query per request
        assert len(asked) <= 2, asked
    finally:
        daemon.stop.set()
        daemon.outbox_wake.set()
        sender.join(5)
        daemon.reader.close()
        if daemon.mailbox_lock is not None:
            daemon.mailbox_lock.release()
        daemon.engine.dispose()
