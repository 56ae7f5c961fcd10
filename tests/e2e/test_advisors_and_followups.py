"""End to end on the test bed: a coordinator assigns by replying, the advisor and the agency
get their mails, the advisor's commands change the case, a forged reply changes nothing, the
agency's reply reaches the advisor; one check-in and one digest go out, once."""

from __future__ import annotations

import email
import time
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.utils import make_msgid
from pathlib import Path

from sqlalchemy import update

from mailbot import config as config_mod
from mailbot import db
from mailbot.models import Case, FollowUp, InboundMessage
from tests.e2e.daemon import MailbotProcess, imap_config
from tests.testbed import Dovecot, SmtpRelay, send_mail

AGENCY = "chief@agency.test"
MVAI = "mvai@mvai.test"
COORDINATOR = "coord@mvai.test"
ADVISOR = "advisor@advisors.test"
ROSTER = f"""
[[person]]
name = "Alex Advisor"
emails = ["{ADVISOR}"]
role = "chief"
incident_types = ["school_shooting"]
services = ["public_information"]
experience = "Retired chief; led the response to a school shooting."

[[person]]
name = "Pat Coordinator"
emails = ["{COORDINATOR}"]
role = "coordinator"
"""


def mail(
    sender: str, subject: str, body: str, in_reply_to: str | None = None, authserv: str = ""
) -> EmailMessage:
    """A message; with ``authserv``, as if that server had checked its DKIM signature."""
    msg = EmailMessage()
    if authserv:
        domain = sender.rpartition("@")[2].rstrip(">")
        msg["Authentication-Results"] = f"{authserv}; dkim=pass header.d={domain}"
    msg["From"] = sender
    msg["To"] = MVAI
    msg["Subject"] = subject
    msg["Message-ID"] = make_msgid(domain=sender.rpartition("@")[2].rstrip(">"))
    msg["Date"] = email.utils.formatdate(localtime=True)
    if in_reply_to:
        msg["In-Reply-To"] = in_reply_to
        msg["References"] = in_reply_to
    msg.set_content(body)
    return msg


def find(raws: list[bytes], needle: str) -> email.message.Message:
    found = [email.message_from_bytes(r) for r in raws if needle.encode() in r]
    assert len(found) == 1, f"{len(found)} messages contain {needle!r}"
    return found[0]


def start(tmp_path: Path, dovecot: Dovecot, relay: SmtpRelay, extra: str = "") -> MailbotProcess:
    (tmp_path / "roster.toml").write_text(ROSTER)
    config = imap_config(
        tmp_path,
        dovecot,
        relay.port,
        '[roster]\npath = "roster.toml"\n\n[limits]\nauto_replies_per_sender_per_day = 50\n\n'
        + extra,
    )
    proc = MailbotProcess(config)
    proc.start()
    return proc


def body_of(msg: email.message.Message) -> str:
    part = msg.get_payload()[0] if msg.is_multipart() else msg
    return part.get_payload(decode=True).decode()


def test_assignment_commands_forgery_and_forward(
    tmp_path: Path, dovecot: Dovecot, smtp_relay: SmtpRelay
):
    dovecot.purge()
    security = (
        "[digest]\nenabled = false\n\n[security]\nrequire_authenticated_sender = true\n"
        'trusted_authserv_ids = ["mx.mvai.test"]'
    )
    proc = start(tmp_path, dovecot, smtp_relay, security)

    def send(msg: EmailMessage, sender: str) -> None:
        send_mail("127.0.0.1", smtp_relay.port, msg, sender, [MVAI])

    try:
        request = mail(
            f"Chief Dana Whitfield <{AGENCY}>",
            "Request after school shooting",
            "Yesterday a gunman opened fire at Harlan High School in Harlan, KY. We need help "
            "with the media.\n\nDana Whitfield\nChief of Police\nHarlan Police Department\n"
            "(606) 555-0142\n",
        )
        send(request, AGENCY)
        alert = find(dovecot.wait_for_messages(COORDINATOR, 1, timeout=30), "Suggested advisors")
        assert "1. Alex Advisor <advisor@advisors.test>" in body_of(alert)
        [case] = proc.cli("cases", "list")

        # The coordinator assigns by replying to the alert (signed, checked by our MX).
        send(
            mail(
                COORDINATOR,
                f"Re: {alert['Subject']}",
                "#assign 1",
                alert["Message-ID"],
                authserv="mx.mvai.test",
            ),
            COORDINATOR,
        )
        assignment = find(dovecot.wait_for_messages(ADVISOR, 1, timeout=30), "New assignment")
        assert case["ref"] in assignment["Subject"]
        agency_mails = dovecot.wait_for_messages(AGENCY, 2, timeout=30)
        assert "Alex Advisor" in body_of(find(agency_mails, "Your MVAI peer advisor"))

        # The advisor replies in-thread: commands, a note, and a command in quoted text.
        body = (
            "Called the chief.\n#status monitoring\n#note Media plan agreed\n\n"
            f"On Mon, MVAI wrote:\n> {assignment['Subject']}\n> #close quoted\n"
        )
        send(
            mail(
                ADVISOR,
                f"Re: {assignment['Subject']}",
                body,
                assignment["Message-ID"],
                authserv="mx.mvai.test",
            ),
            ADVISOR,
        )
        confirm = find(dovecot.wait_for_messages(ADVISOR, 2, timeout=30), "your commands")
        assert "#status monitoring: done" in body_of(confirm)
        shown = proc.cli("cases", "show", case["ref"])[0]
        assert (shown["status"], shown["advisor"]) == ("monitoring", ADVISOR)
        notes = [e["detail"].get("text") for e in shown["events"] if e["kind"] == "note"]
        assert notes == ["Media plan agreed"]

        # Forgeries: From spoofed to the advisor with a "pass" from a server we do not trust,
        # and a stranger writing on the advisor's thread.
        send(
            mail(
                ADVISOR,
                f"Re: {assignment['Subject']}",
                "#status closed\n#priority P4",
                assignment["Message-ID"],
                authserv="mx.attacker.test",
            ),
            ADVISOR,
        )
        send(
            mail(
                "Evil <evil@attacker.test>",
                f"Re: {assignment['Subject']}",
                "#status closed\n#priority P4",
                assignment["Message-ID"],
            ),
            "evil@attacker.test",
        )

        # The agency replies to the acknowledgement: the advisor gets it, nothing is executed.
        ack = find(agency_mails, "reference is")
        send(
            mail(AGENCY, f"Re: {ack['Subject']}", "#close\nOur PIO is Sam Lee.", ack["Message-ID"]),
            AGENCY,
        )
        # The advisor's mail, in the order it is sent: the assignment, the confirmation of the
        # signed commands, the refusal of the spoofed ones, the stranger's reply forwarded and
        # the agency's reply forwarded, last. (Waiting for 4 mails once returned before the 5th.)
        forward = find(
            dovecot.wait_for_messages(ADVISOR, 1, timeout=30, containing=b"Our PIO is Sam Lee"),
            "Our PIO is Sam Lee",
        )
        assert forward["Subject"].startswith(f"[{case['ref']}] Reply from")
        time.sleep(2)  # room for a mail nobody expects
        advisor_mails = dovecot.fetch_all(ADVISOR)
        subjects = [email.message_from_bytes(r)["Subject"] for r in advisor_mails]
        assert len(advisor_mails) == 5, subjects
        assert subjects[0].startswith(f"[{case['ref']}] New assignment"), subjects
        find(advisor_mails, "#status monitoring: done")
        find(advisor_mails, "could not be authenticated")
        find(advisor_mails, "(evil@attacker.test) wrote")
        deadline = time.monotonic() + 30
        while len(proc.cli("inbound", "list")) < 6 and time.monotonic() < deadline:
            time.sleep(0.2)
        shown = proc.cli("cases", "show", case["ref"])[0]
        assert (shown["status"], shown["priority"]) == ("monitoring", case["priority"])
        ignored = [e for e in shown["events"] if e["kind"] == "commands_ignored"]
        assert {e["actor"] for e in ignored} == {"evil@attacker.test", AGENCY}
        refused = [e for e in shown["events"] if e["kind"] == "command_refused"]
        assert [e["actor"] for e in refused] == [ADVISOR, ADVISOR]
        assert all("could not be authenticated" in e["detail"]["reason"] for e in refused)
    finally:
        assert proc.stop() == 0


def test_one_check_in_and_one_digest(tmp_path: Path, dovecot: Dovecot, smtp_relay: SmtpRelay):
    dovecot.purge()
    proc = start(tmp_path, dovecot, smtp_relay, '[digest]\nenabled = true\ntime = "00:00"')
    try:
        request = mail(
            f"Chief Dana Whitfield <{AGENCY}>",
            "Request for help",
            "Yesterday a gunman opened fire at Harlan High School in Harlan, KY.\n",
        )
        send_mail("127.0.0.1", smtp_relay.port, request, AGENCY, [MVAI])
        dovecot.wait_for_messages(AGENCY, 1, timeout=30)
        time.sleep(2)
        # A new install started after today's digest time missed no digest.
        assert not [r for r in dovecot.fetch_all(COORDINATOR) if b"daily digest" in r]
    finally:
        assert proc.stop() == 0
    # While the daemon is down, the day-3 check-in falls due, and the database is made to have
    # been in use since yesterday: today's 00:00 digest was missed.
    engine = db.make_engine(config_mod.load(proc.config).database_url)
    with engine.begin() as conn:
        due = datetime.now(UTC) - timedelta(minutes=5)
        moved = conn.execute(
            update(FollowUp).where(FollowUp.phase == "day3").values(due_at=due)
        ).rowcount
        yesterday = datetime.now(UTC) - timedelta(days=1, hours=1)
        conn.execute(update(InboundMessage).values(received_at=yesterday))
        conn.execute(update(Case).values(opened_at=yesterday))
    engine.dispose()
    assert moved == 1
    proc.start()
    try:
        checkin = find(dovecot.wait_for_messages(AGENCY, 2, timeout=30), "Checking in")
        assert checkin["Auto-Submitted"] == "auto-replied"
        assert checkin["In-Reply-To"].startswith("<ack.MVAI-")
        digests = dovecot.wait_for_messages(COORDINATOR, 1, timeout=30, containing=b"daily digest")
        assert len(digests) == 1
        time.sleep(3)
        assert len([r for r in dovecot.fetch_all(AGENCY) if b"Checking in" in r]) == 1
    finally:
        assert proc.stop() == 0
    proc.start()
    try:
        time.sleep(3)
        digests = [r for r in dovecot.fetch_all(COORDINATOR) if b"daily digest" in r]
        assert len(digests) == 1, "a restart sends no second digest for the same day"
        assert len([r for r in dovecot.fetch_all(AGENCY) if b"Checking in" in r]) == 1
    finally:
        assert proc.stop() == 0
