"""One round of the daemon (Daemon.step) on a Maildir: the mailbox is polled when no pending
row is left, once per idle round, not once more on top of that."""

from __future__ import annotations

from collections.abc import Callable

from mailbot import db
from mailbot.config import Config
from mailbot.daemon import Daemon
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
