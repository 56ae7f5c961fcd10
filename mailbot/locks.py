"""Who may run: one daemon per SQLite database; one mailbox holder among PostgreSQL workers.

SQLite: an exclusive `flock` on `<database>.lock` for the daemon's lifetime; a second daemon
refuses to start with a message naming the holder. PostgreSQL: a session-level advisory lock
per mailbox, held on a dedicated connection; the holder fetches mail, every worker processes
the ledger, the outbox and the follow-ups. When the holder dies its connection closes, the
lock is released, and another worker takes the mailbox over at its next try.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
from pathlib import Path
from typing import IO

from sqlalchemy import Connection, Engine, text

from mailbot.errors import MailbotError


class SqliteDaemonLock:
    def __init__(self, database: Path) -> None:
        self.path = database.with_name(database.name + ".lock")
        self.handle: IO[str] | None = None

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle = self.path.open("a+")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "unknown"
            handle.close()
            raise MailbotError(
                f"another mailbot daemon (pid {holder}) is running on {self.path.with_suffix('')}:"
                " one daemon per SQLite database; use PostgreSQL for several workers"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        self.handle = handle

    def release(self) -> None:
        if self.handle is not None:
            fcntl.flock(self.handle, fcntl.LOCK_UN)
            self.handle.close()
            self.handle = None


class MailboxLock:
    """A PostgreSQL advisory lock naming one mailbox, on its own connection."""

    def __init__(self, engine: Engine, mailbox: str) -> None:
        self.engine = engine
        self.key = int.from_bytes(hashlib.sha256(mailbox.encode()).digest()[:8], "big", signed=True)
        self.conn: Connection | None = None

    @property
    def held(self) -> bool:
        return self.conn is not None

    def try_acquire(self) -> bool:
        if self.conn is not None:
            return True
        conn = self.engine.connect()
        got = conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": self.key}).scalar()
        conn.commit()
        if got:
            self.conn = conn
            return True
        conn.close()
        return False

    def release(self) -> None:
        if self.conn is not None:
            try:
                self.conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": self.key})
                self.conn.commit()
            finally:
                self.conn.close()
                self.conn = None
