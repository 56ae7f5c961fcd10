"""The IMAP source's reactions to faults, without a server: a fake client behind the
``_create_client`` seam. Reconnection backs off exponentially with jitter and logs one line
per attempt; a UIDVALIDITY change is logged once and alerts the coordinators once."""

from __future__ import annotations

import email
import logging
import threading
from collections.abc import Callable
from email.message import EmailMessage
from email.policy import default as default_policy
from typing import Any

import pytest
from imapclient.exceptions import LoginError
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from mailbot.config import Config
from mailbot.inbound.imap import ImapSource
from mailbot.models import OutboundMessage

IMAP = (
    '[mailbox]\nkind = "imap"\n\n'
    '[imap]\nhost = "imap.test"\nusername = "mvai@mvai.test"\npassword_env = "FAULTS_IMAP_PW"'
)


class FakeClient:
    """Just enough of IMAPClient for ``connect``: login, select, folders, capabilities."""

    def __init__(self, uidvalidity: int, refuse_login: bool) -> None:
        self.uidvalidity = uidvalidity
        self.refuse_login = refuse_login

    def login(self, username: str, password: str) -> None:
        if self.refuse_login:
            raise LoginError("b'[AUTHENTICATIONFAILED] Authentication failed.'")

    def select_folder(self, folder: str) -> dict[bytes, Any]:
        return {b"UIDVALIDITY": self.uidvalidity, b"EXISTS": 0}

    def folder_exists(self, folder: str) -> bool:
        return True

    def has_capability(self, name: str) -> bool:
        return True

    def logout(self) -> None:
        return None


class Server:
    """What the fake clients see: a UIDVALIDITY and whether logins are refused."""

    def __init__(self) -> None:
        self.uidvalidity = 1000
        self.refused_logins = 0
        self.unreachable = 0  # connections refused (the server down)

    def client(self) -> FakeClient:
        if self.unreachable > 0:
            self.unreachable -= 1
            raise ConnectionRefusedError(111, "Connection refused")
        refuse = self.refused_logins > 0
        self.refused_logins -= refuse
        return FakeClient(self.uidvalidity, refuse)


class RecordingStop(threading.Event):
    """A stop event whose wait() returns at once and remembers the delays asked for."""

    def __init__(self) -> None:
        super().__init__()
        self.delays: list[float] = []

    def wait(self, timeout: float | None = None) -> bool:
        self.delays.append(float(timeout or 0))
        return self.is_set()


@pytest.fixture
def source(
    make_cfg: Callable[..., Config], monkeypatch: pytest.MonkeyPatch
) -> Callable[..., tuple[ImapSource, Server]]:
    monkeypatch.setenv("FAULTS_IMAP_PW", "secret")
    cfg = make_cfg(IMAP)

    def make(factory: sessionmaker[Session] | None = None) -> tuple[ImapSource, Server]:
        server = Server()
        src = ImapSource(cfg, factory)
        monkeypatch.setattr(src, "_create_client", server.client)
        return src, server

    return make


def test_refused_logins_back_off_exponentially_with_jitter(source, caplog):
    src, server = source()
    server.refused_logins = 10
    stop = RecordingStop()
    with caplog.at_level(logging.INFO, logger="mailbot.inbound.imap"):
        assert src.ensure_connected(stop)
    assert len(stop.delays) == 10
    ceilings = [2.0 ** min(attempt, 8) for attempt in range(1, 11)]  # 2, 4, ... 256, 256
    for attempt, (delay, ceiling) in enumerate(zip(stop.delays, ceilings, strict=True), 1):
        assert ceiling / 2 <= delay <= ceiling <= 300, (attempt, delay)
    ratios = [d / c for d, c in zip(stop.delays, ceilings, strict=True)]
    assert len({round(r, 3) for r in ratios}) > 5  # jittered, not a fixed schedule
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 10  # one line per attempt ...
    assert all(r.exc_info is None and "\n" not in r.getMessage() for r in warnings)  # ... plain
    assert all("AUTHENTICATIONFAILED" in r.getMessage() for r in warnings)
    assert "secret" not in caplog.text
    assert src.failures == 0 and "imap: connected" in caplog.records[-1].getMessage()


def test_a_server_that_cannot_be_reached_is_tried_again_within_a_minute(source, caplog):
    """A server down for a while (a restart, a network outage) is not left for up to four
    minutes after it is back, as a refused login is: the retries back off to 60 s at most."""
    src, server = source()
    server.unreachable = 10
    stop = RecordingStop()
    with caplog.at_level(logging.WARNING, logger="mailbot.inbound.imap"):
        assert src.ensure_connected(stop)
    ceilings = [min(60.0, 2.0**attempt) for attempt in range(1, 11)]  # 2, 4, ... 32, 60, 60
    assert len(stop.delays) == 10
    for attempt, (delay, ceiling) in enumerate(zip(stop.delays, ceilings, strict=True), 1):
        assert ceiling / 2 <= delay <= ceiling, (attempt, delay)
    assert all("cannot connect" in r.getMessage() for r in caplog.records[:10])


def test_a_failure_after_a_good_connection_starts_the_backoff_afresh(source):
    src, server = source()
    server.refused_logins = 3
    first = RecordingStop()
    src.ensure_connected(first)
    src.client = None  # the connection was lost
    server.refused_logins = 1
    again = RecordingStop()
    src.ensure_connected(again)
    assert len(first.delays) == 3 and len(again.delays) == 1
    assert again.delays[0] <= 2.0


def test_uidvalidity_change_warns_and_alerts_the_coordinators_once(source, factory, caplog):
    src, server = source(factory)
    src.connect()  # first sight of the mailbox: remembered, nothing to say
    server.uidvalidity = 2000
    with caplog.at_level(logging.WARNING, logger="mailbot.inbound.imap"):
        src.client = None
        src.connect()
        src.client = None
        src.connect()  # the same new value again: nothing new to say
    warnings = [r.getMessage() for r in caplog.records if "UIDVALIDITY" in r.getMessage()]
    assert len(warnings) == 1 and "from 1000 to 2000" in warnings[0]
    with factory() as session:
        rows = session.scalars(select(OutboundMessage)).all()
    [alert] = rows
    assert (alert.kind, alert.recipients, alert.status) == ("alert", ["coord@mvai.test"], "pending")
    assert alert.dedupe_key == f"uidvalidity.{src.name}.2000"
    mail = email.message_from_bytes(alert.raw, policy=default_policy)
    assert isinstance(mail, EmailMessage)
    assert mail["Auto-Submitted"] == "auto-generated"
    assert "from 1000 to 2000" in mail.get_body(("plain",)).get_content()
    server.uidvalidity = 3000  # a second change is news again
    src.client = None
    src.connect()
    with factory() as session:
        assert len(session.scalars(select(OutboundMessage)).all()) == 2
