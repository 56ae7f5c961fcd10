"""Compose outgoing mail and write it to the outbox.

In: a kind, recipients, a template and its context, the thread it answers. Out: an
``outbound_messages`` row in the caller's transaction, so the mail exists if and only if the
case change does. The ``dedupe_key`` is unique: asking twice for the same acknowledgement
returns the first row. The Message-ID is derived from the key, so a resend is recognisable.
Every mail carries Auto-Submitted and our marker header, so no bot answers it and we never
answer ourselves.
"""

from __future__ import annotations

import quopri
import re
import secrets
from collections.abc import Sequence
from email.header import Header
from email.utils import format_datetime, formataddr
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from mailbot.config import Config
from mailbot.models import OutboundMessage, OutboundRecipient, utcnow
from mailbot.outbound.render import render

MARKER_HEADER = "X-MVAI-Mailbot"
MAX_MSGID = 250  # characters; longer ones are not repeated in In-Reply-To or References
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
# RFC 5322 dot-atom local parts in ASCII only: no control characters, no spaces, no quotes.
_ADDRESS = re.compile(
    r"^[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*"
    r"@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+$"
)


def one_line(value: str, limit: int = 200) -> str:
    """A header-safe single line: CR, LF and other control characters cannot add headers."""
    if not value.isprintable():  # the common case needs no pass per character
        value = "".join(ch if ch.isprintable() else " " for ch in value)
    text = " ".join(value.split())
    text = text.replace("=?", "= ?")  # never let a value be read back as an encoded word
    text = text.replace("\ufffd", "?")  # the email package cannot fold it in some contexts
    return text if len(text) <= limit else text[: limit - 1] + "…"


def valid_address(address: str) -> bool:
    return bool(_ADDRESS.match(address.strip()))


def make_message_id(cfg: Config, dedupe_key: str) -> str:
    domain = cfg.mailbot.address.rpartition("@")[2]
    return f"{_UNSAFE.sub('.', dedupe_key).strip('.')}@{domain}"


def plus_address(cfg: Config, token: str) -> str:
    local, _, domain = cfg.mailbot.address.partition("@")
    return f"{local.split('+', 1)[0]}+{token}@{domain}"


def build(
    cfg: Config,
    *,
    message_id: str,
    to: Sequence[str],
    subject: str,
    cc: Sequence[str] = (),
    text: str,
    html: str,
    auto_submitted: str,
    in_reply_to: str | None = None,
    references: Sequence[str] = (),
    reply_to: str | None = None,
    case_ref: str | None = None,
) -> bytes:
    """The mail as it goes over SMTP: CRLF lines, multipart/alternative (text, then HTML).

    Written directly rather than through ``email.message.EmailMessage``, which costs about
    1.5 ms a mail in header parsing (twice per new case, the largest share of the daemon's
    own work in a backlog). What the email package did for us is done here the same way:
    values are one line (``one_line``), non-ASCII header text becomes RFC 2047 encoded words
    (``email.header``), long headers are folded at 78 characters, and a body is 7bit when it
    is ASCII, 8bit UTF-8 otherwise (as EmailMessage's SMTP policy chose), or quoted-printable
    when a line is longer than SMTP allows. Addresses and Message-IDs are ASCII already
    (``valid_address``; ``parse.message_ids``).
    """
    local, _, domain = cfg.mailbot.address.partition("@")
    headers = [
        ("From", formataddr((one_line(cfg.mailbot.display_name, 80), f"{local}@{domain}"))),
        ("To", _addresses(to)),
    ]
    if cc:
        headers.append(("Cc", _addresses(cc)))
    headers += [
        ("Subject", one_line(subject, 250)),
        ("Date", format_datetime(utcnow())),
        ("Message-ID", f"<{message_id}>"),
    ]
    # A Message-ID cannot be folded: one longer than MAX_MSGID (a sender's choice, unchecked)
    # would make a line SMTP refuses, so it is left out of the thread headers.
    if in_reply_to and len(in_reply_to) <= MAX_MSGID:
        headers.append(("In-Reply-To", f"<{in_reply_to}>"))
    refs = [r for r in dict.fromkeys(references) if r and len(r) <= MAX_MSGID][-20:]
    if refs:
        headers.append(("References", " ".join(f"<{r}>" for r in refs)))
    if reply_to:
        headers.append(("Reply-To", reply_to))
    headers += [
        ("Auto-Submitted", auto_submitted),
        ("Precedence", "bulk" if auto_submitted == "auto-generated" else "auto_reply"),
        ("X-Auto-Response-Suppress", "All"),
        (MARKER_HEADER, one_line(case_ref or "yes", 100)),
        ("MIME-Version", "1.0"),
    ]
    boundary = f"=_mvai_{secrets.token_hex(12)}"
    out = [_header(name, value) for name, value in headers]
    out.append(f'Content-Type: multipart/alternative;\r\n boundary="{boundary}"\r\n\r\n'.encode())
    for subtype, body in (("plain", text), ("html", html)):
        cte, payload = _body(body)
        out.append(
            f'--{boundary}\r\nContent-Type: text/{subtype}; charset="utf-8"\r\n'
            f"Content-Transfer-Encoding: {cte}\r\n\r\n".encode()
        )
        out.append(payload + b"\r\n")  # the CRLF before a boundary belongs to the boundary
    out.append(f"--{boundary}--\r\n".encode())
    return b"".join(out)


def _addresses(addresses: Sequence[str]) -> str:
    for address in addresses:
        if not valid_address(address):  # never reached through enqueue, which drops them
            raise ValueError(f"not a usable address: {one_line(address, 80)!r}")
    return ", ".join(addresses)


def _header(name: str, value: str) -> bytes:
    """One header, RFC 2047-encoded if it is not ASCII, folded at 78 characters, CRLF."""
    plain = value.isascii()
    if plain and len(name) + 2 + len(value) <= 78:
        return f"{name}: {value}\r\n".encode()
    folded = Header(value, "us-ascii" if plain else "utf-8", header_name=name).encode(
        splitchars=" ,", maxlinelen=78, linesep="\r\n"
    )
    return f"{name}: {folded}\r\n".encode()


def _body(text: str) -> tuple[str, bytes]:
    """(Content-Transfer-Encoding, payload with CRLF lines) for a text part."""
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    if max((len(line.encode()) for line in lines), default=0) > 998:
        payload = quopri.encodestring("\n".join(lines).encode() + b"\n")
        return "quoted-printable", payload.replace(b"\n", b"\r\n")
    payload = "".join(f"{line}\r\n" for line in lines).encode()
    return ("7bit" if text.isascii() else "8bit"), payload


NEW_MAIL = "mailbot.new_mail"  # session.info key: the outbox rows this session wrote


def enqueue(
    session: Session,
    cfg: Config,
    *,
    dedupe_key: str,
    kind: str,
    to: Sequence[str],
    subject: str,
    template: str,
    cc: Sequence[str] = (),
    context: dict[str, Any],
    auto_submitted: str = "auto-replied",
    case_id: int | None = None,
    case_ref: str | None = None,
    inbound_id: int | None = None,
    in_reply_to: str | None = None,
    references: Sequence[str] = (),
    reply_to: str | None = None,
    new_key: bool = False,
) -> OutboundMessage:
    """Write one mail to the outbox in the caller's transaction (once per ``dedupe_key``).
    ``new_key``: the key names something made in this transaction (a case just opened), so
    there is no earlier mail to look for; the key's unique index still refuses a second.
    The row is written at the session's next flush (its id is not known before)."""
    if not new_key:
        existing = session.scalars(
            select(OutboundMessage).where(OutboundMessage.dedupe_key == dedupe_key)
        ).first()
        if existing is not None:
            return existing
    to_addrs = sorted({a.strip().lower() for a in to if valid_address(a)})
    if not to_addrs:
        raise ValueError(f"{kind}: no valid recipient address")
    cc_addrs = sorted({a.strip().lower() for a in cc if valid_address(a)} - set(to_addrs))
    text, html = render(cfg.templates_dir, template, context)
    message_id = make_message_id(cfg, dedupe_key)
    raw = build(
        cfg,
        message_id=message_id,
        to=to_addrs,
        cc=cc_addrs,
        subject=subject,
        text=text,
        html=html,
        auto_submitted=auto_submitted,
        in_reply_to=in_reply_to,
        references=references,
        reply_to=reply_to,
        case_ref=case_ref,
    )
    now = utcnow()
    row = OutboundMessage(
        dedupe_key=dedupe_key,
        case_id=case_id,
        inbound_id=inbound_id,
        kind=kind,
        recipients=to_addrs + cc_addrs,
        subject=one_line(subject, 250),
        message_id=message_id,
        raw=raw,
        status="pending",
        attempts=0,
        next_attempt_at=now,
        created_at=now,
    )
    # no flush here: the transaction's outbox rows go in one INSERT, their recipients in one more
    row.recipient_rows = [
        OutboundRecipient(address=address, kind=kind, created_at=now)
        for address in dict.fromkeys(to_addrs + cc_addrs)
    ]
    session.add(row)
    session.info.setdefault(NEW_MAIL, []).append(row)
    return row


def new_mail(session: Session) -> list[OutboundMessage]:
    """The outbox rows ``enqueue`` wrote in this session (their ids once it has flushed)."""
    return list(session.info.get(NEW_MAIL, ()))
