"""The test bed itself: real Dovecot, SMTP relay and Postfix deliver, notify and refuse."""

from __future__ import annotations

import email
import smtplib
import socket
import time
import uuid
from email.message import EmailMessage
from email.policy import default as default_policy
from pathlib import Path

import pytest

from tests.testbed import (
    LOOPBACK,
    Dovecot,
    Postfix,
    SmtpRelay,
    TestbedError,
    send_mail,
)

SENDER = "chief@agency.test"


def make_message(to: str | list[str], subject: str = "Request for a peer advisor") -> EmailMessage:
    """A message with a unique Message-ID and headers worth checking after delivery."""
    message = EmailMessage()
    message["From"] = f"Chief Ana Núñez <{SENDER}>"
    message["To"] = to if isinstance(to, str) else ", ".join(to)
    message["Subject"] = subject
    message["Message-ID"] = f"<{uuid.uuid4().hex}@agency.test>"
    message["Date"] = "Mon, 02 Mar 2026 09:15:00 -0500"
    message["X-Testbed-Case"] = "header survives relaying"
    message.set_content("We had a shooting at the high school on Friday.\nPlease call.\n")
    return message


def parse(raw: bytes) -> EmailMessage:
    parsed = email.message_from_bytes(raw, policy=default_policy)
    assert isinstance(parsed, EmailMessage)
    return parsed


def assert_same_message(raw: bytes, sent: EmailMessage, rcpt: str) -> None:
    received = parse(raw)
    for header in ("From", "To", "Subject", "Message-ID", "Date", "X-Testbed-Case"):
        assert received[header] == sent[header], header
    assert received["Delivered-To"] == rcpt
    assert received.get_content().replace("\r\n", "\n") == sent.get_content()


def settle_and_count(dovecot: Dovecot, user: str, message_id: str) -> int:
    """Count copies of message_id after a pause long enough for a duplicate to arrive."""
    time.sleep(0.5)
    return sum(message_id.encode() in raw for raw in dovecot.fetch_all(user))


def live(pids: list[int]) -> list[int]:
    """The pids that still exist and are not zombies."""
    alive = []
    for pid in pids:
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            continue
        if stat.rsplit(")", 1)[1].split()[0] != "Z":
            alive.append(pid)
    return alive


def port_is_open(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex((LOOPBACK, port)) == 0


def test_relay_delivers_each_recipient_exactly_once_with_headers_intact(
    dovecot: Dovecot, smtp_relay: SmtpRelay
) -> None:
    rcpts = ["mvai@mvai.test", "coord@mvai.test"]
    sent = make_message(rcpts)
    msgid = sent["Message-ID"]

    refused = send_mail(LOOPBACK, smtp_relay.port, sent, SENDER, rcpts)

    assert refused == {}
    for rcpt in rcpts:
        [raw] = dovecot.wait_for_messages(rcpt, 1, containing=msgid.encode(), timeout=10)
        assert_same_message(raw, sent, rcpt)
        assert settle_and_count(dovecot, rcpt, msgid) == 1
    [envelope] = smtp_relay.received
    assert envelope.mail_from == SENDER
    assert envelope.rcpt_tos == tuple(rcpts)


def test_queued_relay_holds_mail_until_released_then_delivers_it_once(
    dovecot: Dovecot, smtp_relay: SmtpRelay
) -> None:
    rcpt = "coord@mvai.test"
    smtp_relay.queue = True
    smtp_relay.hold()
    sent = [make_message(rcpt, subject=f"held {i}") for i in range(3)]
    for message in sent:
        assert send_mail(LOOPBACK, smtp_relay.port, message, SENDER, [rcpt]) == {}

    assert len(smtp_relay.received) == 3  # taken (250) while held
    assert not smtp_relay.drained()
    assert settle_and_count(dovecot, rcpt, sent[0]["Message-ID"]) == 0  # not delivered
    smtp_relay.release()
    deadline = time.monotonic() + 10
    while not smtp_relay.drained() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert smtp_relay.drained() and smtp_relay.delivery_failures == []
    for message in sent:  # the mailbox may hold other tests' mail: look for these by Message-ID
        msgid = message["Message-ID"].encode()
        dovecot.wait_for_messages(rcpt, 1, containing=msgid, timeout=10)
        assert settle_and_count(dovecot, rcpt, message["Message-ID"]) == 1


def test_postfix_delivers_through_lmtp(dovecot: Dovecot, postfix: Postfix) -> None:
    rcpt = "advisor@advisors.test"
    sent = make_message(rcpt)
    msgid = sent["Message-ID"]

    send_mail(LOOPBACK, postfix.port, sent, SENDER, [rcpt])

    [raw] = dovecot.wait_for_messages(rcpt, 1, containing=msgid.encode(), timeout=15)
    assert_same_message(raw, sent, rcpt)
    assert "(Postfix)" in " ".join(parse(raw).get_all("Received", []))
    assert settle_and_count(dovecot, rcpt, msgid) == 1


def test_postfix_accepts_a_user_added_while_running(dovecot: Dovecot, postfix: Postfix) -> None:
    rcpt = f"late-{uuid.uuid4().hex[:8]}@mvai.test"
    dovecot.add_user(rcpt, "pw")
    sent = make_message(rcpt)

    send_mail(LOOPBACK, postfix.port, sent, SENDER, [rcpt])

    dovecot.wait_for_messages(rcpt, 1, containing=sent["Message-ID"].encode(), timeout=15)


def test_postfix_queues_while_dovecot_is_down(dovecot: Dovecot, postfix: Postfix) -> None:
    sent = make_message("mvai@mvai.test")
    dovecot.stop()
    try:
        send_mail(LOOPBACK, postfix.port, sent, SENDER, ["mvai@mvai.test"])
        time.sleep(0.5)
    finally:
        dovecot.start()

    dovecot.wait_for_messages(
        "mvai@mvai.test", 1, containing=sent["Message-ID"].encode(), timeout=10
    )
    assert "status=deferred" in postfix.log()


def assert_refused_at_rcpt(port: int, rcpt: str) -> None:
    with pytest.raises(smtplib.SMTPRecipientsRefused) as refused:
        send_mail(LOOPBACK, port, make_message(rcpt), SENDER, [rcpt])
    code, _text = refused.value.recipients[rcpt]
    assert code == 550


def test_relay_refuses_unknown_recipient_at_rcpt(smtp_relay: SmtpRelay) -> None:
    assert_refused_at_rcpt(smtp_relay.port, "ghost@mvai.test")


def test_postfix_refuses_unknown_recipient_at_rcpt(postfix: Postfix) -> None:
    assert_refused_at_rcpt(postfix.port, "ghost@mvai.test")


def test_relay_delivers_to_known_recipients_when_one_is_unknown(
    dovecot: Dovecot, smtp_relay: SmtpRelay
) -> None:
    sent = make_message(["coord@mvai.test", "ghost@mvai.test"])

    refused = send_mail(
        LOOPBACK, smtp_relay.port, sent, SENDER, ["coord@mvai.test", "ghost@mvai.test"]
    )

    assert set(refused) == {"ghost@mvai.test"}
    dovecot.wait_for_messages("coord@mvai.test", 1, containing=sent["Message-ID"].encode())
    assert smtp_relay.received[0].rcpt_tos == ("coord@mvai.test",)


def test_lmtp_refuses_unknown_user(dovecot: Dovecot) -> None:
    with pytest.raises(TestbedError, match="550"):
        dovecot.deliver("ghost@mvai.test", b"Subject: lost\r\n\r\nnobody home\r\n")


def test_idle_is_notified_soon_after_delivery(dovecot: Dovecot, smtp_relay: SmtpRelay) -> None:
    with dovecot.imap_client("coord@mvai.test") as client:
        client.select_folder("INBOX")
        client.idle()
        send_mail(
            LOOPBACK, smtp_relay.port, make_message("coord@mvai.test"), SENDER, ["coord@mvai.test"]
        )
        sent_at = time.monotonic()
        responses: list[tuple[object, ...]] = []
        while not any(b"EXISTS" in response for response in responses):
            assert time.monotonic() - sent_at < 5, "no EXISTS within 5 s of delivery"
            responses = client.idle_check(timeout=1)
        client.idle_done()


def test_server_supports_what_mailbot_uses(dovecot: Dovecot) -> None:
    with dovecot.imap_client("mvai@mvai.test") as client:
        capabilities = set(client.capabilities())
    assert {b"IDLE", b"MOVE", b"UIDPLUS"} <= capabilities
    assert set(dovecot.folders("mvai@mvai.test")) >= {"INBOX", "Archive", "Junk", "Sent"}


def test_restart_keeps_ports_and_mail_and_drops_sessions(dovecot: Dovecot) -> None:
    user = f"restart-{uuid.uuid4().hex[:8]}@mvai.test"
    dovecot.add_user(user, "pw")
    dovecot.deliver(user, b"Subject: before restart\r\n\r\nstill here\r\n")
    port = dovecot.imap_port
    client = dovecot.imap_client(user)
    client.select_folder("INBOX")

    started = time.monotonic()
    dovecot.restart()

    assert time.monotonic() - started < 5
    assert dovecot.imap_port == port
    with pytest.raises((OSError, client.Error, client.AbortError)):
        client.noop()
    client.shutdown()
    [raw] = dovecot.fetch_all(user)
    assert b"still here" in raw


def test_recreate_mailbox_changes_uidvalidity_and_keeps_messages(dovecot: Dovecot) -> None:
    user = f"uidv-{uuid.uuid4().hex[:8]}@mvai.test"
    dovecot.add_user(user, "pw")
    for n in (1, 2):
        dovecot.append(user, f"Subject: m{n}\r\n\r\nbody {n}\r\n".encode())
    before = dovecot.uidvalidity(user)
    messages = dovecot.fetch_all(user)

    dovecot.recreate_mailbox(user)

    assert dovecot.uidvalidity(user) != before
    assert dovecot.fetch_all(user) == messages


def test_purge_empties_the_mailboxes(dovecot: Dovecot) -> None:
    user = f"purge-{uuid.uuid4().hex[:8]}@mvai.test"
    dovecot.add_user(user, "pw")
    dovecot.append(user, b"Subject: in inbox\r\n\r\nx\r\n")
    dovecot.append(user, b"Subject: archived\r\n\r\nx\r\n", folder="Archive")
    with dovecot.imap_client(user) as client:
        client.create_folder("Cases/Done")  # leaves "Cases" unselectable
    dovecot.append(user, b"Subject: done\r\n\r\nx\r\n", folder="Cases/Done")

    dovecot.purge(user)

    for folder in ("INBOX", "Archive", "Cases/Done"):
        assert dovecot.fetch_all(user, folder) == [], folder


def test_relay_fault_hooks(dovecot: Dovecot, smtp_relay: SmtpRelay) -> None:
    rcpt = "mvai@mvai.test"
    smtp_relay.fail_next_temporary = 1
    with pytest.raises(smtplib.SMTPDataError) as temporary:
        send_mail(LOOPBACK, smtp_relay.port, make_message(rcpt), SENDER, [rcpt])
    assert temporary.value.smtp_code == 451

    smtp_relay.fail_next_temporary = 1
    smtp_relay.temporary_reply = "421 4.3.2 Shutting down"
    with pytest.raises(smtplib.SMTPDataError) as closing:
        send_mail(LOOPBACK, smtp_relay.port, make_message(rcpt), SENDER, [rcpt])
    assert closing.value.smtp_code == 421

    smtp_relay.reject_recipients = {rcpt}
    with pytest.raises(smtplib.SMTPRecipientsRefused):
        send_mail(LOOPBACK, smtp_relay.port, make_message(rcpt), SENDER, [rcpt])

    smtp_relay.reject_recipients = set()
    sent = make_message(rcpt)
    send_mail(LOOPBACK, smtp_relay.port, sent, SENDER, [rcpt])
    dovecot.wait_for_messages(rcpt, 1, containing=sent["Message-ID"].encode())
    assert len(smtp_relay.received) == 1


def test_relay_with_auth_requires_the_right_login(dovecot: Dovecot) -> None:
    rcpt = "mvai@mvai.test"
    with SmtpRelay(dovecot, username="mailbot", password="s3cret") as relay:
        with pytest.raises(smtplib.SMTPSenderRefused) as anonymous:
            send_mail(LOOPBACK, relay.port, make_message(rcpt), SENDER, [rcpt])
        assert anonymous.value.smtp_code == 530
        with pytest.raises(smtplib.SMTPAuthenticationError):
            send_mail(
                LOOPBACK,
                relay.port,
                make_message(rcpt),
                SENDER,
                [rcpt],
                username="mailbot",
                password="wrong",
            )
        sent = make_message(rcpt)
        send_mail(LOOPBACK, relay.port, sent, SENDER, [rcpt], username="mailbot", password="s3cret")
        dovecot.wait_for_messages(rcpt, 1, containing=sent["Message-ID"].encode())


@pytest.mark.usefixtures("postfix")  # only for its skip-or-fail check
def test_servers_leave_no_process_port_or_directory_behind() -> None:
    with Dovecot({"solo@solo.test": "pw"}) as own, Postfix(own) as mta:
        own.imap_client("solo@solo.test").logout()
        send_mail(LOOPBACK, mta.port, make_message("solo@solo.test"), SENDER, ["solo@solo.test"])
        own.wait_for_messages("solo@solo.test", 1, timeout=15)
        pids = own.pids() + mta.pids()
        ports = [own.imap_port, own.lmtp_port, mta.port]
        roots = [own.root, mta.root]
        assert len(pids) > 5 and all(port_is_open(port) for port in ports)
    assert live(pids) == []
    assert not any(port_is_open(port) for port in ports)
    assert not any(root.exists() for root in roots)


@pytest.mark.usefixtures("dovecot")  # only for its skip-or-fail check
def test_first_start_moves_off_a_port_taken_meanwhile() -> None:
    server = Dovecot({"solo@solo.test": "pw"})
    taken = server.imap_port
    with socket.socket() as squatter:
        squatter.bind((LOOPBACK, taken))
        squatter.listen()
        with server:
            assert server.imap_port != taken
            server.imap_client("solo@solo.test").logout()
