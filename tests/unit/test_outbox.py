"""The outbox sender: once per row, backoff on temporary failures, dead letter on permanent."""

from __future__ import annotations

import email
import threading
import time
from collections.abc import Callable
from datetime import timedelta

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import Envelope
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from mailbot.config import Config
from mailbot.errors import TransportError
from mailbot.models import OutboundMessage, utcnow
from mailbot.outbound import compose, outbox
from mailbot.outbound.transport import FileTransport, SmtpTransport
from tests.testbed import free_port


def add_row(
    cfg: Config,
    factory: sessionmaker[Session],
    key: str = "ack.T-1",
    new_key: bool = False,
    to: tuple[str, ...] = ("chief@agency.test",),
) -> int:
    with factory.begin() as session:
        row = compose.enqueue(
            session,
            cfg,
            new_key=new_key,
            dedupe_key=key,
            kind="ack",
            to=list(to),
            subject="Re: help\r\nBcc: evil@attacker.test",
            template="ack/request_received",
            context={
                "case": {"ref": "MVAI-2026-0001"},
                "organisation": "MVAI",
                "coordinator": {"name": "Pat", "phone": "+1 202 555 0100"},
                "understood": {
                    "agency": None,
                    "place": None,
                    "incident_date": None,
                    "services": [],
                },
                "greeting": "Hello",
                "next_step_when": "soon",
                "crisis": False,
            },
        )
        session.flush()  # enqueue leaves the INSERT to the transaction's next flush
        return row.id


class FakeTransport:
    def __init__(self, errors: list[TransportError | None]) -> None:
        self.errors = errors
        self.sent: list[int] = []

    def send(self, row: OutboundMessage) -> None:
        error = self.errors.pop(0) if self.errors else None
        if error:
            raise error
        self.sent.append(row.id)

    def close(self) -> None:
        pass


def get(factory: sessionmaker[Session], row_id: int) -> OutboundMessage:
    with factory() as session:
        return session.get(OutboundMessage, row_id)


def test_a_key_said_to_be_new_that_is_not_is_refused_by_the_unique_index(
    cfg: Config, factory: sessionmaker[Session]
):
    # new_key skips the look-up (a case opened in this transaction); one ack per case still
    # holds: a second row with the key is refused, and its transaction rolls back
    first = add_row(cfg, factory, new_key=True)
    with pytest.raises(IntegrityError):
        add_row(cfg, factory, new_key=True)
    with factory() as session:
        assert session.scalars(select(OutboundMessage.id)).all() == [first]


def test_enqueue_is_idempotent_and_header_safe(cfg: Config, factory: sessionmaker[Session]):
    first = add_row(cfg, factory)
    assert add_row(cfg, factory) == first
    msg = email.message_from_bytes(get(factory, first).raw)
    assert msg["Bcc"] is None
    assert "\n" not in msg["Subject"] and "Bcc: evil" in msg["Subject"]
    assert msg["Message-ID"] == "<ack.T-1@mvai.test>"
    assert msg["To"] == "chief@agency.test"


def test_sent_once_then_never_again(cfg: Config, factory: sessionmaker[Session]):
    row_id = add_row(cfg, factory)
    transport = FakeTransport([])
    assert outbox.send_due(factory, transport, cfg) == 1
    assert outbox.send_due(factory, transport, cfg) == 0
    assert transport.sent == [row_id]
    assert get(factory, row_id).status == "sent"


def test_temporary_failure_backs_off_then_delivers(cfg: Config, factory: sessionmaker[Session]):
    row_id = add_row(cfg, factory)
    transport = FakeTransport([TransportError("451 try later")])
    assert outbox.send_due(factory, transport, cfg) == 0
    row = get(factory, row_id)
    assert (row.status, row.attempts) == ("pending", 1)
    assert row.next_attempt_at > utcnow()
    assert outbox.send_due(factory, transport, cfg) == 0, "not due yet"
    with factory.begin() as session:
        session.get(OutboundMessage, row_id).next_attempt_at = utcnow() - timedelta(seconds=1)
    assert outbox.send_due(factory, transport, cfg) == 1
    assert get(factory, row_id).status == "sent"
    assert transport.sent == [row_id]


def test_rows_handed_over_are_sent_when_pending_and_due_and_no_others(
    cfg: Config, factory: sessionmaker[Session]
):
    handed, other, later = (add_row(cfg, factory, key=f"ack.T-{n}") for n in (1, 2, 3))
    with factory.begin() as session:  # a retry that is not due yet
        session.get(OutboundMessage, later).next_attempt_at = utcnow() + timedelta(minutes=5)
    transport = FakeTransport([])
    assert outbox.send_rows(factory, transport, cfg, [handed, later]) == 1
    assert outbox.send_rows(factory, transport, cfg, [handed]) == 0  # sent already
    assert transport.sent == [handed]
    assert [get(factory, i).status for i in (handed, other, later)] == [
        "sent",
        "pending",
        "pending",
    ]


def test_permanent_failure_is_recorded(cfg: Config, factory: sessionmaker[Session]):
    row_id = add_row(cfg, factory)
    transport = FakeTransport([TransportError("550 no such user", permanent=True)])
    outbox.send_due(factory, transport, cfg)
    row = get(factory, row_id)
    assert (row.status, row.last_error) == ("failed", "550 no such user")


def test_dead_letter_after_max_attempts(make_cfg: Callable[..., Config], factory):
    cfg = make_cfg("[outgoing]\nmax_attempts = 2")
    row_id = add_row(cfg, factory)
    transport = FakeTransport([TransportError("timeout"), TransportError("timeout")])
    for _ in range(2):
        with factory.begin() as session:
            session.get(OutboundMessage, row_id).next_attempt_at = utcnow() - timedelta(seconds=1)
        outbox.send_due(factory, transport, cfg)
    assert get(factory, row_id).status == "failed"


def test_row_in_flight_is_not_taken_by_a_second_sender(cfg: Config, factory):
    row_id = add_row(cfg, factory)
    results: list[object] = []

    class SlowTransport(FakeTransport):
        def send(self, row: OutboundMessage) -> None:
            other = threading.Thread(
                target=lambda: results.append(outbox._send_one(factory, inner, row_id, utcnow()))
            )
            other.start()
            time.sleep(0.3)  # the second sender waits for our commit, then finds it sent
            super().send(row)
            threads.append(other)

    inner = FakeTransport([])
    threads: list[threading.Thread] = []
    outer = SlowTransport([])
    assert outbox.send_due(factory, outer, cfg) == 1
    threads[0].join(timeout=10)
    assert results == [None]
    assert outer.sent == [row_id] and inner.sent == []


def test_death_during_send_leaves_the_row_pending(cfg: Config, factory):
    row_id = add_row(cfg, factory)

    class Dying(FakeTransport):
        def send(self, row: OutboundMessage) -> None:
            raise SystemExit("killed")

    with pytest.raises(SystemExit):
        outbox.send_due(factory, Dying([]), cfg)
    row = get(factory, row_id)
    assert (row.status, row.attempts, row.sent_at) == ("pending", 0, None)
    assert outbox.send_due(factory, FakeTransport([]), cfg) == 1


def test_backoff_grows_and_is_capped(cfg: Config):
    delays = [outbox.backoff(cfg, n).total_seconds() for n in (1, 2, 3, 30)]
    assert delays[0] < delays[1] < delays[2]
    assert delays[3] <= cfg.outgoing.retry_max_seconds * 1.2


def test_file_transport_writes_each_row_once(cfg: Config, factory, tmp_path):
    row_id = add_row(cfg, factory)
    transport = FileTransport(tmp_path / "out")
    outbox.send_due(factory, transport, cfg)
    files = list((tmp_path / "out").glob("*.eml"))
    assert [f.name for f in files] == [f"{row_id:06d}-ack.eml"]
    assert files[0].read_bytes() == get(factory, row_id).raw


class Recorder:
    def __init__(self, reject: set[str], code: int = 550) -> None:
        self.reject = reject
        self.code = code
        self.envelopes: list[Envelope] = []

    async def handle_RCPT(self, server, session, envelope, address, options):
        if address in self.reject:
            return f"{self.code} 5.1.1 rejected"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        self.envelopes.append(envelope)
        return "250 OK"


@pytest.fixture
def smtp_server():
    servers = []

    def start(reject: set[str] = frozenset(), code: int = 550) -> tuple[Recorder, int]:
        handler = Recorder(set(reject), code)
        port = free_port()
        controller = Controller(handler, hostname="127.0.0.1", port=port)
        controller.start()
        servers.append(controller)
        return handler, port

    yield start
    for controller in servers:
        controller.stop()


def smtp_cfg(make_cfg, port: int) -> Config:
    return make_cfg(
        f'[outgoing]\ntransport = "smtp"\n\n[smtp]\nhost = "127.0.0.1"\n'
        f'port = {port}\nsecurity = "none"'
    )


def test_smtp_transport_delivers_over_real_smtp(make_cfg, factory, smtp_server):
    handler, port = smtp_server()
    cfg = smtp_cfg(make_cfg, port)
    row_id = add_row(cfg, factory)
    transport = SmtpTransport(cfg)
    assert outbox.send_due(factory, transport, cfg) == 1
    transport.close()
    [envelope] = handler.envelopes
    assert envelope.rcpt_tos == ["chief@agency.test"]
    assert envelope.mail_from == "mvai@mvai.test"
    assert b"Message-ID: <ack.T-1@mvai.test>" in envelope.original_content
    assert get(factory, row_id).status == "sent"


@pytest.mark.parametrize(("code", "status"), [(550, "failed"), (450, "pending")])
def test_smtp_refusal_permanent_or_temporary(make_cfg, factory, smtp_server, code, status):
    _, port = smtp_server(reject={"chief@agency.test"}, code=code)
    cfg = smtp_cfg(make_cfg, port)
    row_id = add_row(cfg, factory)
    transport = SmtpTransport(cfg)
    outbox.send_due(factory, transport, cfg)
    transport.close()
    row = get(factory, row_id)
    assert row.status == status
    assert str(code) in row.last_error


def test_smtp_some_recipients_refused_is_sent_once_with_the_refusals_recorded(
    make_cfg, factory, smtp_server
):
    handler, port = smtp_server(reject={"gone@agency.test"})
    cfg = smtp_cfg(make_cfg, port)
    row_id = add_row(cfg, factory, to=("chief@agency.test", "gone@agency.test"))
    transport = SmtpTransport(cfg)
    assert outbox.send_due(factory, transport, cfg) == 1
    assert outbox.send_due(factory, transport, cfg) == 0  # not again for the refused one
    transport.close()
    assert [e.rcpt_tos for e in handler.envelopes] == [["chief@agency.test"]]
    row = get(factory, row_id)
    assert row.status == "sent" and row.attempts == 1
    assert row.last_error == "gone@agency.test: 550"


def test_smtp_unreachable_is_temporary(make_cfg, factory):
    cfg = smtp_cfg(make_cfg, free_port())
    row_id = add_row(cfg, factory)
    outbox.send_due(factory, SmtpTransport(cfg), cfg)
    row = get(factory, row_id)
    assert row.status == "pending" and "cannot connect" in row.last_error
    with factory() as session:
        assert session.scalars(select(OutboundMessage.status)).all() == ["pending"]
