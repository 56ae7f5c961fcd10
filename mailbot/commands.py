"""The commands of the command line (``mailbot.cli`` parses it and calls them), but `run`.

Imported when a command runs, not when `mailbot` starts: these imports (SQLAlchemy, the
pipeline and extraction) take most of a second, and `mailbot run` starts the extraction
workers' model loading before them (``mailbot.cli.cmd_run``).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from mailbot import db
from mailbot.cases import service
from mailbot.config import Config
from mailbot.errors import MailbotError, NotFound
from mailbot.inbound import ledger
from mailbot.inbound.ledger import RawMail
from mailbot.inbound.pipeline import Pipeline
from mailbot.models import Case, CaseEvent, Contact, InboundMessage, OutboundMessage


def _open_db(cfg: Config) -> sessionmaker[Session]:
    engine = db.make_engine(cfg.database_url)
    if cfg.database.auto_upgrade:
        db.upgrade(engine)
    else:
        db.check_schema(engine)
    return db.session_factory(engine)


def _emit(rows: Iterable[dict[str, Any]], as_json: bool, columns: Sequence[str]) -> None:
    rows = list(rows)
    if as_json:
        for row in rows:
            print(json.dumps(row, default=str, ensure_ascii=False))
        return
    if not rows:
        print("(none)")
        return
    table = [[("" if r[c] is None else str(r[c])) for c in columns] for r in rows]
    widths = [min(40, max(len(c), *(len(t[i]) for t in table))) for i, c in enumerate(columns)]
    print("  ".join(c.upper().ljust(w) for c, w in zip(columns, widths, strict=True)))
    for t in table:
        print("  ".join(v[:w].ljust(w) for v, w in zip(t, widths, strict=True)).rstrip())


# -- ingest, db, doctor ----------------------------------------------------------------------
def cmd_ingest(args: argparse.Namespace, cfg: Config) -> int:
    from mailbot.outbound import outbox
    from mailbot.outbound.transport import make_transport

    factory = _open_db(cfg)
    pipeline = Pipeline(cfg, factory)
    files = _Files(args.files, "ingest: ")
    for path, raw in files:
        source = "sha256:" + hashlib.sha256(raw).hexdigest()
        [ledger_id] = ledger.store_batch(factory, [RawMail("cli", raw, source_name=source)])
        outcome = pipeline.process(ledger_id)
        if outcome.status == "skipped":
            with factory() as session:
                row = session.get(InboundMessage, ledger_id)
                assert row is not None
                ref = row.case.ref if row.case else "-"
                print(
                    f"{path}: ledger={ledger_id} kind={row.kind or '-'} case={ref} "
                    f"outcome=already-ingested ({row.status})"
                )
            continue
        reason = f" reason={outcome.reason}" if outcome.reason else ""
        print(f"{path}: {outcome.line()}{reason}")
    transport = make_transport(cfg)
    try:
        outbox.send_due(factory, transport, cfg)
    finally:
        transport.close()
    return 1 if files.failed else 0


class _Files:
    """The files a command names, read one at a time as (path, bytes); one that cannot be
    read is said on stderr (``mailbot: PATH: reason``, after ``prefix``) and counted."""

    def __init__(self, names: Iterable[str], prefix: str = "") -> None:
        self.names = names
        self.prefix = prefix
        self.failed = 0

    def __iter__(self) -> Iterator[tuple[Path, bytes]]:
        for name in self.names:
            path = Path(name)
            try:
                data = path.read_bytes()
            except OSError as exc:
                print(f"mailbot: {self.prefix}{path}: {exc.strerror}", file=sys.stderr)
                self.failed += 1
                continue
            yield path, data


def _parse_files(paths: Sequence[str]) -> tuple[list[tuple[Path, Any]], int]:
    from mailbot.inbound.parse import parse

    files = _Files(paths)
    parsed = [(path, parse(raw)) for path, raw in files]
    return parsed, files.failed


def cmd_extract(args: argparse.Namespace, cfg: Config) -> int:
    from mailbot.inbound.extraction import extract_many

    parsed, failed = _parse_files(args.files)
    results = extract_many([msg for _, msg in parsed], cfg.rules_dir)
    for (path, _), ex in zip(parsed, results, strict=True):
        data = {"file": str(path), **ex.to_json()}
        if args.json:
            print(json.dumps(data, ensure_ascii=False))
        else:
            print(f"{path}:")
            for key, value in data.items():
                if key not in ("file", "confidence"):
                    print(f"  {key + ':':22}{'' if value is None else value}")
    return 1 if failed else 0


def cmd_eval(args: argparse.Namespace, cfg: Config) -> int:
    from mailbot import evaluation
    from mailbot.inbound.extraction import extract_many

    folder = Path(args.dir)
    if not folder.is_dir():
        raise NotFound(f"{folder}: not a folder")
    gold = evaluation.load_gold(folder)
    parsed, _ = _parse_files([str(folder / name) for name in sorted(gold)])
    results = extract_many([msg for _, msg in parsed], cfg.rules_dir)
    by_name = {path.name: ex.to_json() for (path, _), ex in zip(parsed, results, strict=True)}
    print(evaluation.report(evaluation.score(by_name, gold), len(gold)))
    return 0


def cmd_digest(args: argparse.Namespace, cfg: Config) -> int:
    from mailbot.jobs import digest
    from mailbot.outbound import outbox
    from mailbot.outbound.render import render
    from mailbot.outbound.transport import make_transport

    factory = _open_db(cfg)
    recipients = [args.to] if args.to else list(cfg.coordinators.addresses)
    if args.send:
        served = digest.send(factory, cfg, recipients=recipients)
        transport = make_transport(cfg)
        try:
            outbox.send_due(factory, transport, cfg)
        finally:
            transport.close()
        for recipient in recipients:
            state = "sent" if recipient.lower() in served else "already sent for today"
            print(f"digest to {recipient}: {state}")
        return 0
    for recipient in recipients:
        data = digest.preview(factory, cfg, recipient)
        text, _html = render(
            cfg.templates_dir, "digest/daily", {"d": data, "organisation": cfg.mailbot.organisation}
        )
        print(f"To: {recipient}\n\n{text}")
    return 0


def cmd_reply_text(args: argparse.Namespace, cfg: Config) -> int:
    from mailbot.inbound.reply_text import new_text, reply_text

    files = _Files(args.files)
    for path, data in files:
        if path.suffix.lower() == ".eml":
            text = reply_text(data)
        else:
            body = data.decode("utf-8", errors="replace")
            text = new_text(body, html=path.suffix.lower() in (".html", ".htm"))
        if args.json:
            print(json.dumps({"file": str(path), "text": text}, ensure_ascii=False))
        else:
            print(f"==> {path} <==\n{text}\n")
    return 1 if files.failed else 0


def cmd_purge(args: argparse.Namespace, cfg: Config) -> int:
    import getpass
    from datetime import timedelta

    from mailbot.models import utcnow

    raw = args.closed_older_than or f"{cfg.retention.closed_case_days}d"
    if not raw.endswith("d") or not raw[:-1].isdigit():
        raise MailbotError(f"--closed-older-than {raw}: give a number of days, like 365d")
    cutoff = utcnow() - timedelta(days=int(raw[:-1]))
    factory = _open_db(cfg)
    total = cases = 0
    with db.transaction(factory) as session:
        for case in session.scalars(
            select(Case).where(Case.status == "closed", Case.updated_at < cutoff)
        ):
            total += service.purge_case(session, cfg, case, f"cli:{getpass.getuser()}", "cli")
            cases += 1
    print(f"purged {total} messages of {cases} cases closed before {cutoff.date().isoformat()}")
    return 0


def cmd_status(args: argparse.Namespace, cfg: Config) -> int:
    from mailbot.health import counters

    data = counters(_open_db(cfg))
    last_poll = data["last_successful_poll"]
    data["last_successful_poll"] = last_poll.isoformat() if last_poll else None
    if args.json:
        print(json.dumps(data))
    else:
        for key, value in data.items():
            print(f"{key + ':':24}{'-' if value is None else value}")
    return 0


def cmd_db_upgrade(args: argparse.Namespace, cfg: Config) -> int:
    engine = db.make_engine(cfg.database_url)
    before, after = db.upgrade(engine)
    where = db.describe(cfg.database_url)
    if before == after:
        print(f"database {where} is up to date (revision {after})")
    else:
        print(f"database {where} upgraded from {before or 'empty'} to {after}")
    return 0


def cmd_doctor(args: argparse.Namespace, cfg: Config) -> int:
    from mailbot.doctor import run_checks

    return run_checks(cfg)


# -- cases --------------------------------------------------------------------------------
def case_json(session: Session, case: Case) -> dict[str, Any]:
    contact = session.get(Contact, case.contact_id) if case.contact_id else None
    return {
        "ref": case.ref,
        "status": case.status,
        "priority": case.priority,
        "priority_reason": case.priority_reason,
        "agency": case.agency.name if case.agency else None,
        "city": case.city,
        "state": case.state,
        "county": case.county,
        "incident_type": case.incident_type,
        "incident_date": case.incident_date.isoformat() if case.incident_date else None,
        "killed": case.killed,
        "injured": case.injured,
        "services": list(case.services or []),
        "contact_name": contact.name if contact else None,
        "contact_email": contact.email if contact else None,
        "contact_phone": contact.phone if contact else None,
        "needs_review": list((case.extraction or {}).get("needs_review", [])),
        "advisor": _advisor(session, case),
        "checkins": case.checkins,
        "opened_at": case.opened_at.isoformat(),
    }


def _advisor(session: Session, case: Case) -> str | None:
    assignment = service.active_assignment(session, case)
    return assignment.advisor_email if assignment else None


def cmd_cases_list(args: argparse.Namespace, cfg: Config) -> int:
    factory = _open_db(cfg)
    with factory() as session:
        query = select(Case).order_by(Case.id)
        if args.status:
            query = query.where(Case.status == args.status)
        if args.priority:
            query = query.where(Case.priority == args.priority.upper())
        rows = [case_json(session, c) for c in session.scalars(query)]
    _emit(
        rows,
        args.json,
        ["ref", "priority", "status", "agency", "city", "state", "incident_type", "incident_date"],
    )
    return 0


def cmd_cases_show(args: argparse.Namespace, cfg: Config) -> int:
    factory = _open_db(cfg)
    with factory() as session:
        case = service.find(session, args.ref)
        if case is None:
            raise NotFound(f"case {args.ref}: no such case")
        data = case_json(session, case)
        events = [
            {
                "at": e.at.isoformat(timespec="seconds"),
                "actor": e.actor,
                "via": e.via,
                "kind": e.kind,
                "detail": e.detail,
            }
            for e in session.scalars(
                select(CaseEvent).where(CaseEvent.case_id == case.id).order_by(CaseEvent.id)
            )
        ]
    if args.json:
        print(json.dumps({**data, "events": events}, default=str, ensure_ascii=False))
        return 0
    for key, value in data.items():
        shown = ", ".join(value) if isinstance(value, list) else value
        print(f"{key + ':':16} {'' if shown is None else shown}")
    print("timeline:")
    for e in events:
        detail = "; ".join(f"{k}={v}" for k, v in e["detail"].items())
        print(f"  {e['at']}  {e['kind']:<14} {e['actor']} via {e['via']}  {detail}".rstrip())
    return 0


def cmd_cases_assign(args: argparse.Namespace, cfg: Config) -> int:
    import getpass

    from mailbot.outbound import outbox
    from mailbot.outbound.transport import make_transport
    from mailbot.roster import load as load_roster

    roster = load_roster(cfg)
    advisor = roster.find(args.email)
    if advisor is None or advisor.is_coordinator:
        raise NotFound(f"{args.email}: not an advisor on the roster ([roster] path)")
    factory = _open_db(cfg)
    with db.transaction(factory) as session:
        case = service.find(session, args.ref)
        if case is None:
            raise NotFound(f"case {args.ref}: no such case")
        service.assign(session, cfg, case, advisor, f"cli:{getpass.getuser()}", "cli")
        ref = case.ref
    transport = make_transport(cfg)
    try:
        outbox.send_due(factory, transport, cfg)
    finally:
        transport.close()
    print(f"{ref}: assigned to {advisor.name} <{advisor.email}>")
    return 0


# -- ledger, outbox, quarantine -------------------------------------------------------------
def inbound_json(row: InboundMessage) -> dict[str, Any]:
    return {
        "id": row.id,
        "message_id": row.message_id,
        "from": row.from_addr,
        "subject": row.subject,
        "status": row.status,
        "kind": row.kind,
        "case_ref": row.case.ref if row.case else None,
        "reason": row.reason,
        "mailbox": row.mailbox,
        "size": row.size,
        "received_at": row.received_at.isoformat(),
    }


def cmd_inbound_list(args: argparse.Namespace, cfg: Config) -> int:
    factory = _open_db(cfg)
    with factory() as session:
        query = select(InboundMessage).order_by(InboundMessage.id)
        if args.status:
            query = query.where(InboundMessage.status == args.status)
        rows = [inbound_json(r) for r in session.scalars(query)]
    _emit(rows, args.json, ["id", "status", "kind", "case_ref", "from", "subject", "reason"])
    return 0


def cmd_outbox_list(args: argparse.Namespace, cfg: Config) -> int:
    factory = _open_db(cfg)
    with factory() as session:
        query = select(OutboundMessage).order_by(OutboundMessage.id)
        if args.status:
            query = query.where(OutboundMessage.status == args.status)
        rows = [
            {
                "id": r.id,
                "kind": r.kind,
                "to": ", ".join(r.recipients),
                "subject": r.subject,
                "status": r.status,
                "message_id": r.message_id,
                "case_ref": r.case.ref if r.case else None,
                "attempts": r.attempts,
                "last_error": r.last_error,
            }
            for r in session.scalars(query)
        ]
    _emit(rows, args.json, ["id", "kind", "status", "case_ref", "to", "subject"])
    return 0


def cmd_quarantine_list(args: argparse.Namespace, cfg: Config) -> int:
    args.status = "quarantined"
    return cmd_inbound_list(args, cfg)


def cmd_quarantine_replay(args: argparse.Namespace, cfg: Config) -> int:
    factory = _open_db(cfg)
    with db.transaction(factory) as session:
        row = session.get(InboundMessage, args.id)
        if row is None:
            raise NotFound(f"ledger #{args.id}: no such message")
        if row.status != "quarantined":
            raise NotFound(f"ledger #{args.id}: not quarantined (status {row.status})")
        row.status, row.reason = "pending", None
    outcome = Pipeline(cfg, factory).process(args.id)
    reason = f" reason={outcome.reason}" if outcome.reason else ""
    print(f"{outcome.line()}{reason}")
    return 0 if outcome.status != "quarantined" else 1
