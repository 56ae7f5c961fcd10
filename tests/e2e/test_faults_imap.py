"""Faults on the IMAP side, against the real Dovecot: the server restarts (while the daemon
idles, and in the middle of a 100-message backlog), the connection dies without an EOF,
logins are refused for a while, and the mailbox gets a new UIDVALIDITY. In every case the
daemon reconnects on its own, loses nothing and acknowledges each request exactly once.

The silent death is made by stopping Dovecot's imap process for the daemon's session with
SIGSTOP: the kernel keeps the TCP connection open and ACKs, but nothing answers. (iptables
is not available in the test container, and a DROP rule would look the same to the daemon.)
"""

from __future__ import annotations

import email
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from email.message import Message
from email.policy import default as default_policy
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import OperationalError

from mailbot import config as config_mod
from mailbot import db
from mailbot.inbound.imap import ImapSource
from mailbot.inbound.ledger import RawMail
from mailbot.models import InboundMessage
from tests.e2e.daemon import PASSWORD, MailbotProcess, imap_config, mid, request, wait_for
from tests.testbed import Dovecot, SmtpRelay, send_mail

AGENCY = "chief@agency.test"
MVAI = "mvai@mvai.test"
COORDINATOR = "coord@mvai.test"
NO_CAP = "[limits]\nauto_replies_per_sender_per_day = 1000"


def parsed(raws: list[bytes]) -> list[Message]:
    return [email.message_from_bytes(raw, policy=default_policy) for raw in raws]


def settle(dovecot: Dovecot, user: str, count: int, seconds: float = 3.0) -> list[Message]:
    """Wait for count messages in user's INBOX, then a little longer: no more may come."""
    dovecot.wait_for_messages(user, count, timeout=90)
    time.sleep(seconds)
    return parsed(dovecot.fetch_all(user))


def imap_session_pids(dovecot: Dovecot) -> list[int]:
    """Dovecot's post-login imap processes (one per logged-in session)."""
    pids = []
    for pid in dovecot.pids():
        try:
            if Path(f"/proc/{pid}/comm").read_text().strip() == "imap":
                pids.append(pid)
        except OSError:
            continue
    return pids


def ledger_count(config: Path) -> int:
    """Rows in the daemon's ledger, read from its database (SQLite in WAL mode: no blocking)."""
    engine = db.make_engine(config_mod.load(config).database_url)
    try:
        with engine.connect() as conn:
            return int(conn.scalar(select(func.count()).select_from(InboundMessage)) or 0)
    except OperationalError:  # SQLite: not created or migrated yet
        return 0
    finally:
        engine.dispose()


def cli(proc: MailbotProcess, *args: str) -> list[dict[str, Any]]:
    """A read-only CLI command with --json while the daemon runs; its stderr if it fails."""
    run = [sys.executable, "-m", "mailbot", *args, "--json", "--config", str(proc.config)]
    done = subprocess.run(run, env=proc.env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, f"mailbot {' '.join(args)}: {done.stderr}"
    return [json.loads(line) for line in done.stdout.splitlines()]


def doctor(proc: MailbotProcess) -> str:
    run = [sys.executable, "-m", "mailbot", "doctor", "--config", str(proc.config)]
    done = subprocess.run(run, env=proc.env, capture_output=True, text=True, timeout=60)
    [line] = [x for x in done.stdout.splitlines() if " mailbox " in x]
    return line


@pytest.fixture
def daemon(tmp_path: Path, dovecot: Dovecot, smtp_relay: SmtpRelay) -> Iterator[MailbotProcess]:
    """Not started: each test writes its own config first."""
    dovecot.purge()
    proc = MailbotProcess(imap_config(tmp_path, dovecot, smtp_relay.port, NO_CAP))
    yield proc
    proc.stop()


def configure(
    proc: MailbotProcess, dovecot: Dovecot, relay: SmtpRelay, extra: str = "", **imap: object
) -> None:
    """Rewrite the daemon's config: ``extra`` sections added, ``imap`` keys of [imap] replaced."""
    path = imap_config(proc.config.parent, dovecot, relay.port, f"{NO_CAP}\n\n{extra}")
    head, _, rest = path.read_text().partition("[imap]\n")
    section, sep, tail = rest.partition("\n[")
    for key, value in imap.items():
        line = f"{key} = {json.dumps(value)}"
        section, found = re.subn(rf"^{key} = .*$", line, section, flags=re.M)
        section += "" if found else f"\n{line}"
    path.write_text(f"{head}[imap]\n{section}{sep}{tail}")


def test_restart_while_idling_reconnects_and_acknowledges_once(
    daemon: MailbotProcess, dovecot: Dovecot, smtp_relay: SmtpRelay
):
    daemon.start()
    time.sleep(1.5)  # connected, polled, and now in IDLE
    dovecot.restart()
    wait_for(lambda: daemon.log().count("imap: connected") >= 2, 30, "reconnect")
    assert "imap: connection lost" in daemon.log()
    req = request("after restart")
    send_mail("127.0.0.1", smtp_relay.port, req, AGENCY, [MVAI])
    [ack] = settle(dovecot, AGENCY, 1)
    assert mid(ack["In-Reply-To"]) == req["Message-ID"]
    [row] = cli(daemon, "inbound", "list")
    assert (row["status"], row["kind"]) == ("processed", "request")
    assert "Traceback" not in daemon.log()


def test_mail_arriving_just_before_idle_wakes_the_source_at_once(
    tmp_path: Path, dovecot: Dovecot, smtp_relay: SmtpRelay, monkeypatch: pytest.MonkeyPatch
):
    """Dovecot announces mail that came in after our last command together with the IDLE
    continuation, in one packet. Found by the loop test below: such a request waited for the
    next IDLE renewal (60 s here, 9 min by default) before it was acknowledged."""
    dovecot.purge()
    monkeypatch.setenv("MVAI_TEST_IMAP_PASSWORD", PASSWORD)
    source = ImapSource(config_mod.load(imap_config(tmp_path, dovecot, smtp_relay.port)))
    checked = source._has_unseen_work

    def then_mail_arrives() -> bool:
        found = checked()
        dovecot.deliver(MVAI, request("just before IDLE").as_bytes())
        time.sleep(0.3)  # in the mailbox before IDLE starts
        return found

    monkeypatch.setattr(source, "_has_unseen_work", then_mail_arrives)
    stored: list[RawMail] = []

    def store(mails: Sequence[RawMail]) -> list[int]:
        stored.extend(mails)
        return []

    source.connect()
    try:
        started = time.monotonic()
        source.wait(60, threading.Event())
        woke = time.monotonic() - started
        assert source.client is not None, "the connection was dropped"
        source.poll(store)
    finally:
        source.close()
    assert woke < 5, f"woke after {woke:.0f}s"
    assert len(stored) == 1


def test_restart_in_the_middle_of_a_backlog_loses_nothing_and_sends_nothing_twice(
    daemon: MailbotProcess, dovecot: Dovecot, smtp_relay: SmtpRelay
):
    """100 requests wait in the INBOX; Dovecot restarts while the daemon fetches them."""
    configure(daemon, dovecot, smtp_relay, fetch_batch=5)
    requests = [request(f"backlog {n}") for n in range(100)]
    for req in requests:
        dovecot.deliver(MVAI, req.as_bytes())
    daemon.start()
    wait_for(lambda: ledger_count(daemon.config) > 0, 30, "the first fetched batch in the ledger")
    dovecot.restart()
    at_restart = ledger_count(daemon.config)
    assert at_restart < len(requests), "the restart came after the whole backlog was fetched"
    print(f"ledger rows when Dovecot restarted: {at_restart} of {len(requests)}")

    acks = settle(dovecot, AGENCY, len(requests), seconds=4)
    assert sorted(mid(a["In-Reply-To"]) for a in acks) == sorted(r["Message-ID"] for r in requests)
    alerts = dovecot.fetch_all(COORDINATOR)
    assert len(alerts) == len(requests)
    rows = cli(daemon, "inbound", "list")
    assert len(rows) == len(requests)
    assert {(r["status"], r["kind"]) for r in rows} == {("processed", "request")}
    assert len(cli(daemon, "cases", "list")) == len(requests)
    assert dovecot.fetch_all(MVAI) == []
    assert len(dovecot.fetch_all(MVAI, folder="MVAI/Processed")) == len(requests)
    assert daemon.log().count("imap: connected") >= 2


def test_silent_connection_death_is_noticed_in_bounded_time(
    daemon: MailbotProcess, dovecot: Dovecot, smtp_relay: SmtpRelay
):
    """The server side of the session freezes (SIGSTOP): no EOF, no reply, TCP still up."""
    renew, timeout = 60, 5
    configure(daemon, dovecot, smtp_relay, idle_renew_seconds=renew, timeout_seconds=timeout)
    daemon.start()
    time.sleep(1.5)  # in IDLE now
    [frozen] = imap_session_pids(dovecot)
    os.kill(frozen, signal.SIGSTOP)
    try:
        frozen_at = time.monotonic()
        req = request("while frozen")
        dovecot.deliver(MVAI, req.as_bytes())  # LMTP does not need the frozen process
        noticed = wait_for(
            lambda: "imap: connection lost" in daemon.log(),
            renew + 3 * timeout + 10,
            "the frozen connection noticed",
        )
        wait_for(lambda: daemon.log().count("imap: connected") >= 2, 30, "reconnect")
        [ack] = settle(dovecot, AGENCY, 1)
        recovered = time.monotonic() - frozen_at
    finally:
        os.kill(frozen, signal.SIGCONT)
    assert mid(ack["In-Reply-To"]) == req["Message-ID"]
    assert noticed <= renew + 2 * timeout + 5, f"noticed after {noticed:.0f}s"
    print(f"frozen session noticed after {noticed:.1f}s, request acknowledged {recovered:.1f}s")
    [row] = cli(daemon, "inbound", "list")
    assert (row["status"], row["kind"]) == ("processed", "request")
    assert "Traceback" not in daemon.log()


RETRY = re.compile(r"WARNING mailbot\.inbound\.imap: imap: (.*); retrying in (\d+)s$", re.M)


def test_refused_logins_are_retried_with_backoff_until_they_work(
    daemon: MailbotProcess, dovecot: Dovecot, smtp_relay: SmtpRelay
):
    daemon.start()
    time.sleep(1)
    offset = len(daemon.log())
    dovecot.add_user(MVAI, "rotated-by-the-admin")  # the daemon's password is now wrong
    try:
        dovecot.restart()  # ends the daemon's logged-in session: it must log in again
        req = request("during refused logins")
        dovecot.deliver(MVAI, req.as_bytes())
        wait_for(
            lambda: len(RETRY.findall(daemon.log()[offset:])) >= 3,
            60,
            "three refused login attempts logged",
        )
        line = doctor(daemon)
        assert line.startswith("FAIL"), line
        assert dovecot.fetch_all(AGENCY) == []
    finally:
        dovecot.add_user(MVAI, PASSWORD)
    [ack] = settle(dovecot, AGENCY, 1)
    assert mid(ack["In-Reply-To"]) == req["Message-ID"]
    assert doctor(daemon).startswith("ok")

    log = daemon.log()[offset:]
    retries = [m for m in (RETRY.search(x) for x in log.splitlines()) if m]
    logins = [m for m in retries if "AUTHENTICATIONFAILED" in m.group(1) or "Login" in m.group(1)]
    assert len(logins) >= 2, log
    delays = [int(m.group(2)) for m in retries]
    assert delays == sorted(delays) and delays[-1] > delays[0], delays  # backoff grows
    assert "Traceback" not in log
    assert PASSWORD not in log and "rotated-by-the-admin" not in log
    assert log.count("imap: connected") == 1  # once logins work again, and only then


def test_uidvalidity_change_processes_nothing_twice_and_warns(
    daemon: MailbotProcess, dovecot: Dovecot, smtp_relay: SmtpRelay
):
    """In flag mode the requests stay in the INBOX; the mailbox is rebuilt under them."""
    configure(daemon, dovecot, smtp_relay, after="flag")
    daemon.start()
    first = [request(f"before uidvalidity {n}") for n in range(3)]
    for req in first:
        send_mail("127.0.0.1", smtp_relay.port, req, AGENCY, [MVAI])
    settle(dovecot, AGENCY, 3, seconds=1)
    old = dovecot.uidvalidity(MVAI)

    dovecot.recreate_mailbox(MVAI)  # new UIDVALIDITY, same messages renumbered from 1
    new = dovecot.uidvalidity(MVAI)
    assert new != old
    wait_for(lambda: "UIDVALIDITY" in daemon.log(), 30, "the UIDVALIDITY warning")
    # A migration that carried the messages but not our keyword: all three look new now.
    with dovecot.imap_client(MVAI) as client:
        client.select_folder("INBOX")
        client.remove_flags(client.search("ALL"), [b"$MailbotLedgered"])
    late = request("after uidvalidity")
    send_mail("127.0.0.1", smtp_relay.port, late, AGENCY, [MVAI])

    acks = settle(dovecot, AGENCY, 4, seconds=4)
    expected = sorted(r["Message-ID"] for r in [*first, late])
    assert sorted(mid(a["In-Reply-To"]) for a in acks) == expected
    assert len(cli(daemon, "cases", "list")) == 4
    rows = cli(daemon, "inbound", "list")
    duplicates = [r for r in rows if r["kind"] == "duplicate"]
    assert len(duplicates) == 3, rows
    assert all(r["reason"].startswith("same Message-ID and content") for r in duplicates)
    assert {r["message_id"] for r in duplicates} == {r["Message-ID"].strip("<>") for r in first}
    warnings = [x for x in daemon.log().splitlines() if "UIDVALIDITY" in x]
    assert len(warnings) == 1 and "WARNING" in warnings[0]
    assert f"from {old} to {new}" in warnings[0]
    with dovecot.imap_client(MVAI) as client:
        client.select_folder("INBOX", readonly=True)
        flags = client.get_flags(client.search("ALL"))
    assert len(flags) == 4 and all(b"$MailbotLedgered" in f for f in flags.values())
    # The coordinators hear of it once: four new-case alerts and one about the mailbox.
    alerts = parsed(dovecot.fetch_all(COORDINATOR))
    renumbered = [a for a in alerts if "UIDVALIDITY" in str(a["Subject"])]
    assert len(alerts) == 5 and len(renumbered) == 1, [str(a["Subject"]) for a in alerts]
    [notice] = renumbered
    assert notice["Auto-Submitted"] == "auto-generated"
    text = notice.get_body(("plain",)).get_content()
    assert f"from {old} to {new}" in text
    [row] = [r for r in cli(daemon, "outbox", "list") if r["message_id"].startswith("uidvalidity.")]
    assert (row["kind"], row["status"]) == ("alert", "sent")


def test_the_imap_connection_has_tcp_keepalive(
    tmp_path: Path, dovecot: Dovecot, smtp_relay: SmtpRelay, monkeypatch: pytest.MonkeyPatch
):
    """A peer that vanishes without a FIN or RST (a dropped NAT entry, a dead host) is noticed
    by the kernel's keepalive probes within about 90 s, not at the next IDLE renewal."""
    import socket

    monkeypatch.setenv("MVAI_TEST_IMAP_PASSWORD", PASSWORD)
    source = ImapSource(config_mod.load(imap_config(tmp_path, dovecot, smtp_relay.port)))
    source.connect()
    try:
        assert source.client is not None
        sock = source.client.socket()
        assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) == 1
        idle, interval, count = (
            sock.getsockopt(socket.IPPROTO_TCP, option)
            for option in (socket.TCP_KEEPIDLE, socket.TCP_KEEPINTVL, socket.TCP_KEEPCNT)
        )
        assert idle + interval * count <= 90
    finally:
        source.close()


def test_a_backlog_is_fetched_a_lot_at_a_time_in_order_and_none_twice(
    tmp_path: Path, dovecot: Dovecot, smtp_relay: SmtpRelay, monkeypatch: pytest.MonkeyPatch
):
    """poll(limit) takes the oldest mail first and leaves the rest in the mailbox for the next
    poll; a message already in the ledger (a crash before it was moved) is moved, not stored
    again; the ledger is asked in slices (KNOWN_CHUNK), so a huge backlog fits in one query's
    parameters."""
    from mailbot.inbound import imap as imap_mod
    from mailbot.inbound import ledger

    dovecot.purge()
    monkeypatch.setenv("MVAI_TEST_IMAP_PASSWORD", PASSWORD)
    monkeypatch.setattr(imap_mod, "KNOWN_CHUNK", 2)
    cfg = config_mod.load(imap_config(tmp_path, dovecot, smtp_relay.port))
    engine = db.make_engine(cfg.database_url)
    db.upgrade(engine)
    factory = db.session_factory(engine)
    for i in range(7):
        dovecot.deliver(MVAI, request(f"lot {i}").as_bytes())
    source = ImapSource(cfg, factory)
    source.connect()
    try:
        # message 1 reached the ledger before a crash, but was never moved
        with dovecot.imap_client(MVAI) as client:
            client.select_folder("INBOX", readonly=True)
            first = min(int(u) for u in client.search("ALL"))
            raw = client.fetch([first], ["BODY.PEEK[]"])[first][b"BODY[]"]
        ledger.store_batch(factory, [RawMail(source.name, raw, source.uidvalidity, first)])
        stored: list[list[str]] = []

        def store(mails: Sequence[RawMail]) -> list[int]:
            stored.append([str(email.message_from_bytes(m.raw)["Subject"]) for m in mails])
            return ledger.store_batch(factory, mails)

        counts = [source.poll(store, limit=3) for _ in range(4)]
    finally:
        source.close()
    assert counts == [3, 3, 0, 0]
    assert [s for lot in stored for s in lot] == [
        f"Request for peer support (lot {i})" for i in range(1, 7)
    ]
    assert dovecot.fetch_all(MVAI) == []  # every one moved, the one held before too
    assert len(dovecot.fetch_all(MVAI, "MVAI/Processed")) == 7
    with factory() as session:
        assert session.scalar(select(func.count()).select_from(InboundMessage)) == 7
    engine.dispose()
