"""Parse raw bytes into a ``ParsedMessage``.

In: the raw bytes from the ledger. Out: a ``ParsedMessage`` with decoded headers, addresses,
the visible text (HTML reduced to text when there is no plain part) and the MIME structure for
the filters. mail-parser does the work; when it fails on broken MIME the standard library's
parser is used instead, so every message that has bytes gets a ``ParsedMessage``.
"""

from __future__ import annotations

import contextlib
import email
import email.policy
import html
import logging
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.errors import HeaderParseError
from email.header import decode_header
from email.message import Message
from email.utils import getaddresses, parsedate_to_datetime
from html.parser import HTMLParser

import mailparser

log = logging.getLogger(__name__)

# Printable ASCII without spaces or angle brackets: anything else is not a usable Message-ID
# (and must never reach an In-Reply-To header of ours).
_MSGID_RE = re.compile(r"<([!-;=?-~]+)>")
_BARE_MSGID = re.compile(r"[!-;=?-~]+@[!-;=?-~]+")
_MAX_TEXT_CHARS = 200_000
_ADDRESS_WORD = re.compile(r"[^\s<>@,;]+@[^\s<>@,;]+")


@dataclass(frozen=True)
class Attachment:
    filename: str
    content_type: str
    size: int


@dataclass(frozen=True)
class ParsedMessage:
    """What the later stages need of a message, already decoded."""

    message: Message
    message_id: str | None
    from_addr: str
    from_name: str
    to: tuple[str, ...]
    cc: tuple[str, ...]
    reply_to: tuple[str, ...]
    subject: str
    date: datetime | None
    in_reply_to: tuple[str, ...]
    references: tuple[str, ...]
    text: str
    html: str | None
    content_type: str
    size: int
    attachments: tuple[Attachment, ...] = ()
    defects: tuple[str, ...] = field(default=())

    def header(self, name: str) -> str | None:
        """The first value of a header, decoded and unfolded, or None."""
        values = raw_headers(self.message, name)
        return decode_text(values[0]) if values else None

    def headers(self, name: str) -> list[str]:
        return [decode_text(v) for v in raw_headers(self.message, name)]

    @property
    def from_domain(self) -> str:
        return self.from_addr.rpartition("@")[2]


# Charsets that mail declares but Python knows under a wider or another name.
_CHARSET_ALIASES = {
    "gb2312": "gb18030",
    "gbk": "gb18030",
    "iso-8859-8-i": "iso-8859-8",
    "ks_c_5601-1987": "cp949",
    "unknown-8bit": "utf-8",
    "x-unknown": "utf-8",
}


def _decode_bytes(data: bytes, charset: str | None) -> str:
    name = _CHARSET_ALIASES.get((charset or "").lower(), charset or "utf-8")
    try:
        return data.decode(name)
    except (LookupError, UnicodeDecodeError):
        pass
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("cp1252", errors="replace")


def raw_headers(msg: Message, name: str) -> list[str]:
    """The values of a header as stored (raw 8-bit bytes kept as surrogate escapes)."""
    wanted = name.lower()
    return [str(v) for k, v in msg.raw_items() if k.lower() == wanted]


def decode_text(value: object) -> str:
    """Decode a header value to one line: RFC 2047 words and raw UTF-8 (RFC 6532) alike."""
    text = str(value)
    with contextlib.suppress(UnicodeEncodeError):  # raw 8-bit bytes kept as surrogates
        text = _decode_bytes(text.encode("ascii", errors="surrogateescape"), "utf-8")
    if "=?" in text:
        try:
            parts = decode_header(text)
        except (ValueError, LookupError, UnicodeError, AssertionError, HeaderParseError):
            parts = [(text, None)]  # e.g. an encoded word whose base64 is cut short
        text = "".join(
            _decode_bytes(chunk, charset) if isinstance(chunk, bytes) else chunk
            for chunk, charset in parts
        )
    return " ".join(_header_clean(text).split())


def _header_clean(text: str) -> str:
    """``_clean``, and no NUL: PostgreSQL refuses NUL in text, and a sender or subject holding
    one kept the message out of the ledger (header values only: a body keeps its bytes)."""
    return _clean(text).replace("\x00", "")


def message_ids(value: str | None) -> tuple[str, ...]:
    """The Message-IDs in a header such as References, without angle brackets."""
    if not value:
        return ()
    value = _header_clean(value)
    found = _MSGID_RE.findall(value)
    if not found and _BARE_MSGID.fullmatch(value.strip()):
        found = [value.strip().strip("<>")]
    return tuple(dict.fromkeys(found))


def _addresses(msg: Message, name: str) -> list[tuple[str, str]]:
    values = [decode_text(v) for v in raw_headers(msg, name)]
    try:
        pairs = getaddresses(values)
    except (ValueError, TypeError, IndexError):
        return []
    found = []
    for display, address in pairs:
        address = address.strip().lower()
        if " " in address:  # "Big Bug bb@bug.com": keep the address-like word
            match = _ADDRESS_WORD.search(address)
            address = match.group(0) if match else ""
        if "@" in address:
            found.append((display, address))
    return found


def _date(msg: Message) -> datetime | None:
    values = raw_headers(msg, "Date")
    raw = values[0] if values else None
    if not raw:
        return None
    try:
        value = parsedate_to_datetime(str(raw))
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if value is None:
        return None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


class _TextExtractor(HTMLParser):
    _BLOCK = {"p", "div", "br", "li", "tr", "h1", "h2", "h3", "h4", "blockquote", "table", "hr"}
    _SKIP = {"script", "style", "head", "title"}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._skip = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self._SKIP:
            self._skip += 1
        elif tag in self._BLOCK:
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in self._SKIP and self._skip:
            self._skip -= 1
        elif tag in self._BLOCK:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if not self._skip:
            self.parts.append(data)


def html_to_text(markup: str) -> str:
    """The visible text of an HTML body, with block elements as line breaks."""
    parser = _TextExtractor()
    try:
        parser.feed(markup)
        parser.close()
    except (AssertionError, ValueError):
        return html.unescape(re.sub(r"<[^>]*>", " ", markup))
    lines = (" ".join(line.split()) for line in "".join(parser.parts).splitlines())
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()


def _stdlib_parts(msg: Message) -> tuple[str, str | None, list[Attachment]]:
    plain: list[str] = []
    markup: list[str] = []
    attachments: list[Attachment] = []
    for part in msg.walk():
        if part.is_multipart():
            continue
        ctype = part.get_content_type()
        filename = part.get_filename()
        try:
            payload = part.get_payload(decode=True) or b""
        except (ValueError, TypeError, AssertionError):
            payload = b""
        if filename or part.get_content_disposition() == "attachment":
            attachments.append(Attachment(decode_text(filename or ""), ctype, len(payload)))
            continue
        if ctype not in ("text/plain", "text/html"):
            continue
        charset = part.get_content_charset() or "utf-8"
        try:
            text = payload.decode(charset, errors="replace")
        except LookupError:
            text = payload.decode("utf-8", errors="replace")
        (plain if ctype == "text/plain" else markup).append(text)
    return "\n".join(plain), ("\n".join(markup) or None), attachments


def _clean(text: str) -> str:
    """Text safe to store and to quote in a mail: raw bytes kept as surrogates become U+FFFD."""
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def _attachment_size(attachment: dict[str, object]) -> int:
    payload = str(attachment.get("payload") or "")
    return len(payload) * 3 // 4 if attachment.get("binary") else len(payload.encode())


def parse(raw: bytes) -> ParsedMessage:
    """Parse raw message bytes; falls back to the standard library on broken MIME."""
    try:
        mp = mailparser.parse_from_bytes(raw)
        msg = mp.message
        plain = "\n".join(mp.text_plain)
        markup = "\n".join(mp.text_html) or None
        attachments = [
            Attachment(
                decode_text(a.get("filename") or ""),
                str(a.get("mail_content_type") or "application/octet-stream"),
                _attachment_size(a),
            )
            for a in mp.attachments
        ]
    except Exception as exc:  # mail-parser raises many types on broken input
        log.debug("mail-parser failed (%s); using the standard library parser", type(exc).__name__)
        msg = email.message_from_bytes(raw, policy=email.policy.compat32)
        plain, markup, attachments = _stdlib_parts(msg)
    plain, markup = _clean(plain), (_clean(markup) if markup else None)
    text = plain if plain.strip() else html_to_text(markup or "")
    sender = _addresses(msg, "From")
    from_name, from_addr = sender[0] if sender else ("", "")
    msgids = message_ids(" ".join(raw_headers(msg, "Message-ID")[:1]))
    return ParsedMessage(
        message=msg,
        message_id=msgids[0] if msgids else None,
        from_addr=from_addr,
        from_name=decode_text(from_name),
        to=tuple(a for _, a in _addresses(msg, "To")),
        cc=tuple(a for _, a in _addresses(msg, "Cc")),
        reply_to=tuple(a for _, a in _addresses(msg, "Reply-To")),
        subject=decode_text(" ".join(raw_headers(msg, "Subject")[:1])),
        date=_date(msg),
        in_reply_to=message_ids(" ".join(raw_headers(msg, "In-Reply-To")[:1])),
        references=message_ids(" ".join(raw_headers(msg, "References"))),
        text=text[:_MAX_TEXT_CHARS],
        html=markup,
        content_type=msg.get_content_type(),
        size=len(raw),
        attachments=tuple(attachments),
        defects=tuple(type(d).__name__ for d in getattr(msg, "defects", [])),
    )
