"""The command line, in process: output formats, exit codes, one-line errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import select

from mailbot import config as config_mod
from mailbot.cli import main
from mailbot.models import Case, InboundMessage, OutboundMessage
from tests.conftest import ROOT, request_message, write_config

CASE_FIELDS = {
    "ref",
    "status",
    "priority",
    "agency",
    "city",
    "state",
    "incident_type",
    "incident_date",
    "killed",
    "injured",
    "services",
    "contact_name",
    "contact_email",
    "opened_at",
}


@pytest.fixture
def conf(tmp_path: Path) -> str:
    return str(write_config(tmp_path))


def run(capsys, *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_ingest_then_list_cases_inbound_and_outbox(conf, tmp_path, capsys):
    good = tmp_path / "req.eml"
    good.write_bytes(request_message(message_id="<cli-1@harlanpd.test>"))
    code, out, err = run(capsys, "ingest", "--config", conf, str(good), str(tmp_path / "no.eml"))
    assert code == 1, "a missing file makes the exit non-zero"
    assert f"{good}: ledger=1 kind=request case=MVAI-2026-0001 outcome=processed" in out
    assert err.strip() == f"mailbot: ingest: {tmp_path / 'no.eml'}: No such file or directory"

    code, out, _ = run(capsys, "ingest", "--config", conf, str(good))
    assert code == 0 and "outcome=already-ingested (processed)" in out

    code, out, _ = run(capsys, "cases", "list", "--json", "--config", conf)
    [case] = [json.loads(line) for line in out.splitlines()]
    assert case.keys() >= CASE_FIELDS
    assert (case["ref"], case["state"], case["contact_email"]) == (
        "MVAI-2026-0001",
        "KY",
        "dwhitfield@harlanpd.test",
    )

    code, out, _ = run(capsys, "inbound", "list", "--json", "--config", conf)
    [row] = [json.loads(line) for line in out.splitlines()]
    assert {
        "id",
        "message_id",
        "from",
        "subject",
        "status",
        "kind",
        "case_ref",
        "reason",
    } <= row.keys()
    assert (row["message_id"], row["kind"], row["case_ref"]) == (
        "cli-1@harlanpd.test",
        "request",
        "MVAI-2026-0001",
    )

    code, out, _ = run(capsys, "outbox", "list", "--json", "--config", conf)
    rows = [json.loads(line) for line in out.splitlines()]
    assert [(r["kind"], r["status"]) for r in rows] == [("ack", "sent"), ("alert", "sent")]
    assert {"id", "kind", "to", "subject", "status", "message_id", "case_ref"} <= rows[0].keys()
    assert len(list((tmp_path / "outgoing").glob("*.eml"))) == 2

    code, out, _ = run(capsys, "cases", "show", "mvai-2026-0001", "--config", conf)
    assert code == 0 and "timeline:" in out and "opened" in out

    code, out, _ = run(capsys, "cases", "list", "--priority", "P4", "--config", conf)
    assert out.strip() == "(none)"


def test_unknown_case_is_one_line_error(conf, capsys):
    code, out, err = run(capsys, "cases", "show", "MVAI-1999-0001", "--config", conf)
    assert code == 1 and out == ""
    assert err == "mailbot: case MVAI-1999-0001: no such case\n"


def test_bad_config_is_one_line_error(tmp_path, capsys):
    bad = tmp_path / "bad.toml"
    bad.write_text("[smtp]\nport = 'many'\n")
    code, _, err = run(capsys, "cases", "list", "--config", str(bad))
    assert code == 2
    assert err.count("\n") == 1 and "[smtp] port" in err and str(bad) in err


def test_quarantine_list_and_replay(conf, tmp_path, capsys, monkeypatch):
    import mailbot.inbound.pipeline as pipeline_mod

    path = tmp_path / "req.eml"
    path.write_bytes(request_message())
    monkeypatch.setattr(pipeline_mod, "extract", lambda *a: 1 / 0)
    run(capsys, "ingest", "--config", conf, str(path))
    code, out, _ = run(capsys, "quarantine", "list", "--json", "--config", conf)
    [row] = [json.loads(line) for line in out.splitlines()]
    assert row["status"] == "quarantined" and row["reason"].startswith("ZeroDivisionError")
    monkeypatch.undo()
    code, out, _ = run(capsys, "quarantine", "replay", str(row["id"]), "--config", conf)
    assert code == 0 and "kind=request case=MVAI-2026-0001 outcome=processed" in out
    code, _, err = run(capsys, "quarantine", "replay", str(row["id"]), "--config", conf)
    assert code == 1 and "not quarantined" in err


@pytest.mark.empty_database
def test_db_upgrade_and_doctor(conf, capsys):
    code, out, _ = run(capsys, "db", "upgrade", "--config", conf)
    assert code == 0 and "upgraded from empty to" in out
    code, out, _ = run(capsys, "db", "upgrade", "--config", conf)
    assert "is up to date" in out
    code, out, _ = run(capsys, "doctor", "--config", conf)
    lines = out.splitlines()
    assert code == 0
    assert [line.split()[1] for line in lines] == [
        "config",
        "rules",
        "database",
        "oauth2",
        "mailbox",
        "outgoing",
        "logging",
        "metrics",
        "nlp",
    ]
    assert all(line.split()[0] in ("ok", "warn") for line in lines)


def test_doctor_reports_unreachable_smtp(tmp_path, capsys):
    from tests.testbed import free_port

    conf = write_config(
        tmp_path,
        f'[outgoing]\ntransport = "smtp"\n\n[smtp]\nhost = "127.0.0.1"\n'
        f'port = {free_port()}\nsecurity = "none"',
    )
    code, out, _ = run(capsys, "doctor", "--config", str(conf))
    assert code == 1
    [line] = [x for x in out.splitlines() if x.split()[1] == "outgoing"]
    assert line.startswith("FAIL") and "check [smtp] host, port and security" in line


@pytest.mark.empty_database
def test_doctor_on_an_empty_database(tmp_path, capsys):
    auto = write_config(tmp_path)
    code, out, _ = run(capsys, "doctor", "--config", str(auto))
    assert code == 0 and "`mailbot run` migrates it" in out
    manual = write_config(tmp_path, "[database]\nauto_upgrade = false")
    code, out, _ = run(capsys, "doctor", "--config", str(manual))
    [line] = [x for x in out.splitlines() if x.split()[1] == "database"]
    assert code == 1 and line.startswith("FAIL") and "run `mailbot db upgrade`" in line
    code, _, err = run(capsys, "cases", "list", "--config", str(manual))
    assert code == 1 and "run `mailbot db upgrade`" in err


def test_bad_rule_file_is_one_line_naming_file_and_line(tmp_path, capsys):
    import shutil

    from tests.conftest import ROOT

    rules = tmp_path / "rules"
    shutil.copytree(ROOT / "rules", rules)
    text = (rules / "incident_types.toml").read_text()
    (rules / "incident_types.toml").write_text(
        text.replace('"stabbing|stabbed', '"(stabbing|stabbed')
    )
    conf = write_config(tmp_path, f'[paths]\nrules = "{rules}"')
    code, out, _ = run(capsys, "doctor", "--config", str(conf))
    [line] = [x for x in out.splitlines() if x.split()[1] == "rules"]
    assert code == 1 and line.startswith("FAIL")
    assert "incident_types.toml:" in line and "weapons.stabbing: bad pattern" in line
    code, _, err = run(capsys, "run", "--config", str(conf))
    assert code == 1 and err.count("\n") == 1 and "incident_types.toml:" in err


def test_reply_text_cli(tmp_path, capsys):
    plain = tmp_path / "r.txt"
    plain.write_text(
        "#status closed\nThe call went well.\n\nOn Mon, Nov 16, 2026 at 9:00 AM Bot wrote:\n> old\n"
    )
    page = tmp_path / "r.html"
    page.write_text(
        '<div>New words</div><div class="gmail_quote">On Mon wrote:<blockquote>old'
        "</blockquote></div>"
    )
    code, out, _ = run(capsys, "reply-text", "--json", str(plain), str(page))
    rows = [json.loads(line) for line in out.splitlines()]
    assert code == 0
    assert rows == [
        {"file": str(plain), "text": "#status closed\nThe call went well."},
        {"file": str(page), "text": "New words"},
    ]


def test_status_counts(tmp_path, capsys):
    conf = str(write_config(tmp_path))
    path = tmp_path / "req.eml"
    path.write_bytes(request_message())
    auto = tmp_path / "auto.eml"
    auto.write_bytes(request_message(headers={"Auto-Submitted": "auto-replied"}, subject="x"))
    run(capsys, "ingest", "--config", conf, str(path), str(auto))
    code, out, _ = run(capsys, "status", "--json", "--config", conf)
    data = json.loads(out)
    assert code == 0
    assert (data["received"], data["processed"], data["ignored"], data["quarantined"]) == (
        2,
        1,
        1,
        0,
    )
    assert (data["outbox_sent"], data["outbox_pending"], data["open_cases"]) == (2, 0, 1)


def test_purge_keeps_summary_and_audit_but_no_bodies(tmp_path, capsys):
    from datetime import timedelta

    from mailbot import config as config_mod
    from mailbot import db
    from mailbot.models import utcnow

    conf = write_config(tmp_path)
    path = tmp_path / "req.eml"
    path.write_bytes(
        request_message(
            body="Yesterday a shooting at Harlan High School in Harlan, KY. "
            "Victim Jane Doe was hurt.\n"
        )
    )
    run(capsys, "ingest", "--config", str(conf), str(path))
    factory = db.session_factory(db.make_engine(config_mod.load(conf).database_url))
    with factory.begin() as session:
        case = session.scalars(select(Case)).one()
        case.status = "closed"
        case.updated_at = utcnow() - timedelta(days=400)
    code, out, _ = run(capsys, "purge", "--closed-older-than", "365d", "--config", str(conf))
    assert code == 0 and out.startswith("purged 3 messages of 1 cases")
    with factory() as session:
        rows = [*session.scalars(select(InboundMessage)), *session.scalars(select(OutboundMessage))]
        assert rows and all(b"Jane Doe" not in r.raw for r in rows)
        assert all(b"Subject:" in r.raw for r in rows)
        case = session.scalars(select(Case)).one()
        assert case.state == "KY" and [e.kind for e in case.events][-1] == "purged"
    code, out, _ = run(capsys, "purge", "--config", str(conf))
    assert out.startswith("purged 0 messages")
    code, _, err = run(capsys, "purge", "--closed-older-than", "a year", "--config", str(conf))
    assert code == 1 and "give a number of days" in err


HEAVY = ("sqlalchemy", "alembic", "spacy", "mailparser", "mailbot.inbound.extraction")


def _fresh_python(code: str) -> list[str]:
    """Run ``code`` in a new interpreter from the project root; its stdout lines."""
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout.splitlines()


def test_starting_the_command_line_imports_no_database_or_nlp_library() -> None:
    """`mailbot` parses its command line without SQLAlchemy, spaCy or the extraction (most of
    a second): a command imports what it needs when it runs."""
    [loaded] = _fresh_python(
        f"import sys, mailbot.cli\nprint(sorted(m for m in sys.modules if m.startswith({HEAVY!r})))"
    )
    assert loaded == "[]"


def test_run_starts_the_model_loading_before_the_daemons_own_imports(tmp_path: Path) -> None:
    """`mailbot run` starts the extraction workers' fork server (which loads the model, about
    2 s) before it imports the daemon, so the two overlap. Here the start is caught and the
    command stopped there: nothing heavy may be loaded yet, and the fork server must be given
    the rules it is to load."""
    conf = write_config(tmp_path, "[extraction]\nworkers = 2\n")
    lines = _fresh_python(
        "import os, sys\n"
        "from multiprocessing import forkserver\n"
        "def caught():\n"
        f"    print(sorted(m for m in sys.modules if m.startswith({HEAVY!r})))\n"
        "    print(os.environ.get('MAILBOT_READER_RULES'))\n"
        "    raise SystemExit(0)\n"
        "forkserver.ensure_running = caught\n"
        "from mailbot.cli import main\n"
        f"main(['run', '--config', {str(conf)!r}])\n"
    )
    assert lines == ["[]", str(config_mod.load(conf).rules_dir)]
