"""Backlog throughput, memory and the raw ceiling, end to end through Dovecot.

Run: .venv/bin/python bench/backlog.py [--n 2000] [--seed 11] [--profile]

N generated requests (bench/generate.py) are delivered into mvai@'s INBOX over Dovecot's LMTP
before the daemon starts. The clock runs from the daemon's first poll (log line
"imap: connected") until the test relay has taken N acknowledgements (one per case, written in
the case's own transaction, so N acks also means N open cases; checked in the database after).
The relay answers 250 once it has queued a mail, like an MTA, and holds what it has taken
until the clock stops; then it delivers everything into the recipients' Dovecot mailboxes and
the run fails if one is missing. The acks go to the agencies' own mail servers in use, not to
a server on mailbot's machine; --deliver during delivers at once, on the same two cores.
For the same reason the relay is harness.LeanRelay, a small SMTP server that costs about a
quarter of aiosmtpd's CPU per mail on those cores; --relay aiosmtpd gives the tests' relay.
Memory is the PSS (proportional set size) summed over the daemon and its children, sampled
every 0.5 s and at N/2 and N acknowledgements: forked workers share the model's pages, which
summed RSS would count once per worker. Summed RSS and VmHWM are printed beside it.

Before and after the daemon's run, on the same messages (in the INBOX, then in
MVAI/Processed; the mean of the two is used), the raw ceiling in a process of its own: IMAP
fetch by lists of integer UIDs (50 per round trip, the daemon's fetch_batch), mail-parser
parse (mailbot.inbound.parse.parse) and the NLP pipeline alone
(mailbot.inbound.extraction.nlp.load(rules).pipe over the prepared texts, batch 64).

With --profile the daemon is sampled by py-spy (non-blocking, 100 Hz) during the backlog and
the samples are attributed to stages; the throughput of a profiled run is marked as such.
"""

from __future__ import annotations

import argparse
import atexit
import collections
import multiprocessing
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.generate import generate  # noqa: E402
from bench.harness import (  # noqa: E402
    DAEMON,
    FORK_SERVER,
    MVAI,
    PASSWORD,
    ROOT,
    addresses,
    command_line,
    cpu_seconds,
    database,
    lmtp_bulk,
    machine,
    machine_busy_seconds,
    machine_steal_seconds,
    mailbot_process,
    memory_by_process,
    message_id,
    process_roles,
    rss_kb,
    sender,
    spawn,
    table,
    testbed,
    tree_cpu_seconds,
    tree_rss_kb,
    uptime,
    wait_for_log,
)
from tests.testbed import imap_login  # noqa: E402

FETCH_BATCH = 50

# Stage of a profile sample: the first of these found walking from the leaf of the stack.
STAGES = [
    ("ledger: IMAP fetch + commit (source.poll)", ("poll", "mailbot/inbound/imap.py")),
    ("parse (mail-parser)", ("parse", "mailbot/inbound/parse.py")),
    ("duplicate check", ("_duplicate_of", "mailbot/inbound/pipeline.py")),
    ("filters", ("classify", "mailbot/inbound/filters.py")),
    ("thread match", ("match_case", "mailbot/inbound/thread_match.py")),
    ("extraction (rules + spaCy)", ("extract", "mailbot/inbound/extraction/__init__.py")),
    ("open case + compose ack/alert", ("open_case", "mailbot/cases/service.py")),
    ("outbox: SMTP send + commit", ("send_due", "mailbot/outbound/outbox.py")),
    ("pipeline: row select/commit", ("process", "mailbot/inbound/pipeline.py")),
    ("ledger: pending ids", ("pending_ids", "mailbot/inbound/ledger.py")),
]
# Where the time is spent inside: the first of these found walking from the leaf.
LAYERS = [
    ("spaCy/thinc model (Cython time shows as Language.__call__)", ("spacy/", "thinc/", "numpy/")),
    ("jinja2 templates", ("jinja2/",)),
    ("SQLAlchemy + sqlite3", ("sqlalchemy/", "sqlite3/")),
    ("mail-parser / email package", ("mailparser/", "email/")),
    ("IMAP client", ("imapclient/", "imaplib.py")),
    ("SMTP client", ("smtplib.py",)),
    ("mailbot extraction rules", ("mailbot/inbound/extraction/",)),
    ("other mailbot code", ("mailbot/",)),
]


def _is(frame: str, func: str, path: str) -> bool:
    """Whether a py-spy frame "function (path:line)" is func in a file ending in path."""
    name, _, where = frame.partition(" (")
    return (name == func or name.endswith("." + func)) and where.split(":")[0].endswith(path)


def _in(frame: str, fragments: tuple[str, ...]) -> bool:
    """Whether a py-spy frame's file path starts with or contains one of fragments."""
    where = frame.partition(" (")[2].split(":")[0]
    return any(where.startswith(f) or "/" + f in where for f in fragments)


def attribute(raw_profile: Path) -> tuple[int, list[tuple[str, int]], list[tuple[str, int]]]:
    """(samples, by stage, by layer) from py-spy's collapsed stacks."""
    stages: collections.Counter[str] = collections.Counter()
    layers: collections.Counter[str] = collections.Counter()
    total = 0
    for line in raw_profile.read_text(errors="replace").splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not count_text.isdigit():
            continue
        count = int(count_text)
        total += count
        frames = stack.split(";")
        stage = next(
            (name for f in reversed(frames) for name, (func, path) in STAGES if _is(f, func, path)),
            "other (scheduler thread, IDLE handling, start-up)",
        )
        layer = next(
            (name for f in reversed(frames) for name, keys in LAYERS if _in(f, keys)),
            "Python stdlib / other",
        )
        stages[stage] += count
        layers[layer] += count
    return total, stages.most_common(), layers.most_common()


def top_functions(raw_profile: Path, limit: int = 12) -> list[tuple[str, int]]:
    """Leaf functions with the most samples (own time)."""
    leaves: collections.Counter[str] = collections.Counter()
    for line in raw_profile.read_text(errors="replace").splitlines():
        stack, _, count_text = line.rpartition(" ")
        if count_text.isdigit():
            leaves[stack.split(";")[-1]] += int(count_text)
    return leaves.most_common(limit)


def ceiling_apart(imap_port: int, rules: Path, n: int, folder: str) -> dict[str, float]:
    """``ceiling`` in a process of its own (spawned, gone when it returns): the model it loads
    never shares library pages with the daemon's processes, whose PSS would then look smaller,
    and this script stays small while the daemon runs."""
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        return pool.apply(ceiling, (imap_port, rules, n, folder))


def ceiling(imap_port: int, rules: Path, n: int, folder: str) -> dict[str, float]:
    """Fetch + parse + NLP alone on the messages in ``folder``; seconds per phase."""
    from mailbot.inbound.extraction import nlp, text
    from mailbot.inbound.parse import parse

    started = time.perf_counter()
    pipeline = nlp.load(rules)
    load_s = time.perf_counter() - started

    raws: list[bytes] = []
    started = time.perf_counter()
    with imap_login(imap_port, MVAI, PASSWORD, timeout=60) as client:
        client.select_folder(folder, readonly=True)
        uids = sorted(int(uid) for uid in client.search("ALL"))
        for start in range(0, len(uids), FETCH_BATCH):
            batch = uids[start : start + FETCH_BATCH]  # a list of ints, not a range string
            fetched = client.fetch(batch, ["BODY.PEEK[]"])
            raws.extend(fetched[uid][b"BODY[]"] for uid in batch)
    fetch_s = time.perf_counter() - started
    if len(raws) != n:
        print(f"warning: {len(raws)} messages in {folder}, expected {n}")

    started = time.perf_counter()
    parsed = [parse(raw) for raw in raws]
    parse_s = time.perf_counter() - started

    started = time.perf_counter()
    texts = [f"{m.subject}\n\n{text.prepare(m.text).full}" for m in parsed]
    prepare_s = time.perf_counter() - started

    list(pipeline.pipe(texts[:20]))  # warm up
    started = time.perf_counter()
    for _doc in pipeline.pipe(texts, batch_size=64):
        pass
    nlp_s = time.perf_counter() - started
    started = time.perf_counter()
    for t in texts[:200]:
        pipeline(t)
    one_by_one_s = (time.perf_counter() - started) / min(200, len(texts)) * len(texts)
    return {
        "load": load_s,
        "fetch": fetch_s,
        "parse": parse_s,
        "prepare": prepare_s,
        "nlp": nlp_s,
        "nlp_one_by_one": one_by_one_s,
        "count": len(raws),
    }


def process_name(pid: int) -> str:
    """The process's name (/proc/PID/comm), "" once it has gone."""
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


def cpu_snapshot(daemon_pid: int, dovecot) -> dict[str, float]:  # type: ignore[no-untyped-def]
    """CPU seconds so far, per part of the run (see cpu_rows)."""
    own = os.times()
    busy, total = machine_busy_seconds()
    roles = process_roles(daemon_pid)
    return {
        "daemon": cpu_seconds(daemon_pid),
        "workers": sum(cpu_seconds(pid) for pid, role in roles.items() if role != DAEMON),
        "fork_server": sum(cpu_seconds(pid) for pid, role in roles.items() if role == FORK_SERVER),
        "dovecot": tree_cpu_seconds(dovecot.pids()),
        "dovecot_imap": sum(cpu_seconds(p) for p in dovecot.pids() if process_name(p) == "imap"),
        "bench": own.user + own.system,
        "machine": busy,
        "machine_all": total,
        "steal": machine_steal_seconds(),
    }


def cpu_rows(before: dict[str, float], after: dict[str, float], n: int) -> list[list[str]]:
    """Where the CPU went between two snapshots, in ms per request."""
    d = {key: after[key] - before[key] for key in before}
    cores = os.cpu_count() or 1
    wall = d["machine_all"] / cores
    named = ("daemon", "workers", "dovecot", "bench")
    rest = d["machine"] - sum(d[k] for k in named)

    def ms(seconds: float) -> str:
        return f"{1000 * seconds / n:.1f} ms"

    return [
        ["CPU per request: daemon process (IMAP, database, compose, SMTP)", ms(d["daemon"])],
        ["  extraction worker process(es) (parse, filters, nlp.pipe, rules)", ms(d["workers"])],
        ["    of which their fork server (model load after the poll)", ms(d["fork_server"])],
        ["  Dovecot (IMAP, LMTP delivery of acks and alerts)", ms(d["dovecot"])],
        ["    of which its imap processes (the daemon's session)", ms(d["dovecot_imap"])],
        ["  this script (the SMTP relay, RSS sampling)", ms(d["bench"])],
        ["  everything else on the machine", ms(rest)],
        [
            "  machine busy over the run",
            f"{100 * d['machine'] / max(1e-9, d['machine_all']):.0f}% of {cores} cores "
            f"({ms(d['machine'])} of {ms(d['machine_all'])} per request; "
            f"{wall:.1f} s wall)",
        ],
        [
            "    of which stolen by the host (steal: the VM's cores wanted to run)",
            f"{100 * d['steal'] / max(1e-9, d['machine_all']):.1f}% ({ms(d['steal'])} per request)",
        ],
    ]


def halves_row(
    start: dict[str, float], half: dict[str, float], end: dict[str, float], n: int
) -> list[str]:
    """CPU per request of the main processes, first half against second half."""

    def part(a: dict[str, float], b: dict[str, float], count: int) -> str:
        return "/".join(
            f"{1000 * (b[k] - a[k]) / max(1, count):.1f}"
            for k in ("daemon", "workers", "fork_server", "dovecot")
        )

    return [
        "  daemon/workers (of which fork server)/Dovecot ms per request: first half | second half",
        f"{part(start, half, n // 2)} | {part(half, end, n - n // 2)}",
    ]


def per_second(count: float, seconds: float) -> str:
    """count/seconds as "12.3 msg/s"; "-" when both ends fell in one 0.1 s sample (tiny N)."""
    return f"{count / seconds:.1f} msg/s" if seconds > 0 else "-"


def db_counts(url: str) -> dict[str, int]:
    from sqlalchemy import text as sql

    from mailbot import db

    engine = db.make_engine(url)
    try:
        with engine.connect() as conn:
            counts = {"cases": conn.execute(sql("select count(*) from cases")).scalar_one()}
            for status, number in conn.execute(
                sql(
                    "select status || '/' || coalesce(kind, '-'), count(*) "
                    "from inbound_messages group by 1"
                )
            ):
                counts[f"inbound {status}"] = number
            for status, number in conn.execute(
                sql("select kind || ' ' || status, count(*) from outbound_messages group by 1")
            ):
                counts[f"outbox {status}"] = number
    finally:
        engine.dispose()
    return counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--profile", action="store_true", help="sample the daemon with py-spy")
    parser.add_argument(
        "--workers", type=int, default=2, help="[extraction] workers (0: in the daemon)"
    )
    parser.add_argument(
        "--batch-size", type=int, default=0, help="[extraction] batch_size (default: mailbot's)"
    )
    parser.add_argument(
        "--deliver",
        choices=["after", "during"],
        default="after",
        help="when the test relay delivers the acks and alerts it has taken into Dovecot: "
        "after the clock stops (default: the clock stops at 'handed to SMTP'; the recipients' "
        "mailboxes are other machines in use) or during the run (their delivery shares the cores)",
    )
    parser.add_argument(
        "--relay",
        choices=["lean", "aiosmtpd"],
        default="lean",
        help="the test relay's SMTP server: harness.LeanRelay (default, 0.26 ms of CPU per "
        "mail) or aiosmtpd (the tests' SmtpRelay, 0.90 ms, the relay until session 10)",
    )
    parser.add_argument("--timeout", type=float, default=0, help="seconds (default N/4 + 120)")
    parser.add_argument("--database", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument(
        "--ceiling",
        type=float,
        default=0,
        help="msg/s of a ceiling measured before: skip measuring it (quick A/B runs)",
    )
    args = parser.parse_args()
    n = args.n
    timeout = args.timeout or n / 4 + 120
    print(f"machine: {machine()}")
    load_before = uptime()
    print(f"load before (uptime): {load_before}")

    messages = [raw for _name, raw in generate(n, seed=args.seed)]
    senders = {sender(raw) for raw in messages}
    users = set().union(*(addresses(raw) for raw in messages))
    request_ids = {message_id(raw) for raw in messages}
    assert len(request_ids) == n
    work = Path(tempfile.mkdtemp(prefix="mailbot-bench-"))
    atexit.register(shutil.rmtree, work, True)  # also when a run fails
    py_spy = shutil.which("py-spy", path=str(ROOT / ".venv" / "bin")) or shutil.which("py-spy")
    if args.profile and py_spy is None:
        raise SystemExit("--profile needs py-spy: .venv/bin/pip install py-spy")
    spy: subprocess.Popen[bytes] | None = None
    with database(args.database) as where, testbed(users, args.relay) as (dovecot, relay):
        print(f"database: {where}; relay: {type(relay).__name__} ({args.relay})")
        started = time.monotonic()
        lmtp_bulk(dovecot, MVAI, messages)
        load_s = time.monotonic() - started
        print(f"{n} requests from {len(senders)} senders delivered over LMTP in {load_s:.1f}s")

        ceiling_before: dict[str, float] = {}
        if not args.ceiling:  # the same messages, still in the INBOX (read-only, PEEK)
            started = time.monotonic()
            ceiling_before = ceiling_apart(dovecot.imap_port, ROOT / "rules", n, "INBOX")
            print(f"ceiling before the run measured in {time.monotonic() - started:.1f}s")

        batch = f"batch_size = {args.batch_size}\n" if args.batch_size else ""
        extraction = f"\n[extraction]\nworkers = {args.workers}\n{batch}"
        proc = mailbot_process(work, dovecot, relay, extraction)
        if args.deliver == "after":
            relay.hold()
        spawned, offset = spawn(proc)
        assert proc.proc is not None
        pid = proc.proc.pid
        try:
            connected = wait_for_log(proc, "imap: connected", offset, 60)
            cpu_start = cpu_snapshot(pid, dovecot)
            load_at_start = uptime()
            if args.profile:
                spy = subprocess.Popen(
                    [py_spy, "record", "--nonblocking", "-r", "100", "--format", "raw"]
                    + ["-o", str(work / "profile.txt"), "-p", str(pid)],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            seen = 0
            acks = alerts = 0
            rss_half: dict[str, int] = {}
            rss_2k: dict[str, int] = {}
            rss_full: dict[str, int] = {}
            pss_peak = pss_half = pss_2k = pss_full = 0
            by_process: list[tuple[str, int, int]] = []
            sample: list[tuple[str, int, int]] = []
            at_peak: tuple[int, list[tuple[str, int, int]]] = (0, [])
            pss_next = 0.0  # smaps_rollup walks every mapping: sampled every 0.5 s, not 0.1
            half_at = full_at = 0.0
            deadline = time.monotonic() + timeout
            while acks < n:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{acks} of {n} acknowledgements after {timeout:.0f}s")
                if proc.proc.poll() is not None:
                    raise RuntimeError(f"mailbot exited:\n{proc.log()[-3000:]}")
                received = relay.received[seen:]
                seen += len(received)
                for mail in received:
                    mid = message_id(mail.data) or ""
                    acks += mid.startswith("ack.")
                    alerts += mid.startswith("alert.")
                now = time.monotonic()
                rss = tree_rss_kb(pid)
                at_2k = not rss_2k and n > 2000 and acks >= 2000
                at_half = not rss_half and acks >= n // 2
                pss = 0
                if now >= pss_next or at_2k or at_half or acks >= n:
                    sample = memory_by_process(pid)
                    pss, pss_next = sum(p for _, p, _ in sample), now + 0.5
                    if pss > pss_peak:
                        pss_peak, at_peak = pss, (acks, sample)
                if at_2k:
                    rss_2k, pss_2k = rss, pss
                if at_half:
                    rss_half, pss_half, half_at, by_process = rss, pss, now, sample
                    cpu_half = cpu_snapshot(pid, dovecot)
                if acks >= n:
                    rss_full, pss_full, full_at = rss, pss, now
                    cpu_end = cpu_snapshot(pid, dovecot)
                    break
                time.sleep(0.1)
            first_ack_at = min(
                m.at for m in relay.received if (message_id(m.data) or "").startswith("ack.")
            )
            tree = tree_rss_kb(pid)
            peak, processes = tree.get("VmHWM", 0), tree.get("processes", 0)
            daemon_peak = rss_kb(pid).get("VmHWM", 0)
            load_at_end = uptime()
            if spy is not None:
                spy.send_signal(signal.SIGINT)  # py-spy writes its file on SIGTERM/SIGINT
                spy.wait(timeout=60)
                spy = None
            # The alerts follow in the same outbox rounds; wait for them too (not timed).
            alerts_deadline = time.monotonic() + 60
            while alerts < n and time.monotonic() < alerts_deadline:
                received = relay.received[seen:]
                seen += len(received)
                alerts += sum((message_id(m.data) or "").startswith("alert.") for m in received)
                time.sleep(0.1)
            relay.release()
            delivery_started = time.monotonic()
            while not relay.drained() and time.monotonic() < delivery_started + timeout:
                time.sleep(0.1)
            delivered_s = time.monotonic() - delivery_started
        finally:
            if spy is not None:
                spy.send_signal(signal.SIGINT)
                spy.wait(timeout=60)
            code = proc.stop()
        from mailbot import config as config_module

        counts = db_counts(config_module.load(proc.config).database_url)
        elapsed = full_at - connected
        rate = n / elapsed
        print(f"daemon exit code {code}; database: {counts}")
        print(
            f"relay: {len(relay.received)} mails taken, delivered into Dovecot "
            + ("after the clock" if args.deliver == "after" else "during the run")
            + f" (done {delivered_s:.1f} s after the alerts), "
            f"{len(relay.delivery_failures)} delivery failures"
        )
        if not relay.drained() or relay.delivery_failures:
            raise SystemExit("the relay did not deliver everything it took into Dovecot")

        started = time.monotonic()
        if args.ceiling:
            each = n / args.ceiling / 3
            ceil = dict.fromkeys(("load", "prepare", "nlp_one_by_one"), 0.0)
            ceil |= {"fetch": each, "parse": each, "nlp": each, "count": n}
            print(f"ceiling not measured: {args.ceiling} msg/s as given (its stage rows are not)")
        else:
            after = ceiling_apart(dovecot.imap_port, ROOT / "rules", n, "MVAI/Processed")
            # The machine's own speed drifts over minutes (BENCHMARKS.md, session 6): the
            # ceiling is the mean of one measured just before the daemon's run and one after.
            ceil = {key: (ceiling_before[key] + after[key]) / 2 for key in after}
            print(
                "ceiling (fetch + parse + nlp.pipe): before the run "
                f"{n / sum(ceiling_before[k] for k in ('fetch', 'parse', 'nlp')):.1f} msg/s, "
                f"after {n / sum(after[k] for k in ('fetch', 'parse', 'nlp')):.1f} msg/s"
            )
        print(f"ceiling measured in {time.monotonic() - started:.1f}s (its model load not timed)")
    load_after = uptime()
    ceiling_s = ceil["fetch"] + ceil["parse"] + ceil["nlp"]
    ceiling_rate = n / ceiling_s
    tag = " (profiled)" if args.profile else ""
    rows = [
        ["measurement", "value"],
        [
            f"mailbot backlog throughput{tag}, extraction workers = {args.workers}"
            + (f" (batch {args.batch_size})" if args.batch_size else "")
            + f", {args.database}, mail delivered into Dovecot {args.deliver} the run",
            f"{rate:.1f} msg/s ({n} in {elapsed:.1f} s)",
        ],
        [
            "  first half / second half",
            f"{per_second(n / 2, half_at - connected)} / {per_second(n / 2, full_at - half_at)}",
        ],
        ["  incl. start-up (spawn -> last ack)", f"{n / (full_at - spawned):.1f} msg/s"],
        [
            "  first acknowledgement after the first poll",
            f"{first_ack_at - connected:.1f} s",
        ],
        [
            "raw ceiling: fetch + parse + nlp.pipe (mean of before and after the run)",
            f"{ceiling_rate:.1f} msg/s ({ceiling_s:.1f} s)",
        ],
        [
            "  IMAP fetch (50 UIDs per FETCH)",
            f"{ceil['fetch']:.2f} s ({n / ceil['fetch']:.0f} msg/s)",
        ],
        ["  parse (mail-parser)", f"{ceil['parse']:.2f} s ({n / ceil['parse']:.0f} msg/s)"],
        ["  nlp.pipe (batch 64)", f"{ceil['nlp']:.2f} s ({n / ceil['nlp']:.0f} msg/s)"],
        ["  (not in ceiling) text.prepare", f"{ceil['prepare']:.2f} s"],
        ["  (not in ceiling) nlp(text) one by one", f"{ceil['nlp_one_by_one']:.2f} s (est.)"],
        ["mailbot as % of ceiling", f"{100 * rate / ceiling_rate:.0f}% (target 85%+)"],
        [
            f"peak memory during backlog, PSS summed over {processes} processes (every 0.5 s)",
            f"{pss_peak / 1024:.0f} MB (target <= 400 MB); daemon alone {daemon_peak / 1024:.0f}"
            " MB (its VmHWM)",
        ],
        [
            "  summed VmHWM (each process's own peak; counts shared model pages per worker)",
            f"{peak / 1024:.0f} MB",
        ],
        *(
            [
                f"  at the peak ({at_peak[0]} acks): {role}",
                f"PSS {pss / 1024:.0f} MB, private {own / 1024:.0f} MB",
            ]
            for role, pss, own in at_peak[1]
        ),
        *(
            [f"  at {n // 2} acks: {role}", f"PSS {pss / 1024:.0f} MB, private {own / 1024:.0f} MB"]
            for role, pss, own in by_process
        ),
        [
            f"PSS after {n // 2} / {n} acks",
            f"{pss_half / 1024:.0f} MB / {pss_full / 1024:.0f} MB (growth "
            f"{(pss_full - pss_half) / 1024:+.0f} MB); summed RSS "
            f"{rss_half.get('VmRSS', 0) / 1024:.0f} / {rss_full.get('VmRSS', 0) / 1024:.0f} MB",
        ],
        *(
            [
                [
                    f"PSS after 2000 / {n} acks",
                    f"{pss_2k / 1024:.0f} MB / {pss_full / 1024:.0f} MB (growth "
                    f"{100 * (pss_full / max(1, pss_2k) - 1):+.1f}%, target < 10%)",
                ]
            ]
            if rss_2k
            else []
        ),
        *cpu_rows(cpu_start, cpu_end, n),
        halves_row(cpu_start, cpu_half, cpu_end, n),
        ["cases in database", str(counts.get("cases"))],
        [
            "load avg (1/5/15 min): before | at first poll | at last ack | after ceiling",
            f"{load_before} | {load_at_start} | {load_at_end} | {load_after}",
        ],
    ]
    print()
    print(table(rows))
    if args.profile:
        raw = work / "profile.txt"
        total, stages, layers = attribute(raw)
        print(f"\npy-spy: {total} samples of the busy daemon (100 Hz, idle excluded), by stage:")
        print(table([["stage", "share"]] + [[s, f"{100 * c / total:.1f}%"] for s, c in stages]))
        print("\nby innermost library (walking from the leaf):")
        print(table([["layer", "share"]] + [[s, f"{100 * c / total:.1f}%"] for s, c in layers]))
        print("\nleaf functions (own time):")
        print(
            table(
                [["function", "share"]]
                + [
                    [f.replace("|", "/")[:110], f"{100 * c / total:.1f}%"]
                    for f, c in top_functions(raw)
                ]
            )
        )
        kept = ROOT / "bench" / "out"
        kept.mkdir(exist_ok=True)
        shutil.copy(raw, kept / f"backlog-profile-{n}.txt")
        print(f"collapsed stacks kept in {kept / f'backlog-profile-{n}.txt'}")
    shutil.rmtree(work, ignore_errors=True)
    print(f"\nreproduce: {command_line()}")


if __name__ == "__main__":
    main()
