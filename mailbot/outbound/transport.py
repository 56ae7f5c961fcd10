"""Transports hand a finished message to the world: a folder of .eml files, or SMTP.

``send(row)`` returns on success and raises ``TransportError`` otherwise, with ``permanent``
set when retrying cannot help (5xx answers, every recipient refused). The file transport is
idempotent: the file is named after the outbox row and written atomically.
"""

from __future__ import annotations

import os
import smtplib
from pathlib import Path
from typing import Protocol

from mailbot import oauth
from mailbot.config import Config, read_secret
from mailbot.errors import TokenError, TransportError
from mailbot.models import OutboundMessage


class Transport(Protocol):
    def send(self, row: OutboundMessage) -> None: ...

    def close(self) -> None: ...


class FileTransport:
    """Writes each message to <directory>/<id>-<kind>.eml (the default, for a local trial)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def send(self, row: OutboundMessage) -> None:
        target = self.directory / f"{row.id:06d}-{row.kind}.eml"
        if target.exists():
            return
        tmp = self.directory / f".{row.id:06d}.tmp"
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            with tmp.open("wb") as fh:
                fh.write(row.raw)
                fh.flush()
                os.fsync(fh.fileno())
            tmp.rename(target)
        except OSError as exc:
            raise TransportError(f"outgoing folder {self.directory}: {exc.strerror}") from None

    def close(self) -> None:
        return None


class SmtpTransport:
    """smtplib over SSL, STARTTLS or plain (loopback), with AUTH when a username is set.

    One connection is kept between messages and reopened when the server dropped it.
    """

    def __init__(self, cfg: Config) -> None:
        self.cfg = cfg
        self.opts = cfg.smtp
        self.sender = cfg.mailbot.address
        self.conn: smtplib.SMTP | None = None

    @property
    def where(self) -> str:
        return f"SMTP {self.opts.host}:{self.opts.port}"

    def _connect(self) -> smtplib.SMTP:
        o = self.opts
        context = self.cfg.tls_context(o.ca_file)
        try:
            if o.security == "ssl":
                conn: smtplib.SMTP = smtplib.SMTP_SSL(
                    o.host, o.port, timeout=o.timeout_seconds, context=context
                )
            else:
                conn = smtplib.SMTP(o.host, o.port, timeout=o.timeout_seconds)
                if o.security == "starttls":
                    conn.starttls(context=context)
            if o.username and o.auth == "oauth2":
                oauth.smtp_login(conn, oauth.tokens(self.cfg), o.username)
            elif o.username:
                password = read_secret(self.cfg, "smtp", o.password_env, o.password_file)
                if password is None:
                    conn.close()
                    raise TransportError(
                        f"{self.where}: no password: set {o.password_env} or [smtp] password_file",
                        permanent=False,
                    )
                conn.login(o.username, password)
        except smtplib.SMTPAuthenticationError as exc:
            raise TransportError(f"{self.where}: login refused ({exc.smtp_code})") from None
        except TokenError as exc:
            conn.close()
            raise TransportError(f"{self.where}: {exc}") from None
        except (TimeoutError, OSError, smtplib.SMTPException) as exc:
            raise TransportError(f"{self.where}: cannot connect: {exc}") from None
        return conn

    def send(self, row: OutboundMessage) -> None:
        if self.conn is None:
            self.conn = self._connect()
        try:
            refused = self.conn.sendmail(self.sender, list(row.recipients), row.raw)
        except smtplib.SMTPRecipientsRefused as exc:
            codes = [code for code, _ in exc.recipients.values()]
            replies = sorted({_reply(code, text) for code, text in exc.recipients.values()})
            raise TransportError(
                f"{self.where}: every recipient refused ({'; '.join(replies)})",
                permanent=all(c >= 500 for c in codes),
            ) from None
        except smtplib.SMTPResponseException as exc:
            self.close()
            raise TransportError(
                f"{self.where}: {_reply(exc.smtp_code, exc.smtp_error)}",
                permanent=exc.smtp_code >= 500,
            ) from None
        except (TimeoutError, OSError, smtplib.SMTPException) as exc:
            self.close()
            raise TransportError(f"{self.where}: {type(exc).__name__}: {exc}") from None
        if refused:
            # Accepted for some recipients; the others are recorded, not retried (no duplicates).
            row.last_error = "; ".join(f"{rcpt}: {code}" for rcpt, (code, _) in refused.items())

    def close(self) -> None:
        if self.conn is not None:
            try:
                self.conn.quit()
            except (OSError, smtplib.SMTPException):
                self.conn.close()
            self.conn = None


def _reply(code: int, text: bytes | str) -> str:
    """The server's reply as it reads, "550 5.1.1 ...": a dead letter's error should say why
    the server refused, in text (not the code alone, nor a bytes repr b'...')."""
    if isinstance(text, bytes):
        text = text.decode(errors="replace")
    return f"{code} {' '.join(text.split())}".strip()


def make_transport(cfg: Config) -> Transport:
    if cfg.outgoing.transport == "smtp":
        return SmtpTransport(cfg)
    return FileTransport(cfg.path(cfg.outgoing.directory))
