"""Reading requests ahead of the pipeline: parse + filters + extraction, in batches and in
worker processes.

spaCy is most of the cost of a request, and it does not need the database. The daemon hands
the pending ledger rows to ``Reader.read`` in chunks of ``[extraction] batch_size``; a worker
process (``[extraction] workers``) parses each chunk, drops what the filters would drop, and
runs ``nlp.pipe`` plus the rules over the rest, while the daemon's own process opens the cases
of the chunk before. With ``workers = 0`` the same code runs in the daemon's process (still one
``nlp.pipe`` per chunk).

The result is only an input to the pipeline, never a decision: the pipeline parses and filters
the row again inside its transaction, and uses a ``Read`` only when the row turns out to be a
new request. A row without a ``Read`` is extracted in process, as before.

Workers are forked from multiprocessing's fork server, which has loaded the rules and the
model (``reader_preload``): they share its pages, and a replacement worker needs no model load.

A worker is a separate process so that one message cannot take the daemon with it: a chunk that
runs over ``timeout_seconds`` or kills its worker (a crash, or the ``max_memory_mb``
address-space cap) is tried again one request at a time in a fresh worker, and a request that
fails alone gets ``Read.error``: the pipeline quarantines it with that reason.
"""

from __future__ import annotations

import contextlib
import ctypes
import importlib
import itertools
import logging
import multiprocessing
import os
import signal
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

from mailbot.config import Config
from mailbot.errors import Discard

if TYPE_CHECKING:
    from mailbot.inbound.extraction import Extraction

log = logging.getLogger(__name__)

WORK = "mailbot.inbound.reader:_Work"
PRELOAD = "mailbot.inbound.reader_preload"  # what the fork server imports
PRELOAD_RULES_ENV = "MAILBOT_READER_RULES"  # and reads from its environment
PRELOAD_LOG_FORMAT_ENV = "MAILBOT_READER_LOG_FORMAT"
IDLE_TRIM_SECONDS = 1.0  # a worker with no job for this long gives its freed memory back
READY_TIMEOUT = 300.0  # the fork server loading the model for the first worker (seconds)

Item = tuple[int, bytes]  # (ledger id, raw message)
LoadRaw = Callable[[Sequence[int]], list[Item]]


@dataclass(frozen=True)
class Read:
    """What a worker made of one ledger row: the extraction, or why there is none; and, added
    in the daemon's process (never sent to or from a worker), the raw bytes it was read from,
    so that the pipeline need not load them from the database a second time."""

    extraction: Extraction | None = None
    error: str | None = None
    raw: bytes | None = None


# --- the work itself (in a worker process, or in the daemon's with workers = 0) ---------------


def work_modules() -> tuple[ModuleType, ModuleType, ModuleType]:
    """The modules the work needs (extraction, filters, parse), imported where the work is
    done (``_Work``) and by the fork server's preload, never when this module is imported:
    `mailbot run` imports it before anything heavy, to start the fork server early."""
    from mailbot.inbound import extraction, filters, parse

    return extraction, filters, parse


class _Work:
    def __init__(self, rules_dir: Path, own_address: str) -> None:
        self.extraction, self.filtering, self.parsing = work_modules()
        self.extraction.preload(rules_dir)
        self.rules_dir = rules_dir
        self.filters = self.filtering.FilterContext.for_mailbox(own_address, rules_dir)

    def __call__(self, items: Sequence[Item]) -> dict[int, Read]:
        out: dict[int, Read] = {}
        todo = []
        for ledger_id, raw in items:
            try:
                msg = self.parsing.parse(raw)
                self.filtering.classify(msg, self.filters)
            except Discard:
                continue  # the pipeline records why; nothing to extract
            except Exception as exc:  # the pipeline parses again and says what is wrong
                log.debug("ledger=%d not read ahead: %s", ledger_id, type(exc).__name__)
                continue
            todo.append((ledger_id, msg))
        if not todo:
            return out
        try:
            done = self.extraction.extract_many([m for _, m in todo], self.rules_dir)
        except Exception:  # find the one that fails: each alone
            for ledger_id, msg in todo:
                try:
                    out[ledger_id] = Read(self.extraction.extract(msg, self.rules_dir))
                except Exception as exc:
                    reason = " ".join(str(exc).split())[:200]
                    out[ledger_id] = Read(error=f"extraction: {type(exc).__name__}: {reason}")
            return out
        for (ledger_id, _), fields in zip(todo, done, strict=True):
            out[ledger_id] = Read(fields)
        return out


def _release_freed_memory() -> Callable[[], object]:
    """What gives freed memory back to the system: glibc's ``malloc_trim``. glibc keeps the
    heap pages a job freed (large blocks too, once its mmap threshold has risen), so an idle
    worker would hold its largest job's memory: a long message, or a hand-over of long ones.
    A no-op where the C library has no malloc_trim."""
    try:
        malloc_trim = ctypes.CDLL(None).malloc_trim
    except (OSError, AttributeError):
        return lambda: None
    malloc_trim.argtypes = [ctypes.c_size_t]
    return lambda: malloc_trim(0)


def _serve(
    conn: Connection,
    rules_dir: str,
    own_address: str,
    max_memory_mb: int,
    work: str,
    log_format: str = "text",
) -> None:
    """A worker's main loop: ("ready", pid), then one answer (seq, {id: Read}) per job.
    ``work`` names the class that does the work ("module:Class"; tests put in their own)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the daemon decides when workers stop
    if max_memory_mb:
        import resource

        cap = max_memory_mb * 1024 * 1024
        resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
    from mailbot.logs import setup as setup_logging

    # the daemon's redacting formatter (no addresses, no secrets), in its format
    setup_logging("WARNING", log_format)
    trim = _release_freed_memory()
    module, _, name = work.partition(":")
    worker = getattr(importlib.import_module(module), name)(Path(rules_dir), own_address)
    try:
        conn.send(("ready", os.getpid()))
        while True:
            job = conn.recv()
            if job is None:
                return
            seq, items = job
            try:
                answer: Any = worker(items)
            except MemoryError:
                answer = "out of memory"
            conn.send((seq, answer))
            if not conn.poll(IDLE_TRIM_SECONDS):
                trim()  # idle now: not after every job (the heap would grow back each time)
    except (EOFError, OSError):  # the daemon is gone (or stopped us): so are we
        return


# --- the daemon's side -------------------------------------------------------------------------


def _with_raw(reads: dict[int, Read], items: Sequence[Item]) -> dict[int, Read]:
    """Each read row's ``Read`` with its raw bytes (a row the filters dropped, or one not
    read, gets a ``Read`` with the bytes only: the pipeline treats it as not read ahead)."""
    return {ledger_id: replace(reads.get(ledger_id) or Read(), raw=raw) for ledger_id, raw in items}


def _context(cfg: Config) -> multiprocessing.context.BaseContext:
    """Workers are forked from a fork server that has loaded the model (reader_preload), so
    they share its pages copy-on-write: a second worker costs about 40 MB, not 190, and a
    worker replaced after a crash is ready at once. The fork server is started, with the
    daemon's rules directory, by the first worker; it ends with the daemon."""
    os.environ[PRELOAD_RULES_ENV] = str(cfg.rules_dir)
    os.environ[PRELOAD_LOG_FORMAT_ENV] = cfg.mailbot.log_format
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload([PRELOAD])  # imported there only: never in this process
    return ctx


def start_fork_server(cfg: Config) -> None:
    """Start the workers' fork server now, without waiting for it: it loads the model (about
    2 s) while the caller goes on. `mailbot run` calls this before it imports the daemon's
    modules, so the load overlaps the daemon's own start rather than following its first poll.
    ``Reader.start`` forks the workers from this server (or starts one itself, and says what
    went wrong, if this one could not be started)."""
    _context(cfg)
    from multiprocessing import forkserver

    try:
        forkserver.ensure_running()
    except Exception as exc:  # noqa: BLE001 - the first worker tries again and reports
        log.debug("fork server not started early: %s", exc)


def _stop_fork_server() -> None:
    """Stop the fork server and free its copy of the model; the next worker starts a new one
    (with the environment and stderr of that moment). multiprocessing has no public call for
    this; without it the server would stay until the daemon exits."""
    from multiprocessing import forkserver

    stop = getattr(forkserver._forkserver, "_stop", None)  # noqa: SLF001
    if stop is not None:
        stop()


class _Failed(Exception):
    def __init__(self, reason: str, starting: bool = False) -> None:
        super().__init__(reason)
        self.starting = starting  # the worker could not start: not the messages' fault


class _Worker:
    """One worker process and its pipe; started on first use, replaced when it fails."""

    def __init__(self, cfg: Config, number: int, work: str) -> None:
        self.cfg = cfg
        self.number = number
        self.work = work
        self.proc: BaseProcess | None = None
        self.conn: Connection | None = None
        self.ready = False
        self.failed: _Failed | None = None  # the start ``send`` tried failed: ``answer`` says so

    def start(self) -> None:
        ctx = _context(self.cfg)
        parent, child = ctx.Pipe()
        ext = self.cfg.extraction
        self.proc = ctx.Process(
            target=_serve,
            args=(
                child,
                str(self.cfg.rules_dir),
                self.cfg.mailbot.address,
                ext.max_memory_mb,
                self.work,
                self.cfg.mailbot.log_format,
            ),
            name=f"mailbot-reader-{self.number}",
            daemon=True,
        )
        try:
            self.proc.start()
        except Exception as exc:  # fork() refused (memory, process limit), fork server gone
            parent.close()
            child.close()
            self.proc = None
            raise _Failed(f"reader worker not created ({exc})", starting=True) from None
        child.close()
        self.conn, self.ready = parent, False

    def send(self, seq: int, items: Sequence[Item]) -> None:
        if self.proc is None or not self.proc.is_alive():
            self.stop()
            try:
                self.start()
            except _Failed as exc:
                self.failed = exc
                return
        assert self.conn is not None
        try:
            self.conn.send((seq, list(items)))
        except OSError as exc:
            raise _Failed(f"reader worker gone ({exc})") from None

    def answer(self, seq: int, timeout: float) -> dict[int, Read]:
        """The answer to job ``seq`` (older answers, of an abandoned read, are dropped)."""
        if self.failed is not None:
            failed, self.failed = self.failed, None
            raise failed
        assert self.conn is not None
        if not self.ready:
            self._receive(READY_TIMEOUT, "starting")
            self.ready = True
        deadline = time.monotonic() + timeout
        while True:
            got, answer = self._receive(deadline - time.monotonic(), "reading")
            if got == seq:
                if isinstance(answer, str):
                    raise _Failed(answer)
                return answer  # type: ignore[no-any-return]

    def _receive(self, timeout: float, doing: str) -> tuple[Any, Any]:
        assert self.conn is not None and self.proc is not None
        try:
            if self.conn.poll(max(0.0, timeout)):
                return self.conn.recv()  # type: ignore[no-any-return]
        except (EOFError, OSError):
            self.proc.join(1.0)
            code = self.proc.exitcode
            raise _Failed(
                f"reader worker died while {doing} (exit code {code})", doing == "starting"
            ) from None
        raise _Failed(f"reader worker took over {timeout:.0f} s while {doing}", doing == "starting")

    def stop(self, kill: bool = False) -> None:
        if self.proc is not None:
            if kill or not self.ready:
                self.proc.kill()
            elif self.conn is not None:
                with contextlib.suppress(OSError):
                    self.conn.send(None)
            self.proc.join(5.0)
            if self.proc.is_alive():
                self.proc.kill()
                self.proc.join(5.0)
        if self.conn is not None:
            self.conn.close()
        self.proc, self.conn, self.ready, self.failed = None, None, False, None


class Reader:
    """Reads pending ledger rows ahead of the pipeline; see the module docstring."""

    def __init__(self, cfg: Config, load_raw: LoadRaw, work: str = WORK) -> None:
        self.cfg = cfg
        self.load_raw = load_raw
        self.workers = [_Worker(cfg, n, work) for n in range(cfg.extraction.workers)]
        self.inline: _Work | None = None
        self.seq = 0
        self.starting: threading.Thread | None = None

    def start(self) -> None:
        """Start the workers now, so they load the model while the daemon connects. Starting
        the first worker waits for the fork server to load the model, so it is done in a
        thread of its own; ``read`` and ``close`` wait for that thread."""
        if self.workers and self.starting is None:
            self.starting = threading.Thread(
                target=self._start_workers, name="mailbot-reader-start", daemon=True
            )
            self.starting.start()

    def _start_workers(self) -> None:
        for worker in self.workers:
            if worker.proc is None:
                try:
                    worker.start()
                except Exception as exc:  # noqa: BLE001 - read() starts it again and reports
                    log.warning("extraction worker %d not started: %s", worker.number, exc)
                    worker.stop(kill=True)

    def _started(self) -> None:
        if self.starting is not None:
            self.starting.join()
            self.starting = None

    def close(self) -> None:
        self._started()
        for worker in self.workers:
            worker.stop()
        if self.workers:
            _stop_fork_server()

    def read(self, ids: Iterable[int]) -> Iterator[tuple[int, Read | None]]:
        """Each id with its ``Read`` (None: not read ahead), in order. While the caller handles
        one chunk, the workers read the next ones. ``ids`` is consumed a chunk at a time, as
        workers become free: it may be a generator that asks the database as it goes."""
        self._started()
        size = self.cfg.extraction.batch_size
        source = iter(ids)

        def next_chunk() -> list[int]:
            return list(itertools.islice(source, size))

        if not self.workers:
            while chunk := next_chunk():
                items = self.load_raw(chunk)
                reads = _with_raw(self._inline_items(items), items)
                for ledger_id in chunk:
                    yield ledger_id, reads.get(ledger_id)
            return
        free = deque(self.workers)
        inflight: deque[tuple[list[int], list[Item], _Worker, int]] = deque()
        exhausted = False

        def dispatch() -> None:
            nonlocal exhausted
            while free and not exhausted:
                chunk = next_chunk()
                if not chunk:
                    exhausted = True
                    return
                items = self.load_raw(chunk)
                worker = free.popleft()
                self.seq += 1
                try:
                    worker.send(self.seq, items)
                except _Failed:
                    worker.stop(kill=True)
                    worker.send(self.seq, items)
                inflight.append((chunk, items, worker, self.seq))

        dispatch()
        while inflight:
            chunk, items, worker, seq = inflight.popleft()
            reads = _with_raw(self._collect(worker, seq, items), items)
            free.append(worker)
            dispatch()
            for ledger_id in chunk:
                yield ledger_id, reads.get(ledger_id)

    def _inline_items(self, items: list[Item]) -> dict[int, Read]:
        if self.inline is None:
            self.inline = _Work(self.cfg.rules_dir, self.cfg.mailbot.address)
        return self.inline(items)

    def _collect(self, worker: _Worker, seq: int, items: list[Item]) -> dict[int, Read]:
        timeout = self.cfg.extraction.timeout_seconds
        try:
            return worker.answer(seq, timeout)
        except _Failed as exc:
            worker.stop(kill=True)
            if exc.starting:
                log.error("extraction worker cannot start (%s); reading in process", exc)
                return self._inline_items(items)
            log.warning(
                "extraction of ledger rows %s failed (%s); trying them one at a time",
                ",".join(str(i) for i, _ in items),
                exc,
            )
        reads: dict[int, Read] = {}
        for item in items:
            self.seq += 1
            try:
                worker.send(self.seq, [item])
                reads.update(worker.answer(self.seq, timeout))
            except _Failed as exc:
                worker.stop(kill=True)
                if exc.starting:
                    reads.update(self._inline_items([item]))
                    continue
                reads[item[0]] = Read(error=f"extraction: {exc}")
                log.error("ledger=%d extraction failed alone: %s", item[0], exc)
        return reads
