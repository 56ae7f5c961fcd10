"""SIGKILL at random moments during a 300-message backlog, 20 times in a row with restarts.

At the end every message is a case, an ignored ledger row or a quarantined one, each case has
exactly one acknowledgement in the agency's mailbox, and no mail went out twice except for the
one instant SMTP cannot rule out (RFC 1047, see test_daemon_imap.py), at most once per kill.
"""

from __future__ import annotations

import email
import os
import random
import time
from collections import Counter
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from pathlib import Path

import pytest

from tests.e2e.daemon import MailbotProcess, imap_config
from tests.testbed import Dovecot, SmtpRelay

AGENCY = "chief@agency.test"
MVAI = "mvai@mvai.test"
BACKLOG = 300
KILLS = 20


def request(n: int) -> bytes:
    msg = EmailMessage()
    msg["From"] = f"Chief Dana Whitfield <{AGENCY}>"
    msg["To"] = MVAI
    msg["Subject"] = f"Request {n}"
    msg["Message-ID"] = make_msgid(domain="agency.test")
    msg["Date"] = formatdate(localtime=True)
    msg.set_content(f"Request {n}: yesterday a shooting at the high school in Harlan, KY.\n")
    return msg.as_bytes()


@pytest.mark.skipif(
    os.environ.get("MAILBOT_TEST_DB") == "postgresql",
    reason="takes minutes; on PostgreSQL the three-kill test in test_daemon_imap.py runs instead",
)
def test_twenty_kills_during_a_300_message_backlog(
    tmp_path: Path, dovecot: Dovecot, smtp_relay: SmtpRelay
):
    dovecot.purge()
    smtp_relay.queue = True
    config = imap_config(
        tmp_path,
        dovecot,
        smtp_relay.port,
        "[limits]\nauto_replies_per_sender_per_day = 1000\n\n[digest]\nenabled = false",
    )
    sent_ids = set()
    for n in range(BACKLOG):
        raw = request(n)
        sent_ids.add(email.message_from_bytes(raw)["Message-ID"])
        dovecot.deliver(MVAI, raw)
    rng = random.Random(300_20)
    proc = MailbotProcess(config)
    kills: list[float] = []
    mid_batch = 0
    for _ in range(KILLS):
        proc.start()
        time.sleep(rng.uniform(0.0, 1.0))
        kills.append(time.monotonic())
        proc.kill()
        mid_batch += len(smtp_relay.received) < 2 * BACKLOG
    # A fast machine may finish the backlog before the last kills; enough must land mid-batch.
    assert mid_batch >= 5, f"only {mid_batch} kills came while work was left"
    proc.start()
    try:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            rows = proc.cli("inbound", "list")
            if len(rows) == BACKLOG and all(r["status"] != "pending" for r in rows):
                break
            time.sleep(1)
        acks = dovecot.wait_for_messages(AGENCY, BACKLOG, timeout=120)
        time.sleep(3)
        acks = dovecot.fetch_all(AGENCY)
    finally:
        assert proc.stop() == 0
    rows = proc.cli("inbound", "list")
    assert len(rows) == BACKLOG and {r["status"] for r in rows} <= {
        "processed",
        "ignored",
        "quarantined",
    }
    assert {r["message_id"] for r in rows} == {m.strip("<>") for m in sent_ids}
    assert len(proc.cli("cases", "list")) == sum(r["kind"] == "request" for r in rows) == BACKLOG
    assert dovecot.fetch_all(MVAI) == []
    replied = Counter(email.message_from_bytes(a)["In-Reply-To"] for a in acks)
    assert set(replied) == sent_ids, "every request has its acknowledgement"
    copies = Counter(email.message_from_bytes(r.data)["Message-ID"] for r in smtp_relay.received)
    duplicates = {m for m, c in copies.items() if c > 1}
    assert len(duplicates) <= len(kills)
    for mid in duplicates:
        first = min(
            r.at
            for r in smtp_relay.received
            if email.message_from_bytes(r.data)["Message-ID"] == mid
        )
        assert any(-0.05 < kill - first < 0.1 for kill in kills), f"{mid} sent twice"
    assert sum(replied.values()) - len(replied) <= len(duplicates)
