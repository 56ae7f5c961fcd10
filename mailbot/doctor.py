"""`mailbot doctor`: one line per check, saying what is wrong and how to fix it."""

from __future__ import annotations

import os
import smtplib

from mailbot import db
from mailbot.config import Config, read_secret
from mailbot.errors import MailbotError
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
        return "FAIL", f"{exc}; {_hint('imap', str(exc), 'host, port, security and the password')}"
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
            if o.username:
                password = read_secret(cfg, "smtp", o.password_env, o.password_file)
                if password is None:
                    return "FAIL", f"{where}: no password: set {o.password_env} or password_file"
                conn.login(o.username, password)
            conn.noop()
    except smtplib.SMTPAuthenticationError as exc:
        return "FAIL", f"{where}: login refused ({exc.smtp_code}): check [smtp] username/password"
    except (TimeoutError, OSError, smtplib.SMTPException) as exc:
        return "FAIL", f"{where}: {exc}; {_hint('smtp', str(exc), 'host, port and security')}"
    return "ok", f"{where} ({o.security})"


def check_rules(cfg: Config) -> tuple[str, str]:
    from mailbot.inbound.extraction import agency, classify, contact, triage
    from mailbot.inbound.filters import FilterRules

    FilterRules.load(cfg.rules_dir)
    for module in (agency, classify, contact, triage):
        module.load_rules(cfg.rules_dir)
    files = len(list(cfg.rules_dir.glob("*.toml")))
    return "ok", f"{cfg.rules_dir} ({files} rule files)"


def run_checks(cfg: Config) -> int:
    _line("ok", "config", f"{cfg.source}")
    failed = 0
    for what, check in (
        ("rules", check_rules),
        ("database", check_database),
        ("mailbox", check_mailbox),
        ("outgoing", check_outgoing),
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
