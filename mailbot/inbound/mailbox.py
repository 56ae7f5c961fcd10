"""Mailbox sources: where raw messages come from.

A source fetches new messages, hands them to the ledger (which commits them) and only then
marks them on its side. ``wait`` blocks until new mail may be there (IMAP IDLE, or a short
sleep) or ``stop`` is set. Two sources exist: a local Maildir (the default) and IMAP
(mailbot/inbound/imap.py).
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Protocol

from sqlalchemy.orm import Session, sessionmaker

from mailbot.config import Config
from mailbot.errors import MailboxError
from mailbot.inbound.ledger import RawMail

log = logging.getLogger(__name__)

Store = Callable[[Sequence[RawMail]], list[int]]


class MailboxSource(Protocol):
    name: str

    def connect(self) -> None: ...

    def poll(self, store: Store, limit: int = 0) -> int:
        """Fetch new messages (at most ``limit``, 0: all), store them (committed), then mark
        them; returns how many."""
        ...

    def wait(self, timeout: float, stop: threading.Event) -> None: ...

    def close(self) -> None: ...


def truncate_oversize(raw: bytes, size: int, limit: int) -> bytes:
    """Keep only the header block of a message over the size limit (it stays on the server)."""
    if size <= limit:
        return raw
    end = raw.find(b"\r\n\r\n")
    end = raw.find(b"\n\n") if end < 0 else end
    head = raw[: end if 0 <= end < 262_144 else 262_144]
    return head + b"\r\n\r\n[mailbot: body not stored, message over the size limit]\r\n"


class MaildirSource:
    """A local Maildir: new mail in <root>/INBOX/new, moved to cur/ once in the ledger."""

    def __init__(self, root: Path, max_bytes: int, poll_seconds: float = 1.0) -> None:
        self.root = root
        self.inbox = root / "INBOX"
        self.name = "maildir:INBOX"
        self.max_bytes = max_bytes
        self.poll_seconds = poll_seconds

    def connect(self) -> None:
        try:
            for sub in ("new", "cur", "tmp"):
                (self.inbox / sub).mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise MailboxError(f"maildir {self.inbox}: cannot create: {exc.strerror}") from None

    def _new_files(self) -> list[Path]:
        try:
            entries = sorted(os.scandir(self.inbox / "new"), key=lambda e: e.name)
        except OSError as exc:
            raise MailboxError(f"maildir {self.inbox / 'new'}: {exc.strerror}") from None
        return [Path(e.path) for e in entries if e.is_file() and not e.name.startswith(".")]

    def poll(self, store: Store, limit: int = 0) -> int:
        files = self._new_files()[: min(limit, 200) if limit else 200]
        mails = []
        for path in files:
            try:
                size = path.stat().st_size
                with path.open("rb") as fh:
                    raw = fh.read(self.max_bytes + 1) if size > self.max_bytes else fh.read()
            except OSError as exc:
                log.warning("maildir: cannot read %s: %s", path.name, exc.strerror)
                continue
            unique = path.name.split(":", 1)[0]
            mails.append(
                RawMail(
                    self.name,
                    truncate_oversize(raw, size, self.max_bytes),
                    source_name=unique,
                    size=size,
                )
            )
        if not mails:
            return 0
        store(mails)
        for path in files:
            unique = path.name.split(":", 1)[0]
            try:
                path.rename(self.inbox / "cur" / f"{unique}:2,S")
            except FileNotFoundError:
                continue
        return len(mails)

    def wait(self, timeout: float, stop: threading.Event) -> None:
        stop.wait(min(timeout, self.poll_seconds))

    def close(self) -> None:
        return None


def make_source(cfg: Config, factory: sessionmaker[Session]) -> MailboxSource:
    if cfg.mailbox.kind == "imap":
        from mailbot.inbound.imap import ImapSource

        return ImapSource(cfg, factory)
    return MaildirSource(
        cfg.path(cfg.mailbox.maildir), cfg.limits.max_message_bytes, cfg.mailbox.poll_seconds
    )
