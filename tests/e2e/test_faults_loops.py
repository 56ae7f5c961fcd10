"""No mail loops with an auto-responder that answers everything it receives.

The agency's mailbox gets a peer on the test bed: a thread that watches its INBOX over IMAP
and answers every new message from the MVAI address, ignoring our Auto-Submitted and
X-Auto-Response-Suppress headers. Two kinds of responder:

- "out-of-office": an RFC 3834 auto-reply (Auto-Submitted: auto-replied, "Automatic reply:"
  subject, In-Reply-To): our filters recognise it, so only the acknowledgement goes out;
- "headerless": no auto-reply header, no thread headers, the same subject every time, so each
  answer looks like a new request; only our per-sender daily cap
  ([limits] auto_replies_per_sender_per_day) stops the ping-pong.

Each run lasts until both mailboxes have been quiet for a while (90 s at most); then the mail
in each direction is counted.
"""

from __future__ import annotations

import email
import threading
import time
from collections.abc import Callable
from email.message import EmailMessage, Message
from email.policy import default as default_policy
from email.utils import formatdate, make_msgid
from pathlib import Path

import pytest

from tests.e2e.daemon import MailbotProcess, imap_config
from tests.testbed import Dovecot, SmtpRelay

AGENCY = "chief@agency.test"
MVAI = "mvai@mvai.test"
QUIET_SECONDS = 8.0
RUN_SECONDS = 90.0


def request() -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = f"Chief Dana Whitfield <{AGENCY}>"
    msg["To"] = MVAI
    msg["Subject"] = "Request for peer support after the Harlan shooting"
    msg["Message-ID"] = make_msgid(domain="agency.test")
    msg["Date"] = formatdate(localtime=True)
    msg.set_content(
        "Yesterday we had a shooting at Harlan High School in Harlan, KY. We need help with "
        "media and with support for our officers.\n\nDana Whitfield\nChief of Police\n"
        "Harlan Police Department\n(606) 555-0142\n"
    )
    return msg


def out_of_office(received: Message) -> EmailMessage:
    reply = EmailMessage()
    reply["From"] = f"Chief Dana Whitfield <{AGENCY}>"
    reply["To"] = MVAI
    reply["Subject"] = f"Automatic reply: {received['Subject']}"
    reply["Message-ID"] = make_msgid(domain="agency.test")
    reply["In-Reply-To"] = received["Message-ID"]
    reply["References"] = received["Message-ID"]
    reply["Date"] = formatdate(localtime=True)
    reply["Auto-Submitted"] = "auto-replied"
    reply.set_content("I am out of the office until Monday with limited access to email.\n")
    return reply


def headerless(_received: Message) -> EmailMessage:
    reply = EmailMessage()
    reply["From"] = f"Harlan Police Department <{AGENCY}>"
    reply["To"] = MVAI
    reply["Subject"] = "Thank you for contacting the Harlan Police Department"
    reply["Message-ID"] = make_msgid(domain="agency.test")
    reply["Date"] = formatdate(localtime=True)
    reply.set_content(
        "Your message has been received and will be answered during office hours.\n"
        "If this is an emergency, dial 911.\n"
    )
    return reply


class AutoResponder(threading.Thread):
    """Answers every new message from MVAI in user's INBOX with make(message), over LMTP."""

    def __init__(
        self, dovecot: Dovecot, user: str, make: Callable[[Message], EmailMessage]
    ) -> None:
        super().__init__(name="auto-responder", daemon=True)
        self.dovecot, self.user, self.make = dovecot, user, make
        self.sent: list[EmailMessage] = []
        self.errors: list[BaseException] = []
        self.done = threading.Event()

    def run(self) -> None:
        answered: set[int] = set()
        try:
            with self.dovecot.imap_client(self.user) as client:
                client.select_folder("INBOX", readonly=True)
                while not self.done.is_set():
                    client.noop()
                    fresh = [u for u in client.search("ALL") if u not in answered]
                    if fresh:
                        fetched = client.fetch(fresh, ["BODY.PEEK[]"])
                        for uid in fresh:
                            answered.add(uid)
                            received = email.message_from_bytes(
                                fetched[uid][b"BODY[]"], policy=default_policy
                            )
                            if MVAI not in str(received["From"]):
                                continue
                            reply = self.make(received)
                            self.dovecot.deliver(MVAI, reply.as_bytes(), mail_from=self.user)
                            self.sent.append(reply)
                    self.done.wait(0.3)
        except BaseException as exc:  # reported by the test
            self.errors.append(exc)

    def stop(self) -> None:
        self.done.set()
        self.join(timeout=15)
        assert not self.is_alive(), "the auto-responder did not stop"


def received_by_mvai(dovecot: Dovecot) -> list[bytes]:
    return dovecot.fetch_all(MVAI) + dovecot.fetch_all(MVAI, folder="MVAI/Processed")


def run_until_quiet(dovecot: Dovecot, peer: AutoResponder) -> float:
    """Wait until the exchange is over; return the seconds taken (AssertionError if never).

    Over means: the daemon has taken everything from its INBOX, the responder has answered
    every mail it got from us, and neither mailbox has changed for QUIET_SECONDS.
    """
    started = last_change = time.monotonic()
    counts = (0, 0, 0)
    while True:
        ours = len(dovecot.fetch_all(AGENCY))
        now = (ours, len(received_by_mvai(dovecot)), len(peer.sent))
        if now != counts:
            counts, last_change = now, time.monotonic()
        settled = ours > 0 and len(peer.sent) == ours and not dovecot.fetch_all(MVAI)
        if settled and time.monotonic() - last_change >= QUIET_SECONDS:
            return time.monotonic() - started
        assert not peer.errors, peer.errors
        assert time.monotonic() - started < RUN_SECONDS, f"still busy: {counts}"
        time.sleep(0.5)


@pytest.mark.parametrize(
    ("responder", "cap", "each_way"),
    [
        pytest.param(out_of_office, 3, 1, id="out-of-office"),
        pytest.param(headerless, 1, 1, id="headerless-cap-1"),
        pytest.param(headerless, 3, 3, id="headerless-cap-3"),
    ],
)
def test_an_auto_responder_gets_no_loop_going(
    tmp_path: Path,
    dovecot: Dovecot,
    smtp_relay: SmtpRelay,
    responder: Callable[[Message], EmailMessage],
    cap: int,
    each_way: int,
):
    dovecot.purge()
    proc = MailbotProcess(
        imap_config(
            tmp_path, dovecot, smtp_relay.port, f"[limits]\nauto_replies_per_sender_per_day = {cap}"
        )
    )
    peer = AutoResponder(dovecot, AGENCY, responder)
    peer.start()
    proc.start()
    try:
        dovecot.deliver(MVAI, request().as_bytes(), mail_from=AGENCY)
        took = run_until_quiet(dovecot, peer)
    finally:
        peer.stop()
        assert proc.stop() == 0
    assert peer.errors == []
    print(f"quiet after {took:.0f}s")

    ours = [email.message_from_bytes(r, policy=default_policy) for r in dovecot.fetch_all(AGENCY)]
    assert len(ours) == each_way, [str(m["Subject"]) for m in ours]
    assert all(m["Auto-Submitted"] == "auto-replied" for m in ours)
    assert len(peer.sent) == each_way
    assert len(received_by_mvai(dovecot)) == 1 + each_way  # the request and the auto-replies
    acks = [r for r in proc.cli("outbox", "list") if r["kind"] == "ack"]
    assert len(acks) == each_way
    rows = proc.cli("inbound", "list")
    kinds = sorted(r["kind"] for r in rows)
    if responder is out_of_office:
        assert kinds == ["autoreply", "request"]
    else:  # each answer looked like a request; the last one found the cap reached
        assert kinds == ["request"] * (1 + each_way)
        assert len(proc.cli("cases", "list")) == 1 + each_way
