"""Secrets never reach the logs, the tracebacks, the database or the mail (issue 6, invariant 6).

The daemon runs at DEBUG against the real test bed with three secrets in its environment: a
wrong IMAP password first (logins fail and are logged), then the right one, and an SMTP
password the relay refuses (every send fails, is logged, retried and recorded in the outbox).
A request comes in and becomes a case. Then `mailbot doctor` and `mailbot status --json` run
with the same environment. None of the secrets may appear in the daemon's log, the CLI's
output, the SQLite files (database, WAL) or anything the relay received.
"""

from __future__ import annotations

import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.daemon import MailbotProcess, imap_config, request, wait_for
from tests.testbed import Dovecot, SmtpRelay

MVAI = "mvai@mvai.test"
AGENCY = "chief@agency.test"
COORDINATOR = "coord@mvai.test"
IMAP_SECRET = "imap-" + secrets.token_hex(12)
WRONG_IMAP_SECRET = "wrongimap-" + secrets.token_hex(12)
SMTP_SECRET = "smtp-" + secrets.token_hex(12)
RELAY_PASSWORD = "relay-" + secrets.token_hex(12)  # what the relay wants: never ours


@pytest.fixture
def testbed() -> Iterator[tuple[Dovecot, SmtpRelay]]:
    users = {MVAI: IMAP_SECRET, AGENCY: "x", COORDINATOR: "x"}
    with (
        Dovecot(users) as dovecot,
        SmtpRelay(dovecot, username="mailbot", password=RELAY_PASSWORD) as relay,
    ):
        yield dovecot, relay


def _files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def test_no_secret_in_logs_database_or_mail(
    tmp_path: Path, testbed: tuple[Dovecot, SmtpRelay]
) -> None:
    dovecot, relay = testbed
    config = imap_config(
        tmp_path,
        dovecot,
        relay.port,
        smtp_extra='\nusername = "mailbot"\npassword_env = "MVAI_TEST_SMTP_PASSWORD"',
    )
    config.write_text(config.read_text().replace('log_level = "INFO"', 'log_level = "DEBUG"'))
    proc = MailbotProcess(config)
    proc.env["MVAI_TEST_SMTP_PASSWORD"] = SMTP_SECRET

    # 1. A wrong IMAP password: the daemon keeps trying and says why, without the password.
    proc.env["MVAI_TEST_IMAP_PASSWORD"] = WRONG_IMAP_SECRET
    offset = proc.log_path.stat().st_size if proc.log_path.exists() else 0
    proc.proc = subprocess.Popen(
        [sys.executable, "-m", "mailbot", "run", "--config", str(config)],
        cwd=tmp_path,
        stdout=proc.log_path.open("ab"),
        stderr=subprocess.STDOUT,
        env=proc.env,
    )
    try:
        wait_for(lambda: "login" in proc.log()[offset:].lower(), 60, "a failed login in the log")
        time.sleep(2)
    finally:
        assert proc.stop() == 0

    # 2. The right IMAP password; the relay refuses our SMTP password.
    proc.env["MVAI_TEST_IMAP_PASSWORD"] = IMAP_SECRET
    dovecot.deliver(MVAI, request("secrets").as_bytes())
    proc.start()
    try:
        wait_for(lambda: proc.cli("cases", "list"), 60, "the case")
        wait_for(lambda: "login refused" in proc.log(), 60, "a refused SMTP login")
        time.sleep(3)  # a retry or two
    finally:
        assert proc.stop() == 0

    cli_out = ""
    for args in (["doctor"], ["status", "--json"], ["outbox", "list", "--json"]):
        done = subprocess.run(
            [sys.executable, "-m", "mailbot", *args, "--config", str(config)],
            cwd=tmp_path,
            env=proc.env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        cli_out += done.stdout + done.stderr

    log = proc.log()
    assert "login" in log.lower()  # the failures were logged ...
    outbox = proc.cli("outbox", "list")
    assert outbox and all(row["status"] in ("pending", "failed") for row in outbox)
    assert any("refused" in (row.get("last_error") or "") for row in outbox), outbox
    stored = _files(tmp_path)
    assert any(name.endswith(".db") for name in stored)
    for secret in (IMAP_SECRET, WRONG_IMAP_SECRET, SMTP_SECRET):
        assert secret not in log, f"{secret[:6]}... in the daemon's log"
        assert secret not in cli_out, f"{secret[:6]}... in the CLI's output"
        for name, data in stored.items():
            assert secret.encode() not in data, f"{secret[:6]}... in {name}"
        for mail in relay.received:
            assert secret.encode() not in mail.data
