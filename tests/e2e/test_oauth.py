"""End to end with OAuth2: Dovecot checks every XOAUTH2 bearer token against a local token
server (its oauth2 passdb calls the server's introspection endpoint), the SMTP relay checks
AUTH XOAUTH2 the same way, and the daemon (a subprocess) gets its tokens from that server
through msal, as it would from Microsoft Entra ID.

Covered: a request becomes a case and an acknowledgement with XOAUTH2 logins on both sides
(the IMAP password in the daemon's environment is wrong on purpose); `mailbot doctor` reports
the token; a revoked token is refused at the reconnect and replaced once; a token that is about
to expire is replaced before it runs out, and one that expired while the server was down is
replaced before the login. No token or secret ever appears in the daemon's log.
"""

from __future__ import annotations

import email
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path

import pytest

from tests.e2e.conftest import USERS, _unavailable
from tests.e2e.daemon import MailbotProcess, imap_config, mid, request, wait_for
from tests.oauth_server import TokenServer
from tests.testbed import Dovecot, SmtpRelay, TestCA, dovecot_binary, openssl_binary

AGENCY = "chief@agency.test"
MVAI = "mvai@mvai.test"
SECRET_ENV = "MVAI_TEST_OAUTH2_SECRET"
REFUSED = "oauth2: IMAP refused the access token"


@pytest.fixture(scope="module")
def token_server() -> Iterator[TokenServer]:
    if openssl_binary() is None:
        _unavailable("openssl is not installed (Debian: openssl), the OAuth2 tests need it")
    # Dovecot's auth process reads the CA: a folder it can traverse, not pytest's tmp_path.
    folder = Path(tempfile.mkdtemp(prefix="mailbot-oauth-", dir="/tmp"))
    folder.chmod(0o755)
    try:
        with TokenServer(user=MVAI, ca=TestCA.create(folder / "ca")) as server:
            yield server
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="module")
def oauth_dovecot(token_server: TokenServer) -> Iterator[Dovecot]:
    if dovecot_binary() is None:
        _unavailable("dovecot is not installed (Debian: dovecot-imapd dovecot-lmtpd)")
    with Dovecot(USERS, oauth2=token_server.dovecot_settings()) as server:
        yield server


@pytest.fixture
def server(token_server: TokenServer) -> TokenServer:
    token_server.expires_in = 3600
    token_server.revoke_all()  # nothing left over from the test before
    return token_server


@pytest.fixture
def relay(oauth_dovecot: Dovecot, server: TokenServer) -> Iterator[SmtpRelay]:
    with SmtpRelay(oauth_dovecot, xoauth2=server.valid) as smtp:
        yield smtp


@pytest.fixture
def daemon(
    tmp_path: Path, oauth_dovecot: Dovecot, relay: SmtpRelay, server: TokenServer
) -> Iterator[MailbotProcess]:
    oauth_dovecot.purge()
    assert server.ca is not None
    config = imap_config(
        tmp_path,
        oauth_dovecot,
        relay.port,
        f"""
[limits]
auto_replies_per_sender_per_day = 500

[oauth2]
provider = "microsoft"
client_id = "{server.client_id}"
tenant = "{server.tenant}"
authority = "{server.authority}"
client_secret_env = "{SECRET_ENV}"
ca_file = "{server.ca.ca_path}"
""",
        imap_extra='\nauth = "oauth2"',
        smtp_extra=f'\nusername = "{MVAI}"\nauth = "oauth2"',
    )
    # At DEBUG, so that whatever the libraries log is in the log the test searches for tokens.
    config.write_text(config.read_text().replace('log_level = "INFO"', 'log_level = "DEBUG"'))
    proc = MailbotProcess(config)
    proc.env[SECRET_ENV] = server.client_secret
    proc.env["MVAI_TEST_IMAP_PASSWORD"] = "not-the-password"  # a PLAIN login would fail
    yield proc
    proc.stop()


def acknowledged(dovecot: Dovecot, proc: MailbotProcess, req: EmailMessage) -> None:
    """The acknowledgement of req reaches the agency's mailbox (through the relay)."""
    try:
        [ack] = dovecot.wait_for_messages(
            AGENCY, 1, timeout=60, containing=str(req["Message-ID"]).encode()
        )
    except TimeoutError as error:
        raise AssertionError(f"{error}; the daemon's log:\n{proc.log()[-5000:]}") from None
    assert mid(email.message_from_bytes(ack)["In-Reply-To"]) == mid(req["Message-ID"])


def mvai_logins(dovecot: Dovecot, since: int) -> list[str]:
    """The methods of Dovecot's logins as the MVAI mailbox from log offset since on."""
    marker = f"imap-login: Info: Login: user=<{MVAI}>, method="
    return [
        line.split(marker, 1)[1].split(",", 1)[0]
        for line in dovecot.log()[since:].splitlines()
        if marker in line
    ]


def assert_no_secrets(proc: MailbotProcess, server: TokenServer) -> None:
    log = proc.log()
    assert server.client_secret not in log
    for token in server.tokens():
        assert token not in log, "an access token reached the daemon's log"


def test_xoauth2_logins_open_a_case_and_send_the_acknowledgement(
    daemon: MailbotProcess, oauth_dovecot: Dovecot, relay: SmtpRelay, server: TokenServer
):
    since = len(oauth_dovecot.log())
    checked = subprocess.run(
        [sys.executable, "-m", "mailbot", "doctor", "--config", str(daemon.config)],
        env=daemon.env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    [line] = [x for x in checked.stdout.splitlines() if x.startswith("ok    oauth2 ")]
    assert f"microsoft (tenant {server.tenant}, client {server.client_id}): token for IMAP " in line
    assert "expires in 60 min" in line
    assert all(token not in checked.stdout + checked.stderr for token in server.tokens())
    grants = server.grants

    daemon.start()
    req = request("oauth2 first")
    oauth_dovecot.deliver(MVAI, req.as_bytes())
    acknowledged(oauth_dovecot, daemon, req)
    [case] = daemon.cli("cases", "list")
    assert case["contact_email"] == AGENCY
    assert server.grants == grants + 1  # one token for IMAP and SMTP alike
    # The doctor's login and the daemon's, XOAUTH2 only (the password is wrong anyway).
    assert mvai_logins(oauth_dovecot, since) == ["XOAUTH2", "XOAUTH2"]
    assert "Password mismatch" not in oauth_dovecot.log()[since:]
    assert relay.xoauth2_logins, "the acknowledgement went out without AUTH XOAUTH2"
    assert all(login == (MVAI, True) for login in relay.xoauth2_logins), relay.xoauth2_logins
    assert_no_secrets(daemon, server)


def test_a_revoked_token_is_replaced_once_at_the_reconnect(
    daemon: MailbotProcess, oauth_dovecot: Dovecot, server: TokenServer
):
    daemon.start()
    grants = server.grants
    server.revoke_all()  # still valid by its expiry, but the server no longer takes it
    oauth_dovecot.restart()  # the daemon reconnects with its cached token: refused
    wait_for(lambda: daemon.log().count("imap: connected") >= 2, 60, "the daemon reconnects")
    assert daemon.log().count(REFUSED) == 1, daemon.log()[-3000:]
    assert server.grants == grants + 1
    req = request("oauth2 after revocation")
    oauth_dovecot.deliver(MVAI, req.as_bytes())
    acknowledged(oauth_dovecot, daemon, req)  # SMTP with the new token too
    assert server.grants == grants + 1
    assert_no_secrets(daemon, server)


def test_tokens_are_replaced_before_they_expire_and_after_they_did(
    daemon: MailbotProcess, oauth_dovecot: Dovecot, server: TokenServer
):
    server.expires_in = 8  # replaced at half its life: 4 s
    since = len(oauth_dovecot.log())
    checked_before = len(server.introspected)  # the server serves the whole module
    daemon.start()
    wait_for(
        lambda: "imap: logging in again with a new OAuth2 token" in daemon.log(),
        30,
        "a new login before the token runs out",
    )
    # Down for longer than a token lives: the reconnect gets a new one before it logs in.
    oauth_dovecot.stop()
    time.sleep(9)
    connected = daemon.log().count("imap: connected")
    oauth_dovecot.start()
    wait_for(
        lambda: daemon.log().count("imap: connected") > connected,
        60,
        "a reconnect",
        lambda: f"daemon log:\n{daemon.log()[-4000:]}\ndovecot log:\n{oauth_dovecot.log()[-2000:]}",
    )
    req = request("oauth2 after expiry")
    oauth_dovecot.deliver(MVAI, req.as_bytes())
    acknowledged(oauth_dovecot, daemon, req)
    # Never a login with an expired token: every token the mail server checked was live. What
    # the server checked is the judge, not the daemon's log: when the stop above lands during
    # the early re-login (likely on a loaded machine), the dying Dovecot answers a fresh token
    # with AUTHENTICATIONFAILED, and the daemon rightly logs a refusal.
    checked = server.introspected[checked_before:]
    assert checked and set(checked) == {"live"}, (
        checked,
        oauth_dovecot.log()[since:][-3000:],
    )
    assert "Introspection failed" not in oauth_dovecot.log()[since:]
    assert server.grants >= 3
    assert_no_secrets(daemon, server)
