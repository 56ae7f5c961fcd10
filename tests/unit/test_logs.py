"""Logging: JSON lines when configured, and no secret or address in any line, in either format."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from mailbot import config, logs

PASSWORD = "hunter2-correct-horse"
TOKEN = "ya29.a0AfH6SMBxTokenValue"
ENV_SECRET = "Env-Only-Secret-42"


@pytest.fixture(autouse=True)
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def emit_everything() -> None:
    log = logging.getLogger("mailbot.test")
    logs.register_secret(PASSWORD)
    log.info(
        "ledger=%d outcome=%s from chief@harlanpd.gov",
        7,
        "processed",
        extra={"ledger_id": 7, "case_ref": "MVAI-2026-0007", "detail": f"pw {PASSWORD}"},
    )
    log.warning("imap login failed for user with password=%s", "plain-text-pw")
    log.warning("token endpoint said: Authorization: Bearer %s", TOKEN)
    log.warning("database postgresql://mailbot:pg-secret-99@db.example.org/mailbot down")
    log.warning("env value %s leaked", ENV_SECRET)
    try:
        raise RuntimeError(f"login with {PASSWORD} refused\nsecond line")
    except RuntimeError:
        log.exception("step failed")


def assert_no_secrets(text: str) -> None:
    for secret in (PASSWORD, "plain-text-pw", TOKEN, "pg-secret-99", ENV_SECRET, "chief@"):
        assert secret not in text, secret


def test_json_lines_carry_fields_and_no_secrets(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setenv("MAILBOT_IMAP_PASSWORD", ENV_SECRET)
    logs.setup("INFO", "json")
    emit_everything()
    err = capsys.readouterr().err
    lines = err.splitlines()
    assert len(lines) == 6  # the traceback stays inside its line
    records = [json.loads(line) for line in lines]
    first = records[0]
    assert first["level"] == "INFO" and first["logger"] == "mailbot.test"
    assert first["ts"].endswith("Z") and "T" in first["ts"]
    assert first["message"] == "ledger=7 outcome=processed from …@harlanpd.gov"
    assert (first["ledger_id"], first["case_ref"]) == (7, "MVAI-2026-0007")
    assert first["detail"] == "pw ***"
    assert records[1]["message"].endswith("password=***")
    assert records[2]["message"].endswith("Bearer ***")
    assert "postgresql://mailbot:***@db.example.org" in records[3]["message"]
    last = records[-1]
    assert last["level"] == "ERROR" and last["message"] == "step failed"
    assert (
        last["exception"].startswith("Traceback")
        and "RuntimeError: login with ***" in (last["exception"])
    )
    assert_no_secrets(err)


def test_text_lines_are_redacted_the_same_way(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setenv("PGPASSWORD", ENV_SECRET)
    logs.setup("INFO", "text")
    emit_everything()
    err = capsys.readouterr().err
    assert "ledger=7 outcome=processed from …@harlanpd.gov" in err
    assert "password=***" in err and "Bearer ***" in err
    assert_no_secrets(err)


def test_debug_lines_are_dropped_at_info(capsys: pytest.CaptureFixture[str]):
    logs.setup("INFO", "json")
    logging.getLogger("mailbot.test").debug("not shown")
    assert capsys.readouterr().err == ""


def test_passwords_read_by_mailbot_are_never_logged(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
):
    (tmp_path / "smtp-secret").write_text("from-a-file-Secret\n")
    monkeypatch.setenv("ODDLY_NAMED", "from-the-environment")
    cfg = config.Config(base_dir=tmp_path)
    assert config.read_secret(cfg, "smtp", "", "smtp-secret") == "from-a-file-Secret"
    assert config.read_secret(cfg, "imap", "ODDLY_NAMED", "") == "from-the-environment"
    logs.setup("INFO", "json")
    logging.getLogger("mailbot.test").error("server said: from-a-file-Secret from-the-environment")
    err = capsys.readouterr().err
    assert json.loads(err)["message"] == "server said: *** ***"


def test_bad_log_format_names_file_and_option(tmp_path: Path):
    path = tmp_path / "c.toml"
    path.write_text('[mailbot]\nlog_format = "xml"\n')
    with pytest.raises(config.ConfigError, match=r"c\.toml: \[mailbot\] log_format: must be"):
        config.load(path)


@pytest.mark.parametrize(
    "line",
    [
        "ledger=12 outcome=processed kind=request case=MVAI-2026-0001 ms=7",
        "outbox=3 outcome=retry attempt=2 error=SMTP 127.0.0.1:25: cannot connect",
        "login failed: password=hunter2hunter2 for chief@harlanpd.test",
        "Authorization: Bearer abcdefgh12345678",
        "AUTH PLAIN AGNoaWVmAGh1bnRlcjI=",
        "postgresql://mailbot:s3cretpw@db.example/mailbot",
        "'client_secret': 'xyz123456'",
        "API-KEY = k-123456789",
        "pa\u017fsword=hunter2hunter2",  # a long s matches "s" under IGNORECASE
        "\u212aey: TO\u212aEN=abcdefgh",  # a Kelvin sign matches "k"
        "réunion à Montréal, no secret here",
    ],
)
def test_the_quick_path_redacts_as_every_pattern_would(line: str) -> None:
    # lines without a keyword skip the secret patterns: the result must be the same
    expected = line
    for pattern, replacement in logs._SECRET_PATTERNS:
        expected = pattern.sub(replacement, expected)
    expected = logs._ADDRESS.sub(r"…@\1", expected)
    assert logs.redact(line) == expected
