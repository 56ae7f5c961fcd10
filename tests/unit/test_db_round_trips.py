"""What a request costs the database server, beyond the statements themselves: no rollback
between requests (psycopg drops its prepared statements on each), so that PostgreSQL reuses
its parsed and planned statements, and rows written together go as one statement."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import psycopg
import pytest
from sqlalchemy import event, text
from sqlalchemy.orm import Session, sessionmaker

from mailbot import db
from mailbot.config import Config
from mailbot.db import reading
from mailbot.inbound import ledger
from mailbot.inbound.ledger import RawMail
from mailbot.inbound.pipeline import Pipeline
from mailbot.inbound.reader import Read
from mailbot.outbound import outbox
from mailbot.outbound.transport import FileTransport
from tests.conftest import request_message


def work_requests(cfg: Config, factory: sessionmaker[Session], out: Path, count: int) -> None:
    """What the daemon does for each request: the ledger's pending ids and raw bytes (the
    reader), the pipeline, the outbox's due rows and their sending."""
    raws = [
        request_message(message_id=f"<r{n}@pd{n}.test>", sender=f"Chief <chief@pd{n}.test>")
        for n in range(count)
    ]
    ledger.store_batch(
        factory, [RawMail("test", raw, source_name=f"r{n}") for n, raw in enumerate(raws)]
    )
    pipeline, transport = Pipeline(cfg, factory), FileTransport(out)
    for ledger_id in ledger.pending_ids(factory):
        ledger.raw_items(factory, [ledger_id], cfg.limits.max_message_bytes)
        outcome = pipeline.process(ledger_id)
        assert (outcome.status, outcome.kind) == ("processed", "request")
        assert outbox.send_due(factory, transport, cfg) == 2  # the ack and the alert


def postgres_only(factory: sessionmaker[Session]) -> None:
    if factory.kw["bind"].dialect.name != "postgresql":
        pytest.skip("PostgreSQL only (MAILBOT_TEST_DB=postgresql)")


def test_the_work_of_a_request_never_rolls_back(
    cfg: Config, factory: sessionmaker[Session], tmp_path: Path
):
    engine = factory.kw["bind"]
    rollbacks: list[str] = []
    event.listen(engine, "rollback", lambda conn: rollbacks.append("ROLLBACK"))
    work_requests(cfg, factory, tmp_path / "out", 3)
    assert rollbacks == []


def test_postgresql_keeps_the_statements_of_a_request_prepared(
    cfg: Config, factory: sessionmaker[Session], tmp_path: Path
):
    postgres_only(factory)
    engine = factory.kw["bind"]
    # psycopg prepares a statement on its 6th run; one connection does all of this work
    work_requests(cfg, factory, tmp_path / "out", 8)
    with engine.connect() as conn:
        prepared = list(conn.scalars(text("SELECT statement FROM pg_prepared_statements")))
    for start in ("INSERT INTO cases", "INSERT INTO follow_ups", "UPDATE outbound_messages"):
        assert any(s.startswith(start) for s in prepared), (start, prepared)


def test_postgresql_gets_rows_inserted_together_as_one_statement(
    cfg: Config, factory: sessionmaker[Session], tmp_path: Path
):
    postgres_only(factory)
    engine = factory.kw["bind"]
    many: list[str] = []

    def seen(cursor, statement, parameters, context):  # type: ignore[no-untyped-def]
        many.append(statement)  # a cursor.executemany: one execution per row on the server

    event.listen(engine, "do_executemany", seen)
    work_requests(cfg, factory, tmp_path / "out", 2)
    assert many == []


def cut_connections(factory: sessionmaker[Session]) -> int:
    """What a server restart does to the pooled connections: ends their backends."""
    engine = factory.kw["bind"]
    admin = psycopg.connect(str(engine.url.set(drivername="postgresql")), autocommit=True)
    with admin:
        return len(
            admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            ).fetchall()
        )


def test_a_connection_idle_for_a_while_is_pinged_and_replaced_when_dead(
    cfg: Config, factory: sessionmaker[Session], monkeypatch: pytest.MonkeyPatch
):
    postgres_only(factory)
    with reading(factory) as session:
        assert session.scalar(text("SELECT 1")) == 1
    assert cut_connections(factory) >= 1
    monkeypatch.setattr(db, "IDLE_PING_SECONDS", 0.0)  # as if unused for a while
    with reading(factory) as session:  # no error: the dead one is found and replaced
        assert session.scalar(text("SELECT 1")) == 1


def test_a_connection_used_a_moment_ago_is_not_pinged_and_a_restart_costs_one_retry(
    cfg: Config, factory: sessionmaker[Session]
):
    postgres_only(factory)
    raw = request_message(message_id="<restart@pd.test>")
    [ledger_id] = ledger.store_batch(factory, [RawMail("test", raw, source_name="r")])
    assert ledger.pending_ids(factory) == [ledger_id]  # the connection is warm
    assert cut_connections(factory) >= 1
    pipeline = Pipeline(cfg, factory)
    first = pipeline.process(ledger_id)  # no ping: the statement finds the connection gone
    assert (first.status, first.reason) == ("pending", "database unavailable")
    second = pipeline.process(ledger_id)  # the pool has dropped it: a new connection
    assert (second.status, second.kind) == ("processed", "request")


def test_postgresql_finds_a_ledger_row_by_its_id_not_by_walking_the_pending_ones(
    cfg: Config, factory: sessionmaker[Session], tmp_path: Path
):
    """With "status = 'pending'" beside the id, the planner took the status index (once its
    statistics say pending rows are rare) and walked every pending entry, and the dead ones
    of rows processed since the last vacuum, for each request: a cost that grows with the
    backlog. No look-up of ledger rows by id (the reader's raw bytes, the pipeline's row) may
    take it (a table this small is read whole; a large one by its primary key)."""
    postgres_only(factory)
    engine = factory.kw["bind"]
    raws = [request_message(message_id=f"<p{n}@pd{n}.test>") for n in range(40)]
    ids = ledger.store_batch(
        factory, [RawMail("test", raw, source_name=f"p{n}") for n, raw in enumerate(raws)]
    )
    pipeline = Pipeline(cfg, factory)
    for ledger_id in ids[:30]:  # no ANALYZE since: the planner guesses, as between autovacuums
        assert pipeline.process(ledger_id).status == "processed"
    seen: list[tuple[str, Any]] = []

    def record(conn, cursor, statement, parameters, context, executemany):  # type: ignore[no-untyped-def]
        if "FROM inbound_messages" in statement and "inbound_messages.id >" not in statement:
            seen.append((statement, parameters))

    event.listen(engine, "before_cursor_execute", record)
    try:
        [(ledger_id, raw)] = ledger.raw_items(factory, [ids[30]], cfg.limits.max_message_bytes)
        assert pipeline.process(ledger_id, Read(raw=raw)).status == "processed"
    finally:
        event.remove(engine, "before_cursor_execute", record)
    assert len(seen) >= 2, seen  # the raw bytes, the row
    with engine.connect() as conn:
        for statement, parameters in seen:
            plan = "\n".join(conn.exec_driver_sql(f"EXPLAIN {statement}", parameters).scalars())
            assert "ix_inbound_messages_status" not in plan, (statement, plan)


@pytest.mark.timeout(60)  # without SKIP LOCKED the pipeline would wait for the lock forever
def test_postgresql_passes_by_a_row_another_worker_holds(
    cfg: Config, factory: sessionmaker[Session]
):
    """Nothing twice across workers: the row is looked up by id alone (its status checked
    after), so the lock is what keeps a second worker off a row the first is handling."""
    postgres_only(factory)
    raw = request_message(message_id="<held@pd.test>")
    [ledger_id] = ledger.store_batch(factory, [RawMail("test", raw, source_name="held")])
    pipeline = Pipeline(cfg, factory)
    with factory.kw["bind"].connect() as other:  # another worker, in the middle of this row
        other.execute(
            text("SELECT id FROM inbound_messages WHERE id = :id FOR UPDATE"), {"id": ledger_id}
        )
        for read in (None, Read(raw=raw)):
            outcome = pipeline.process(ledger_id, read)
            assert (outcome.status, outcome.reason) == ("skipped", "not pending")
        other.rollback()
    assert pipeline.process(ledger_id, Read(raw=raw)).status == "processed"
    assert pipeline.process(ledger_id, Read(raw=raw)).status == "skipped"  # done: not again
    with reading(factory) as session:
        assert session.scalar(text("SELECT count(*) FROM cases")) == 1
