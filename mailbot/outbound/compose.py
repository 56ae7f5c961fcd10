"""Compose outgoing mail and write it to the outbox.

In: a kind, recipients, a template and its context, the thread it answers. Out: an
``outbound_messages`` row in the caller's transaction, so the mail exists if and only if the
case change does. The ``dedupe_key`` is unique: asking twice for the same acknowledgement
returns the first row. The Message-ID is derived from the key, so a resend is recognisable.
Every mail carries Auto-Submitted and our marker header, so no bot answers it and we never
answer ourselves.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from email.headerregistry import Address
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from mailbot.config import Config
from mailbot.models import OutboundMessage, OutboundRecipient, utcnow
from mailbot.outbound.render import render

MARKER_HEADER = "X-MVAI-Mailbot"
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
# RFC 5322 dot-atom local parts in ASCII only: no control characters, no spaces, no quotes.
_ADDRESS = re.compile(
    r"^[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*"
    r"@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+$"
)


def one_line(value: str, limit: int = 200) -> str:
    """A header-safe single line: CR, LF and other control characters cannot add headers."""
    text = " ".join("".join(ch if ch.isprintable() else " " for ch in value).split())
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
) -> EmailMessage:
    msg = EmailMessage(policy=SMTP)
    local, _, domain = cfg.mailbot.address.partition("@")
    msg["From"] = Address(one_line(cfg.mailbot.display_name, 80), local, domain)
    msg["To"] = ", ".join(to)
    if cc:
        msg["Cc"] = ", ".join(cc)
    msg["Subject"] = one_line(subject, 250)
    msg["Date"] = format_datetime(utcnow())
    msg["Message-ID"] = f"<{message_id}>"
    if in_reply_to:
        msg["In-Reply-To"] = f"<{in_reply_to}>"
    refs = [r for r in dict.fromkeys(references) if r][-20:]
    if refs:
        msg["References"] = " ".join(f"<{r}>" for r in refs)
    if reply_to:
        msg["Reply-To"] = reply_to
    msg["Auto-Submitted"] = auto_submitted
    msg["Precedence"] = "bulk" if auto_submitted == "auto-generated" else "auto_reply"
    msg["X-Auto-Response-Suppress"] = "All"
    msg[MARKER_HEADER] = case_ref or "yes"
    msg.set_content(text)
    msg.add_alternative(html, subtype="html")
    return msg


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
) -> OutboundMessage:
    """Write one mail to the outbox in the caller's transaction (once per ``dedupe_key``)."""
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
    msg = build(
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
        subject=str(msg["Subject"]),
        message_id=message_id,
        raw=msg.as_bytes(),
        status="pending",
        attempts=0,
        next_attempt_at=now,
        created_at=now,
    )
    session.add(row)
    session.flush()
    session.add_all(
        OutboundRecipient(outbound_id=row.id, address=address, kind=kind, created_at=now)
        for address in dict.fromkeys(to_addrs + cc_addrs)
    )
    return row
