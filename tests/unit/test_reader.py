"""Reading requests ahead in worker processes (mailbot.inbound.reader): the same fields as in
process, and one bad request (hangs, kills its worker, eats memory) is quarantined alone while
the rest of its batch goes on. Real worker processes (forked from the fork server)
with the real model; no mocks."""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Callable

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from mailbot import db
from mailbot.config import Config
from mailbot.inbound import ledger
from mailbot.inbound.extraction import extract
from mailbot.inbound.ledger import RawMail
from mailbot.inbound.parse import parse
from mailbot.inbound.pipeline import Pipeline
from mailbot.inbound.reader import PRELOAD, Reader
from mailbot.models import Case, InboundMessage
from tests.conftest import request_message

BODIES = [
    "Two of my officers were shot last night at a bar on Main Street in Harlan, Ky. "
    "We need help with officer wellness.\n\nChief Dana Whitfield\nHarlan Police Department",
    "A stabbing at the county fair on Saturday killed three people. Can someone talk to "
    "our command staff about the investigation and the media?\n\nSheriff Ray Cobb\n"
    "Gallatin County Sheriff's Office\nBozeman, MT",
    "We are planning a tabletop exercise for reunification at our schools and would like a "
    "peer advisor.\n\nLt. Ana Ruiz\nRound Rock ISD Police Department\nRound Rock, TX",
]


def _database(cfg: Config) -> sessionmaker[Session]:
    engine = db.make_engine(cfg.database_url)
    db.upgrade(engine)
    return db.session_factory(engine)


def _store(factory: sessionmaker[Session], raws: list[bytes]) -> list[int]:
    return ledger.store_batch(
        factory, [RawMail("test", raw, source_name=f"m{i}") for i, raw in enumerate(raws)]
    )


def _reader(cfg: Config, factory: sessionmaker[Session], **kw: str) -> Reader:
    return Reader(
        cfg, lambda ids: ledger.raw_items(factory, ids, cfg.limits.max_message_bytes), **kw
    )


def _bounce() -> bytes:
    return (
        b"From: MAILER-DAEMON@mail.harlanpd.test\r\nTo: mvai@mvai.test\r\n"
        b"Subject: Undelivered Mail Returned to Sender\r\nMessage-ID: <b1@mail.harlanpd.test>\r\n"
        b"Auto-Submitted: auto-replied\r\nContent-Type: text/plain\r\n\r\n"
        b"This is the mail system at host mail.harlanpd.test.\r\n"
    )


@pytest.mark.parametrize("workers", [1, 0])
def test_fields_read_ahead_are_the_ones_read_in_process(
    make_cfg: Callable[..., Config], workers: int
) -> None:
    cfg = make_cfg(f"[extraction]\nworkers = {workers}\nbatch_size = 2\n")
    factory = _database(cfg)
    raws = [request_message(body=b, message_id=f"<r{i}@x.test>") for i, b in enumerate(BODIES)] + [
        _bounce()
    ]
    ids = _store(factory, raws)
    reader = _reader(cfg, factory)
    pulled: list[int] = []

    def lazily():  # as the daemon hands them over: asked for as the reader needs them
        for ledger_id in ids:
            pulled.append(ledger_id)
            yield ledger_id

    reader.start()
    reads = {}
    try:
        for ledger_id, read in reader.read(lazily()):
            if not reads:  # the first chunk, and the one a worker reads meanwhile
                assert len(pulled) == 2 * (workers + 1)
            reads[ledger_id] = read
    finally:
        reader.close()
    assert list(reads) == ids  # every id, in order
    for ledger_id, raw in zip(ids[:3], raws[:3], strict=True):
        read = reads[ledger_id]
        assert read is not None and read.error is None and read.extraction is not None
        assert read.extraction.to_json() == extract(parse(raw), cfg.rules_dir).to_json()
    bounce = reads[ids[3]]  # not read: the filters drop it; its bytes come along all the same
    assert bounce is not None and (bounce.extraction, bounce.error) == (None, None)
    # each row comes with the bytes it was read from: the pipeline does not load them again
    assert [reads[i].raw for i in ids] == raws  # type: ignore[union-attr]
    assert {reads[i].extraction.agency for i in ids[:3]} == {  # type: ignore[union-attr]
        "Harlan Police Department",
        "Gallatin County Sheriff's Office",
        "Round Rock ISD Police Department",
    }


def test_one_bad_request_is_quarantined_alone(
    make_cfg: Callable[..., Config], caplog: pytest.LogCaptureFixture
) -> None:
    cfg = make_cfg("[extraction]\nworkers = 1\nbatch_size = 16\ntimeout_seconds = 3\n")
    factory = _database(cfg)
    good = [request_message(body=b, message_id=f"<g{i}@x.test>") for i, b in enumerate(BODIES)]
    bad = {
        subject: request_message(subject=subject, message_id=f"<{subject}@x.test>")
        for subject in ("HANG", "CRASH", "HOG")
    }
    raws = [good[0], bad["HANG"], good[1], bad["CRASH"], good[2], bad["HOG"]]
    ids = _store(factory, raws)
    reader = _reader(cfg, factory, work="tests.unit.reader_work:MisbehavingWork")
    pipeline = Pipeline(cfg, factory)
    caplog.set_level(logging.WARNING)
    try:
        outcomes = {i: pipeline.process(i, read) for i, read in reader.read(ids)}
    finally:
        reader.close()
    by_id = dict(zip(ids, ["ok", "HANG", "ok", "CRASH", "ok", "HOG"], strict=True))
    for ledger_id, what in by_id.items():
        outcome = outcomes[ledger_id]
        if what == "ok":
            assert (outcome.status, outcome.kind) == ("processed", "request"), outcome
        else:
            assert outcome.status == "quarantined", (what, outcome)
    assert "took over 3 s" in (outcomes[ids[1]].reason or "")
    assert "died while reading (exit code 70)" in (outcomes[ids[3]].reason or "")
    assert "out of memory" in (outcomes[ids[5]].reason or "")  # the address-space cap held
    assert "trying them one at a time" in caplog.text
    with factory() as session:
        assert len(session.scalars(select(Case)).all()) == 3
        reasons = session.scalars(
            select(InboundMessage.reason).where(InboundMessage.status == "quarantined")
        ).all()
        assert all(r and r.startswith("extraction: ") for r in reasons), reasons


def test_a_worker_that_cannot_start_leaves_reading_to_the_daemon(
    make_cfg: Callable[..., Config], caplog: pytest.LogCaptureFixture
) -> None:
    cfg = make_cfg("[extraction]\nworkers = 1\n")
    factory = _database(cfg)
    ids = _store(factory, [request_message(body=BODIES[0])])
    reader = _reader(cfg, factory, work="tests.unit.reader_work:BrokenWork")
    caplog.set_level(logging.ERROR)
    try:
        [(ledger_id, read)] = list(reader.read(ids))
    finally:
        reader.close()
    assert ledger_id == ids[0]
    assert read is not None and read.extraction is not None
    assert read.extraction.agency == "Harlan Police Department"
    assert "extraction worker cannot start" in caplog.text


def test_a_worker_process_that_cannot_be_created_leaves_reading_to_the_daemon(
    make_cfg: Callable[..., Config],
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """fork() failing (no memory, process limit) at the first start and at every restart:
    the messages are read in the daemon's process, and read() does not raise."""
    from multiprocessing.context import ForkServerProcess

    def no_fork(process_obj: object) -> None:
        raise OSError(11, "Resource temporarily unavailable")

    monkeypatch.setattr(ForkServerProcess, "_Popen", staticmethod(no_fork))
    cfg = make_cfg("[extraction]\nworkers = 2\nbatch_size = 1\n")
    factory = _database(cfg)
    ids = _store(factory, [request_message(body=body) for body in BODIES])
    reader = _reader(cfg, factory)
    caplog.set_level(logging.WARNING)
    try:
        reader.start()
        got = list(reader.read(ids))
    finally:
        reader.close()
    assert [i for i, _ in got] == ids
    agencies = [r.extraction.agency if r and r.extraction else None for _, r in got]
    assert agencies[0] == "Harlan Police Department"
    assert all(agencies), agencies
    assert "extraction worker cannot start" in caplog.text
    assert "Resource temporarily unavailable" in caplog.text


@pytest.mark.parametrize("log_format", ["json", "text"])
def test_a_worker_logs_in_the_daemons_format_and_redacts_addresses(
    make_cfg: Callable[..., Config], capfd: pytest.CaptureFixture[str], log_format: str
) -> None:
    cfg = make_cfg(f'[mailbot]\nlog_format = "{log_format}"\n\n[extraction]\nworkers = 1\n')
    factory = _database(cfg)
    ids = _store(factory, [request_message(subject="LOGME", body=BODIES[0])])
    reader = _reader(cfg, factory, work="tests.unit.reader_work:MisbehavingWork")
    try:
        [(_, read)] = list(reader.read(ids))
    finally:
        reader.close()
    assert read is not None and read.extraction is not None
    err = capfd.readouterr().err  # the worker writes to the daemon's stderr (inherited)
    [line] = [x for x in err.splitlines() if "reading ahead for" in x]
    assert "chief@" not in line and "…@harlanpd.test" in line
    if log_format == "json":
        fields = json.loads(line)
        assert (fields["level"], fields["logger"]) == ("WARNING", "mailbot.inbound.reader")
    else:
        assert " WARNING mailbot.inbound.reader: reading ahead for" in line


def _memory_kb(pid: int) -> dict[str, int]:
    fields = {}
    with open(f"/proc/{pid}/smaps_rollup") as lines:
        for line in lines:
            name, _, rest = line.partition(":")
            if rest.strip().endswith("kB"):
                fields[name] = int(rest.split()[0])
    return fields


def test_workers_share_one_copy_of_the_model(make_cfg: Callable[..., Config]) -> None:
    """Workers are forked from a server that loaded the model: its pages are shared (dirty,
    as they were written when loading), not loaded again by each worker. Spawned workers that
    load their own model share nothing but read-only library files."""
    cfg = make_cfg("[extraction]\nworkers = 2\nbatch_size = 1\n")
    factory = _database(cfg)
    ids = _store(factory, [request_message(body=b) for b in BODIES])
    reader = _reader(cfg, factory)
    try:
        reads = dict(reader.read(ids))
        memory = [_memory_kb(w.proc.pid) for w in reader.workers if w.proc is not None]
    finally:
        reader.close()
    assert all(r is not None and r.extraction is not None for r in reads.values())
    # only the fork server imports the preload (here it would load the model and reset logging)
    assert PRELOAD not in sys.modules
    assert len(memory) == 2
    for each in memory:
        # the model, vocabulary and gazetteer: about 100 MB loaded once in the fork server
        assert each["Shared_Dirty"] > 60_000, each
        assert each["Private_Dirty"] < each["Shared_Dirty"], each


def test_an_idle_worker_gives_a_long_requests_memory_back(
    make_cfg: Callable[..., Config],
) -> None:
    """A request near the 20,000-character cap leaves about 10 MB of freed heap pages in the
    worker, which glibc keeps unless told to trim. Once the worker has been idle for a second
    it trims, and its private memory falls back (without the trim it stays within 4 kB)."""
    cfg = make_cfg("[extraction]\nworkers = 1\n")
    factory = _database(cfg)
    long_body = " ".join([BODIES[1]] * 200)[:19_000]
    ids = _store(factory, [request_message(body=long_body)])
    reader = _reader(cfg, factory)
    try:
        [(_, read)] = list(reader.read(ids))
        [worker] = reader.workers
        assert worker.proc is not None
        after_job = _memory_kb(worker.proc.pid)["Private_Dirty"]
        deadline = time.monotonic() + 15
        idle = after_job
        while time.monotonic() < deadline and after_job - idle < 5_000:
            time.sleep(0.2)
            idle = _memory_kb(worker.proc.pid)["Private_Dirty"]
    finally:
        reader.close()
    assert read is not None and read.extraction is not None
    assert after_job - idle >= 5_000, (after_job, idle)
