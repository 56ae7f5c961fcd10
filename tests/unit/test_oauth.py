"""OAuth2 tokens (mailbot/oauth.py) against a real local token endpoint over HTTPS.

msal runs unmocked: its authority is the local server (tests/oauth_server.py), which answers
the tenant discovery and the client-credentials grant; Google's refresh-token grant goes to
the same server. The SMTP side logs in with AUTH XOAUTH2 at an in-process aiosmtpd server that
checks the bearer token with the token server. Secrets and tokens never show up in a log line
or an error text.
"""

from __future__ import annotations

import base64
import logging
import smtplib
from collections.abc import Callable, Iterator
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, Session

from mailbot import config, doctor, oauth
from mailbot.errors import TokenError, TransportError
from mailbot.models import OutboundMessage
from mailbot.outbound.transport import SmtpTransport
from tests.conftest import write_config
from tests.oauth_server import MICROSOFT_SCOPE, TokenServer
from tests.testbed import LOOPBACK, TestCA, free_port, openssl_binary

MVAI = "mvai@mvai.test"
SECRET_ENV = "MVAI_TEST_OAUTH2_SECRET"
REFRESH_ENV = "MVAI_TEST_OAUTH2_REFRESH"


@pytest.fixture(scope="module")
def ca(tmp_path_factory: pytest.TempPathFactory) -> TestCA:
    if openssl_binary() is None:
        pytest.skip("openssl is not installed (Debian: openssl)")
    return TestCA.create(tmp_path_factory.mktemp("oauth-ca"))


@pytest.fixture
def server(ca: TestCA, monkeypatch: pytest.MonkeyPatch) -> Iterator[TokenServer]:
    with TokenServer(user=MVAI, ca=ca) as token_server:
        monkeypatch.setenv(SECRET_ENV, token_server.client_secret)
        monkeypatch.setenv(REFRESH_ENV, token_server.refresh_token)
        yield token_server


def oauth2_config(
    folder: Path,
    server: TokenServer,
    provider: str = "microsoft",
    extra: str = "",
    *,
    smtp_port: int = 2525,
    replace: dict[str, str] | None = None,
) -> config.Config:
    """IMAP and SMTP with auth = "oauth2", tokens from ``server``; ``replace`` edits the text."""
    assert server.ca is not None
    if provider == "microsoft":
        where = f'tenant = "{server.tenant}"\nauthority = "{server.authority}"'
    else:
        where = f'token_url = "{server.token_url}"\nrefresh_token_env = "{REFRESH_ENV}"'
    folder.mkdir(parents=True, exist_ok=True)
    path = write_config(
        folder,
        f"""
[mailbox]
kind = "imap"

[imap]
host = "{LOOPBACK}"
username = "{MVAI}"
auth = "oauth2"

[outgoing]
transport = "smtp"

[smtp]
host = "{LOOPBACK}"
port = {smtp_port}
security = "none"
username = "{MVAI}"
auth = "oauth2"
timeout_seconds = 10

[oauth2]
provider = "{provider}"
client_id = "{server.client_id}"
client_secret_env = "{SECRET_ENV}"
ca_file = "{server.ca.ca_path}"
{where}
{extra}
""",
    )
    text = path.read_text()
    for old, new in (replace or {}).items():
        assert old in text, old
        text = text.replace(old, new)
    path.write_text(text)
    return config.load(path)


class Clock:
    def __init__(self) -> None:
        import time

        self.now = time.time()

    def __call__(self) -> float:
        return self.now


def test_xoauth2_response_is_the_documented_string():
    assert oauth.xoauth2_response("mvai@example.org", "ya29.abc") == (
        "user=mvai@example.org\x01auth=Bearer ya29.abc\x01\x01"
    )


def test_microsoft_client_credentials_through_msal_and_the_cache(tmp_path, server):
    source = oauth.TokenSource(oauth2_config(tmp_path, server))
    token = source.get()
    assert token.value in server.tokens()
    assert source.get() is token and server.grants == 1  # cached
    [issued] = server.issued
    assert (issued.grant, issued.scope) == ("client_credentials", MICROSOFT_SCOPE)
    assert 3590 < token.expires_at - token.obtained_at <= 3600
    assert token.value not in repr(token)


def test_renewed_within_the_margin_of_expiry_not_before(tmp_path, server):
    clock = Clock()
    source = oauth.TokenSource(oauth2_config(tmp_path, server), clock=clock)
    first = source.get()
    clock.now = first.expires_at - 301  # refresh_margin_seconds = 300
    assert source.get() is first and server.grants == 1
    assert source.seconds_left(first) == pytest.approx(1)
    clock.now = first.expires_at - 299
    second = source.get()
    assert second.value != first.value and server.grants == 2  # msal's cache did not answer
    assert source.seconds_left(second) > 3000


def test_a_short_lived_token_is_renewed_at_half_its_life(tmp_path, server):
    server.expires_in = 60  # shorter than the margin of 300 s
    clock = Clock()
    source = oauth.TokenSource(oauth2_config(tmp_path, server, "google"), clock=clock)
    first = source.get()
    clock.now += 29
    assert source.get() is first
    clock.now += 2
    assert source.get() is not first and server.grants == 2


def test_renew_replaces_a_refused_token_once(tmp_path, server):
    source = oauth.TokenSource(oauth2_config(tmp_path, server))
    refused = source.get()
    fresh = source.renew(refused)
    assert fresh.value != refused.value and server.grants == 2
    # Another connection reports the same old token: it gets the fresh one, no new request.
    assert source.renew(refused) is fresh and server.grants == 2


def test_google_refresh_token_grant(tmp_path, server):
    source = oauth.TokenSource(oauth2_config(tmp_path, server, "google"))
    token = source.get()
    [issued] = server.issued
    assert issued.grant == "refresh_token" and issued.scope == ""
    assert server.valid(MVAI, token.value)
    assert source.describe() == f"google (client {server.client_id})"


def test_scopes_are_sent_when_configured(tmp_path, server):
    cfg = oauth2_config(tmp_path, server, "google", 'scopes = ["https://mail.google.com/"]')
    oauth.TokenSource(cfg).get()
    assert server.issued[0].scope == "https://mail.google.com/"


def test_a_rotated_refresh_token_is_kept_in_memory(tmp_path, server):
    server.rotate_refresh_tokens = True
    source = oauth.TokenSource(oauth2_config(tmp_path, server, "google"))
    first = source.get()
    second = source.renew(first)  # would be invalid_grant with the configured, retired one
    assert second.value != first.value and server.grants == 2


def test_secret_read_from_file_each_time(tmp_path, server, monkeypatch):
    secret_file = tmp_path / "client-secret"
    secret_file.write_text("wrong-secret-value\n")
    monkeypatch.delenv(SECRET_ENV)
    cfg = oauth2_config(tmp_path, server, extra='client_secret_file = "client-secret"')
    source = oauth.TokenSource(cfg)
    with pytest.raises(TokenError, match="invalid_client"):
        source.get()
    secret_file.write_text(server.client_secret + "\n")  # rotated: no restart needed
    assert source.get().value in server.tokens()


@pytest.mark.parametrize(
    ("provider", "spoil", "expected"),
    [
        (
            "microsoft",
            {"client_secret": "not-the-secret"},
            "[oauth2] microsoft: token request refused: invalid_client: AADSTS7000215: "
            "Invalid client secret provided.",
        ),
        (
            "google",
            {"refresh_token": "rt-revoked-long-ago"},
            "[oauth2] google: token request refused: invalid_grant: Bad Request",
        ),
    ],
)
def test_refusals_are_one_line_with_the_providers_error(
    tmp_path, server, monkeypatch, provider, spoil, expected
):
    for name, value in spoil.items():
        monkeypatch.setenv(SECRET_ENV if name == "client_secret" else REFRESH_ENV, value)
    source = oauth.TokenSource(oauth2_config(tmp_path, server, provider))
    with pytest.raises(TokenError) as caught:
        source.get()
    assert str(caught.value) == expected
    for value in spoil.values():
        assert value not in str(caught.value)


def test_an_error_text_that_repeats_a_secret_is_cut_and_masked(tmp_path, server):
    echo = f"client_secret {server.client_secret} rejected\r\nTrace ID: 0f1e\r\nTimestamp: now"
    server.fail_next.append((400, {"error": "invalid_request", "error_description": echo}))
    with pytest.raises(TokenError) as caught:
        oauth.TokenSource(oauth2_config(tmp_path, server, "google")).get()
    assert str(caught.value) == (
        "[oauth2] google: token request refused: invalid_request: client_secret *** rejected"
    )


def test_a_missing_secret_names_the_option(tmp_path, server, monkeypatch):
    monkeypatch.delenv(SECRET_ENV)
    with pytest.raises(TokenError) as caught:
        oauth.TokenSource(oauth2_config(tmp_path, server)).get()
    assert str(caught.value) == (
        f"[oauth2] client_secret: not set: set the environment variable {SECRET_ENV} "
        "or [oauth2] client_secret_file"
    )
    assert server.grants == 0


def test_an_unreachable_endpoint(tmp_path, server):
    port = free_port()
    nowhere = f"https://{LOOPBACK}:{port}/token"
    cfg = oauth2_config(tmp_path, server, "google", replace={server.token_url: nowhere})
    with pytest.raises(TokenError) as caught:
        oauth.TokenSource(cfg).get()
    assert str(caught.value).startswith(f"[oauth2] google: cannot reach {LOOPBACK}:{port}: ")
    assert "Connection refused" in str(caught.value)


@pytest.mark.parametrize("provider", ["microsoft", "google"])
def test_an_untrusted_certificate_is_refused(tmp_path, server, provider):
    assert server.ca is not None
    cfg = oauth2_config(
        tmp_path, server, provider, replace={f'ca_file = "{server.ca.ca_path}"': ""}
    )
    with pytest.raises(TokenError, match="CERTIFICATE_VERIFY_FAILED"):
        oauth.TokenSource(cfg).get()
    assert server.grants == 0


def test_one_source_per_config_shared_by_imap_and_smtp(tmp_path, server):
    cfg = oauth2_config(tmp_path, server)
    assert oauth.tokens(cfg) is oauth.tokens(cfg)
    assert oauth.tokens(cfg) is oauth.tokens(config.load(tmp_path / "config.toml"))


# -- SMTP: AUTH XOAUTH2 at a server that checks the token ---------------------------------
class XoauthSmtp:
    """aiosmtpd handler: AUTH XOAUTH2 checked with the token server; MAIL needs it."""

    def __init__(self, check: Callable[[str, str], bool]) -> None:
        self.check = check
        self.logins: list[bool] = []
        self.received: list[bytes] = []

    async def auth_XOAUTH2(self, server: SMTP, args: list[str]) -> AuthResult:  # noqa: N802
        fields = dict(
            part.split("=", 1) for part in base64.b64decode(args[1]).decode().split("\x01") if part
        )
        ok = self.check(fields["user"], fields["auth"].removeprefix("Bearer "))
        self.logins.append(ok)
        if ok:
            return AuthResult(success=True, auth_data=fields["user"])
        await server.challenge_auth('{"status":"401","schemes":"Bearer"}')
        return AuthResult(success=False, handled=False)

    async def handle_MAIL(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: Any
    ) -> str:
        if not session.authenticated:
            return "530 5.7.0 Authentication required"
        envelope.mail_from = address
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        self.received.append(envelope.original_content or b"")
        return "250 accepted"


@pytest.fixture
def smtp_server(server: TokenServer) -> Iterator[tuple[XoauthSmtp, int]]:
    handler = XoauthSmtp(server.valid)
    port = free_port()
    controller = Controller(
        handler, hostname=LOOPBACK, port=port, auth_require_tls=False, auth_exclude_mechanism=[]
    )
    controller.start()
    yield handler, port
    controller.stop()


def smtp_config(folder: Path, server: TokenServer, port: int, provider: str = "microsoft"):
    return oauth2_config(folder, server, provider, smtp_port=port)


def outbound(n: int = 1) -> OutboundMessage:
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = MVAI, "chief@agency.test", f"ack {n}"
    msg.set_content("Received.")
    return OutboundMessage(id=n, kind="ack", recipients=["chief@agency.test"], raw=msg.as_bytes())


def test_smtp_sends_with_xoauth2_and_renews_a_refused_token(tmp_path, server, smtp_server, caplog):
    handler, port = smtp_server
    cfg = smtp_config(tmp_path, server, port)
    source = oauth.tokens(cfg)
    source.get()
    server.revoke_all()  # the cached token is still "fresh" by its expiry, but dead
    transport = SmtpTransport(cfg)
    with caplog.at_level(logging.WARNING):
        transport.send(outbound())
    transport.close()
    assert handler.logins == [False, True] and len(handler.received) == 1
    assert server.grants == 2
    assert "oauth2: SMTP refused the access token (535" in caplog.text


def test_smtp_gives_up_after_one_renewal(tmp_path, server, smtp_server):
    handler, port = smtp_server
    cfg = smtp_config(tmp_path, server, port)
    handler.check = lambda user, token: False  # this server takes no token at all
    with pytest.raises(TransportError) as caught:
        SmtpTransport(cfg).send(outbound())
    assert str(caught.value) == f"SMTP {LOOPBACK}:{port}: login refused (535)"
    assert not caught.value.permanent
    assert handler.logins == [False, False] and server.grants == 2


def test_smtp_without_a_token_is_a_temporary_failure(tmp_path, server, smtp_server, monkeypatch):
    _handler, port = smtp_server
    monkeypatch.setenv(SECRET_ENV, "not-the-secret")
    with pytest.raises(TransportError) as caught:
        SmtpTransport(smtp_config(tmp_path, server, port)).send(outbound())
    assert str(caught.value).startswith(
        f"SMTP {LOOPBACK}:{port}: [oauth2] microsoft: token request refused: invalid_client"
    )
    assert not caught.value.permanent


def test_smtp_server_without_auth(tmp_path, server):
    handler = XoauthSmtp(server.valid)
    port = free_port()
    controller = Controller(handler, hostname=LOOPBACK, port=port, auth_exclude_mechanism=[])
    controller.start()
    try:
        with smtplib.SMTP(LOOPBACK, port, timeout=10) as conn:
            conn.ehlo()
            conn.esmtp_features.pop("auth", None)  # as a server that offers none
            with pytest.raises(smtplib.SMTPNotSupportedError, match="offers no AUTH"):
                oauth.smtp_login(conn, oauth.tokens(smtp_config(tmp_path, server, port)), MVAI)
    finally:
        controller.stop()


# -- doctor -----------------------------------------------------------------------------------
def test_doctor_reports_the_token_not_its_value(tmp_path, server):
    cfg = oauth2_config(tmp_path, server)
    status, text = doctor.check_oauth2(cfg)
    assert status == "ok"
    assert text.startswith(
        f"microsoft (tenant {server.tenant}, client {server.client_id}): token for IMAP and "
        "SMTP, expires in 60 min ("
    )
    assert all(token not in text for token in server.tokens())


def test_doctor_names_the_fix_when_no_token_can_be_had(tmp_path, server, monkeypatch):
    monkeypatch.setenv(SECRET_ENV, "not-the-secret")
    status, text = doctor.check_oauth2(oauth2_config(tmp_path, server))
    assert status == "FAIL"
    assert text.startswith("[oauth2] microsoft: token request refused: invalid_client: AADSTS")
    assert text.endswith("check [oauth2] tenant, client_id and the client secret")
    assert "not-the-secret" not in text


def test_doctor_without_oauth2(cfg):
    assert doctor.check_oauth2(cfg) == ("ok", "not used (no [imap] or [smtp] auth = 'oauth2')")


# -- nothing secret in logs or errors ---------------------------------------------------------
def test_secrets_and_tokens_never_reach_logs_or_errors(
    tmp_path, server, smtp_server, caplog, monkeypatch
):
    """Everything at DEBUG, msal's and urllib3's loggers included, through the paths that
    log or raise: fetches, a refused token, a bad secret, a bad refresh token."""
    handler, port = smtp_server
    caplog.set_level(logging.DEBUG)
    for name in ("msal", "urllib3", "mailbot"):
        monkeypatch.setattr(logging.getLogger(name), "level", logging.DEBUG)
    real_secret, real_refresh = server.client_secret, server.refresh_token
    errors: list[str] = []
    cfg = smtp_config(tmp_path / "microsoft", server, port)
    first = oauth.tokens(cfg).get()
    errors += [repr(first), str(first)]
    server.revoke_all()
    transport = SmtpTransport(cfg)
    transport.send(outbound(1))  # refused, renewed, sent
    transport.close()
    google = oauth.TokenSource(smtp_config(tmp_path / "google", server, port, "google"))
    refused = google.get()
    monkeypatch.setenv(REFRESH_ENV, real_refresh + "-spoilt")
    with pytest.raises(TokenError) as caught:
        google.renew(refused)
    errors.append(str(caught.value))
    monkeypatch.setenv(SECRET_ENV, real_secret + "-spoilt")
    handler.check = lambda user, token: False
    with pytest.raises(TransportError) as failed:
        SmtpTransport(cfg).send(outbound(2))  # refused, renewal refused too
    errors.append(str(failed.value))
    status, text = doctor.check_oauth2(smtp_config(tmp_path / "doctor", server, port))
    errors.append(text)
    assert status == "FAIL" and "token request refused" in errors[-1]
    secrets = [real_secret, real_refresh, real_secret + "-spoilt", real_refresh + "-spoilt"]
    secrets += server.tokens()
    assert len(server.tokens()) == 3
    logged = caplog.text + "\n".join(repr(record.__dict__) for record in caplog.records)
    assert "oauth2: SMTP refused the access token" in logged
    for secret in secrets:
        assert secret not in logged, "a secret or token reached the log"
        for error in errors:
            assert secret not in error, f"a secret or token in an error: {error}"
