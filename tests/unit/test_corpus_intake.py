"""Every file of the third-party corpora goes through the whole pipeline.

Each ends processed, ignored or quarantined (the last two with a reason), within a time limit
and a memory bound (how far the process's resident set peaks above where it was: Linux's
VmHWM, reset before each message through /proc/self/clear_refs), and no bounce (but the
sisimai not-a-bounce controls) and no auto-reply gets an acknowledgement.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from sqlalchemy import select

from mailbot import config as config_mod
from mailbot import db
from mailbot.inbound import extraction, ledger
from mailbot.inbound.ledger import RawMail
from mailbot.inbound.pipeline import Pipeline
from mailbot.models import InboundMessage, OutboundMessage
from tests.conftest import CORPORA, write_config

FOLDERS = ("messages", "bounces", "autoreplies")
FILES = sorted(p for folder in FOLDERS for p in (CORPORA / folder).glob("*.eml"))
SECONDS_PER_MESSAGE = 5.0
MEMORY_BOUND = 64 * 1024 * 1024  # bytes of RSS one message may add at its peak, ...
MEMORY_PER_BYTE = 20  # ... or 20 times its size if that is more (3 MB -> 60 MB)


def _status_kib(key: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{key}:"):
            return int(line.split()[1])
    raise AssertionError(f"no {key} in /proc/self/status")


def _reset_peak_rss() -> int:
    """Reset VmHWM to the current RSS (Linux: "5" > /proc/self/clear_refs); RSS in bytes."""
    Path("/proc/self/clear_refs").write_text("5")
    return _status_kib("VmRSS") * 1024


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory):
    folder = tmp_path_factory.mktemp("corpus")
    cfg = config_mod.load(write_config(folder))
    engine = db.make_engine(cfg.database_url)
    db.upgrade(engine)
    factory = db.session_factory(engine)
    extraction.preload(cfg.rules_dir)  # as the daemon does: the model is not per message
    yield cfg, factory, Pipeline(cfg, factory)
    engine.dispose()


def test_corpora_are_present():
    assert len(FILES) > 300, f"expected the shared corpora at {CORPORA}"


@pytest.mark.parametrize("path", FILES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_corpus_file_is_handled(env, path: Path):
    cfg, factory, pipeline = env
    raw = path.read_bytes()
    [ledger_id] = ledger.store_batch(factory, [RawMail("corpus", raw, source_name=path.name)])
    before = _reset_peak_rss()
    started = time.monotonic()
    outcome = pipeline.process(ledger_id)
    elapsed = time.monotonic() - started
    assert elapsed < SECONDS_PER_MESSAGE, f"{elapsed:.1f}s"
    grew = _status_kib("VmHWM") * 1024 - before
    bound = max(MEMORY_BOUND, MEMORY_PER_BYTE * len(raw))
    assert grew < bound, f"RSS peaked {grew / 2**20:.1f} MiB above its start (bound {bound >> 20})"
    with factory() as session:
        row = session.get(InboundMessage, ledger_id)
        assert row.raw == raw[: len(row.raw)]
        assert row.status in ("processed", "ignored", "quarantined"), row.status
        if row.status != "processed":
            assert row.reason, "ignored and quarantined rows carry a reason"
        acks = session.scalars(
            select(OutboundMessage).where(
                OutboundMessage.inbound_id == ledger_id, OutboundMessage.kind == "ack"
            )
        ).all()
    is_control = path.name.startswith("sisimai__not-")
    if path.parent.name in ("bounces", "autoreplies") and not is_control:
        assert row.kind in ("bounce", "autoreply", "duplicate"), (row.kind, row.reason)
        assert acks == [], "no acknowledgement to a bounce or an auto-reply"
    assert outcome.status == row.status
