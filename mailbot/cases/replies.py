"""Replies on a case thread: who wrote, what is new, which commands, what to answer.

In: a reply already matched to a case (thread_match). Every reply becomes a case event.
A roster member's commands are applied through the case service when they are allowed: a
coordinator on any case, an advisor on a case assigned to them, and, with
`[security] require_authenticated_sender`, only with a passing verdict from a trusted
Authentication-Results header. The sender gets one confirmation listing what was done and
what was refused and why. Anyone else (the agency) is recorded and forwarded to the assigned
advisor, or to the coordinators while there is none; their `#` lines are never executed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, timedelta

from sqlalchemy.orm import Session

from mailbot.cases import crisis, service
from mailbot.cases.commands import KNOWN, USAGE, Command, parse_commands
from mailbot.config import Config
from mailbot.inbound.parse import ParsedMessage
from mailbot.inbound.reply_text import reply_text
from mailbot.inbound.sender_auth import verdict
from mailbot.models import Case, InboundMessage, utcnow
from mailbot.outbound.compose import enqueue, one_line, plus_address
from mailbot.roster import Person, Roster
from mailbot.vocabulary import CASE_STATUSES, PRIORITIES

_STOP = re.compile(
    r"^\W*(stop|unsubscribe|no more|please stop|stop (sending|these|the check-?ins|emails))\b",
    re.I,
)
_CHECKIN_DATE = re.compile(r"^\+(\d{1,3})d$|^(\d{4}-\d{2}-\d{2})$|^(pause|resume|stop)$", re.I)


@dataclass(frozen=True)
class Result:
    command: Command
    done: bool
    message: str


def handle_reply(
    session: Session,
    cfg: Config,
    roster: Roster,
    case: Case,
    inbound: InboundMessage,
    msg: ParsedMessage,
) -> str:
    """Record a reply and act on it; returns a short outcome for the log."""
    person = roster.find(msg.from_addr)
    role = ("coordinator" if person.is_coordinator else "advisor") if person else "agency"
    service.record_reply(session, case, inbound, msg, role)
    text = reply_text(inbound.raw or b"")
    commands = parse_commands(text)
    sign = crisis.detect(crisis.load_rules(cfg.rules_dir), text)
    if sign:
        service.crisis_alert(session, cfg, case, inbound.id, sign, msg.from_addr)
    if person is None:
        first_line = next((line for line in text.splitlines() if line.strip()), "")
        if _STOP.match(first_line) and case.checkins != "stopped":
            service.set_checkins(session, case, "stopped", msg.from_addr, "email", inbound.id)
        if commands:
            service.event(
                session,
                case,
                "commands_ignored",
                msg.from_addr,
                "email",
                inbound.id,
                reason="not a roster member",
                count=len(commands),
            )
        _forward(session, cfg, case, inbound, msg, text)
        return "forwarded"
    if not commands:
        return "recorded"
    refusal = _refusal(session, cfg, case, person, msg)
    results = []
    for command in commands:
        if refusal:
            result = Result(command, False, refusal)
        else:
            result = _apply(session, cfg, roster, case, person, command, inbound.id)
        if not result.done:
            service.event(
                session,
                case,
                "command_refused",
                person.email,
                "email",
                inbound.id,
                command=command.line[:200],
                reason=result.message,
            )
        results.append(result)
    _confirm(session, cfg, case, inbound, msg, person, results)
    done = sum(r.done for r in results)
    return f"commands {done}/{len(results)}"


def _refusal(
    session: Session, cfg: Config, case: Case, person: Person, msg: ParsedMessage
) -> str | None:
    if cfg.security.require_authenticated_sender:
        check = verdict(msg, cfg.security.trusted_authserv_ids)
        if not check.passed:
            return f"the sender could not be authenticated ({check.reason})"
    if person.is_coordinator:
        return None
    assignment = service.active_assignment(session, case)
    if assignment is None or assignment.advisor_email not in person.emails:
        return f"{case.ref} is not assigned to you"
    return None


def _apply(
    session: Session,
    cfg: Config,
    roster: Roster,
    case: Case,
    person: Person,
    command: Command,
    inbound_id: int,
) -> Result:
    arg = command.argument.strip()
    actor = person.email
    if not command.known:
        return Result(
            command,
            False,
            f"unknown command #{command.name}; known: " + ", ".join(f"#{k}" for k in KNOWN),
        )
    if command.name == "status":
        if arg.lower() not in CASE_STATUSES or arg.lower() == "new":
            return Result(command, False, f"usage: {USAGE['status']}")
        service.set_status(session, case, arg.lower(), actor, "email", inbound_id)
        return Result(command, True, f"status is now {arg.lower()}")
    if command.name == "close":
        service.set_status(session, case, "closed", actor, "email", inbound_id, reason=arg or None)
        return Result(command, True, "case closed" + (f": {arg}" if arg else ""))
    if command.name == "priority":
        if arg.upper() not in PRIORITIES:
            return Result(command, False, f"usage: {USAGE['priority']}")
        service.set_priority(session, case, arg.upper(), actor, "email", inbound_id)
        return Result(command, True, f"priority is now {arg.upper()}")
    if command.name == "note":
        if not arg:
            return Result(command, False, f"usage: {USAGE['note']}")
        service.add_note(session, case, arg, actor, "email", inbound_id)
        return Result(command, True, "note added")
    if command.name == "assign":
        return _assign(session, cfg, roster, case, person, command, inbound_id)
    return _checkin(session, cfg, case, person, command, inbound_id)


def _assign(
    session: Session,
    cfg: Config,
    roster: Roster,
    case: Case,
    person: Person,
    command: Command,
    inbound_id: int,
) -> Result:
    if not person.is_coordinator:
        return Result(command, False, "only coordinators assign advisors")
    arg = command.argument.strip()
    if arg.isdigit():
        index = int(arg) - 1
        if not 0 <= index < len(case.suggestions or []):
            return Result(command, False, f"there is no suggestion {arg} for {case.ref}")
        arg = case.suggestions[index]
    advisor = roster.find(arg)
    if advisor is None or advisor.is_coordinator:
        return Result(command, False, f"{arg or '(nothing)'} is not an advisor on the roster")
    if not advisor.active:
        return Result(command, False, f"{advisor.name} is not active on the roster")
    service.assign(session, cfg, case, advisor, person.email, "email", inbound_id)
    return Result(command, True, f"assigned to {advisor.name} <{advisor.email}>")


def _checkin(
    session: Session, cfg: Config, case: Case, person: Person, command: Command, inbound_id: int
) -> Result:
    arg = command.argument.strip().lower()
    match = _CHECKIN_DATE.match(arg)
    if not match:
        return Result(command, False, f"usage: {USAGE['checkin']}")
    if match.group(3):
        state = {"pause": "paused", "resume": "on", "stop": "stopped"}[match.group(3)]
        service.set_checkins(session, case, state, person.email, "email", inbound_id)
        return Result(command, True, f"check-ins {state}")
    today = utcnow().astimezone(cfg.tz).date()
    if match.group(1):
        when = today + timedelta(days=int(match.group(1)))
    else:
        try:
            when = date.fromisoformat(match.group(2))
        except ValueError:
            return Result(command, False, f"{match.group(2)} is not a date")
    if when <= today:
        return Result(command, False, f"{when.isoformat()} is not in the future")
    if case.checkins == "stopped" or case.status == "closed":
        return Result(command, False, "check-ins are stopped on this case")
    service.schedule_checkin(session, cfg, case, when, person.email, inbound_id)
    return Result(command, True, f"next check-in on {when.isoformat()}")


def _confirm(
    session: Session,
    cfg: Config,
    case: Case,
    inbound: InboundMessage,
    msg: ParsedMessage,
    person: Person,
    results: list[Result],
) -> None:
    refs = [*msg.references, msg.message_id] if msg.message_id else list(msg.references)
    enqueue(
        session,
        cfg,
        dedupe_key=f"confirm.{case.ref}.L{inbound.id}",
        kind="confirm",
        to=[msg.from_addr],
        subject=f"Re: {one_line(msg.subject, 150)}",
        template="roster/command_result",
        context={"case": service.summary(session, case), "person": person, "results": results},
        auto_submitted="auto-replied",
        case_id=case.id,
        case_ref=case.ref,
        inbound_id=inbound.id,
        in_reply_to=msg.message_id,
        references=refs,
        reply_to=plus_address(cfg, case.token),
    )


def _forward(
    session: Session,
    cfg: Config,
    case: Case,
    inbound: InboundMessage,
    msg: ParsedMessage,
    text: str,
) -> None:
    assignment = service.active_assignment(session, case)
    to = [assignment.advisor_email] if assignment else list(cfg.coordinators.addresses)
    refs = [*msg.references, msg.message_id] if msg.message_id else list(msg.references)
    enqueue(
        session,
        cfg,
        dedupe_key=f"fwd.{case.ref}.L{inbound.id}",
        kind="forward",
        to=to,
        subject=f"[{case.ref}] Reply from {msg.from_name or msg.from_addr}: "
        f"{one_line(msg.subject, 120)}",
        template="advisor/agency_reply",
        context={
            "case": service.summary(session, case),
            "sender": msg.from_name or msg.from_addr,
            "sender_email": msg.from_addr,
            "text": text[:20_000],
            "assigned": assignment is not None,
        },
        auto_submitted="auto-generated",
        case_id=case.id,
        case_ref=case.ref,
        inbound_id=inbound.id,
        in_reply_to=msg.message_id,
        references=refs,
        reply_to=plus_address(cfg, case.token),
    )
