"""One round of the daemon (Daemon.step) on a Maildir: the mailbox is polled when no pending
row is left, once per idle round, not once more on top of that; the sender gets the round's
mail without asking the database for each request; a row the database could not take is
retried after a short pause, not after the next new mail."""

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
from mailbot.inbound.pipeline import Outcome
from mailbot.models import InboundMessage, OutboundMessage
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


def test_a_row_the_database_could_not_take_is_retried_soon_not_at_the_next_mail(
    daemon: Daemon, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first try of the row meets an unavailable database. The mailbox then stays quiet
    (``wait`` blocks like an IDLE with no new mail): the row must still be taken within
    seconds, by the daemon's own retry, not 60 s later when IDLE times out."""
    new = daemon.source.inbox / "new"  # type: ignore[attr-defined]
    (new / "req").write_bytes(request_message(message_id="<stall@x.test>"))
    process, tries = daemon.pipeline.process, []

    def unavailable_once(ledger_id: int, read: Any = None) -> Outcome:
        tries.append(time.monotonic())
        if len(tries) == 1:
            return Outcome(ledger_id, "pending", None, None, "database unavailable", 0.0)
        return process(ledger_id, read)

    monkeypatch.setattr(daemon.pipeline, "process", unavailable_once)
    monkeypatch.setattr(daemon.source, "wait", lambda timeout, stop: stop.wait(timeout))
    monkeypatch.setattr(daemon, "prepare", lambda: None)  # the fixture made it ready
    monkeypatch.setattr(daemon, "catch_up", lambda: None)

    def stop_when_taken() -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not daemon.stop.is_set():
            with db.reading(daemon.factory) as session:
                if session.scalar(select(InboundMessage.status)) == "processed":
                    break
            time.sleep(0.05)
        daemon.stop.set()

    watcher = threading.Thread(target=stop_when_taken, daemon=True)
    watcher.start()
    started = time.monotonic()
    daemon.run()  # main thread: it installs signal handlers
    watcher.join(5)
    with db.reading(daemon.factory) as session:
        assert session.scalar(select(InboundMessage.status)) == "processed"
    assert len(tries) == 2
    assert tries[1] - tries[0] < 10, "the row waited for the mailbox, not for a retry"
    assert time.monotonic() - started < 15
