"""Config of OAuth2 logins: [imap]/[smtp] auth and the [oauth2] section, with clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from mailbot import config
from mailbot.errors import ConfigError

IMAP = '[mailbox]\nkind = "imap"\n\n[imap]\nhost = "imap.example.org"\nusername = "mvai@x.org"\n'
SMTP = (
    '[outgoing]\ntransport = "smtp"\n\n[smtp]\nhost = "smtp.example.org"\nusername = "mvai@x.org"\n'
)
MICROSOFT = '[oauth2]\nprovider = "microsoft"\nclient_id = "app-id"\ntenant = "contoso.org"\n'
GOOGLE = '[oauth2]\nprovider = "google"\nclient_id = "app.apps.googleusercontent.com"\n'


def load_text(tmp_path: Path, text: str) -> config.Config:
    path = tmp_path / "c.toml"
    path.write_text(text)
    return config.load(path)


def test_defaults_are_passwords_and_no_provider():
    cfg = config.Config()
    assert (cfg.imap.auth, cfg.smtp.auth, cfg.oauth2.provider) == ("password", "password", "")
    assert cfg.oauth2.client_secret_env == "MAILBOT_OAUTH2_CLIENT_SECRET"
    assert cfg.oauth2.refresh_margin_seconds == 300


def test_microsoft_for_imap_and_smtp(tmp_path: Path):
    text = IMAP + 'auth = "oauth2"\n' + SMTP + 'auth = "oauth2"\n' + MICROSOFT
    cfg = load_text(tmp_path, text)
    assert (cfg.imap.auth, cfg.smtp.auth) == ("oauth2", "oauth2")
    assert cfg.oauth2.tenant == "contoso.org" and cfg.oauth2.scopes == ()


def test_google_with_a_refresh_token_file_and_scopes(tmp_path: Path):
    text = IMAP + 'auth = "oauth2"\n' + GOOGLE
    text += 'refresh_token_file = "rt"\nscopes = ["https://mail.google.com/"]\n'
    cfg = load_text(tmp_path, text)
    assert cfg.oauth2.scopes == ("https://mail.google.com/",)
    assert cfg.path(cfg.oauth2.refresh_token_file) == tmp_path / "rt"


def test_an_unused_oauth2_section_is_not_checked(tmp_path: Path):
    cfg = load_text(tmp_path, IMAP + '[oauth2]\nprovider = "google"\n')  # no client_id
    assert cfg.imap.auth == "password"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            IMAP + MICROSOFT + 'client_secret = "abc"\n',
            "[oauth2] client_secret: secrets may not be written in the config; use "
            "client_secret_env (an environment variable) or client_secret_file",
        ),
        (
            IMAP + GOOGLE + 'refresh_token = "1//abc"\n',
            "[oauth2] refresh_token: secrets may not be written in the config; use "
            "refresh_token_env (an environment variable) or refresh_token_file",
        ),
        (IMAP + 'auth = "xoauth"\n', "[imap] auth: must be 'password' or 'oauth2', not 'xoauth'"),
        (SMTP + 'auth = "token"\n', "[smtp] auth: must be 'password' or 'oauth2', not 'token'"),
        (IMAP + 'auth = "oauth2"\n', "[oauth2] provider: is required when [imap] auth = 'oauth2'"),
        (
            IMAP + 'auth = "oauth2"\n[oauth2]\nprovider = "yahoo"\n',
            "[oauth2] provider: must be one of microsoft, google, generic",
        ),
        (
            IMAP + 'auth = "oauth2"\n[oauth2]\nprovider = "microsoft"\ntenant = "t"\n',
            "[oauth2] client_id: is required",
        ),
        (
            IMAP + 'auth = "oauth2"\n[oauth2]\nprovider = "microsoft"\nclient_id = "a"\n',
            "[oauth2] tenant: is required for provider 'microsoft'",
        ),
        (
            IMAP + 'auth = "oauth2"\n' + MICROSOFT + 'token_url = "https://x.org/token"\n',
            "[oauth2] token_url: is not used by provider 'microsoft'",
        ),
        (
            IMAP + 'auth = "oauth2"\n' + GOOGLE + 'authority = "https://x.org/t"\n',
            "[oauth2] authority: is not used by provider 'google'",
        ),
        (
            IMAP + 'auth = "oauth2"\n' + MICROSOFT + 'authority = "http://login.example/t"\n',
            "[oauth2] authority: 'http://login.example/t' is not an https:// URL",
        ),
        (
            IMAP + 'auth = "oauth2"\n[oauth2]\nprovider = "generic"\nclient_id = "a"\n',
            "[oauth2] token_url: is required for provider 'generic'",
        ),
        (
            IMAP + 'auth = "oauth2"\n' + GOOGLE + 'refresh_token_env = ""\n',
            "[oauth2] refresh_token_env: provider 'google' needs a refresh token",
        ),
        (
            IMAP + 'auth = "oauth2"\n' + MICROSOFT + 'ca_file = "missing.pem"\n',
            "[oauth2] ca_file: ",
        ),
        (
            IMAP + 'auth = "oauth2"\n' + MICROSOFT + "refresh_margin_seconds = -1\n",
            "[oauth2] refresh_margin_seconds: must be 0 or more",
        ),
        (
            IMAP + 'auth = "oauth2"\n' + MICROSOFT + 'scopes = "https://x/.default"\n',
            "[oauth2] scopes: expected a list of strings",
        ),
        (
            '[outgoing]\ntransport = "smtp"\n\n[smtp]\nhost = "h"\nauth = "oauth2"\n' + MICROSOFT,
            "[smtp] username: is required with auth = 'oauth2'",
        ),
    ],
)
def test_errors_name_the_option(tmp_path: Path, text: str, expected: str):
    with pytest.raises(ConfigError) as caught:
        load_text(tmp_path, text)
    message = str(caught.value)
    assert message.startswith(f"{tmp_path / 'c.toml'}: "), message
    assert expected in message, message
    assert "abc" not in message  # a secret written in the config is not repeated


def test_read_secret_names_the_option_it_reads(tmp_path: Path):
    cfg = load_text(tmp_path, "")
    with pytest.raises(ConfigError, match=r"\[oauth2\] client_secret_file: cannot read "):
        config.read_secret(cfg, "oauth2", "", "nope", option="client_secret_file")
