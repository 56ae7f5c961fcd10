"""Attachments of case mail: stored as files inside the case's folder whatever their names say,
up to a size limit, never opened, removed by purge; a full disk quarantines the message with
the reason and a replay after making room opens the case (a real tmpfs of 64 KiB, mounted by
the test: it needs root, as the test bed's other servers do)."""

from __future__ import annotations

import shutil
import stat
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.utils import format_datetime
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from mailbot import config as config_mod
from mailbot import db
from mailbot.cases.attachments import safe_name
from mailbot.cli import main
from mailbot.config import Config
from mailbot.inbound import ledger
from mailbot.inbound.ledger import RawMail
from mailbot.inbound.pipeline import Pipeline
from mailbot.models import Case, CaseEvent, InboundMessage, utcnow
from tests.conftest import write_config

BODY = (
    "Yesterday we had a shooting at Harlan High School in Harlan, KY. Our incident report and "
    "the press release are attached.\n\nDana Whitfield\nChief of Police\n"
    "Harlan Police Department\n(606) 555-0142\n"
)


def request_with(files: dict[str, bytes]) -> bytes:
    msg = EmailMessage()
    msg["From"] = "Chief Dana Whitfield <dwhitfield@harlanpd.test>"
    msg["To"] = "mvai@mvai.test"
    msg["Subject"] = "Request for help after shooting"
    msg["Date"] = format_datetime(datetime(2026, 11, 16, 13, 42, tzinfo=UTC))
    msg["Message-ID"] = "<att-1@harlanpd.test>"
    msg.set_content(BODY)
    for name, data in files.items():
        msg.add_attachment(data, maintype="application", subtype="octet-stream", filename=name)
    return msg.as_bytes()


def setup(tmp_path: Path, extra: str = "") -> tuple[Config, sessionmaker[Session]]:
    cfg = config_mod.load(write_config(tmp_path, extra))
    engine = db.make_engine(cfg.database_url)
    db.upgrade(engine)
    return cfg, db.session_factory(engine)


def ingest(cfg: Config, factory: sessionmaker[Session], raw: bytes) -> int:
    [ledger_id] = ledger.store_batch(factory, [RawMail("test", raw, source_name="a")])
    Pipeline(cfg, factory).process(ledger_id)
    return ledger_id


@pytest.mark.parametrize(
    ("given", "stored"),
    [
        ("report.pdf", "report.pdf"),
        ("../../../etc/passwd", "passwd"),
        ("..\\..\\Windows\\System32\\evil.dll", "evil.dll"),
        ("/etc/cron.d/job", "job"),
        (".bashrc", "bashrc"),
        ("..", "attachment"),
        ("", "attachment"),
        ("Résumé (final).docx", "R_sum_final_.docx"),
        ("a" * 300 + ".pdf", "a" * 76 + ".pdf"),  # 80 characters in all
        ("x\r\nSubject: hi", "x_Subject_hi"),
    ],
)
def test_safe_name(given: str, stored: str) -> None:
    assert safe_name(given) == stored


def test_attachments_stored_in_the_case_folder_and_removed_by_purge(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg, factory = setup(tmp_path, "[limits]\nmax_attachment_bytes = 1000\n")
    raw = request_with(
        {
            "../../../../tmp/escape.txt": b"incident report",
            "photo.jpg": b"\xff\xd8" + b"x" * 5000,  # over the limit: listed, not stored
        }
    )
    ledger_id = ingest(cfg, factory, raw)
    root = cfg.path(cfg.paths.attachments)
    with factory() as session:
        case = session.scalars(select(Case)).one()
        ref = case.ref
        [ev] = session.scalars(select(CaseEvent).where(CaseEvent.kind == "attachments")).all()
        files = ev.detail["files"]
    assert [f["name"] for f in files] == ["../../../../tmp/escape.txt", "photo.jpg"]
    assert files[0]["stored"] == f"{ref}/{ledger_id}-1-escape.txt"
    assert files[1]["stored"] is None and "max_attachment_bytes" in files[1]["reason"]
    stored = root / files[0]["stored"]
    assert stored.read_bytes() == b"incident report"
    assert stat.S_IMODE(stored.stat().st_mode) == 0o600
    assert sorted(p.name for p in (root / ref).iterdir()) == [stored.name]
    assert not Path("/tmp/escape.txt").exists() or Path("/tmp/escape.txt").read_bytes() != (
        b"incident report"
    )

    with factory.begin() as session:
        closed = session.scalars(select(Case)).one()
        closed.status = "closed"
        closed.updated_at = utcnow() - timedelta(days=400)
    conf = tmp_path / "config.toml"
    assert main(["purge", "--closed-older-than", "365d", "--config", str(conf)]) == 0
    assert not (root / ref).exists()
    with factory() as session:
        purged = session.scalars(select(CaseEvent).where(CaseEvent.kind == "purged")).one()
        assert purged.detail["attachment_files"] == 1
    capsys.readouterr()


@pytest.fixture
def tiny_disk(tmp_path: Path) -> Iterator[Path]:
    """A 64 KiB tmpfs: a real "No space left on device" from the kernel."""
    mount = shutil.which("mount")
    point = tmp_path / "tiny"
    point.mkdir()
    if mount is None:
        pytest.skip("mount is not available")
    done = subprocess.run(
        [mount, "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(point)], capture_output=True
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root): {done.stderr.decode().strip()}")
    try:
        yield point
    finally:
        subprocess.run(["umount", "-l", str(point)], check=False)


def test_full_disk_quarantines_with_the_reason_and_replay_opens_the_case(
    tmp_path: Path, tiny_disk: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg, factory = setup(tmp_path, f'[paths]\nattachments = "{tiny_disk}"\n')
    raw = request_with({"scan.pdf": b"%PDF" + b"x" * 200_000})  # 200 KB on a 64 KiB disk
    ledger_id = ingest(cfg, factory, raw)
    with factory() as session:
        row = session.get(InboundMessage, ledger_id)
        assert row is not None and row.status == "quarantined"
        assert "attachment 1 cannot be stored" in (row.reason or "")
        assert "No space left on device" in (row.reason or "")
        assert row.raw == raw  # nothing lost
        assert session.scalars(select(Case)).all() == []  # the case rolled back with it
    assert not any(tiny_disk.rglob("*.pdf"))  # no half-written file left behind

    subprocess.run(["mount", "-o", "remount,size=1m", str(tiny_disk)], check=True)
    conf = tmp_path / "config.toml"
    assert main(["quarantine", "replay", str(ledger_id), "--config", str(conf)]) == 0
    capsys.readouterr()
    Pipeline(cfg, factory).process(ledger_id)
    with factory() as session:
        row = session.get(InboundMessage, ledger_id)
        assert row is not None and (row.status, row.kind) == ("processed", "request")
        case = session.scalars(select(Case)).one()
        assert (tiny_disk / case.ref / f"{ledger_id}-1-scan.pdf").stat().st_size == 200_004
