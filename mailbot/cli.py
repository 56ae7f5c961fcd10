"""The command line: `mailbot COMMAND`, every command with --config PATH.

User errors (bad config, unreachable server, missing file) print one line on stderr naming
what and where and exit non-zero; no tracebacks.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from mailbot import config as config_mod
from mailbot import db
from mailbot.cases import service
from mailbot.config import Config
from mailbot.errors import MailbotError, NotFound
from mailbot.inbound import ledger
from mailbot.inbound.ledger import RawMail
from mailbot.inbound.pipeline import Pipeline
from mailbot.logs import setup as setup_logging
from mailbot.models import Case, CaseEvent, Contact, InboundMessage, OutboundMessage

Handler = Callable[[argparse.Namespace, Config], int]


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


# -- run, ingest, db, doctor ------------------------------------------------------------------
def cmd_run(args: argparse.Namespace, cfg: Config) -> int:
    from mailbot.daemon import Daemon

    Daemon(cfg).run()
    return 0


def cmd_ingest(args: argparse.Namespace, cfg: Config) -> int:
    from mailbot.outbound import outbox
    from mailbot.outbound.transport import make_transport

    factory = _open_db(cfg)
    pipeline = Pipeline(cfg, factory)
    failed = 0
    for name in args.files:
        path = Path(name)
        try:
            raw = path.read_bytes()
        except OSError as exc:
            print(f"mailbot: ingest: {path}: {exc.strerror}", file=sys.stderr)
            failed += 1
            continue
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
    return 1 if failed else 0


def _parse_files(paths: Sequence[str]) -> tuple[list[tuple[Path, Any]], int]:
    from mailbot.inbound.parse import parse

    parsed, failed = [], 0
    for name in paths:
        path = Path(name)
        try:
            parsed.append((path, parse(path.read_bytes())))
        except OSError as exc:
            print(f"mailbot: {path}: {exc.strerror}", file=sys.stderr)
            failed += 1
    return parsed, failed


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

    failed = 0
    for name in args.files:
        path = Path(name)
        try:
            data = path.read_bytes()
        except OSError as exc:
            print(f"mailbot: {path}: {exc.strerror}", file=sys.stderr)
            failed += 1
            continue
        if path.suffix.lower() == ".eml":
            text = reply_text(data)
        else:
            body = data.decode("utf-8", errors="replace")
            text = new_text(body, html=path.suffix.lower() in (".html", ".htm"))
        if args.json:
            print(json.dumps({"file": str(path), "text": text}, ensure_ascii=False))
        else:
            print(f"==> {path} <==\n{text}\n")
    return 1 if failed else 0


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


# -- parser -------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", metavar="PATH", help="config file (default ./config.toml)")
    parser = argparse.ArgumentParser(
        prog="mailbot", description="MVAI email intake and case tracking", parents=[common]
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(
        name: str, handler: Handler, helptext: str, parent: Any = sub
    ) -> argparse.ArgumentParser:
        p = parent.add_parser(name, help=helptext, parents=[common])
        p.set_defaults(handler=handler)
        return p

    add("run", cmd_run, "run the daemon")
    p = add("ingest", cmd_ingest, "push .eml files through the pipeline")
    p.add_argument("files", nargs="+", metavar="FILE.eml")

    p = add("extract", cmd_extract, "print what extraction finds in .eml files")
    p.add_argument("files", nargs="+", metavar="FILE.eml")
    p.add_argument("--json", action="store_true")
    p = add("reply-text", cmd_reply_text, "the new text of replies (.eml, .txt or .html)")
    p.add_argument("files", nargs="+", metavar="FILE")
    p.add_argument("--json", action="store_true")
    p = add("eval", cmd_eval, "score extraction against DIR/gold.json")
    p.add_argument("dir", metavar="DIR")

    p = add("digest", cmd_digest, "preview or send the coordinators' daily digest")
    mode = p.add_mutually_exclusive_group(required=True)
    mode.add_argument("--preview", action="store_true", help="print it")
    mode.add_argument("--send", action="store_true", help="send it now (once per day)")
    p.add_argument("--to", metavar="EMAIL", help="one coordinator (default: all)")

    cases = sub.add_parser("cases", help="list and show cases").add_subparsers(
        dest="sub", required=True, metavar="SUBCOMMAND"
    )
    p = add("list", cmd_cases_list, "list cases", cases)
    p.add_argument("--status")
    p.add_argument("--priority")
    p.add_argument("--json", action="store_true")
    p = add("assign", cmd_cases_assign, "assign an advisor from the roster", cases)
    p.add_argument("ref")
    p.add_argument("email")
    p = add("show", cmd_cases_show, "show one case and its timeline", cases)
    p.add_argument("ref")
    p.add_argument("--json", action="store_true")

    inbound = sub.add_parser("inbound", help="the ledger of received mail").add_subparsers(
        dest="sub", required=True, metavar="SUBCOMMAND"
    )
    p = add("list", cmd_inbound_list, "list the ledger", inbound)
    p.add_argument("--status", choices=["pending", "processed", "ignored", "quarantined"])
    p.add_argument("--json", action="store_true")

    out = sub.add_parser("outbox", help="outgoing mail").add_subparsers(
        dest="sub", required=True, metavar="SUBCOMMAND"
    )
    p = add("list", cmd_outbox_list, "list the outbox", out)
    p.add_argument("--status", choices=["pending", "sent", "failed"])
    p.add_argument("--json", action="store_true")

    quarantine = sub.add_parser("quarantine", help="messages that could not be handled")
    qsub = quarantine.add_subparsers(dest="sub", required=True, metavar="SUBCOMMAND")
    p = add("list", cmd_quarantine_list, "list quarantined messages", qsub)
    p.add_argument("--json", action="store_true")
    p = add("replay", cmd_quarantine_replay, "process a quarantined message again", qsub)
    p.add_argument("id", type=int)

    dbp = sub.add_parser("db", help="database").add_subparsers(
        dest="sub", required=True, metavar="SUBCOMMAND"
    )
    add("upgrade", cmd_db_upgrade, "create or migrate the database", dbp)
    p = add("purge", cmd_purge, "remove message bodies of old closed cases")
    p.add_argument("--closed-older-than", metavar="365d", help="default: [retention]")
    p = add("status", cmd_status, "counters: ledger, outbox, follow-ups, last poll")
    p.add_argument("--json", action="store_true")
    add("doctor", cmd_doctor, "check config, database, mailbox, SMTP and the NLP model")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        cfg = config_mod.load(args.config)
        # The daemon logs at the configured level; one-shot commands print their own lines.
        setup_logging(
            cfg.mailbot.log_level if args.handler is cmd_run else "WARNING",
            cfg.mailbot.log_format,
        )
        return int(args.handler(args, cfg))
    except MailbotError as exc:
        print(f"mailbot: {exc}", file=sys.stderr)
        return 2 if isinstance(exc, config_mod.ConfigError) else 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0
