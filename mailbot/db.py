"""Database engine, sessions and migrations.

SQLite by default (WAL, a busy timeout, foreign keys on), PostgreSQL through psycopg 3.
``upgrade`` runs the Alembic migrations in mailbot/migrations; ``check_schema`` tells whether
the database is at the newest revision. Failures become ``DatabaseError`` with one line naming
the database.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config as AlembicConfig
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, InvalidatePoolError, OperationalError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import ConnectionPoolEntry

from mailbot.errors import DatabaseError

MIGRATIONS = Path(__file__).resolve().parent / "migrations"


def describe(url: str) -> str:
    """The URL without its password, for messages and logs."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "<invalid database url>"


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.close()


IDLE_PING_SECONDS = 10.0  # a pooled PostgreSQL connection unused this long is pinged first


def _idle_from(_dbapi_conn: Any, record: ConnectionPoolEntry) -> None:
    record.info["idle_from"] = time.monotonic()


def _ping_if_idle(dbapi_conn: Any, record: ConnectionPoolEntry, _proxy: Any) -> None:
    """Ping a connection taken from the pool after ``IDLE_PING_SECONDS`` unused (a server
    restarted meanwhile has closed it); a dead one is replaced, with every other one pooled
    before it. SQLAlchemy's pool_pre_ping pings at every checkout: a round trip for each of
    the daemon's 4 sessions of a request, for connections in use a moment before."""
    idle_from = record.info.get("idle_from")
    if idle_from is None or time.monotonic() - idle_from < IDLE_PING_SECONDS:
        return
    cursor = dbapi_conn.cursor()
    try:
        cursor.execute("SELECT 1")
        dbapi_conn.commit()  # not rollback(): psycopg would drop its prepared statements
    except Exception as exc:  # noqa: BLE001 - any failure means: not this connection
        raise InvalidatePoolError(f"pooled connection unusable: {exc}") from exc
    finally:
        with contextlib.suppress(Exception):
            cursor.close()


def make_engine(url: str) -> Engine:
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise DatabaseError(f"[database] url: {url!r} is not a database URL") from None
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database or ""
        if database and database != ":memory:":
            folder = Path(database).parent
            try:
                folder.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise DatabaseError(f"database folder {folder}: {exc.strerror}") from None
        engine = create_engine(url, connect_args={"timeout": 30})
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    if parsed.get_backend_name() == "postgresql" and parsed.drivername == "postgresql":
        parsed = parsed.set(drivername="postgresql+psycopg")
    try:
        engine = create_engine(parsed)
    except (ArgumentError, ImportError) as exc:
        raise DatabaseError(f"database {describe(url)}: {exc}") from None
    event.listen(engine, "checkin", _idle_from)
    event.listen(engine, "checkout", _ping_if_idle)
    # Rows inserted together (a case's follow-ups, an outbox mail's recipients) go as one
    # multi-row INSERT, as SQLAlchemy does for psycopg2, rather than psycopg 3's executemany:
    # one statement for the server to execute per row.
    engine.dialect.use_insertmanyvalues_wo_returning = True
    return engine


def session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


def engine_of(factory: sessionmaker[Session]) -> Engine:
    """The engine a session factory binds its sessions to (for work that needs no ORM)."""
    bind = factory.kw["bind"]
    assert isinstance(bind, Engine)
    return bind


@contextmanager
def transaction(factory: sessionmaker[Session]) -> Iterator[Session]:
    """A short session that commits on success and rolls back on any exception."""
    with factory() as session, session.begin():
        yield session


# Reads too end with COMMIT rather than the ROLLBACK of a plain session's close: psycopg
# forgets every prepared statement of a connection when it rolls back, and the daemon's reads
# between requests (the outbox's due rows, the ledger's pending ones) made PostgreSQL parse and
# plan every statement of every request again. The name says what the caller does.
reading = transaction


def _alembic_config(engine: Engine) -> AlembicConfig:
    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["engine"] = engine
    return cfg


def head_revision() -> str:
    script = ScriptDirectory.from_config(_alembic_config(create_engine("sqlite://")))
    head = script.get_current_head()
    assert head is not None
    return head


def current_revision(engine: Engine) -> str | None:
    try:
        with engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()
    except OperationalError as exc:
        raise DatabaseError(
            f"database {describe(str(engine.url))}: cannot connect: {exc.orig}"
        ) from None


def upgrade(engine: Engine) -> tuple[str | None, str]:
    """Migrate to the newest revision; returns (revision before, revision after)."""
    before = current_revision(engine)
    try:
        command.upgrade(_alembic_config(engine), "head")
    except SQLAlchemyError as exc:
        raise DatabaseError(
            f"database {describe(str(engine.url))}: migration failed: {exc}"
        ) from None
    return before, head_revision()


def check_schema(engine: Engine) -> None:
    """Raise ``DatabaseError`` unless the database is at the newest revision."""
    current, head = current_revision(engine), head_revision()
    if current != head:
        raise DatabaseError(
            f"database {describe(str(engine.url))} is at revision {current or 'none (empty)'}, "
            f"mailbot needs {head}: run `mailbot db upgrade`"
        )
