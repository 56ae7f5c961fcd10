"""Run mailbot the way a user does: `python -m mailbot run --config ...` as a subprocess."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from pathlib import Path
from typing import Any

from tests.conftest import ROOT, write_config
from tests.testbed import Dovecot

PASSWORD = "secret"


def imap_config(
    folder: Path,
    dovecot: Dovecot,
    smtp_port: int,
    extra: str = "",
    *,
    host: str = "127.0.0.1",
    imap_port: int | None = None,
    imap_security: str = "none",
    imap_extra: str = "",
    smtp_security: str = "none",
    smtp_extra: str = "",
) -> Path:
    """A config for the mvai@mvai.test mailbox on the test bed, sending through ``smtp_port``.

    ``imap_extra`` and ``smtp_extra`` are option lines added to those sections; ``extra`` may
    also repeat a section, and its options replace these (write_config merges by key)."""
    return write_config(
        folder,
        f"""
[mailbot]
log_level = "INFO"

[mailbox]
kind = "imap"

[imap]
host = "{host}"
port = {imap_port or dovecot.imap_port}
security = "{imap_security}"
username = "mvai@mvai.test"
password_env = "MVAI_TEST_IMAP_PASSWORD"
poll_seconds = 2
idle_renew_seconds = 60
timeout_seconds = 10{imap_extra}

[outgoing]
transport = "smtp"

[smtp]
host = "{host}"
port = {smtp_port}
security = "{smtp_security}"
timeout_seconds = 10{smtp_extra}

{extra}
""",
    )


class MailbotProcess:
    """The daemon as a child process, with its log in a file."""

    def __init__(self, config: Path) -> None:
        self.config = config
        self.log_path = config.parent / "mailbot.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.env = {**os.environ, "MVAI_TEST_IMAP_PASSWORD": PASSWORD, "PYTHONUNBUFFERED": "1"}

    def start(self, ready_timeout: float = 30.0, keep_if_not_ready: bool = False) -> None:
        """Start the daemon and wait for "imap: connected". A daemon that has not connected by
        then is killed (so no test leaves one running) unless ``keep_if_not_ready``: a test
        that expects it to keep retrying stops it itself."""
        offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "mailbot", "run", "--config", str(self.config)],
            cwd=self.config.parent,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=self.env,
        )
        log.close()
        deadline = time.monotonic() + ready_timeout
        while time.monotonic() < deadline:
            if "imap: connected" in self.log()[offset:]:
                return
            if self.proc.poll() is not None:
                raise AssertionError(f"mailbot exited {self.proc.returncode}:\n{self.log()}")
            time.sleep(0.1)
        if not keep_if_not_ready:
            self.proc.kill()
            self.proc.wait(10)
        raise AssertionError(f"mailbot did not connect in {ready_timeout}s:\n{self.log()}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self) -> int:
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else 0
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError(f"mailbot did not stop on SIGTERM:\n{self.log()}") from None

    def cli(self, *args: str) -> list[dict[str, Any]]:
        """Run a read-only CLI command with --json and return its rows."""
        out = subprocess.run(
            [sys.executable, "-m", "mailbot", *args, "--json", "--config", str(self.config)],
            cwd=ROOT,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        ).stdout
        return [json.loads(line) for line in out.splitlines()]


def request(tag: str, sender: str = "chief@agency.test") -> EmailMessage:
    """A request from a police chief to mvai@mvai.test; ``tag`` goes into its subject, body
    and Message-ID so that each one is told apart."""
    msg = EmailMessage()
    msg["From"] = f"Chief Dana Whitfield <{sender}>"
    msg["To"] = "mvai@mvai.test"
    msg["Subject"] = f"Request for peer support ({tag})"
    msg["Message-ID"] = make_msgid(idstring=tag.replace(" ", "-"), domain=sender.partition("@")[2])
    msg["Date"] = formatdate(localtime=True)
    msg.set_content(
        "Yesterday we had a shooting at Harlan High School in Harlan, KY. We need help with "
        f"media and with support for our officers. (reference {tag})\n\nDana Whitfield\n"
        "Chief of Police\nHarlan Police Department\n(606) 555-0142\n"
    )
    return msg


def mid(value: object) -> str:
    """A Message-ID header value as sent, whatever folding it went through."""
    return "".join(str(value).split())


def wait_for(
    condition: Callable[[], object],
    timeout: float,
    what: str,
    detail: Callable[[], str] | None = None,
) -> float:
    """Poll condition until it is true; return the seconds it took (AssertionError if never,
    with what ``detail`` returns then: say, the tail of the daemon's log)."""
    started = time.monotonic()
    while not condition():
        if time.monotonic() - started > timeout:
            more = f"\n{detail()}" if detail is not None else ""
            raise AssertionError(f"{what}: not within {timeout}s{more}")
        time.sleep(0.1)
    return time.monotonic() - started
