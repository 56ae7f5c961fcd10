"""The Prometheus endpoint: scraped over HTTP on 127.0.0.1, the same numbers as `status --json`,
a taken port refused at start, and the daemon serving it and stopping it."""

from __future__ import annotations

import dataclasses
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pytest
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from mailbot import health
from mailbot.cli import main
from mailbot.config import Config, MetricsSection
from mailbot.metrics import CONTENT_TYPE, MetricsServer
from tests.conftest import request_message, write_config
from tests.testbed import free_port
from tests.unit.test_pipeline import ingest

SAMPLE = re.compile(r"^([a-z_]+)(\{[^}]*\})? (\S+)$")
NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def get(url: str) -> tuple[int, str, str]:
    try:
        with NO_PROXY.open(url, timeout=10) as resp:
            return resp.status, resp.headers["Content-Type"], resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers["Content-Type"], exc.read().decode()


def parse(text: str) -> dict[str, float]:
    """Exposition text to {name: value}, checking each sample has HELP and TYPE before it."""
    values: dict[str, float] = {}
    helped: set[str] = set()
    typed: dict[str, str] = {}
    for line in text.splitlines():
        if line.startswith("# HELP "):
            helped.add(line.split()[2])
        elif line.startswith("# TYPE "):
            _, _, name, kind = line.split()
            typed[name] = kind
        else:
            match = SAMPLE.match(line)
            assert match, f"not a sample line: {line!r}"
            name = match.group(1)
            assert name in helped and name in typed, f"{name}: no HELP/TYPE before it"
            assert name.endswith("_total") == (typed[name] == "counter"), name
            values[name] = float(match.group(3))
    return values


@pytest.fixture
def server(cfg: Config, factory: sessionmaker[Session]):
    ephemeral = dataclasses.replace(cfg, metrics=MetricsSection(enabled=True, port=0))
    srv = MetricsServer(ephemeral, factory, lambda: 1_700_000_000.0)
    srv.start()
    yield srv
    srv.stop()


def test_scrape_shows_the_status_counters_and_follows_an_ingested_message(
    server: MetricsServer, cfg: Config, factory: sessionmaker[Session]
):
    assert server.host == "127.0.0.1" and server.port > 0
    status, ctype, text = get(server.url)
    assert (status, ctype) == (200, CONTENT_TYPE)
    before = parse(text)
    assert before["mailbot_up"] == 1
    assert before["mailbot_messages_received_total"] == 0
    assert before["mailbot_cases_open"] == 0
    assert before["mailbot_loop_last_success_timestamp_seconds"] == 1_700_000_000.0

    ingest(cfg, factory, request_message(), "a")
    after = parse(get(server.url)[2])
    assert after["mailbot_messages_received_total"] == 1
    assert after["mailbot_messages_processed_total"] == 1
    assert after["mailbot_cases_open"] == 1
    assert after["mailbot_outbox_pending"] == 2  # acknowledgement and alert, not yet sent
    # the same numbers as `mailbot status --json`, from the same function
    counts = health.counters(factory)
    for name, key in [
        ("mailbot_messages_received_total", "received"),
        ("mailbot_messages_processed_total", "processed"),
        ("mailbot_messages_ignored_total", "ignored"),
        ("mailbot_messages_quarantined", "quarantined"),
        ("mailbot_messages_pending", "pending"),
        ("mailbot_outbox_pending", "outbox_pending"),
        ("mailbot_outbox_sent_total", "outbox_sent"),
        ("mailbot_outbox_failed", "outbox_failed"),
        ("mailbot_followups_due", "followups_due"),
        ("mailbot_cases_open", "open_cases"),
    ]:
        assert after[name] == counts[key], name
    assert after["mailbot_last_poll_timestamp_seconds"] == 0  # a Maildir records no polls

    status, ctype, body = get(server.url.replace("/metrics", "/healthz"))
    data = json.loads(body)
    assert (status, ctype, data["status"], data["received"]) == (200, "application/json", "ok", 1)
    assert get(server.url.replace("/metrics", "/other"))[0] == 404


def test_unreadable_database_is_mailbot_up_0_and_healthz_503(cfg: Config):
    def broken() -> Session:
        raise OperationalError("SELECT 1", {}, Exception("unable to open database file"))

    ephemeral = dataclasses.replace(cfg, metrics=MetricsSection(enabled=True, port=0))
    srv = MetricsServer(ephemeral, broken)  # type: ignore[arg-type]
    srv.start()
    try:
        status, _, text = get(srv.url)
        assert status == 200 and parse(text)["mailbot_up"] == 0
        assert "mailbot_messages_received_total" not in text
        assert get(srv.url.replace("/metrics", "/healthz"))[0] == 503
    finally:
        srv.stop()
    with pytest.raises(OSError), socket.create_connection((srv.host, srv.port), timeout=2):
        pass


def test_run_refuses_to_start_when_the_metrics_port_is_taken(tmp_path: Path, capsys):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        conf = write_config(tmp_path, f"[metrics]\nenabled = true\nport = {port}")
        code = main(["run", "--config", str(conf)])
    _, err = capsys.readouterr()
    assert code == 2
    assert err.count("\n") == 1
    assert f"{conf}: [metrics] port: 127.0.0.1:{port} is already in use" in err


def test_daemon_serves_metrics_and_json_logs_and_stops_serving_on_sigterm(tmp_path: Path):
    port = free_port()
    conf = write_config(
        tmp_path,
        f'[mailbot]\nlog_format = "json"\n\n[metrics]\nenabled = true\nport = {port}',
    )
    url = f"http://127.0.0.1:{port}/metrics"
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "MAILBOT_SMTP_PASSWORD": "Tr0ub4dor&3-horse"}
    log_path = tmp_path / "daemon.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "mailbot", "run", "--config", str(conf)],
            cwd=tmp_path,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=log,
        )

    def scrape() -> dict[str, float] | None:
        try:
            return parse(get(url)[2])
        except (urllib.error.URLError, OSError):
            return None

    def wait(condition, what: str) -> dict[str, float]:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            assert proc.poll() is None, log_path.read_text()
            values = scrape()
            if values is not None and condition(values):
                return values
            time.sleep(0.2)
        raise AssertionError(f"{what}:\n{log_path.read_text()}")

    try:
        wait(lambda v: v["mailbot_up"] == 1, "metrics never answered")
        inbox = tmp_path / "mail" / "INBOX"
        (inbox / "tmp" / "req").write_bytes(request_message())
        (inbox / "tmp" / "req").rename(inbox / "new" / "req")
        values = wait(
            lambda v: (
                v["mailbot_messages_processed_total"] == 1 and v["mailbot_outbox_sent_total"] == 2
            ),
            "the request was not counted",
        )
        assert values["mailbot_loop_last_success_timestamp_seconds"] > time.time() - 60
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            code = proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()  # never left running by a failed test
            proc.wait()
            raise
    assert code == 0, log_path.read_text()
    assert scrape() is None  # the endpoint went away with the daemon

    text = log_path.read_text()
    records = [json.loads(line) for line in text.splitlines()]  # every line is one JSON object
    assert all({"ts", "level", "logger", "message"} <= r.keys() for r in records)
    assert all(re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", r["ts"]) for r in records)
    [outcome] = [r for r in records if r.get("ledger_id") == 1]
    assert (outcome["kind"], outcome["outcome"]) == ("request", "processed")
    assert outcome["case_ref"].startswith("MVAI-")
    assert any(r["message"] == f"metrics on {url}" for r in records)
    assert records[-1]["message"] == "mailbot stopped"
    assert "Tr0ub4dor" not in text and "dwhitfield" not in text


def doctor_line(capsys, conf: Path) -> tuple[int, str]:
    code = main(["doctor", "--config", str(conf)])
    [line] = [x for x in capsys.readouterr().out.splitlines() if x.split()[1] == "metrics"]
    return code, line


def test_doctor_checks_the_metrics_port_and_endpoint(
    tmp_path: Path, capsys, factory: sessionmaker[Session]
):
    conf = write_config(tmp_path)
    assert doctor_line(capsys, conf)[1].startswith("ok    metrics   disabled")

    port = free_port()
    conf = write_config(tmp_path, f"[metrics]\nenabled = true\nport = {port}")
    code, line = doctor_line(capsys, conf)
    assert code == 0 and line.endswith(
        f"127.0.0.1:{port} is free; the daemon serves /metrics there"
    )

    cfg = dataclasses.replace(
        Config(), metrics=MetricsSection(enabled=True, port=port), source=str(conf)
    )
    running = MetricsServer(cfg, factory)  # what the daemon serves while it runs
    running.start()
    try:
        code, line = doctor_line(capsys, conf)
    finally:
        running.stop()
    assert code == 0 and line.endswith("/metrics answers (the daemon is running)")

    other = HTTPServer(("127.0.0.1", 0), BaseHTTPRequestHandler)  # answers 501 to everything
    thread = threading.Thread(target=other.serve_forever, daemon=True)
    thread.start()
    try:
        conf = write_config(tmp_path, f"[metrics]\nenabled = true\nport = {other.server_port}")
        code, line = doctor_line(capsys, conf)
    finally:
        other.shutdown()
        other.server_close()
        thread.join()
    assert code == 1 and line.startswith("FAIL")
    assert line.endswith("another program answers there: choose a free [metrics] port")
