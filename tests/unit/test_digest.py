"""The daily digest: what it shows, what it never shows, once per recipient and day."""

from __future__ import annotations

import email
from datetime import timedelta

from sqlalchemy import select

from mailbot.cli import main
from mailbot.inbound import ledger
from mailbot.inbound.ledger import RawMail
from mailbot.inbound.pipeline import Pipeline
from mailbot.jobs import digest
from mailbot.models import Case, InboundMessage, OutboundMessage, utcnow
from tests.conftest import request_message, write_config


def ingest(cfg, factory, raw: bytes, name: str) -> int:
    [ledger_id] = ledger.store_batch(factory, [RawMail("t", raw, source_name=name)])
    Pipeline(cfg, factory).process(ledger_id)
    return ledger_id


def parts(row: OutboundMessage) -> tuple[str, str]:
    msg = email.message_from_bytes(row.raw)
    text, html = (p.get_payload(decode=True).decode() for p in msg.get_payload())
    return text, html


def test_digest_content_escaping_and_once_a_day(cfg, factory):
    hostile = request_message(
        sender="Chief <b>Bad</b> <chief@evil.test>",
        subject="<script>alert(1)</script> help",
        body=(
            "Yesterday a gunman killed Jane Victimname at the <script>x</script> "
            "Mall in Harlan, KY.\n\nThe <img src=x> Police Department\n"
        ),
    )
    ingest(cfg, factory, hostile, "a")
    ingest(cfg, factory, b"\xd0\xcf\x11\xe0 not mail at all", "b")
    with factory.begin() as session:
        session.get(InboundMessage, 2).status = "quarantined"
        session.get(InboundMessage, 2).reason = "test"
    now = utcnow() + timedelta(hours=1)
    assert digest.send(factory, cfg, now=now) == ["coord@mvai.test"]
    assert digest.send(factory, cfg, now=now + timedelta(minutes=5)) == []
    with factory() as session:
        [row] = session.scalars(select(OutboundMessage).where(OutboundMessage.kind == "digest"))
    text, html = parts(row)
    assert "2 received, 1 processed, 0 ignored, 1 quarantined" in text
    assert "URGENT CASES WITHOUT AN ADVISOR" in text and "MVAI-2026-0001 P1" in text
    assert "#2 (" in text  # the quarantined message is listed
    assert "Victimname" not in text and "Victimname" not in html
    assert "<script" not in html and "<img" not in html and "<b>" not in html
    with factory() as session:
        alert = session.scalars(
            select(OutboundMessage)
            .where(OutboundMessage.kind == "alert")
            .order_by(OutboundMessage.id)
        ).first()
    _alert_text, alert_html = parts(alert)
    assert "&lt;script&gt;" in alert_html and "<script" not in alert_html


def test_digest_cli_preview_and_send(tmp_path, capsys):
    conf = str(write_config(tmp_path))
    path = tmp_path / "req.eml"
    path.write_bytes(request_message())
    assert main(["ingest", "--config", conf, str(path)]) == 0
    capsys.readouterr()
    assert main(["digest", "--preview", "--config", conf]) == 0
    out = capsys.readouterr().out
    assert out.startswith("To: coord@mvai.test") and "NEW CASES" in out and "MVAI-2026-0001" in out
    assert main(["digest", "--send", "--config", conf]) == 0
    assert capsys.readouterr().out.strip() == "digest to coord@mvai.test: sent"
    assert main(["digest", "--send", "--config", conf]) == 0
    assert "already sent for today" in capsys.readouterr().out
    assert len(list((tmp_path / "outgoing").glob("*-digest.eml"))) == 1


def test_start_up_sends_the_missed_digest_only_if_the_database_was_in_use(cfg, factory):
    """A new install started after the digest time waits for tomorrow; one that was in use
    before that time (mail received) gets today's digest at start."""
    tz = cfg.tz
    hour, minute = (int(x) for x in cfg.digest.time.split(":"))
    today = utcnow().astimezone(tz).replace(hour=hour, minute=minute, second=0, microsecond=0)
    before, after = today - timedelta(minutes=1), today + timedelta(hours=2)
    assert not digest.missed_today(factory, cfg, now=before)
    assert not digest.missed_today(factory, cfg, now=after)  # nothing in the database yet
    ledger_id = ingest(cfg, factory, request_message(), "a")

    def arrived(at):
        with factory.begin() as session:
            row = session.get(InboundMessage, ledger_id)
            row.received_at = at
            session.get(Case, row.case_id).opened_at = at

    arrived(after - timedelta(minutes=30))
    assert not digest.missed_today(factory, cfg, now=after)  # mail came after the digest time
    arrived(today - timedelta(hours=3))
    assert not digest.missed_today(factory, cfg, now=before)
    assert digest.missed_today(factory, cfg, now=after)
