"""The daemon: watch the mailbox, process the ledger, send the outbox, until stopped.

Loop: poll the mailbox (messages committed to the ledger, then marked on the server) ->
process every pending ledger row -> send what is due in the outbox -> wait (IMAP IDLE, or a
short sleep for a Maildir). SIGINT and SIGTERM stop it cleanly after the current step. One
message, one mail or one lost connection never ends the loop.
"""

from __future__ import annotations

import logging
import shutil
import signal
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from datetime import tzinfo
from pathlib import Path
from types import FrameType

from sqlalchemy import func, select
from sqlalchemy.exc import OperationalError

from mailbot import db
from mailbot.config import Config
from mailbot.errors import DatabaseError, MailboxError
from mailbot.inbound import extraction, ledger
from mailbot.inbound.mailbox import MailboxSource, MaildirSource, make_source
from mailbot.inbound.pipeline import Pipeline
from mailbot.inbound.reader import Reader
from mailbot.jobs import digest, followups
from mailbot.jobs.scheduler import make_scheduler
from mailbot.locks import MailboxLock, SqliteDaemonLock
from mailbot.metrics import MetricsServer
from mailbot.models import InboundMessage
from mailbot.outbound import outbox
from mailbot.outbound.transport import make_transport

log = logging.getLogger(__name__)

FETCH_LOT = 200  # messages fetched from the mailbox at a time (more follow as they are worked)


class Daemon:
    def __init__(self, cfg: Config) -> None:
        self.cfg = cfg
        self.stop = threading.Event()
        self.engine = db.make_engine(cfg.database_url)
        self.factory = db.session_factory(self.engine)
        self.pipeline = Pipeline(cfg, self.factory)
        self.reader = Reader(
            cfg,
            lambda ids: ledger.raw_items(self.factory, ids, cfg.limits.max_message_bytes),
        )
        self.transport = make_transport(cfg)
        self.source: MailboxSource = make_source(cfg, self.factory)
        self.outbox_wake = threading.Event()
        self.outbox_new: deque[int] = deque()  # rows just committed, for the sender (_sender)
        self.sqlite_lock: SqliteDaemonLock | None = None
        self.mailbox_lock: MailboxLock | None = None
        if self.engine.dialect.name == "sqlite" and self.engine.url.database not in (
            None,
            ":memory:",
        ):
            self.sqlite_lock = SqliteDaemonLock(Path(self.engine.url.database or ""))
        elif self.engine.dialect.name == "postgresql":
            self.mailbox_lock = MailboxLock(self.engine, self.source.name)
        self.next_lock_try = 0.0
        self.last_round_at: float | None = None  # Unix time of the last round without an error
        self.metrics: MetricsServer | None = None

    @property
    def holds_mailbox(self) -> bool:
        """Whether this process fetches mail (always on SQLite; the lock holder on PostgreSQL)."""
        if self.mailbox_lock is None:
            return True
        if not self.mailbox_lock.held and time.monotonic() >= self.next_lock_try:
            self.next_lock_try = time.monotonic() + 15.0
            if self.mailbox_lock.try_acquire():
                log.info("this worker now holds the mailbox %s", self.source.name)
                if not isinstance(self.source, MaildirSource):
                    self._connect_or_wait()
        return self.mailbox_lock.held

    def prepare(self) -> None:
        if self.sqlite_lock is not None:
            self.sqlite_lock.acquire()
        if self.cfg.metrics.enabled:  # bound now: a taken port stops the start before any work
            self.metrics = MetricsServer(self.cfg, self.factory, lambda: self.last_round_at)
        self.pipeline.filter_context  # noqa: B018 - load and validate the rules first
        if self.cfg.extraction.workers:
            extraction.check_rules(self.cfg.rules_dir)  # a bad rule file stops the start here
            self.reader.start()  # the workers load the model while this process goes on
        else:
            extraction.preload(self.cfg.rules_dir)
        if self.cfg.database.auto_upgrade:
            before, after = db.upgrade(self.engine)
            if before != after:
                log.info("database migrated from %s to %s", before or "empty", after)
        else:
            db.check_schema(self.engine)
        if isinstance(self.source, MaildirSource):
            self.source.connect()
            self._drop_samples(self.source)

    def _drop_samples(self, source: MaildirSource) -> None:
        if not self.cfg.mailbot.sample_requests:
            return
        with db.reading(self.factory) as session:
            if session.scalar(select(func.count(InboundMessage.id))):
                return
        if any((source.inbox / "new").iterdir()) or any((source.inbox / "cur").iterdir()):
            return
        samples = sorted(extraction.SAMPLES.glob("*.eml"))
        for sample in samples:
            tmp = source.inbox / "tmp" / f"sample.{sample.stem}"
            shutil.copyfile(sample, tmp)
            tmp.rename(source.inbox / "new" / tmp.name)
        print(
            f"mailbot: first start: {len(samples)} sample requests dropped into "
            f"{source.inbox / 'new'}\n"
            f"  acknowledgements and alerts appear in {self.cfg.path(self.cfg.outgoing.directory)}"
            " (as .eml files)\n"
            "  cases: .venv/bin/mailbot cases list   ledger: .venv/bin/mailbot inbound list",
            flush=True,
        )

    def _sender(self) -> None:
        """The outbox's own thread: woken as soon as a case's mail is committed (so an
        acknowledgement goes out while the next request is being read), and every tick for
        retries that fall due.

        The rows a message has just committed are handed over by id (``outbox_new``) and
        sent without asking the database what is due: a busy backlog would otherwise pay a
        query per request. The database is asked when woken without rows (a follow-up
        sweep, a digest, the end of a round), at every tick, and at least once a tick while
        rows keep coming; a handed row that is not sent (an error) stays pending for that."""
        tick, failures = self._outbox_tick(), 0
        asked_at = float("-inf")
        while not self.stop.is_set():
            self.outbox_wake.wait(tick if not failures else min(60.0, 2.0**failures))
            self.outbox_wake.clear()
            if self.stop.is_set():
                return
            handed: list[int] = []
            while self.outbox_new:
                handed.append(self.outbox_new.popleft())
            try:
                if handed:
                    outbox.send_rows(self.factory, self.transport, self.cfg, handed)
                if not handed or time.monotonic() - asked_at >= tick:
                    asked_at = time.monotonic()
                    outbox.send_due(self.factory, self.transport, self.cfg)
                failures = 0
            except Exception as exc:  # database or our own bug: retried, never fatal
                failures += 1
                log.warning("outbox: %s: %s", type(exc).__name__, " ".join(str(exc).split()))

    def sweep_followups(self) -> None:
        followups.sweep(self.factory, self.cfg)
        self.outbox_wake.set()

    def send_digests(self) -> None:
        digest.send(self.factory, self.cfg)
        self.outbox_wake.set()

    def _daily_jobs(self) -> dict[str, tuple[Callable[[], object], int, int, tzinfo]]:
        if not self.cfg.digest.enabled:
            return {}
        hour, minute = (int(x) for x in self.cfg.digest.time.split(":"))
        return {"digest": (self.send_digests, hour, minute, self.cfg.tz)}

    def catch_up(self) -> None:
        """Check-ins that fell due while the daemon was down go out once (or are skipped when
        too late); today's digest goes out if its time passed while the database was in use
        and it has not been sent (``digest.missed_today``)."""
        self.sweep_followups()
        if self.cfg.digest.enabled and digest.missed_today(self.factory, self.cfg):
            self.send_digests()

    def step(self) -> int:
        """One round: process the ledger, fetching new mail whenever no pending row is left
        (``_pending``), and wake the sender. Returns how many messages were handled. A row
        the database could not take ends the round with ``DatabaseError``: the loop retries
        after a pause, as for any database failure, not when new mail comes."""
        handled = 0
        try:
            for ledger_id, read in self.reader.read(self._pending()):
                if self.stop.is_set():
                    break
                self._take_over_mailbox()
                outcome = self.pipeline.process(ledger_id, read)
                if outcome.status == "pending":
                    raise DatabaseError(f"ledger row {ledger_id} left pending")
                if outcome.mail:
                    self.outbox_new.extend(outcome.mail)
                    self.outbox_wake.set()
                handled += 1
        finally:
            if handled:  # and anything else written meanwhile (a renumbered mailbox's alert)
                self.outbox_wake.set()
        return handled

    def _fetch(self) -> int:
        """New mail into the ledger, ``FETCH_LOT`` messages at the most (holder only)."""
        if not self.holds_mailbox:
            return 0
        return self.source.poll(lambda mails: ledger.store_batch(self.factory, mails), FETCH_LOT)

    def _pending(self) -> Iterator[int]:
        """Pending ledger ids, oldest first, asked for 100 at a time as the reader needs them,
        so its workers never wait for the daemon between two lots. When none is left, the
        mailbox holder fetches the next lot: a backlog of thousands is fetched as it is worked
        through, and the first acknowledgement does not wait for the whole of it to be
        fetched. A row another daemon holds (skipped) is not asked for again in this round."""
        after = 0
        while not self.stop.is_set():
            ids = ledger.pending_ids(self.factory, limit=100, after=after)
            if not ids:
                if self._fetch():
                    continue
                return
            yield from ids
            after = ids[-1]

    def _take_over_mailbox(self) -> None:
        """A worker busy with the ledger still tries the mailbox lock (every 15 s) and fetches
        at once when it gets it: a dead holder's mailbox must not wait for the backlog to end."""
        if self.mailbox_lock is not None and not self.mailbox_lock.held and self.holds_mailbox:
            self._fetch()

    def _outbox_tick(self) -> float:
        """How often due retries are looked for: every 15 s, or more often when the first
        retry is due sooner. A fixed 15 s tick sent a retry due after 1 s only 15 s later."""
        return float(max(1, min(15, self.cfg.outgoing.retry_base_seconds)))

    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        log.info("received %s, stopping", signal.Signals(signum).name)
        self.stop.set()

    def run(self) -> None:
        signal.signal(signal.SIGINT, self._on_signal)
        signal.signal(signal.SIGTERM, self._on_signal)
        started = time.monotonic()
        try:
            self.prepare()
        except BaseException:
            if self.metrics is not None:
                self.metrics.stop()
            if self.sqlite_lock is not None:
                self.sqlite_lock.release()
            raise
        if self.metrics is not None:
            self.metrics.start()
        scheduler = make_scheduler({"follow-ups": (self.sweep_followups, 60.0)}, self._daily_jobs())
        self.catch_up()
        scheduler.start()
        sender = threading.Thread(target=self._sender, name="outbox", daemon=True)
        sender.start()
        self.outbox_wake.set()  # whatever is due from before the start goes out now
        log.info(
            "mailbot running: mailbox %s, outgoing %s, database %s (ready in %.1fs)",
            self.source.name,
            self.cfg.outgoing.transport,
            db.describe(self.cfg.database_url),
            time.monotonic() - started,
        )
        try:
            if self.holds_mailbox and not isinstance(self.source, MaildirSource):
                self._connect_or_wait()
            elif not self.holds_mailbox:
                log.info(
                    "another worker holds the mailbox %s; this one works the ledger, outbox and "
                    "follow-ups, and takes the mailbox over if the holder stops",
                    self.source.name,
                )
            failures = 0
            while not self.stop.is_set():
                try:
                    self.step()
                    failures = 0
                    self.last_round_at = time.time()
                except MailboxError as exc:
                    log.warning("mailbox: %s", exc)
                except (OperationalError, DatabaseError) as exc:  # the row waits in the ledger
                    failures += 1
                    cause = exc.orig if isinstance(exc, OperationalError) else exc
                    log.warning("database unavailable (%s); retrying", " ".join(str(cause).split()))
                    self.stop.wait(min(60.0, 2.0**failures))
                    continue
                except Exception as exc:  # the loop survives our own bugs; the row is retried
                    failures += 1
                    log.error("daemon step failed: %s: %s", type(exc).__name__, exc, exc_info=True)
                    self.stop.wait(min(60.0, 2.0**failures))
                    continue
                if self.holds_mailbox:
                    self.source.wait(60.0, self.stop)
                else:
                    self.stop.wait(1.0)
        finally:
            if self.metrics is not None:
                self.metrics.stop()
            scheduler.shutdown(wait=False)
            self.outbox_wake.set()
            sender.join(timeout=30.0)
            self.reader.close()
            self.source.close()
            self.transport.close()
            if self.mailbox_lock is not None:
                self.mailbox_lock.release()
            if self.sqlite_lock is not None:
                self.sqlite_lock.release()
            self.engine.dispose()
            log.info("mailbot stopped")

    def _connect_or_wait(self) -> None:
        ensure = getattr(self.source, "ensure_connected", None)
        if ensure is not None:
            ensure(self.stop)
        else:
            self.source.connect()
