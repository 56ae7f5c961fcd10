"""`mailbot doctor`: one line per check, saying what is wrong and how to fix it."""

from __future__ import annotations

import os
import smtplib
import time
from datetime import UTC, datetime

from mailbot import db, oauth
from mailbot.config import Config, read_secret
from mailbot.errors import MailbotError, TokenError
from mailbot.inbound.extraction.nlp import model_status


def _line(status: str, what: str, text: str) -> None:
    print(f"{status:<5} {what:<9} {text}")


def _hint(section: str, error: str, usual: str) -> str:
    if "CERTIFICATE_VERIFY_FAILED" in error or "certificate verify failed" in error:
        return f"the server's certificate is not trusted: set [{section}] ca_file to its CA (PEM)"
    return f"check [{section}] {usual}"


def check_database(cfg: Config) -> tuple[str, str]:
    where = db.describe(cfg.database_url)
    engine = db.make_engine(cfg.database_url)
    try:
        current, head = db.current_revision(engine), db.head_revision()
    finally:
        engine.dispose()
    if current == head:
        return "ok", f"{where} at revision {head}"
    if cfg.database.auto_upgrade:
        return (
            "warn",
            f"{where} at revision {current or 'none'}; `mailbot run` migrates it to {head}",
        )
    return (
        "FAIL",
        f"{where} at revision {current or 'none'}, needs {head}: run `mailbot db upgrade`",
    )


def check_mailbox(cfg: Config) -> tuple[str, str]:
    if cfg.mailbox.kind == "maildir":
        inbox = cfg.path(cfg.mailbox.maildir) / "INBOX"
        if inbox.is_dir() and os.access(inbox, os.W_OK):
            return "ok", f"maildir {inbox}"
        parent = inbox.parent
        while not parent.exists():
            parent = parent.parent
        if os.access(parent, os.W_OK):
            return "ok", f"maildir {inbox} (created at the first start)"
        return "FAIL", f"maildir {inbox}: not writable; fix the permissions or [mailbox] maildir"
    from mailbot.inbound.imap import ImapSource

    source = ImapSource(cfg)
    try:
        source.connect()
    except MailbotError as exc:
        usual = "host, port, security and the password"
        if cfg.imap.auth == "oauth2":
            usual = "host, port, security, username and the app's access to that mailbox"
        return "FAIL", f"{exc}; {_hint('imap', str(exc), usual)}"
    idle = "IDLE" if source.can_idle else "polling"
    source.close()
    return "ok", f"IMAP {cfg.imap.host}:{cfg.imap.port} folder {cfg.imap.folder} ({idle})"


def check_outgoing(cfg: Config) -> tuple[str, str]:
    if cfg.outgoing.transport == "file":
        folder = cfg.path(cfg.outgoing.directory)
        probe = folder if folder.exists() else folder.parent
        while not probe.exists():
            probe = probe.parent
        if os.access(probe, os.W_OK):
            return "ok", f"outgoing mail written to {folder}"
        return "FAIL", f"outgoing folder {folder}: not writable; fix [outgoing] directory"
    o = cfg.smtp
    where = f"SMTP {o.host}:{o.port}"
    try:
        if o.security == "ssl":
            conn: smtplib.SMTP = smtplib.SMTP_SSL(
                o.host, o.port, timeout=10, context=cfg.tls_context(o.ca_file)
            )
        else:
            conn = smtplib.SMTP(o.host, o.port, timeout=10)
            if o.security == "starttls":
                conn.starttls(context=cfg.tls_context(o.ca_file))
        with conn:
            if o.username and o.auth == "oauth2":
                oauth.smtp_login(conn, oauth.tokens(cfg), o.username)
            elif o.username:
                password = read_secret(cfg, "smtp", o.password_env, o.password_file)
                if password is None:
                    return "FAIL", f"{where}: no password: set {o.password_env} or password_file"
                conn.login(o.username, password)
            conn.noop()
    except smtplib.SMTPAuthenticationError as exc:
        check = "username/password"
        if o.auth == "oauth2":
            check = "username and the app's permission to send as it"
        return "FAIL", f"{where}: login refused ({exc.smtp_code}): check [smtp] {check}"
    except (TimeoutError, OSError, smtplib.SMTPException) as exc:
        return "FAIL", f"{where}: {exc}; {_hint('smtp', str(exc), 'host, port and security')}"
    return "ok", f"{where} ({o.security})"


def check_oauth2(cfg: Config) -> tuple[str, str]:
    """Whether an OAuth2 access token can be had: the provider and when it expires."""
    users = [
        name
        for name, auth, active in (
            ("IMAP", cfg.imap.auth, cfg.mailbox.kind == "imap"),
            ("SMTP", cfg.smtp.auth, cfg.outgoing.transport == "smtp"),
        )
        if active and auth == "oauth2"
    ]
    if not users:
        return "ok", "not used (no [imap] or [smtp] auth = 'oauth2')"
    source = oauth.tokens(cfg)
    try:
        token = source.get()
    except TokenError as exc:
        usual = "client_id and the client secret"
        if cfg.oauth2.provider == "microsoft":
            usual = "tenant, client_id and the client secret"
        elif cfg.oauth2.provider in ("google", "generic"):
            usual = "client_id, the client secret and the refresh token"
        return "FAIL", f"{exc}; {_hint('oauth2', str(exc), usual)}"
    minutes = (token.expires_at - time.time()) / 60
    until = datetime.fromtimestamp(token.expires_at, UTC).strftime("%H:%M UTC")
    return (
        "ok",
        f"{source.describe()}: token for {' and '.join(users)}, "
        f"expires in {minutes:.0f} min ({until})",
    )


def check_rules(cfg: Config) -> tuple[str, str]:
    from mailbot.inbound.extraction import agency, classify, contact, triage
    from mailbot.inbound.filters import FilterRules

    FilterRules.load(cfg.rules_dir)
    for module in (agency, classify, contact, triage):
        module.load_rules(cfg.rules_dir)
    files = len(list(cfg.rules_dir.glob("*.toml")))
    return "ok", f"{cfg.rules_dir} ({files} rule files)"


def check_logging(cfg: Config) -> tuple[str, str]:
    kind = "JSON lines" if cfg.mailbot.log_format == "json" else "text lines"
    return "ok", f"{kind} at {cfg.mailbot.log_level.upper()} on stderr (the journal under systemd)"


def check_metrics(cfg: Config) -> tuple[str, str]:
    """Disabled; or the daemon's endpoint answering; or the port free for the daemon."""
    import ipaddress
    import urllib.error
    import urllib.request

    from mailbot.metrics import bind

    m = cfg.metrics
    if not m.enabled:
        return "ok", "disabled ([metrics] enabled = false)"
    probe = {"0.0.0.0": "127.0.0.1", "::": "::1"}.get(m.host, m.host)
    url = f"http://{f'[{probe}]' if ':' in probe else probe}:{m.port}/metrics"
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(url, timeout=5) as resp:
            body: str | None = resp.read(1 << 20).decode("utf-8", "replace")
    except urllib.error.HTTPError:
        body = ""
    except (urllib.error.URLError, OSError):
        body = None
    if body is None:  # nothing answers: the daemon is not running; can it listen there?
        bind(cfg, None).server_close()
        status, text = "ok", f"{m.host}:{m.port} is free; the daemon serves /metrics there"
    elif "\nmailbot_up 1\n" in body:
        status, text = "ok", f"{url} answers (the daemon is running)"
    elif "\nmailbot_up 0\n" in body:
        return "FAIL", f"{url}: the daemon answers but cannot read its database"
    else:
        return "FAIL", f"{url}: another program answers there: choose a free [metrics] port"
    try:
        loopback = m.host == "localhost" or ipaddress.ip_address(m.host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        return "warn", f"{text}; it listens beyond loopback: let a firewall decide who reads it"
    return status, text


def run_checks(cfg: Config) -> int:
    _line("ok", "config", f"{cfg.source}")
    failed = 0
    for what, check in (
        ("rules", check_rules),
        ("database", check_database),
        ("oauth2", check_oauth2),
        ("mailbox", check_mailbox),
        ("outgoing", check_outgoing),
        ("logging", check_logging),
        ("metrics", check_metrics),
    ):
        try:
            status, text = check(cfg)
        except MailbotError as exc:
            status, text = "FAIL", str(exc)
        failed += status == "FAIL"
        _line(status, what, text)
    ok, text = model_status()
    _line("ok" if ok else "warn", "nlp", text)
    return 1 if failed else 0
