"""Faults on the SMTP side, against the real test bed: the relay is down for a while, answers
4xx before it takes a message, or refuses one recipient for good. Each acknowledgement and
alert reaches Dovecot exactly once; a refused one is a dead letter with its error, and the
rest of the mail keeps flowing. Requests go straight into Dovecot over LMTP, so the relay
only ever carries the daemon's own mail.
"""

from __future__ import annotations

import email
import json
import re
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from email.message import Message
from email.policy import default as default_policy
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.daemon import PASSWORD, MailbotProcess, imap_config, mid, request, wait_for
from tests.testbed import Dovecot, SmtpRelay

AGENCY = "chief@agency.test"
SHERIFF = "pio@sheriff.test"  # a second agency, added to Dovecot by the fixture
MVAI = "mvai@mvai.test"
COORDINATOR = "coord@mvai.test"
# tests/conftest.write_config already sets [outgoing] retry_base_seconds = 1.
FAST_RETRIES = (
    "[outgoing]\nretry_max_seconds = 4\n\n[limits]\nauto_replies_per_sender_per_day = 1000"
)


def settle(dovecot: Dovecot, user: str, count: int, seconds: float = 3.0) -> list[Message]:
    """Wait for count messages in user's INBOX, then a little longer: no more may come."""
    dovecot.wait_for_messages(user, count, timeout=90)
    time.sleep(seconds)
    return [email.message_from_bytes(r, policy=default_policy) for r in dovecot.fetch_all(user)]


def cli(proc: MailbotProcess, *args: str) -> list[dict[str, Any]]:
    """A read-only CLI command with --json while the daemon runs; its stderr if it fails."""
    run = [sys.executable, "-m", "mailbot", *args, "--json", "--config", str(proc.config)]
    done = subprocess.run(run, env=proc.env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, f"mailbot {' '.join(args)}: {done.stderr}"
    return [json.loads(line) for line in done.stdout.splitlines()]


def accepted_once(relay: SmtpRelay) -> Counter[str]:
    """How often the relay took each Message-ID."""
    return Counter(
        mid(email.message_from_bytes(r.data, policy=default_policy)["Message-ID"])
        for r in relay.received
    )


@pytest.fixture
def daemon(tmp_path: Path, dovecot: Dovecot, smtp_relay: SmtpRelay) -> Iterator[MailbotProcess]:
    if SHERIFF not in dovecot.users:
        dovecot.add_user(SHERIFF, PASSWORD)
    dovecot.purge()
    proc = MailbotProcess(imap_config(tmp_path, dovecot, smtp_relay.port, FAST_RETRIES))
    yield proc
    proc.stop()


def test_relay_down_for_a_while_then_back(
    daemon: MailbotProcess, dovecot: Dovecot, smtp_relay: SmtpRelay
):
    smtp_relay.stop()
    daemon.start()
    req = request("relay down")
    dovecot.deliver(MVAI, req.as_bytes())
    retry = re.compile(r"outbox=\d+ outcome=retry attempt=(\d+) .*cannot connect")
    wait_for(lambda: len(retry.findall(daemon.log())) >= 4, 60, "four failed attempts")
    pending = cli(daemon, "outbox", "list", "--status", "pending")
    assert sorted(r["kind"] for r in pending) == ["ack", "alert"]
    assert all(r["attempts"] >= 1 and "cannot connect" in r["last_error"] for r in pending)

    smtp_relay.start()  # the same port, as after a relay restart
    back = time.monotonic()
    took = wait_for(lambda: dovecot.fetch_all(AGENCY), 60, "the acknowledgement")
    # The two rows retry on their own jittered schedules: the alert may come seconds later.
    wait_for(lambda: dovecot.fetch_all(COORDINATOR), 60, "the alert")
    alert_took = time.monotonic() - back
    [ack] = settle(dovecot, AGENCY, 1)
    assert mid(ack["In-Reply-To"]) == req["Message-ID"]
    # Retries are due at most retry_max_seconds (4, +20% jitter) apart, looked for every second.
    assert took < 10, f"delivered {took:.1f}s after the relay came back"
    assert alert_took < 10, f"alert delivered {alert_took:.1f}s after the relay came back"
    assert len(settle(dovecot, COORDINATOR, 1, seconds=0)) == 1
    assert set(accepted_once(smtp_relay).values()) == {1}
    assert {r["status"] for r in cli(daemon, "outbox", "list")} == {"sent"}


def test_temporary_failures_then_success_deliver_once(
    daemon: MailbotProcess, dovecot: Dovecot, smtp_relay: SmtpRelay
):
    smtp_relay.fail_next_temporary = 3  # the first tries of the ack and the alert, and one more
    daemon.start()
    req = request("4xx first")
    dovecot.deliver(MVAI, req.as_bytes())
    took = wait_for(lambda: dovecot.fetch_all(AGENCY), 60, "the acknowledgement")
    [ack] = settle(dovecot, AGENCY, 1)
    assert mid(ack["In-Reply-To"]) == req["Message-ID"]
    assert len(settle(dovecot, COORDINATOR, 1, seconds=0)) == 1
    assert smtp_relay.fail_next_temporary == 0
    assert set(accepted_once(smtp_relay).values()) == {1}
    rows = cli(daemon, "outbox", "list")
    assert {r["status"] for r in rows} == {"sent"}
    assert sum(r["attempts"] for r in rows) == len(rows) + 3
    retries = re.findall(r"outcome=retry attempt=\d+ .*error=(.*)", daemon.log())
    assert len(retries) == 3 and all(
        e.endswith(": 451 4.3.0 Temporary failure injected by the test bed") for e in retries
    ), retries
    # Two retries of the ack, 1-2 s and 2-4 s after its failures: seconds, not minutes.
    assert took < 20, f"acknowledged after {took:.1f}s"


def test_permanent_refusal_is_a_dead_letter_and_other_mail_flows(
    daemon: MailbotProcess, dovecot: Dovecot, smtp_relay: SmtpRelay
):
    smtp_relay.reject_recipients = {AGENCY}
    daemon.start()
    refused = request("refused", AGENCY)
    dovecot.deliver(MVAI, refused.as_bytes())
    wait_for(lambda: cli(daemon, "outbox", "list", "--status", "failed"), 60, "a dead letter")
    other = request("other agency", SHERIFF)
    dovecot.deliver(MVAI, other.as_bytes())

    [ack] = settle(dovecot, SHERIFF, 1)
    assert mid(ack["In-Reply-To"]) == other["Message-ID"]
    assert len(settle(dovecot, COORDINATOR, 2, seconds=0)) == 2  # both cases alerted
    assert dovecot.fetch_all(AGENCY) == []
    [failed] = cli(daemon, "outbox", "list", "--status", "failed")
    assert (failed["kind"], failed["to"], failed["attempts"]) == ("ack", AGENCY, 1)
    assert failed["last_error"].endswith(
        "every recipient refused (550 5.1.1 Recipient rejected by the test bed)"
    )
    assert AGENCY not in daemon.log()  # addresses in errors are redacted in the log
    assert len(cli(daemon, "outbox", "list", "--status", "sent")) == 3
    assert len(cli(daemon, "cases", "list")) == 2
