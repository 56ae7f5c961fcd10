"""Three daemons on one PostgreSQL and one Dovecot mailbox, 500 requests, the holder killed.

Issue 7: several daemons share one PostgreSQL; exactly one holds the mailbox (an advisory
lock), all of them work the ledger, the outbox and the follow-ups with FOR UPDATE SKIP LOCKED.
Here 450 requests from five agencies are delivered over LMTP before three daemons start (the
holder's first poll puts them all in the ledger), the mailbox holder is SIGKILLed once about
200 cases exist, and 50 more requests arrive after the kill: only a new mailbox holder can fetch
those, so a survivor must take the mailbox over (within a minute of the kill, from the JSON
log's timestamps) while both are still busy with the backlog, and they finish it.

At the end: 500 ledger rows, all processed once (attempts = 1, no ledger id in two daemons'
"outcome=processed" lines), one case per request Message-ID, one acknowledgement per request in
the agencies' mailboxes and one alert per request in the coordinator's, the outbox empty of
pending rows, the mailbox's INBOX empty; every daemon opened cases (the work was shared). The
only duplicate allowed is the one SMTP cannot rule out (RFC 1047: the holder dies after the
relay accepted a mail and before the commit), with the same rule as test_kill_backlog.py: at
most one per kill, its first copy accepted in the instant before the kill.

The test starts its own PostgreSQL (tests/pg.py) unless MAILBOT_TEST_DB=postgresql already
started one; without the PostgreSQL server binaries it is skipped (a failure under CI).
"""

from __future__ import annotations

import email
import json
import re
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from datetime import datetime
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from pathlib import Path
from typing import Any

import psycopg
import pytest

from mailbot import db
from tests.e2e.conftest import _unavailable
from tests.e2e.daemon import PASSWORD, MailbotProcess, imap_config, mid, wait_for
from tests.pg import Postgres, pg_binary
from tests.testbed import Dovecot, SmtpRelay

MVAI = "mvai@mvai.test"
COORDINATOR = "coord@mvai.test"
SENDERS = (
    ("Dana Whitfield", "Chief of Police", "Harlan Police Department", "chief@agency.test"),
    ("Ray Okafor", "Sheriff", "Marion County Sheriff's Office", "sheriff@marionso.test"),
    ("Lee Brandt", "Public Information Officer", "Fairview Police Department", "pio@fairview.test"),
    ("Sam Ortiz", "Victim Services Director", "Dade City Police Department", "vs@dadecity.test"),
    ("Kim Novak", "Captain", "Aurora Police Department", "captain@aurorapd.test"),
)
PLACES = (
    ("Harlan", "KY", "the high school"),
    ("Ocala", "FL", "a church"),
    ("Fairview", "TX", "the county fair"),
    ("Dade City", "FL", "a nightclub"),
    ("Aurora", "CO", "a grocery store"),
)
EARLY = 450  # delivered before the daemons start
LATE = 50  # delivered after the kill: fetched only once a survivor holds the mailbox
TOTAL = EARLY + LATE
KILL_AT = 200  # cases opened when the mailbox holder is killed
TAKEOVER = 60.0  # seconds: the bound for another daemon to take the mailbox
HOLDS = "this worker now holds the mailbox"
OTHER_HOLDS = "another worker holds the mailbox"


@pytest.fixture(scope="module")
def pg_url(postgres: Postgres | None) -> Iterator[str]:
    """A migrated database on a real PostgreSQL: the suite's one (MAILBOT_TEST_DB=postgresql)
    or one started here, whatever MAILBOT_TEST_DB says."""
    server = postgres
    own = server is None
    if own:
        if pg_binary("initdb") is None or pg_binary("pg_ctl") is None:
            _unavailable("PostgreSQL server binaries (initdb, pg_ctl) not found (postgresql-15)")
        server = Postgres()
    assert server is not None
    try:
        if own:
            server.start()
        name = server.create_database(migrated=False)
        url = server.url(name)
        engine = db.make_engine(url)
        db.upgrade(engine)  # once, before three daemons start on it
        engine.dispose()
        yield url
        if not own:
            server.drop_database(name)
    finally:
        if own:
            server.stop()


def request(n: int) -> tuple[str, bytes]:
    name, title, agency, address = SENDERS[n % len(SENDERS)]
    city, state, venue = PLACES[n % len(PLACES)]
    msg = EmailMessage()
    msg["From"] = f"{title} {name} <{address}>"
    msg["To"] = MVAI
    msg["Subject"] = f"Request {n}: help after the shooting in {city}"
    msg["Message-ID"] = make_msgid(idstring=f"r{n}", domain=address.rpartition("@")[2])
    msg["Date"] = formatdate(localtime=True)
    msg.set_content(
        f"Request {n}: yesterday there was a shooting at {venue} in {city}, {state}. "
        "We need help with media and support for our officers.\n\n"
        f"{name}\n{title}\n{agency}\n"
    )
    return mid(msg["Message-ID"]), msg.as_bytes()


class Worker(MailbotProcess):
    """One of the three daemons: started without waiting for an IMAP connection (only the
    mailbox holder makes one); its log is JSON lines."""

    def launch(self) -> None:
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "mailbot", "run", "--config", str(self.config)],
            cwd=self.config.parent,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=self.env,
        )
        log.close()

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def events(self) -> list[dict[str, Any]]:
        out = []
        for line in self.log().splitlines():
            if line.startswith("{"):
                try:
                    out.append(json.loads(line))
                except ValueError:
                    continue
        return out

    def said(self, text: str) -> list[dict[str, Any]]:
        return [e for e in self.events() if text in e.get("message", "")]

    def processed(self) -> list[int]:
        """Ledger ids this daemon logged as processed requests (logged after the commit)."""
        return [
            int(e["ledger_id"])
            for e in self.events()
            if e.get("outcome") == "processed" and e.get("kind") == "request"
        ]


def _query(url: str, sql: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(url, autocommit=True) as conn:
        return list(conn.execute(sql).fetchall())


def _count(url: str, sql: str) -> int:
    return int(_query(url, sql)[0][0])


def _ts(event: dict[str, Any]) -> float:
    return datetime.fromisoformat(event["ts"].replace("Z", "+00:00")).timestamp()


def test_three_daemons_share_the_work_and_survive_the_holders_death(
    tmp_path: Path, dovecot: Dovecot, smtp_relay: SmtpRelay, pg_url: str
):
    for _name, _title, _agency, address in SENDERS:
        if address not in dovecot.users:
            dovecot.add_user(address, PASSWORD)
    dovecot.purge()
    smtp_relay.queue = True
    workers = []
    for n in range(3):
        folder = tmp_path / f"daemon{n + 1}"
        folder.mkdir()
        config = imap_config(
            folder,
            dovecot,
            smtp_relay.port,
            '[mailbot]\nlog_format = "json"\n\n'
            "[limits]\nauto_replies_per_sender_per_day = 1000\n\n"
            "[digest]\nenabled = false",
        )
        text, replaced = re.subn(
            r'(?m)^(\[database\]\n)url = "[^"]*"$', rf'\1url = "{pg_url}"', config.read_text()
        )
        assert replaced == 1, text
        config.write_text(text)
        workers.append(Worker(config))

    sent: dict[str, str] = {}  # request Message-ID -> sender address
    started = time.monotonic()
    try:
        for n in range(EARLY):
            message_id, raw = request(n)
            sent[message_id] = SENDERS[n % len(SENDERS)][3]
            dovecot.deliver(MVAI, raw)
        loaded = time.monotonic() - started
        for worker in workers:
            worker.launch()

        # Exactly one holds the mailbox: one says so, the others say another does, and
        # PostgreSQL shows one advisory lock.
        wait_for(
            lambda: all(w.said(HOLDS) or w.said(OTHER_HOLDS) for w in workers),
            timeout=120,
            what="three daemons running",
        )
        assert all(w.alive() for w in workers), [w.log()[-2000:] for w in workers]
        holders = [w for w in workers if w.said(HOLDS)]
        assert len(holders) == 1, [len(w.said(HOLDS)) for w in workers]
        holder = holders[0]
        survivors = [w for w in workers if w is not holder]
        assert all(len(w.said(OTHER_HOLDS)) == 1 for w in survivors)
        locks = _count(
            pg_url,
            "SELECT count(*) FROM pg_locks l JOIN pg_database d ON d.oid = l.database "
            "WHERE l.locktype = 'advisory' AND l.granted AND d.datname = current_database()",
        )
        assert locks == 1

        # Midway: kill the holder, then deliver the rest.
        wait_for(
            lambda: _count(pg_url, "SELECT count(*) FROM cases") >= KILL_AT,
            timeout=150,
            what=f"{KILL_AT} cases",
        )
        kill_at, kill_wall = time.monotonic(), time.time()
        holder.kill()
        cases_at_kill = _count(pg_url, "SELECT count(*) FROM cases")
        assert cases_at_kill < EARLY - 100, f"the kill came late: {cases_at_kill} cases"
        for n in range(EARLY, TOTAL):
            message_id, raw = request(n)
            sent[message_id] = SENDERS[n % len(SENDERS)][3]
            dovecot.deliver(MVAI, raw)

        wait_for(
            lambda: any(w.said(HOLDS) for w in survivors),
            timeout=TAKEOVER + 30,
            what="a survivor taking the mailbox over",
        )
        new_holders = [w for w in survivors if w.said(HOLDS)]
        assert len(new_holders) == 1
        takeover = _ts(new_holders[0].said(HOLDS)[0]) - kill_wall
        assert takeover < TAKEOVER, f"the mailbox was taken over {takeover:.1f}s after the kill"

        def done() -> bool:
            rows = _query(pg_url, "SELECT status, count(*) FROM inbound_messages GROUP BY 1")
            outbox = _count(pg_url, "SELECT count(*) FROM outbound_messages WHERE status <> 'sent'")
            return dict(rows).get("processed") == sum(n for _, n in rows) == TOTAL and not outbox

        wait_for(done, timeout=180, what="all requests processed and their mail sent")
        for address in {a for *_, a in SENDERS}:
            dovecot.wait_for_messages(address, TOTAL // len(SENDERS), timeout=60)
        dovecot.wait_for_messages(COORDINATOR, TOTAL, timeout=60)
        time.sleep(3)  # a late duplicate would show now
        finished = time.monotonic() - started
        status = survivors[0].cli("status")[0]
        assert [w.stop() for w in survivors] == [0, 0]
    finally:
        for worker in workers:
            if worker.alive():
                worker.proc.kill()  # type: ignore[union-attr]
                worker.proc.wait(timeout=10)  # type: ignore[union-attr]

    # The ledger: every request once, processed once, one case each.
    rows = _query(
        pg_url,
        "SELECT i.id, i.message_id, i.status, i.kind, i.attempts, i.case_id, c.request_id "
        "FROM inbound_messages i LEFT JOIN cases c ON c.id = i.case_id",
    )
    assert len(rows) == TOTAL
    assert {f"<{r[1]}>" for r in rows} == set(sent)
    assert {(r[2], r[3], r[4]) for r in rows} == {("processed", "request", 1)}
    assert all(r[5] is not None and r[6] == r[0] for r in rows), "each row its own case"
    assert len({r[5] for r in rows}) == TOTAL
    assert _count(pg_url, "SELECT count(*) FROM cases") == TOTAL
    assert _count(pg_url, "SELECT count(DISTINCT request_id) FROM cases") == TOTAL
    assert status["pending"] == 0 and status["outbox_pending"] == 0, status
    assert status["outbox_failed"] == 0 and status["processed"] == TOTAL, status
    outbox = dict(_query(pg_url, "SELECT kind, count(*) FROM outbound_messages GROUP BY 1"))
    assert outbox == {"ack": TOTAL, "alert": TOTAL}
    assert dovecot.fetch_all(MVAI) == []

    # The work was shared, and no ledger row was processed by two daemons.
    by_daemon = [w.processed() for w in workers]
    assert all(by_daemon), f"cases opened per daemon: {[len(p) for p in by_daemon]}"
    logged = Counter(i for ids in by_daemon for i in ids)
    assert not [i for i, c in logged.items() if c > 1], "a ledger row processed twice"
    # The killed daemon may have committed its last row without logging it.
    assert len(logged) >= TOTAL - 1

    # One acknowledgement per request in the agencies' mailboxes, one alert per request in the
    # coordinator's; nothing twice but for the RFC 1047 instant just before the kill.
    replied: Counter[str] = Counter()
    for address in {a for *_, a in SENDERS}:
        for raw in dovecot.fetch_all(address):
            ack = email.message_from_bytes(raw)
            replied[mid(ack["In-Reply-To"])] += 1
            assert sent[mid(ack["In-Reply-To"])] == address
    assert set(replied) == set(sent), "every request has its acknowledgement"
    alerted = Counter(
        re.findall(r"<[^>]+>", mid(email.message_from_bytes(raw)["References"]))[-1]
        for raw in dovecot.fetch_all(COORDINATOR)
    )
    assert set(alerted) == set(sent), "every request has its alert"
    copies = Counter(
        mid(email.message_from_bytes(r.data)["Message-ID"]) for r in smtp_relay.received
    )
    assert len(copies) == 2 * TOTAL
    duplicates = {m for m, c in copies.items() if c > 1}
    assert len(duplicates) <= 1, duplicates  # one kill
    for message_id in duplicates:
        first = min(
            r.at
            for r in smtp_relay.received
            if mid(email.message_from_bytes(r.data)["Message-ID"]) == message_id
        )
        gap = round(kill_at - first, 4)
        assert -0.05 < gap < 0.1, f"{message_id} sent twice; kill - accept: {gap}"
    extra = sum(replied.values()) - len(replied) + sum(alerted.values()) - len(alerted)
    assert extra <= len(duplicates)
    print(
        f"loaded {EARLY} in {loaded:.1f}s, killed at {cases_at_kill} cases, takeover "
        f"{takeover:.1f}s, done in {finished:.1f}s, cases per daemon "
        f"{[len(p) for p in by_daemon]}, SMTP duplicates {len(duplicates)}"
    )
