"""The Prometheus endpoint: the counters of `mailbot status`, served over HTTP by the daemon.

With ``[metrics] enabled = true`` the daemon listens on ``[metrics] host``:``port`` (loopback
by default) from a small stdlib HTTP server thread:

    GET /metrics   text exposition format 0.0.4 (HELP and TYPE lines, one sample each)
    GET /healthz   200 {"status": "ok", ...} when the database answers, else 503

Both read the same counters as `mailbot status --json` (mailbot/health.py) at every request;
nothing is cached and nothing is counted in memory, so the numbers survive restarts and are the
same from every worker on one PostgreSQL. The socket is bound before the daemon does anything
else: a port that is taken stops the start with one line naming ``[metrics] port``.
"""

from __future__ import annotations

import errno
import json
import logging
import socket
import threading
import time
from collections.abc import Callable
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from mailbot import __version__
from mailbot.config import Config
from mailbot.errors import ConfigError
from mailbot.health import counters

log = logging.getLogger(__name__)
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

# name, type, help, key in health.counters()
METRICS: tuple[tuple[str, str, str, str], ...] = (
    ("mailbot_messages_received_total", "counter", "Messages stored in the ledger.", "received"),
    (
        "mailbot_messages_processed_total",
        "counter",
        "Ledger messages handled: a case opened or updated.",
        "processed",
    ),
    (
        "mailbot_messages_ignored_total",
        "counter",
        "Ledger messages that needed nothing: auto-replies, bounces, list mail, duplicates.",
        "ignored",
    ),
    (
        "mailbot_messages_quarantined",
        "gauge",
        "Messages in quarantine now (mailbot quarantine list); a replay takes one out.",
        "quarantined",
    ),
    ("mailbot_messages_pending", "gauge", "Ledger messages waiting to be processed.", "pending"),
    ("mailbot_outbox_pending", "gauge", "Outgoing mails waiting to be sent.", "outbox_pending"),
    ("mailbot_outbox_sent_total", "counter", "Outgoing mails handed over.", "outbox_sent"),
    (
        "mailbot_outbox_failed",
        "gauge",
        "Outgoing mails given up after [outgoing] max_attempts (dead letters).",
        "outbox_failed",
    ),
    ("mailbot_followups_due", "gauge", "Check-ins due and not yet sent.", "followups_due"),
    ("mailbot_cases_open", "gauge", "Cases not closed.", "open_cases"),
    (
        "mailbot_last_poll_timestamp_seconds",
        "gauge",
        "Unix time of the last successful IMAP poll (0: none recorded; a Maildir records none).",
        "last_successful_poll",
    ),
)


def _number(value: Any) -> str:
    if value is None:
        return "0"
    if isinstance(value, datetime):
        value = value.timestamp()
    if isinstance(value, float):
        return repr(round(value, 3))
    return str(int(value))


def _family(lines: list[str], name: str, kind: str, text: str, sample: str) -> None:
    lines += [f"# HELP {name} {text}", f"# TYPE {name} {kind}", sample]


def render(values: dict[str, Any] | None, started: float, loop_success: float | None = None) -> str:
    """The exposition text; ``values`` None means the database could not be read."""
    lines: list[str] = []
    _family(
        lines,
        "mailbot_up",
        "gauge",
        "1 when the daemon answers and its database can be read, else 0.",
        f"mailbot_up {0 if values is None else 1}",
    )
    _family(
        lines,
        "mailbot_info",
        "gauge",
        "The mailbot version.",
        f'mailbot_info{{version="{__version__}"}} 1',
    )
    _family(
        lines,
        "mailbot_start_time_seconds",
        "gauge",
        "Unix time the daemon started.",
        f"mailbot_start_time_seconds {_number(started)}",
    )
    _family(
        lines,
        "mailbot_loop_last_success_timestamp_seconds",
        "gauge",
        "Unix time the daemon's main loop last finished a round without an error (0: not yet).",
        f"mailbot_loop_last_success_timestamp_seconds {_number(loop_success)}",
    )
    if values is not None:
        for name, kind, text, key in METRICS:
            _family(lines, name, kind, text, f"{name} {_number(values[key])}")
    return "\n".join(lines) + "\n"


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], family: socket.AddressFamily, app: Any) -> None:
        self.address_family = family
        self.app = app
        super().__init__(address, _Handler)


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    server_version = "mailbot"

    def do_GET(self) -> None:  # the name http.server calls
        path = self.path.split("?", 1)[0]
        if path == "/metrics":
            status, ctype, body = self.server.app.metrics_page()
        elif path == "/healthz":
            status, ctype, body = self.server.app.health_page()
        else:
            status, ctype, body = 404, "text/plain; charset=utf-8", "not found: try /metrics\n"
        data = body.encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:  # the stdlib signature
        log.debug("metrics: %s %s", self.address_string(), format % args)


class MetricsServer:
    """Bound in ``__init__`` (so a taken port fails at once), served from ``start``."""

    def __init__(
        self,
        cfg: Config,
        factory: sessionmaker[Session],
        loop_success: Callable[[], float | None] = lambda: None,
    ) -> None:
        self.factory = factory
        self.loop_success = loop_success
        self.started = time.time()
        self.thread: threading.Thread | None = None
        self.server = bind(cfg, self)
        self.host, self.port = self.server.server_address[:2]
        self._db_failed = False

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in str(self.host) else self.host
        return f"http://{host}:{self.port}/metrics"

    def _counters(self) -> dict[str, Any] | None:
        try:
            values = counters(self.factory)
        except Exception as exc:  # a scrape never takes the daemon down
            if not self._db_failed:
                log.warning("metrics: cannot read the database: %s", " ".join(str(exc).split()))
            self._db_failed = True
            return None
        self._db_failed = False
        return values

    def metrics_page(self) -> tuple[int, str, str]:
        return 200, CONTENT_TYPE, render(self._counters(), self.started, self.loop_success())

    def health_page(self) -> tuple[int, str, str]:
        values = self._counters()
        if values is None:
            body = {"status": "unavailable", "reason": "database cannot be read"}
            return 503, "application/json", json.dumps(body) + "\n"
        poll = values["last_successful_poll"]
        values["last_successful_poll"] = poll.isoformat() if poll else None
        body = {"status": "ok", "version": __version__, **values}
        return 200, "application/json", json.dumps(body) + "\n"

    def start(self) -> None:
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.5}, name="metrics"
        )
        self.thread.daemon = True
        self.thread.start()
        log.info("metrics on %s", self.url)

    def stop(self) -> None:
        if self.thread is not None:
            self.server.shutdown()
            self.thread.join(timeout=5)
            self.thread = None
        self.server.server_close()


def bind(cfg: Config, app: Any) -> _Server:
    """The listening server for ``[metrics]``; ``ConfigError`` naming the option when the
    address or port cannot be used."""
    host, port = cfg.metrics.host, cfg.metrics.port
    where = f"{cfg.source}: [metrics]"
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise ConfigError(f"{where} host: {host!r}: {exc.strerror}") from None
    family, _, _, _, address = infos[0]
    try:
        return _Server(address[:2], family, app)
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            raise ConfigError(
                f"{where} port: {host}:{port} is already in use (another program or another "
                "mailbot): choose a free [metrics] port or stop that program"
            ) from None
        if exc.errno == errno.EADDRNOTAVAIL:
            raise ConfigError(f"{where} host: {host} is not an address of this machine") from None
        if exc.errno == errno.EACCES:
            raise ConfigError(
                f"{where} port: cannot listen on {host}:{port}: permission denied "
                "(ports below 1024 need privileges; use 9464)"
            ) from None
        raise ConfigError(f"{where} port: cannot listen on {host}:{port}: {exc.strerror}") from None
