"""bench/harness.LeanRelay, the benchmarks' small SMTP server: what it takes is what was sent
(dot-unstuffed, CRLFs kept), and what it refuses it says so, as smtplib expects."""

from __future__ import annotations

import smtplib
import socket
from collections.abc import Iterator

import pytest

from bench.harness import LeanRelay
from tests.testbed import free_port


class _NoDovecot:
    """No LMTP server behind: an address not yet verified cannot be checked (451)."""

    lmtp_port = free_port()


@pytest.fixture
def relay() -> Iterator[LeanRelay]:
    relay = LeanRelay(_NoDovecot())  # type: ignore[arg-type]
    relay.queue = True
    relay._verified.update({"a@agency.test", "coord@mvai.test"})
    relay.start()
    relay.hold()
    try:
        yield relay
    finally:
        relay.stop()


def test_messages_are_taken_as_sent_with_dots_unstuffed(relay: LeanRelay):
    first = b"Subject: one\r\n\r\n.leading dot\r\n..two dots\r\nlast line\r\n"
    second = b"Subject: two\r\n\r\n" + b"x" * 998 + b"\r\n"
    with smtplib.SMTP("127.0.0.1", relay.port, timeout=10) as client:
        client.sendmail("mvai@mvai.test", ["a@agency.test", "coord@mvai.test"], first)
        client.sendmail("mvai@mvai.test", ["A@agency.test"], second)
    assert [(m.mail_from, m.rcpt_tos, m.data) for m in relay.received] == [
        ("mvai@mvai.test", ("a@agency.test", "coord@mvai.test"), first),
        ("mvai@mvai.test", ("A@agency.test",), second),
    ]
    assert not relay.drained()  # held: queued for Dovecot, not delivered yet


def test_refused_recipients_and_bad_sequences_get_smtp_errors(relay: LeanRelay):
    relay.reject_recipients.add("gone@agency.test")
    with smtplib.SMTP("127.0.0.1", relay.port, timeout=10) as client:
        with pytest.raises(smtplib.SMTPRecipientsRefused) as refused:
            client.sendmail("mvai@mvai.test", ["gone@agency.test"], b"Subject: x\r\n\r\nx\r\n")
        assert refused.value.recipients["gone@agency.test"][0] == 550
        # not verified and no Dovecot to ask: a temporary refusal, not a 250
        code, _ = client.rcpt("new@agency.test")
        assert code == 503  # no MAIL since the refused transaction's RSET
        client.mail("mvai@mvai.test")
        code, text = client.rcpt("new@agency.test")
        assert code == 451, text
        assert client.docmd("DATA")[0] == 503  # no recipient taken
        assert client.rset()[0] == 250
        assert client.noop()[0] == 250
        assert client.docmd("VRFY", "a@agency.test")[0] == 502
    assert relay.received == []


def test_a_line_over_1000_octets_is_refused_and_nothing_is_taken(relay: LeanRelay):
    with socket.create_connection(("127.0.0.1", relay.port), timeout=10) as sock:
        replies = sock.makefile("rb")
        assert replies.readline().startswith(b"220")
        for command in (b"HELO me", b"MAIL FROM:<mvai@mvai.test>", b"RCPT TO:<a@agency.test>"):
            sock.sendall(command + b"\r\n")
            assert replies.readline().startswith(b"250"), command
        sock.sendall(b"DATA\r\n")
        assert replies.readline().startswith(b"354")
        sock.sendall(b"Subject: long\r\n\r\n" + b"y" * 1200 + b"\r\n.\r\n")
        assert replies.readline().startswith(b"500 5.5.2 Line too long")
    assert relay.received == []
