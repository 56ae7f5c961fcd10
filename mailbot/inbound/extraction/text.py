"""Text preparation: which part of an email is the request, who wrote it, where it is signed.

In: the visible text of a message (quoted lines included). Out: ``RequestText`` with the body
(the forwarded original when the message is a forward, with the forwarder's note after it),
the signature block, and the original author of a forward (a forward quoted line by line, as
Apple Mail sends one, is taken out of its quotes). Pure string work; never raises.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_FORWARD_MARKERS = re.compile(
    r"^[ \t]*(?:-{2,}[ \t]*(?:Forwarded message|Original Message|Mensaje original|"
    r"Message transféré)[ \t]*-{2,}|Begin forwarded message:|_{10,})[ \t]*$",
    re.I | re.M,
)
_HEADER_LINE = re.compile(r"^\s*\**(From|Sent|Date|To|Cc|Subject)\**\s*:\s*(.*)$", re.I)
_SIGN_OFF = re.compile(
    r"^\s*(?:thank you|thanks|many thanks|thank you for your help|regards|best regards|kind "
    r"regards|warm regards|respectfully|respectfully yours|sincerely|best|cheers|v/r|vr|"
    r"stay safe|be safe|with gratitude|gratefully|appreciate it|in service|"
    r"with (thanks|appreciation|respect)|all the best|take care|warmly|"
    r"(thank you|thanks)( (so|very) much)?( (for|in) [\w' ]{1,40})?)[\s,.!-]*$",
    re.I,
)
_SIG_DELIMITER = re.compile(r"^-- ?$")
_PHONE_HINT = re.compile(r"(?:\(\d{3}\)|\b\d{3}[-. ]\d{3}[-. ]\d{4}\b|\+1)")
_QUOTED = re.compile(r"^\s*>")
_QUOTE_PREFIX = re.compile(r"^[ \t]*> ?")
_FORWARD_WORD = re.compile(r"forward|transf", re.I)
_ADDRESS = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
_SENT_FROM = re.compile(r"^\s*sent from my \w+", re.I)


@dataclass(frozen=True)
class RequestText:
    body: str
    signature: str
    author_name: str | None = None
    author_email: str | None = None
    forwarded: bool = False

    @property
    def full(self) -> str:
        return f"{self.body}\n\n{self.signature}".strip()


def _author(value: str) -> tuple[str | None, str | None]:
    """Name and address of a forwarded From: line ("Ortega, Maria [mailto:m@x.gov]" too)."""
    found = _ADDRESS.search(value)
    if not found:
        return (value.strip(' "') or None), None
    name = value[: found.start()].strip(' "<[(').removesuffix("[mailto:").strip(' "<[')
    if "," in name:  # "Last, First"
        last, _, first = name.partition(",")
        name = f"{first.strip()} {last.strip()}"
    return (name or None), found.group(0).lower()


def _outlook_block(lines: list[str]) -> int | None:
    for i, line in enumerate(lines):
        header = _HEADER_LINE.match(line)
        if header and header.group(1).lower() == "from":
            names = set()
            for other in lines[i : i + 6]:
                found = _HEADER_LINE.match(other)
                if found:
                    names.add(found.group(1).lower())
            if "subject" in names and names & {"sent", "date"}:
                return i
    return None


def _split_forward(text: str) -> tuple[str, str, str | None, str | None] | None:
    """(note before the forward, forwarded content, author name, author email) or None."""
    match = _FORWARD_MARKERS.search(text)
    lines = text.splitlines()
    if match:
        marker = text[: match.start()].count("\n")
        note, start = "\n".join(lines[:marker]), marker + 1
    else:  # an Outlook header block without a marker line: From:, Sent:, To:, Subject:
        start = _outlook_block(lines)
        if start is None:
            return None
        note = "\n".join(lines[:start])
    author_name = author_email = None
    i = start
    while i < len(lines) and (not lines[i].strip() or _HEADER_LINE.match(lines[i])):
        header = _HEADER_LINE.match(lines[i])
        if header and header.group(1).lower() == "from" and author_email is None:
            author_name, author_email = _author(header.group(2))
        i += 1
    return note, "\n".join(lines[i:]), author_name, author_email


def _split_signature(text: str) -> tuple[str, str]:
    lines = [line.rstrip() for line in text.splitlines()]
    while lines and (not lines[-1].strip() or _SENT_FROM.match(lines[-1])):
        lines.pop()
    for i in range(len(lines) - 1, -1, -1):
        if _SIG_DELIMITER.match(lines[i]):
            return "\n".join(lines[:i]), "\n".join(lines[i + 1 :])
    window = max(0, len(lines) - 14)
    for i in range(len(lines) - 1, window - 1, -1):
        if _SIGN_OFF.match(lines[i]):
            rest = [line for line in lines[i + 1 :] if line.strip()]
            return "\n".join(lines[:i]), "\n".join(rest)
    # No sign-off: the last paragraph, when it is short and looks like a signature.
    last_blank = max((i for i, line in enumerate(lines) if not line.strip()), default=-1)
    tail = [line for line in lines[last_blank + 1 :] if line.strip()]
    looks_signed = _PHONE_HINT.search("\n".join(tail)) or (
        tail and all(len(line.split()) <= 7 and not line.endswith(".") for line in tail)
    )
    if 1 <= len(tail) <= 8 and last_blank > 0 and looks_signed:
        return "\n".join(lines[:last_blank]), "\n".join(tail)
    return "\n".join(lines), ""


def _unquote_forwarded(text: str) -> str:
    """The text with a forward quoted line by line ("> From: ...", as Apple Mail on an
    iPhone sends it) taken out of its quotes: after a forward marker whose lines are mostly
    quoted, one level of "> " goes, so the forwarded request reads like any other."""
    match = _FORWARD_MARKERS.search(text)
    if not match or not _FORWARD_WORD.search(match.group()):  # a reply's history stays quoted
        return text
    after = text[match.end() :].splitlines()
    filled = [line for line in after if line.strip()]
    quoted = [line for line in filled if _QUOTED.match(line)]
    if not quoted or len(quoted) < 0.8 * len(filled):
        return text
    lines = [_QUOTE_PREFIX.sub("", line, count=1) for line in after]
    return text[: match.end()] + "\n".join(lines)


def prepare(text: str) -> RequestText:
    """Split a request into body and signature, unwrapping a forward when there is one."""
    text = _unquote_forwarded(text)
    unquoted = "\n".join(line for line in text.splitlines() if not _QUOTED.match(line))
    forward = _split_forward(unquoted)
    if forward is None:
        body, signature = _split_signature(unquoted)
        return RequestText(body.strip(), signature.strip())
    note, content, name, email = forward
    notes = [note]  # the forwarders' notes, innermost first, each without its signature
    inner = _split_forward(content)
    while inner is not None and inner[3]:  # a forward of a forward: the innermost author writes
        note, content, name, email = inner
        notes.insert(0, note)
        inner = _split_forward(content)
    body, signature = _split_signature(content)
    note_bodies = [part for n in notes if (part := _split_signature(n)[0].strip())]
    combined = "\n\n".join([body.strip(), *note_bodies])
    return RequestText(combined, signature.strip(), name, email, forwarded=True)
