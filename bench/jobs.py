"""The daily digest and the follow-up sweep with 10,000 cases in the database (SQLite).

Run: .venv/bin/python bench/jobs.py [--cases 10000] [--seed 5] [--templates 200]

How the cases are made: --templates generated requests (bench/generate.py) go through the
real pipeline (mailbot.inbound.pipeline.Pipeline on SQLite, file transport, nothing sent), so
their cases, events, follow-ups and outbox rows are what mailbot writes; the rest are copies
of those cases inserted with the ORM models (bulk INSERTs): opened at random times over the
last two years, closed with probability 0.8 when opened more than 180 days ago (so about 40%
stay open), an advisor on half of the open ones, an agency reply event on one open case in
ten, check-ins planned with the real cadence (mailbot.jobs.cadence.due_times), those already
due marked sent (cancelled for closed cases) except the ones due in the last two minutes.

Timed, each three times, in this process: mailbot.jobs.digest.preview(...) (and rendering it,
as `mailbot digest --preview` does), mailbot.jobs.followups.sweep(...) in the steady state (the
scheduler sweeps every minute) and after a day of downtime (every check-in due in the last
24 hours pending again, restored between runs).
"""

from __future__ import annotations

import argparse
import atexit
import hashlib
import random
import shutil
import statistics
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import delete, event, func, insert, select, update  # noqa: E402

from bench.generate import generate  # noqa: E402
from bench.harness import command_line, database, machine, table, uptime  # noqa: E402
from mailbot import config as config_module  # noqa: E402
from mailbot import db  # noqa: E402
from mailbot.inbound.pipeline import Pipeline  # noqa: E402
from mailbot.jobs import cadence, digest, followups  # noqa: E402
from mailbot.models import (  # noqa: E402
    Assignment,
    Case,
    CaseEvent,
    FollowUp,
    InboundMessage,
    OutboundMessage,
    utcnow,
)
from mailbot.outbound.render import render  # noqa: E402
from tests.conftest import write_config  # noqa: E402

COORDINATOR = "coord@mvai.test"
CASE_COLUMNS = [c.key for c in Case.__table__.columns if c.key not in ("id", "ref", "token")]


def seed_templates(pipeline: Pipeline, factory, count: int, seed: int) -> float:  # type: ignore[no-untyped-def]
    """Run count generated requests through the real pipeline; seconds taken."""
    ids = []
    with db.transaction(factory) as session:
        for name, raw in generate(count, seed=seed):
            row = InboundMessage(
                mailbox="bench",
                source_name=name,
                sha256=hashlib.sha256(raw).hexdigest(),
                raw=raw,
                size=len(raw),
            )
            session.add(row)
            session.flush()
            ids.append(row.id)
    started = time.perf_counter()
    outcomes = [pipeline.process(ledger_id) for ledger_id in ids]
    elapsed = time.perf_counter() - started
    bad = [o for o in outcomes if o.status != "processed"]
    if bad:
        print(f"warning: {len(bad)} template requests not processed, e.g. {bad[0]}")
    return elapsed


def clone_cases(cfg, factory, total: int, rng: random.Random) -> dict[str, int]:  # type: ignore[no-untyped-def]
    """Insert copies of the template cases up to total cases; counts of what was made."""
    now = utcnow()
    plan = cadence.load(cfg.rules_dir)
    made = {"open": 0, "closed": 0, "follow_ups": 0, "events": 0, "assignments": 0}
    with db.transaction(factory) as session:
        templates = list(session.scalars(select(Case).order_by(Case.id)))
        events = {
            t.id: list(session.scalars(select(CaseEvent).where(CaseEvent.case_id == t.id)))
            for t in templates
        }
        next_id = (session.scalar(select(func.max(Case.id))) or 0) + 1
        cases, ups, evs, assigns = [], [], [], []
        for i in range(total - len(templates)):
            t = templates[i % len(templates)]
            case_id = next_id + i
            opened = now - timedelta(days=rng.uniform(0.01, 730))
            shift = opened - t.opened_at
            row = {c: getattr(t, c) for c in CASE_COLUMNS}
            closed = (now - opened).days > 180 and rng.random() < 0.8
            row.update(
                id=case_id,
                ref=f"MVAI-BENCH-{case_id:06d}",
                token=f"b{case_id:09d}",
                opened_at=opened,
                updated_at=opened,
                status="closed" if closed else rng.choice(["new", "active", "monitoring"]),
                closed_reason="bench" if closed else None,
                incident_date=(t.incident_date + shift) if t.incident_date else None,
            )
            cases.append(row)
            made["closed" if closed else "open"] += 1
            for e in events[t.id]:
                evs.append(
                    {
                        "case_id": case_id,
                        "at": e.at + shift,
                        "actor": e.actor,
                        "via": e.via,
                        "kind": e.kind,
                        "detail": e.detail,
                    }
                )
            if not closed and rng.random() < 0.1:
                evs.append(
                    {
                        "case_id": case_id,
                        "at": opened + (now - opened) * rng.random(),
                        "actor": "agency@bench.test",
                        "via": "email",
                        "kind": "reply",
                        "detail": {"role": "agency"},
                    }
                )
            if not closed and rng.random() < 0.5:
                assigns.append(
                    {
                        "case_id": case_id,
                        "advisor_email": f"advisor{case_id % 40}@advisors.test",
                        "advisor_name": f"Advisor {case_id % 40}",
                        "assigned_by": COORDINATOR,
                        "assigned_at": opened + timedelta(hours=2),
                    }
                )
            anchor = row["incident_date"] or opened.astimezone(cfg.tz).date()
            for phase, due in cadence.due_times(plan, anchor, opened, cfg.tz):
                if due > now - timedelta(minutes=2):
                    status = "pending"
                else:
                    status = "cancelled" if closed else "sent"
                ups.append(
                    {
                        "case_id": case_id,
                        "phase": phase.name,
                        "due_at": due,
                        "status": status,
                        "sent_at": due if status == "sent" else None,
                    }
                )
        for model, rows in ((Case, cases), (CaseEvent, evs), (FollowUp, ups)):
            for start in range(0, len(rows), 2000):
                session.execute(insert(model), rows[start : start + 2000])
        if assigns:
            session.execute(insert(Assignment), assigns)
        made.update(follow_ups=len(ups), events=len(evs), assignments=len(assigns))
    return made


def timed(fn, runs: int = 3) -> tuple[list[float], object]:  # type: ignore[no-untyped-def]
    times, result = [], None
    for _ in range(runs):
        started = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - started)
    return times, result


def fmt(times: list[float]) -> str:
    return f"median {statistics.median(times):.3f} s (runs: {', '.join(f'{t:.3f}' for t in times)})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cases", type=int, default=10000)
    parser.add_argument("--templates", type=int, default=200)
    parser.add_argument("--seed", type=int, default=5)
    parser.add_argument("--database", choices=["sqlite", "postgresql"], default="sqlite")
    args = parser.parse_args()
    with database(args.database) as where:
        print(f"database: {where}")
        run(args)


def run(args: argparse.Namespace) -> None:
    print(f"machine: {machine()}")
    load_before = uptime()
    folder = Path(tempfile.mkdtemp(prefix="mailbot-bench-"))
    atexit.register(shutil.rmtree, folder, True)  # also when a run fails
    path = write_config(
        folder, "[digest]\nenabled = true\n\n[limits]\nauto_replies_per_sender_per_day = 1000000"
    )
    cfg = config_module.load(path)
    engine = db.make_engine(cfg.database_url)
    db.upgrade(engine)
    factory = db.session_factory(engine)
    pipeline = Pipeline(cfg, factory)
    from mailbot.inbound import extraction

    extraction.preload(cfg.rules_dir)
    pipeline_s = seed_templates(pipeline, factory, args.templates, args.seed)
    print(
        f"{args.templates} requests through the pipeline in-process: {pipeline_s:.1f} s "
        f"({args.templates / pipeline_s:.1f} msg/s, no IMAP, no SMTP)"
    )
    started = time.perf_counter()
    made = clone_cases(cfg, factory, args.cases, random.Random(args.seed))
    print(f"cloned to {args.cases} cases in {time.perf_counter() - started:.1f} s: {made}")
    now = utcnow()

    statements = [0]

    def count(*_args: object) -> None:
        statements[0] += 1

    event.listen(engine, "before_cursor_execute", count)
    preview_times, data = timed(lambda: digest.preview(factory, cfg, COORDINATOR, now))
    event.remove(engine, "before_cursor_execute", count)
    preview_statements = statements[0] // len(preview_times)
    render_times, _ = timed(
        lambda: render(cfg.templates_dir, "digest/daily", {"d": data, "organisation": "MVAI"})
    )
    sizes = {
        k: len(v)
        for k, v in vars(data).items()
        if isinstance(v, list)  # type: ignore[arg-type]
    }

    steady_times, steady = timed(lambda: followups.sweep(factory, cfg, now))

    def catch_up():  # type: ignore[no-untyped-def]
        mark = utcnow()
        with db.transaction(factory) as session:
            session.execute(
                update(FollowUp)
                .where(FollowUp.status == "sent", FollowUp.due_at > now - timedelta(days=1))
                .values(status="pending", sent_at=None)
            )
        started = time.perf_counter()
        result = followups.sweep(factory, cfg, now)
        elapsed = time.perf_counter() - started
        with db.transaction(factory) as session:  # undo everything, so each run is a first
            session.execute(
                update(FollowUp)
                .where(
                    FollowUp.status.in_(("sent", "skipped")),
                    FollowUp.due_at > now - timedelta(days=1),
                )
                .values(status="sent", sent_at=FollowUp.due_at)
            )
            session.execute(delete(OutboundMessage).where(OutboundMessage.kind == "checkin"))
            session.execute(
                delete(CaseEvent).where(
                    CaseEvent.kind.in_(("checkin_sent", "checkin_skipped")), CaseEvent.at >= mark
                )
            )
        return elapsed, result

    catch_runs = [catch_up() for _ in range(3)]
    load_after = uptime()
    with factory() as session:
        pending = session.scalar(
            select(func.count(FollowUp.id)).where(FollowUp.status == "pending")
        )
    rows = [
        ["measurement", "value"],
        [
            f"database: {args.cases} cases ({made['open']} + templates open), "
            f"{made['follow_ups']} check-ins ({pending} pending), {made['events']} events",
            "",
        ],
        ["digest.preview (target <= 1 s)", fmt(preview_times)],
        ["  SQL statements per preview", f"{preview_statements}"],
        ["  digest sections", ", ".join(f"{k}={v}" for k, v in sizes.items())],
        ["  render digest/daily (text + HTML)", fmt(render_times)],
        [
            "followups.sweep, steady state (target <= 1 s)",
            fmt(steady_times) + f"; first run: {vars(steady)}",
        ],
        [
            "followups.sweep after a day down (target <= 1 s)",
            fmt([t for t, _ in catch_runs]) + f"; each run: {vars(catch_runs[0][1])}",
        ],
        [
            f"in-process pipeline on {args.database} (templates)",
            f"{args.templates / pipeline_s:.1f} msg/s",
        ],
        ["load avg (1/5/15 min): before | after", f"{load_before} | {load_after}"],
    ]
    print()
    print(table(rows))
    engine.dispose()
    print(f"\nreproduce: {command_line()}")


if __name__ == "__main__":
    main()
