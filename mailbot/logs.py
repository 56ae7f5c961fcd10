"""Logging: one line per event, to stderr, with no message bodies and no secrets.

Pipeline and outbox lines carry ids, kinds, case references, outcomes and timings only. Email
addresses that reach a log line through an error text are redacted to their domain; secrets
(``password=...``, bearer tokens, SASL exchanges, the password in a URL, and the values of
the passwords and tokens mailbot has read) are replaced by ``***``. ``[mailbot] log_format``
chooses plain text or JSON lines: one object per line with ``ts`` (ISO 8601, UTC), ``level``,
``logger``, ``message``, the ``extra`` fields the code passes (``ledger_id``, ``case_ref``,
...) and ``exception`` (the traceback, in the same line).
"""

from __future__ import annotations

import json
import logging
import os
import re
import sys
import threading
from datetime import UTC, datetime
from typing import Any

LOG_FORMATS = ("text", "json")
_ADDRESS = re.compile(r"[\w.+-]+@([\w-]+\.[\w.-]+)")
_SECRET_WORD = r"[\w-]*(?:password|passwd|passphrase|secret|token|api[_-]?key|credential)[\w-]*"
_SECRET_PATTERNS = (
    # password=x, 'client_secret': 'x', "refresh_token": "x" (the key stays, the value goes);
    # a bare "password: ..." is left alone: it is how error texts name an option
    (
        re.compile(rf"(?i)\b({_SECRET_WORD})(\s*=\s*|['\"]\s*:\s*)(['\"]?)[^\s'\",;&)}}]+"),
        r"\1\2\3***",
    ),
    (re.compile(r"(?i)\b(bearer|basic)\s+[\w.~+/=-]{8,}"), r"\1 ***"),
    (
        re.compile(r"(?i)\b(auth(?:enticate)?\s+(?:plain|login|xoauth2|oauthbearer))\s+\S+"),
        r"\1 ***",
    ),
    (re.compile(r"(\b[a-z][\w+.-]*://[^/\s:@]+:)[^@\s/]+@"), r"\1***@"),  # scheme://user:pw@
)
# Each of _SECRET_PATTERNS needs one of these in the lower-cased text (its keyword, or "://"):
# a line with none of them (most) skips the patterns. Only for ASCII text: under IGNORECASE a
# non-ASCII letter can match an ASCII one ("ſ" is "s", "K" is "k") that lower() would not show.
_SECRET_HINTS = ("pass", "secret", "token", "api", "credential", "bearer", "basic", "auth", "://")
_SECRET_ENV = re.compile(r"(?:^|_)(?:PASSWORD|PASSWD|PASS|PW|TOKEN|SECRET|API_?KEY|KEY)(?:_|$)")
_MIN_SECRET = 8  # shorter values would also hide ordinary words
_secrets: set[str] = set()
_secrets_lock = threading.Lock()
_RECORD_FIELDS = frozenset(
    logging.LogRecord("", 0, "", 0, "", None, None).__dict__.keys() | {"message", "asctime"}
)


def register_secret(value: str | None) -> None:
    """Never log ``value`` (a password or token mailbot has read); short values are ignored."""
    if value and len(value) >= _MIN_SECRET:
        with _secrets_lock:
            _secrets.add(value)


def register_environment_secrets(environ: dict[str, str] | None = None) -> None:
    """Register the values of environment variables named like secrets (MAILBOT_IMAP_PASSWORD,
    PGPASSWORD, ..._TOKEN, ..._SECRET): an EnvironmentFile's secrets stay out of the logs."""
    for name, value in (os.environ if environ is None else environ).items():
        if _SECRET_ENV.search(name.upper()) or name.upper() == "PGPASSWORD":
            register_secret(value)


def redact(text: str) -> str:
    """``text`` without secrets and with email addresses cut to their domain."""
    with _secrets_lock:
        known = sorted(_secrets, key=len, reverse=True)
    for value in known:
        if value in text:
            text = text.replace(value, "***")
    lowered = text.lower()
    if not text.isascii() or any(hint in lowered for hint in _SECRET_HINTS):
        for pattern, replacement in _SECRET_PATTERNS:
            text = pattern.sub(replacement, text)
    return _ADDRESS.sub(r"…@\1", text) if "@" in text else text


class RedactingFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


class JsonFormatter(logging.Formatter):
    """One JSON object per line; every string in it is redacted."""

    def format(self, record: logging.LogRecord) -> str:
        data: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC)
            .isoformat(timespec="milliseconds")
            .replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": redact(record.getMessage()),
        }
        for key, value in record.__dict__.items():
            if key not in _RECORD_FIELDS and key not in data and not key.startswith("_"):
                data[key] = _json_value(value)
        if record.exc_info:
            data["exception"] = redact(self.formatException(record.exc_info))
        elif record.exc_text:
            data["exception"] = redact(record.exc_text)
        if record.stack_info:
            data["stack"] = redact(self.formatStack(record.stack_info))
        return json.dumps(data, ensure_ascii=False, default=str)


def _json_value(value: Any) -> Any:
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, list | tuple):
        return [_json_value(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _json_value(v) for k, v in value.items()}
    return redact(str(value))


def setup(level: str = "INFO", fmt: str = "text") -> None:
    """Log to stderr at ``level``, as plain text lines or (``fmt="json"``) JSON lines."""
    register_environment_secrets()
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        JsonFormatter()
        if fmt == "json"
        else RedactingFormatter(
            "%(asctime)s %(levelname)s %(name)s: %(message)s", "%Y-%m-%dT%H:%M:%S"
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for noisy in ("mailparser", "apscheduler", "alembic", "imapclient"):
        logging.getLogger(noisy).setLevel(logging.ERROR)
