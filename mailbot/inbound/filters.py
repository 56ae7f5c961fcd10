"""Filters: find mail that must never be answered automatically (DESIGN invariant 3, RFC 3834).

In: a ``ParsedMessage`` and a ``FilterContext`` (our own addresses and the compiled
rules/filters.toml). Out: nothing when the message may be answered; otherwise ``Discard(kind,
reason)`` from the first check that finds evidence, where kind is "own", "bounce", "autoreply"
(auto-replies and read receipts) or "list", and reason names the evidence (a header, a MIME type,
a matched keyword; never the body). The caller records the message either way.
On failure: odd input (missing or undecodable headers, broken MIME) is just no evidence, so the
message passes on; nothing but ``Discard`` is raised. A bad rules file is a ``RulesError`` from
``FilterRules.load`` at start-up.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from email.message import Message
from email.utils import collapse_rfc2231_value
from pathlib import Path

from mailbot.errors import Discard
from mailbot.inbound.parse import ParsedMessage
from mailbot.outbound.compose import MARKER_HEADER
from mailbot.rules import compile_patterns, load_toml, require

# RFC 6522 report types and RFC 3464/8098/5965/6533 status parts, by the kind they make a
# message. A multipart/report of any other type (or none) is a delivery report: a bounce.
_REPORT_KINDS = {"disposition-notification": "autoreply"}
_STATUS_PART_KINDS = {
    "message/delivery-status": "bounce",
    "message/global-delivery-status": "bounce",
    "message/feedback-report": "bounce",
    "message/disposition-notification": "autoreply",
    "message/global-disposition-notification": "autoreply",
}
# Tags such as "[EXTERNAL]" or "[SPAM]" that gateways put before a subject.
_SUBJECT_TAGS = re.compile(r"^(\s*\[[^\]]*\])+\s*")
_EVIDENCE_CHARS = 40

HeaderRule = tuple[str, re.Pattern[str]]


@dataclass(frozen=True)
class FilterRules:
    """rules/filters.toml, compiled once at start-up."""

    bounce_senders: tuple[re.Pattern[str], ...]
    bounce_subjects: tuple[re.Pattern[str], ...]
    autoreply_headers: tuple[HeaderRule, ...]
    autoreply_subjects: tuple[re.Pattern[str], ...]
    receipt_subjects: tuple[re.Pattern[str], ...]
    list_headers: tuple[HeaderRule, ...]

    @classmethod
    def load(cls, rules_dir: Path) -> FilterRules:
        path = rules_dir / "filters.toml"
        data = load_toml(path)

        def patterns(key: str) -> tuple[re.Pattern[str], ...]:
            return tuple(compile_patterns(path, key, require(path, data, key, list)))

        def header_rules(key: str) -> tuple[HeaderRule, ...]:
            table = require(path, data, key, dict)
            return tuple(
                (name, compile_patterns(path, f"{key}.{name}", [pattern])[0])
                for name, pattern in table.items()
            )

        return cls(
            bounce_senders=patterns("bounce.sender_localparts"),
            bounce_subjects=patterns("bounce.subjects"),
            autoreply_headers=header_rules("autoreply.headers"),
            autoreply_subjects=patterns("autoreply.subjects"),
            receipt_subjects=patterns("autoreply.receipt_subjects"),
            list_headers=header_rules("list.headers"),
        )


@dataclass(frozen=True)
class FilterContext:
    """What the checks need besides the message: our own addresses (any case) and the rules."""

    own_addresses: frozenset[str]
    rules: FilterRules

    @classmethod
    def for_mailbox(cls, own_address: str, rules_dir: Path) -> FilterContext:
        """The context of the daemon's mailbox (the pipeline's, and its read-ahead workers')."""
        return cls(frozenset({own_address.lower()}), FilterRules.load(rules_dir))


Check = Callable[[ParsedMessage, FilterContext], None]


def own_mail(msg: ParsedMessage, ctx: FilterContext) -> None:
    # The outbound side puts the marker (and Auto-Submitted) on everything it sends.
    if msg.header(MARKER_HEADER) is not None:
        raise Discard("own", f"{MARKER_HEADER} header")
    own = {address.lower() for address in ctx.own_addresses}
    if msg.from_addr and (msg.from_addr in own or _without_plus_tag(msg.from_addr) in own):
        raise Discard("own", "From is our own address")


def delivery_report(msg: ParsedMessage, ctx: FilterContext) -> None:
    for part in _parts(msg.message):
        if part.get_content_type() == "multipart/report":
            report_type = _param(part, "report-type")
            evidence = f"multipart/report; report-type={_evidence(report_type) or '(none)'}"
            raise Discard(_REPORT_KINDS.get(report_type, "bounce"), evidence)


def status_part(msg: ParsedMessage, ctx: FilterContext) -> None:
    for part in _parts(msg.message):
        kind = _STATUS_PART_KINDS.get(part.get_content_type())
        if kind:
            raise Discard(kind, f"{part.get_content_type()} part")


def bounce_sender(msg: ParsedMessage, ctx: FilterContext) -> None:
    if msg.from_addr:
        local = msg.from_addr.rpartition("@")[0]
        shown = f"{local}@…"
    else:
        # "From: MAILER-DAEMON <>" or a bare "From: mailer-daemon": no address, only a name.
        local = shown = (msg.header("From") or "").partition("<")[0].strip().strip('"')
    if local and _first_match(ctx.rules.bounce_senders, local):
        raise Discard("bounce", f"sender {_evidence(shown)}")


def bounce_subject(msg: ParsedMessage, ctx: FilterContext) -> None:
    _match_subject(msg, ctx.rules.bounce_subjects, "bounce", "subject")


def autoreply_header(msg: ParsedMessage, ctx: FilterContext) -> None:
    _match_headers(msg, ctx.rules.autoreply_headers, "autoreply")


def autoreply_subject(msg: ParsedMessage, ctx: FilterContext) -> None:
    _match_subject(msg, ctx.rules.autoreply_subjects, "autoreply", "subject")


def read_receipt_subject(msg: ParsedMessage, ctx: FilterContext) -> None:
    _match_subject(msg, ctx.rules.receipt_subjects, "autoreply", "read receipt subject")


def null_return_path(msg: ParsedMessage, ctx: FilterContext) -> None:
    # Delivery reports are sent from the null reverse-path, but so are auto-replies (RFC 3834
    # section 3.3), which is why this check runs after the auto-reply ones.
    return_path = msg.header("Return-Path")
    if return_path is not None and not return_path.strip("<> "):
        raise Discard("bounce", "Return-Path <>")


def list_header(msg: ParsedMessage, ctx: FilterContext) -> None:
    _match_headers(msg, ctx.rules.list_headers, "list")


# The order decides the kind recorded when a message shows several kinds of evidence.
CHECKS: tuple[Check, ...] = (
    own_mail,
    delivery_report,
    status_part,
    bounce_sender,
    bounce_subject,
    autoreply_header,
    autoreply_subject,
    read_receipt_subject,
    null_return_path,
    list_header,
)


def classify(msg: ParsedMessage, ctx: FilterContext) -> None:
    """Raise ``Discard`` if the message must not be answered; return if it may be."""
    for check in CHECKS:
        check(msg, ctx)


def _parts(message: Message) -> Iterator[Message]:
    """Every MIME part, without entering attached messages: a forwarded bounce is not one."""
    stack = [message]
    while stack:  # a loop, not recursion: hostile mail nests parts thousands deep
        part = stack.pop()
        yield part
        # is_multipart() first: get_payload() on a leaf decodes its text, which costs a pass
        # and raises TypeError for a charset given in RFC 2231 form beside 8-bit bytes
        if part.is_multipart() and part.get_content_maintype() != "message":
            payload = part.get_payload()
            stack.extend(p for p in reversed(payload) if isinstance(p, Message))


def _param(part: Message, name: str) -> str:
    value = part.get_param(name)
    return collapse_rfc2231_value(value).strip().lower() if value else ""


def _without_plus_tag(address: str) -> str:
    local, _, domain = address.rpartition("@")
    return f"{local.partition('+')[0]}@{domain}"


def _first_match(patterns: tuple[re.Pattern[str], ...], text: str) -> re.Match[str] | None:
    return next((m for m in (p.search(text) for p in patterns) if m), None)


def _match_subject(
    msg: ParsedMessage, patterns: tuple[re.Pattern[str], ...], kind: str, label: str
) -> None:
    found = _first_match(patterns, _SUBJECT_TAGS.sub("", msg.subject))
    if found:
        raise Discard(kind, f"{label} matches {_evidence(found.group(0).strip())!r}")


def _match_headers(msg: ParsedMessage, rules: tuple[HeaderRule, ...], kind: str) -> None:
    # As for subjects, only the matched text is evidence: some of these headers hold free text.
    for name, pattern in rules:
        for value in msg.headers(name):
            found = pattern.search(value)
            if found:
                keyword = found.group(0).strip()
                raise Discard(kind, f"{name}: {_evidence(keyword)}" if keyword else name)


def _evidence(text: str) -> str:
    return text if len(text) <= _EVIDENCE_CHARS else text[: _EVIDENCE_CHARS - 1] + "…"
