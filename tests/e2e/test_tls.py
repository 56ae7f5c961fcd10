"""End to end over TLS: the daemon (a subprocess) checks the test bed's certificates.

Dovecot and the relays present a certificate for localhost signed by a throwaway CA
(tests/testbed.py TestCA). With that CA as ca_file the daemon reads over IMAPS or
STARTTLS and sends over STARTTLS or implicit TLS with AUTH; with the system CAs it
refuses the servers, and neither takes mail from the mailbox nor sends any.
"""

from __future__ import annotations

import email
import smtplib
import ssl
import subprocess
import sys
import time
from email.message import EmailMessage
from email.utils import make_msgid
from pathlib import Path

import pytest
from imapclient import IMAPClient

from tests.e2e.conftest import PASSWORD, RELAY_PASSWORD, RELAY_USER
from tests.e2e.daemon import MailbotProcess, imap_config
from tests.testbed import LOOPBACK, TLS_HOSTNAME, Dovecot, SmtpRelay

AGENCY = "chief@agency.test"
MVAI = "mvai@mvai.test"
COORDINATOR = "coord@mvai.test"
VERIFY_FAILED = "CERTIFICATE_VERIFY_FAILED"


def request(n: int) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = f"Chief Dana Whitfield <{AGENCY}>"
    msg["To"] = MVAI
    msg["Subject"] = f"Request for peer support (TLS #{n})"
    msg["Message-ID"] = make_msgid(domain="agency.test")
    msg["Date"] = email.utils.formatdate(localtime=True)
    msg.set_content(
        "Yesterday we had a shooting at Harlan High School in Harlan, KY. We need help with "
        "media and with support for our officers.\n\nDana Whitfield\nChief of Police\n"
        "Harlan Police Department\n(606) 555-0142\n"
    )
    return msg


def tls_config(
    folder: Path,
    dovecot: Dovecot,
    relay: SmtpRelay,
    *,
    imap_security: str = "ssl",
    imap_ca: bool = True,
    smtp_ca: bool = True,
) -> Path:
    """A config reaching both servers by name over TLS; without *_ca, trusting the system CAs."""
    imap_port = dovecot.imaps_port if imap_security == "ssl" else dovecot.imap_port
    imap_ca_file = f'\nca_file = "{dovecot.ca_path}"' if imap_ca else ""
    smtp_ca_file = f'\nca_file = "{relay.ca_path}"' if smtp_ca else ""
    smtp_auth = f'\nusername = "{RELAY_USER}"\npassword_env = "MVAI_TEST_SMTP_PASSWORD"'
    return imap_config(
        folder,
        dovecot,
        relay.port,
        "[limits]\nauto_replies_per_sender_per_day = 500",
        host=TLS_HOSTNAME,
        imap_port=imap_port,
        imap_security=imap_security,
        imap_extra=imap_ca_file,
        smtp_security=str(relay.tls),
        smtp_extra=smtp_ca_file + smtp_auth,
    )


def mailbot(config: Path) -> MailbotProcess:
    proc = MailbotProcess(config)
    proc.env["MVAI_TEST_SMTP_PASSWORD"] = RELAY_PASSWORD
    return proc


def doctor(proc: MailbotProcess) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mailbot", "doctor", "--config", str(proc.config)],
        env=proc.env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def doctor_line(output: str, what: str) -> str:
    [line] = [x for x in output.splitlines() if f" {what} " in x]
    return line


def logins(dovecot: Dovecot, user: str, since: int, until: int | None = None) -> list[str]:
    """Dovecot's login lines for user in its log from offset since to until.

    Each says how the session was protected: "TLS", or "secured" for plaintext on loopback.
    """
    return [
        line
        for line in dovecot.log()[since:until].splitlines()
        if f"imap-login: Info: Login: user=<{user}>" in line
    ]


def run_one_request(dovecot: Dovecot, relay: SmtpRelay, proc: MailbotProcess) -> int:
    """Deliver a request; the acknowledgement must reach the agency through the relay.

    Returns the offset in Dovecot's log when the daemon had stopped: the test bed's own
    plaintext logins (fetch_all of the mailbox) come after it.
    """
    req = request(int(time.time()))
    proc.start()
    try:
        dovecot.deliver(MVAI, req.as_bytes())
        [ack] = dovecot.wait_for_messages(AGENCY, 1, timeout=30)
        dovecot.wait_for_messages(COORDINATOR, 1, timeout=30)
    except TimeoutError as error:
        raise AssertionError(f"{error}; the daemon's log:\n{proc.log()}") from None
    finally:
        assert proc.stop() == 0, proc.log()
    stopped = len(dovecot.log())
    assert email.message_from_bytes(ack)["In-Reply-To"] == req["Message-ID"]
    assert dovecot.fetch_all(MVAI) == []
    assert len(dovecot.fetch_all(MVAI, folder="MVAI/Processed")) == 1
    # The acknowledgement and the alert, both over TLS after AUTH.
    assert len(relay.received) == 2
    assert all(mail.tls for mail in relay.received)
    assert VERIFY_FAILED not in proc.log()
    return stopped


def test_the_test_bed_speaks_tls_where_asked(
    dovecot_tls: Dovecot, smtp_relay_starttls: SmtpRelay, smtp_relay_ssl: SmtpRelay
):
    trusting = dovecot_tls.ca.client_context()
    assert dovecot_tls.imaps_port is not None
    with IMAPClient(
        TLS_HOSTNAME, port=dovecot_tls.imaps_port, ssl=True, ssl_context=trusting, timeout=10
    ) as client:
        client.login(MVAI, PASSWORD)
    with IMAPClient(LOOPBACK, port=dovecot_tls.imap_port, ssl=False, timeout=10) as client:
        assert b"STARTTLS" in client.capabilities()
        client.starttls(trusting)  # 127.0.0.1 is in the certificate too
        client.login(MVAI, PASSWORD)
    with pytest.raises(ssl.SSLCertVerificationError):
        IMAPClient(TLS_HOSTNAME, port=dovecot_tls.imaps_port, ssl=True, timeout=10)
    with smtplib.LMTP(LOOPBACK, dovecot_tls.lmtp_port, timeout=10) as lmtp:
        lmtp.ehlo_or_helo_if_needed()
        assert not lmtp.has_extn("starttls")  # LMTP stays plain
    with smtplib.SMTP(LOOPBACK, smtp_relay_starttls.port, timeout=10) as smtp:
        smtp.ehlo()
        assert smtp.has_extn("starttls") and not smtp.has_extn("auth")
        smtp.starttls(context=trusting)
        smtp.ehlo()
        smtp.login(RELAY_USER, RELAY_PASSWORD)
    with smtplib.SMTP_SSL(TLS_HOSTNAME, smtp_relay_ssl.port, context=trusting, timeout=10) as smtp:
        smtp.login(RELAY_USER, RELAY_PASSWORD)
    assert smtp_relay_starttls.ca_path == smtp_relay_ssl.ca_path == dovecot_tls.ca_path


def test_imaps_and_smtp_starttls_with_auth(
    tmp_path: Path, dovecot_tls: Dovecot, smtp_relay_starttls: SmtpRelay
):
    dovecot_tls.purge()
    since = len(dovecot_tls.log())
    proc = mailbot(tls_config(tmp_path, dovecot_tls, smtp_relay_starttls, imap_security="ssl"))
    checked = doctor(proc)
    assert checked.returncode == 0, checked.stdout
    assert doctor_line(checked.stdout, "mailbox").startswith(
        f"ok    mailbox   IMAP {TLS_HOSTNAME}:{dovecot_tls.imaps_port} folder INBOX"
    )
    assert doctor_line(checked.stdout, "outgoing") == (
        f"ok    outgoing  SMTP {TLS_HOSTNAME}:{smtp_relay_starttls.port} (starttls)"
    )
    stopped = run_one_request(dovecot_tls, smtp_relay_starttls, proc)
    assert f"imap: connected to IMAP {TLS_HOSTNAME}:{dovecot_tls.imaps_port}" in proc.log()
    daemon_logins = logins(dovecot_tls, MVAI, since, stopped)
    assert len(daemon_logins) >= 2  # the doctor's and the daemon's
    assert all(", TLS," in line for line in daemon_logins), daemon_logins


def test_imap_starttls_and_smtp_implicit_tls(
    tmp_path: Path, dovecot_tls: Dovecot, smtp_relay_ssl: SmtpRelay
):
    dovecot_tls.purge()
    since = len(dovecot_tls.log())
    proc = mailbot(tls_config(tmp_path, dovecot_tls, smtp_relay_ssl, imap_security="starttls"))
    stopped = run_one_request(dovecot_tls, smtp_relay_ssl, proc)
    assert f"imap: connected to IMAP {TLS_HOSTNAME}:{dovecot_tls.imap_port}" in proc.log()
    # The same port takes plaintext logins (the test bed's own): these went through STARTTLS.
    daemon_logins = logins(dovecot_tls, MVAI, since, stopped)
    assert daemon_logins and all(", TLS," in line for line in daemon_logins), daemon_logins


@pytest.mark.parametrize("imap_security", ["ssl", "starttls"])
def test_system_cas_refuse_the_test_imap_server(
    tmp_path: Path, dovecot_tls: Dovecot, smtp_relay_starttls: SmtpRelay, imap_security: str
):
    dovecot_tls.purge()
    since = len(dovecot_tls.log())
    req = request(0)
    dovecot_tls.deliver(MVAI, req.as_bytes())
    config = tls_config(
        tmp_path, dovecot_tls, smtp_relay_starttls, imap_security=imap_security, imap_ca=False
    )
    proc = mailbot(config)
    try:
        with pytest.raises(AssertionError, match="did not connect"):
            proc.start(ready_timeout=5, keep_if_not_ready=True)
        assert proc.proc is not None and proc.proc.poll() is None, "the daemon gave up"
    finally:
        assert proc.stop() == 0, proc.log()
    assert logins(dovecot_tls, MVAI, since) == []  # the daemon never got as far as a login
    log = proc.log()
    refusals = [line for line in log.splitlines() if VERIFY_FAILED in line]
    assert refusals, log
    for line in refusals:  # one line each, saying what failed where, no traceback
        assert " WARNING " in line and "imap: " in line, line
        assert f"IMAP {TLS_HOSTNAME}:" in line and "certificate verify failed" in line, line
    assert "Traceback" not in log
    # Nothing was taken: the request is still in the inbox, the ledger is empty.
    [left] = dovecot_tls.fetch_all(MVAI)
    assert email.message_from_bytes(left)["Message-ID"] == req["Message-ID"]
    assert dovecot_tls.fetch_all(MVAI, folder="MVAI/Processed") == []
    assert proc.cli("inbound", "list") == []
    assert smtp_relay_starttls.received == []

    checked = doctor(proc)
    assert checked.returncode == 1, checked.stdout
    line = doctor_line(checked.stdout, "mailbox")
    assert line.startswith("FAIL  mailbox ") and "certificate verify failed" in line, line
    assert "set [imap] ca_file to its CA" in line
    assert doctor_line(checked.stdout, "outgoing").startswith("ok    outgoing ")
    assert "secret" not in checked.stdout + checked.stderr


def test_system_cas_refuse_the_test_smtp_relay(
    tmp_path: Path, dovecot_tls: Dovecot, smtp_relay_starttls: SmtpRelay
):
    """The request is processed, but the acknowledgement waits in the outbox, unsent."""
    dovecot_tls.purge()
    proc = mailbot(tls_config(tmp_path, dovecot_tls, smtp_relay_starttls, smtp_ca=False))
    proc.start()
    try:
        dovecot_tls.deliver(MVAI, request(1).as_bytes())
        try:
            dovecot_tls.wait_for_messages(MVAI, 1, folder="MVAI/Processed", timeout=30)
        except TimeoutError as error:
            raise AssertionError(f"{error}; the daemon's log:\n{proc.log()}") from None
        deadline = time.monotonic() + 30
        while VERIFY_FAILED not in proc.log() and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        assert proc.stop() == 0, proc.log()
    assert VERIFY_FAILED in proc.log()
    assert "Traceback" not in proc.log()
    assert smtp_relay_starttls.received == []
    assert dovecot_tls.fetch_all(AGENCY) == []
    rows = proc.cli("outbox", "list")
    assert rows and all(row["status"] != "sent" for row in rows), rows
    assert any(VERIFY_FAILED in (row["last_error"] or "") for row in rows), rows

    checked = doctor(proc)
    assert checked.returncode == 1, checked.stdout
    assert doctor_line(checked.stdout, "mailbox").startswith("ok    mailbox ")
    line = doctor_line(checked.stdout, "outgoing")
    assert line.startswith("FAIL  outgoing ") and "certificate verify failed" in line, line
    assert "set [smtp] ca_file to its CA" in line
