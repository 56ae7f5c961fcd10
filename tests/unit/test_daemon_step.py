"""One round of the daemon (Daemon.step) on a Maildir: the mailbox is polled when no pending
row is left, once per idle round, not once more on top of that; the sender gets the round's
mail without asking the database for each request."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from sqlalchemy import select

from mailbot import db
from mailbot.config import Config
from mailbot.daemon import Daemon
from mailbot.models import OutboundMessage
from mailbot.outbound import outbox
from tests.conftest import request_message


@pytest.fixture
def daemon(make_cfg: Callable[..., Config]) -> Iterator[Daemon]:
    """A daemon on a Maildir, reading in its own process, not running: the test drives it."""
    daemon = Daemon(make_cfg("[extraction]\nworkers = 0\n"))
    db.upgrade(daemon.engine)
    daemon.source.connect()
    try:
        yield daemon
    finally:
        daemon.reader.close()
        if daemon.mailbox_lock is not None:  # PostgreSQL: taken at the first round
            daemon.mailbox_lock.release()
        daemon.engine.dispose()


def recording(function: Callable[..., Any], results: list[Any]) -> Callable[..., Any]:
    """``function``, with each call's result appended to ``results``."""

    def recorded(*args: Any, **kwargs: Any) -> Any:
        results.append(function(*args, **kwargs))
        return results[-1]

    return recorded


def test_a_round_polls_when_the_ledger_runs_dry_and_an_idle_round_polls_once(
    daemon: Daemon,
) -> None:
    polls: list[int] = []
    daemon.source.poll = recording(daemon.source.poll, polls)  # type: ignore[method-assign]
    assert daemon.step() == 0
    assert polls == [0]  # idle: one poll
    new = daemon.source.inbox / "new"  # type: ignore[attr-defined]
    for i in range(3):
        (new / f"req{i}").write_bytes(request_message(message_id=f"<step{i}@x.test>"))
    polls.clear()
    assert daemon.step() == 3
    assert polls == [3, 0]  # fetched when dry; looked again once the three were handled


def test_the_sender_sends_the_rows_a_round_commits_without_asking_for_each(
    daemon: Daemon, monkeypatch: pytest.MonkeyPatch
) -> None:
    asked: list[list[int]] = []
    monkeypatch.setattr(outbox, "due_ids", recording(outbox.due_ids, asked))
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
        cfg = daemon.cfg
        sent = list((cfg.path(cfg.outgoing.directory)).glob("*.eml"))
        assert len(sent) == 12
        # the first rows handed over and the end of the round: not a query per request
        assert len(asked) <= 2, asked
    finally:
        daemon.stop.set()
        daemon.outbox_wake.set()
        sender.join(5)
