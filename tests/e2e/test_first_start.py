"""The newcomer's path: `mailbot run` on the embedded defaults, in an empty folder."""

from __future__ import annotations

import email
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path


def test_first_start_opens_sample_cases_and_stops_cleanly(tmp_path: Path):
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "mailbot", "run"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    outgoing = tmp_path / "var" / "mail" / "outgoing"
    try:
        deadline = time.monotonic() + 60
        while len(list(outgoing.glob("*.eml"))) < 6 and time.monotonic() < deadline:
            assert proc.poll() is None, proc.stderr.read().decode()
            time.sleep(0.1)
        second = subprocess.run(
            [sys.executable, "-m", "mailbot", "run"],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert second.returncode == 1
        assert second.stderr.count("\n") == 1
        assert f"another mailbot daemon (pid {proc.pid}) is running on" in second.stderr
    finally:
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err.decode()
    assert "3 sample requests dropped into" in out.decode()
    assert "mailbot stopped" in err.decode()
    files = sorted(outgoing.glob("*.eml"))
    kinds = sorted(f.name.split("-", 1)[1] for f in files)
    assert kinds == ["ack.eml"] * 3 + ["alert.eml"] * 3
    for f in files:
        msg = email.message_from_bytes(f.read_bytes())
        assert msg["Auto-Submitted"] in ("auto-replied", "auto-generated")
    listed = subprocess.run(
        [sys.executable, "-m", "mailbot", "cases", "list", "--json"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    cases = [json.loads(line) for line in listed.splitlines()]
    assert len(cases) == 3
    assert {c["state"] for c in cases} == {"KY", "CA", "OH"}
    # A second start does not drop the samples again.
    again = subprocess.Popen(
        [sys.executable, "-m", "mailbot", "run"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    time.sleep(3)
    again.send_signal(signal.SIGTERM)
    out, _ = again.communicate(timeout=20)
    assert again.returncode == 0
    assert b"sample requests" not in out
    assert len(list(outgoing.glob("*.eml"))) == 6
