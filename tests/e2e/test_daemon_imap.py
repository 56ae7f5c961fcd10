"""End to end: a request sent by SMTP reaches Dovecot, the daemon (a subprocess) opens a
case, and the acknowledgement arrives in the agency's IMAP mailbox exactly once."""

from __future__ import annotations

import email
import random
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from email.message import EmailMessage
from email.utils import make_msgid
from pathlib import Path

import pytest

from tests.e2e.daemon import MailbotProcess, imap_config
from tests.testbed import Dovecot, SmtpRelay, send_mail

AGENCY = "chief@agency.test"
MVAI = "mvai@mvai.test"
COORDINATOR = "coord@mvai.test"


def request(n: int = 0, message_id: str | None = None) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = f"Chief Dana Whitfield <{AGENCY}>"
    msg["To"] = MVAI
    msg["Subject"] = f"Request for peer support #{n}"
    msg["Message-ID"] = message_id or make_msgid(domain="agency.test")
    msg["Date"] = email.utils.formatdate(localtime=True)
    msg.set_content(
        "Yesterday we had a shooting at Harlan High School in Harlan, KY. We need help with "
        "media and with support for our officers.\n\nDana Whitfield\nChief of Police\n"
        "Harlan Police Department\n(606) 555-0142\n"
    )
    return msg


@pytest.fixture
def mailbot(tmp_path: Path, dovecot: Dovecot, smtp_relay: SmtpRelay) -> Iterator[MailbotProcess]:
    dovecot.purge()
    config = imap_config(
        tmp_path, dovecot, smtp_relay.port, "[limits]\nauto_replies_per_sender_per_day = 500"
    )
    proc = MailbotProcess(config)
    proc.start()
    yield proc
    proc.stop()


def parsed(raws: list[bytes]) -> list[email.message.Message]:
    return [email.message_from_bytes(r) for r in raws]


def settle(dovecot: Dovecot, user: str, count: int, seconds: float = 2.0) -> list[bytes]:
    """Wait for ``count`` messages, then a little longer to see that no more arrive."""
    dovecot.wait_for_messages(user, count, timeout=60)
    time.sleep(seconds)
    return dovecot.fetch_all(user)


def test_ack_arrives_once_with_thread_headers(
    mailbot: MailbotProcess, dovecot: Dovecot, smtp_relay: SmtpRelay
):
    req = request()
    send_mail("127.0.0.1", smtp_relay.port, req, AGENCY, [MVAI])
    [ack] = parsed(settle(dovecot, AGENCY, 1))
    [case] = mailbot.cli("cases", "list")
    assert ack["In-Reply-To"] == req["Message-ID"]
    assert req["Message-ID"] in ack["References"]
    assert ack["Auto-Submitted"] == "auto-replied"
    assert ack["Message-ID"] == f"<ack.{case['ref']}@mvai.test>"
    assert case["ref"] in ack["Subject"]
    assert ack["Reply-To"].startswith("mvai+") and ack["Reply-To"].endswith("@mvai.test")
    [alert] = parsed(dovecot.wait_for_messages(COORDINATOR, 1, timeout=30))
    assert alert["Auto-Submitted"] == "auto-generated" and case["ref"] in alert["Subject"]
    assert (case["state"], case["contact_email"]) == ("KY", AGENCY)
    # The request left the inbox only after it was in the ledger, into the processed folder.
    assert dovecot.fetch_all(MVAI) == []
    assert len(dovecot.fetch_all(MVAI, folder="MVAI/Processed")) == 1
    assert "kind=request case=" + case["ref"] in mailbot.log()


def test_duplicate_delivery_opens_no_second_case(
    mailbot: MailbotProcess, dovecot: Dovecot, smtp_relay: SmtpRelay
):
    req = request(message_id=make_msgid(domain="agency.test"))
    send_mail("127.0.0.1", smtp_relay.port, req, AGENCY, [MVAI])
    send_mail("127.0.0.1", smtp_relay.port, req, AGENCY, [MVAI])
    acks = settle(dovecot, AGENCY, 1, seconds=3.0)
    assert len(acks) == 1
    rows = mailbot.cli("inbound", "list")
    assert sorted(r["kind"] for r in rows) == ["duplicate", "request"]
    assert len(mailbot.cli("cases", "list")) == 1


def message_id_of(raw: bytes) -> str:
    return email.message_from_bytes(raw)["Message-ID"]


def test_sigkill_mid_batch_loses_nothing_and_sends_nothing_twice(
    tmp_path: Path, dovecot: Dovecot, smtp_relay: SmtpRelay
):
    """SIGKILL at random moments while a backlog is worked off, three times, then restart.

    The kills land anywhere in the loop: fetch, ledger commit, move, pipeline, outbox. SMTP
    cannot rule out one duplicate (RFC 1047): a death after the server has accepted a message
    and before its reply reaches the daemon's commit. So the test allows a second copy only
    for a message the server accepted in the instant before a kill, at most one per kill, and
    never for anything else.
    """
    dovecot.purge()
    smtp_relay.queue = True  # answer like a real MTA: 250 once queued, deliver after
    config = imap_config(
        tmp_path, dovecot, smtp_relay.port, "[limits]\nauto_replies_per_sender_per_day = 500"
    )
    requests = [request(n) for n in range(60)]
    for req in requests:
        dovecot.deliver(MVAI, req.as_bytes())
    proc = MailbotProcess(config)
    rng = random.Random(20261121)
    kills: list[float] = []
    for _ in range(3):
        proc.start()
        time.sleep(rng.uniform(0.05, 0.6))
        kills.append(time.monotonic())
        proc.kill()
    assert len(smtp_relay.received) < 2 * len(requests), "the kills came after all the work"
    proc.start()
    try:
        acks = parsed(settle(dovecot, AGENCY, len(requests), seconds=3.0))
    finally:
        assert proc.stop() == 0

    # Nothing lost: every request has its case, acknowledgement and alert.
    assert {a["In-Reply-To"] for a in acks} == {r["Message-ID"] for r in requests}
    assert len(proc.cli("cases", "list")) == len(requests)
    assert {r["status"] for r in proc.cli("inbound", "list")} == {"processed"}
    assert dovecot.fetch_all(MVAI) == []
    alerts = dovecot.fetch_all(COORDINATOR)
    assert {message_id_of(a) for a in alerts} == {
        f"<alert.{c['ref']}@mvai.test>" for c in proc.cli("cases", "list")
    }
    # Nothing twice, but for the RFC 1047 instant just before a kill.
    copies = Counter(message_id_of(r.data) for r in smtp_relay.received)
    duplicates = {mid for mid, n in copies.items() if n > 1}
    assert all(copies[mid] == 2 for mid in duplicates)
    assert len(duplicates) <= len(kills)
    for mid in duplicates:
        first = min(r.at for r in smtp_relay.received if message_id_of(r.data) == mid)
        gaps = [round(kill - first, 4) for kill in kills]
        assert any(-0.05 < gap < 0.1 for gap in gaps), f"{mid} sent twice; kill - accept: {gaps}"
    assert len(acks) + len(alerts) == len(smtp_relay.received)


def test_through_postfix_both_ways(tmp_path: Path, dovecot: Dovecot, postfix):
    """A real MTA in front of the mailbox and behind the daemon's SMTP client."""
    dovecot.purge()
    proc = MailbotProcess(imap_config(tmp_path, dovecot, postfix.port))
    proc.start()
    try:
        req = request(7)
        send_mail("127.0.0.1", postfix.port, req, AGENCY, [MVAI])
        [ack] = parsed(settle(dovecot, AGENCY, 1))
    finally:
        assert proc.stop() == 0
    assert ack["In-Reply-To"] == req["Message-ID"]
    assert ack["Auto-Submitted"] == "auto-replied"
    [row] = proc.cli("outbox", "list", "--status", "sent")[:1]
    assert row["kind"] == "ack"
    [received] = proc.cli("inbound", "list")
    assert received["message_id"] == req["Message-ID"].strip("<>")


def test_flag_mode_leaves_mail_in_place_and_flags_it(
    tmp_path: Path, dovecot: Dovecot, smtp_relay: SmtpRelay
):
    dovecot.purge()
    proc = MailbotProcess(imap_config(tmp_path, dovecot, smtp_relay.port, '[imap]\nafter = "flag"'))
    proc.start()
    try:
        send_mail("127.0.0.1", smtp_relay.port, request(3), AGENCY, [MVAI])
        settle(dovecot, AGENCY, 1)
        send_mail("127.0.0.1", smtp_relay.port, request(4), AGENCY, [MVAI])
        assert len(settle(dovecot, AGENCY, 2)) == 2
    finally:
        assert proc.stop() == 0
    with dovecot.imap_client(MVAI) as client:
        client.select_folder("INBOX")
        flags = client.get_flags(client.search(["ALL"]))
    assert len(flags) == 2
    assert all({b"\\Seen", b"$MailbotLedgered"} <= set(f) for f in flags.values())
    assert len(proc.cli("cases", "list")) == 2


def test_reconnects_after_the_imap_server_restarts(
    mailbot: MailbotProcess, dovecot: Dovecot, smtp_relay: SmtpRelay
):
    dovecot.restart()
    req = request(5)
    send_mail("127.0.0.1", smtp_relay.port, req, AGENCY, [MVAI])
    [ack] = parsed(settle(dovecot, AGENCY, 1))
    assert ack["In-Reply-To"] == req["Message-ID"]
    assert "connection lost" in mailbot.log()


def test_doctor_checks_the_real_mailbox(tmp_path: Path, dovecot: Dovecot, smtp_relay: SmtpRelay):
    proc = MailbotProcess(imap_config(tmp_path, dovecot, smtp_relay.port))
    run = [sys.executable, "-m", "mailbot", "doctor", "--config", str(proc.config)]
    good = subprocess.run(run, env=proc.env, capture_output=True, text=True, timeout=60)
    assert good.returncode == 0, good.stdout
    assert f"ok    mailbox   IMAP 127.0.0.1:{dovecot.imap_port} folder INBOX (IDLE)" in good.stdout
    assert f"ok    outgoing  SMTP 127.0.0.1:{smtp_relay.port}" in good.stdout
    bad_env = {**proc.env, "MVAI_TEST_IMAP_PASSWORD": "wrong"}
    bad = subprocess.run(run, env=bad_env, capture_output=True, text=True, timeout=60)
    assert bad.returncode == 1
    [line] = [x for x in bad.stdout.splitlines() if " mailbox " in x]
    assert line.startswith("FAIL") and "check [imap] host, port, security and the password" in line
    assert "wrong" not in bad.stdout
