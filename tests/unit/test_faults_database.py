"""Faults around the database and the size limit, with the daemon as a subprocess on a Maildir.

Another connection holds an exclusive SQLite transaction for a few seconds while a request
arrives: the daemon waits (SQLite's busy timeout) or, when the wait runs out, retries on its
next rounds; either way the request is processed exactly once after the lock is gone. A
message over [limits] max_message_bytes is quarantined with the reason, its headers kept.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, text
from sqlalchemy.engine import make_url

from mailbot import config as config_mod
from mailbot import db
from mailbot.models import InboundMessage
from tests.conftest import ROOT, request_message, write_config

# `mailbot run`, optionally with SQLite's busy timeout cut from 30 s to 100 ms, so that a
# lock of a few seconds surfaces as "database is locked" and the daemon's retry path runs.
BOOT = """
import sys
import mailbot.db

if sys.argv[1] == "short-busy-timeout":
    pragmas = mailbot.db._sqlite_pragmas

    def short(conn, record):
        pragmas(conn, record)
        conn.execute("PRAGMA busy_timeout=100")

    mailbot.db._sqlite_pragmas = short
from mailbot.cli import main

raise SystemExit(main(sys.argv[2:]))
"""
LIMIT = 4096


def wait_for(condition: Callable[[], object], timeout: float, what: str) -> float:
    started = time.monotonic()
    while not condition():
        if time.monotonic() - started > timeout:
            raise AssertionError(f"{what}: not within {timeout}s")
        time.sleep(0.05)
    return time.monotonic() - started


class MaildirDaemon:
    """`mailbot run` on a Maildir config in ``folder``, its log in folder/mailbot.log."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.config = write_config(
            folder,
            f'[mailbot]\nlog_level = "INFO"\n\n[limits]\nmax_message_bytes = {LIMIT}',
        )
        self.log_path = folder / "mailbot.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, mode: str = "as-is") -> None:
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-c", BOOT, mode, "run", "--config", str(self.config)],
                cwd=ROOT,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        wait_for(
            lambda: "mailbot running" in self.log() or self.proc.poll() is not None, 60, "start"
        )
        assert self.proc.poll() is None, self.log()

    def stop(self) -> int:
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else 0
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError(f"mailbot did not stop on SIGTERM:\n{self.log()}") from None

    @property
    def database_url(self) -> str:
        return config_mod.load(self.config).database_url

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def drop(self, name: str, raw: bytes) -> None:
        """Deliver into the Maildir the way an MDA does: write to tmp/, rename into new/."""
        inbox = self.folder / "mail" / "INBOX"
        tmp = inbox / "tmp" / name
        tmp.write_bytes(raw)
        tmp.rename(inbox / "new" / name)

    def outgoing(self) -> list[str]:
        return sorted(p.name for p in (self.folder / "outgoing").glob("*.eml"))

    def cli(self, *args: str) -> list[dict[str, Any]]:
        run = [sys.executable, "-m", "mailbot", *args, "--json", "--config", str(self.config)]
        done = subprocess.run(run, cwd=ROOT, capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, f"mailbot {' '.join(args)}: {done.stderr}"
        return [json.loads(line) for line in done.stdout.splitlines()]


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[MaildirDaemon]:
    proc = MaildirDaemon(tmp_path)
    yield proc
    assert proc.stop() == 0, proc.log()


@contextmanager
def exclusive_lock(url: str) -> Iterator[None]:
    """Another connection holding the ledger locked: no one else may write to it.

    SQLite: an exclusive transaction on the file. PostgreSQL: an ACCESS EXCLUSIVE lock on
    the ledger table (every message is stored there first).
    """
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        conn = sqlite3.connect(parsed.database or "", isolation_level=None, timeout=30)
        try:
            conn.execute("BEGIN EXCLUSIVE")
            yield
            conn.execute("ROLLBACK")
        finally:
            conn.close()
        return
    engine = db.make_engine(url)
    try:
        with engine.connect() as conn, conn.begin():
            conn.execute(text("LOCK TABLE inbound_messages IN ACCESS EXCLUSIVE MODE"))
            yield
    finally:
        engine.dispose()


@pytest.mark.parametrize("mode", ["as-is", "short-busy-timeout"])
def test_locked_database_delays_a_request_but_loses_and_repeats_nothing(
    daemon: MaildirDaemon, mode: str
):
    sqlite = daemon.database_url.startswith("sqlite")
    if mode == "short-busy-timeout" and not sqlite:
        pytest.skip("SQLite's busy timeout; PostgreSQL waits for the lock to go")
    daemon.start(mode)
    with exclusive_lock(daemon.database_url):
        daemon.drop("locked.eml", request_message(subject="Request while the database is locked"))
        time.sleep(4)
        assert daemon.outgoing() == []  # nothing can be recorded, so nothing may go out
        assert daemon.proc is not None and daemon.proc.poll() is None
    wait_for(lambda: len(daemon.outgoing()) == 2, 60, "acknowledgement and alert")
    time.sleep(2)  # a second round would have written more by now
    assert [name.split("-", 1)[1] for name in daemon.outgoing()] == ["ack.eml", "alert.eml"]
    [row] = daemon.cli("inbound", "list")
    assert (row["status"], row["kind"]) == ("processed", "request")
    assert len(daemon.cli("cases", "list")) == 1
    assert not list((daemon.folder / "mail" / "INBOX" / "new").iterdir())
    log = daemon.log()
    if mode == "short-busy-timeout":
        assert "database is locked" in log, log
    assert "Traceback" not in log and "quarantined" not in log


def test_oversize_message_is_quarantined_with_its_headers(daemon: MaildirDaemon):
    daemon.start()
    headers = {"X-Agency-Case": "2026-0117", "Auto-Submitted": "no"}
    big = request_message(
        subject="Bodycam footage attached",
        body="Footage follows.\n" + "x" * 76 * 200 + "\nend of footage\n",
        headers=headers,
    )
    assert len(big) > LIMIT
    daemon.drop("big.eml", big)
    wait_for(lambda: daemon.cli("quarantine", "list"), 30, "the quarantined message")
    [row] = daemon.cli("inbound", "list")
    assert (row["status"], row["size"]) == ("quarantined", len(big))
    assert row["reason"] == (
        f"message is {len(big)} bytes, over [limits] max_message_bytes = {LIMIT}; "
        "the original stays in the mailbox"
    )
    assert row["subject"] == "Bodycam footage attached" and row["message_id"]
    engine = db.make_engine(daemon.database_url)
    try:
        with engine.connect() as conn:
            [raw] = conn.scalars(select(InboundMessage.raw)).all()
    finally:
        engine.dispose()
    head = big.split(b"\n\n", 1)[0]
    assert raw.startswith(head)  # every header, as received
    assert b"end of footage" not in raw and b"body not stored" in raw
    assert daemon.cli("cases", "list") == [] and daemon.outgoing() == []
    assert [p.name.split(":")[0] for p in (daemon.folder / "mail/INBOX/cur").iterdir()] == [
        "big.eml"
    ]
