"""Shared fixtures: a config in a temporary folder, a migrated database, sample messages."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from pathlib import Path

import pytest
from sqlalchemy.orm import Session, sessionmaker

from mailbot import config as config_mod
from mailbot import db
from mailbot.config import Config
from tests.pg import Postgres

ROOT = Path(__file__).resolve().parents[1]
CORPORA = ROOT.parent / "shared" / "corpora"


def write_config(folder: Path, extra: str = "") -> Path:
    """A config file in ``folder`` using only local parts (SQLite, Maildir, file transport).

    ``extra`` holds TOML sections separated by blank lines; an option it names replaces the
    default one. The daily digest is off unless a test turns it on: the daemon sends today's
    digest at start when its time has passed, so with it on, what a test sees would depend on
    the hour the suite runs. With MAILBOT_TEST_DB=postgresql the database is a fresh one on the
    tests' PostgreSQL.
    """
    path = folder / "config.toml"
    url = _Databases.url(folder)
    sections: dict[str, dict[str, str]] = {}
    defaults = {
        "mailbot": 'address = "mvai@mvai.test"\nsample_requests = false',
        "database": f'url = "{url}"',
        "mailbox": 'maildir = "mail"\npoll_seconds = 0.2',
        "outgoing": 'directory = "outgoing"\nretry_base_seconds = 1',
        "coordinators": 'addresses = ["coord@mvai.test"]\nname = "Pat Coordinator"',
        "digest": "enabled = false",
    }
    blocks = [f"[{k}]\n{v}" for k, v in defaults.items()] + extra.strip().split("\n\n")
    for block in blocks:
        if block.strip():
            header, _, body = block.strip().partition("\n")
            options = sections.setdefault(header.strip("[] "), {})
            for line in body.splitlines():
                key = line.partition("=")[0].strip() if "=" in line else line
                options[key] = line
    path.write_text(
        "".join(
            f"[{name}]\n" + "".join(f"{line}\n" for line in options.values()) + "\n"
            for name, options in sections.items()
        )
    )
    return path


class _Databases:
    """On PostgreSQL (MAILBOT_TEST_DB=postgresql): one database per test folder, made on
    first use, a copy of the migrated template unless the test is marked empty_database."""

    server: Postgres | None = None
    empty = False
    urls: dict[Path, str] = {}

    @classmethod
    def url(cls, folder: Path) -> str:
        if cls.server is None:
            return "sqlite:///mailbot.db"
        if folder not in cls.urls:
            cls.urls[folder] = cls.server.url(cls.server.create_database(not cls.empty))
        return cls.urls[folder]


@contextlib.contextmanager
def configs_on_postgres() -> Iterator[Postgres]:
    """A PostgreSQL started here, with a migrated template; while it runs, write_config gives
    each folder a fresh database on it (the suite with MAILBOT_TEST_DB=postgresql, and
    ``bench/ --database postgresql``)."""
    server = Postgres()
    try:
        server.start()
        server.make_template()
        _Databases.server = server
        yield server
    finally:
        _Databases.server = None
        server.stop()


@pytest.fixture(scope="session", autouse=True)
def postgres() -> Iterator[Postgres | None]:
    """The tests' PostgreSQL when MAILBOT_TEST_DB=postgresql, else None (SQLite)."""
    if os.environ.get("MAILBOT_TEST_DB", "sqlite") != "postgresql":
        yield None
        return
    with configs_on_postgres() as server:
        yield server


def run_script(*argv: str, timeout: float) -> str:
    """``python argv...`` from the project root; its standard output (it must exit 0)."""
    done = subprocess.run(
        [sys.executable, *argv], cwd=ROOT, capture_output=True, text=True, timeout=timeout
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


@pytest.fixture(autouse=True)
def database_mode(request: pytest.FixtureRequest) -> None:
    _Databases.empty = request.node.get_closest_marker("empty_database") is not None


@pytest.fixture
def make_cfg(tmp_path: Path) -> Callable[..., Config]:
    def make(extra: str = "") -> Config:
        return config_mod.load(write_config(tmp_path, extra))

    return make


@pytest.fixture
def cfg(make_cfg: Callable[..., Config]) -> Config:
    return make_cfg()


@pytest.fixture
def factory(cfg: Config) -> sessionmaker[Session]:
    engine = db.make_engine(cfg.database_url)
    db.upgrade(engine)
    yield db.session_factory(engine)
    engine.dispose()


def request_message(
    *,
    sender: str = "Chief Dana Whitfield <dwhitfield@harlanpd.test>",
    subject: str = "Request for help after shooting",
    body: str = (
        "Yesterday we had a shooting at Harlan High School in Harlan, KY. Two students were "
        "killed. We need help with media and support for our officers.\n\n"
        "Dana Whitfield\nChief of Police\nHarlan Police Department\n(606) 555-0142\n"
    ),
    to: str = "mvai@mvai.test",
    message_id: str | None = None,
    headers: dict[str, str] | None = None,
) -> bytes:
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = to
    msg["Subject"] = subject
    msg["Date"] = format_datetime(datetime(2026, 11, 16, 13, 42, tzinfo=UTC))
    msg["Message-ID"] = message_id or make_msgid(domain="harlanpd.test")
    for name, value in (headers or {}).items():
        msg[name] = value
    msg.set_content(body)
    return msg.as_bytes()
