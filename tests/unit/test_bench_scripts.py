"""The benchmark scripts still run (bench/jobs.py was broken for a session without anyone
noticing): tiny sizes, no timing asserted, only that each finishes and prints its table with
the figures it exists for. The backlog script, which needs the test bed, is in tests/e2e."""

from __future__ import annotations

import re

from tests.conftest import run_script


def test_jobs_benchmark_runs_and_reports_the_digest_and_the_sweep():
    out = run_script("bench/jobs.py", "--cases", "40", "--templates", "4", timeout=300)
    assert re.search(r"database: 40 cases", out), out
    for row in ("digest.preview", "followups.sweep, steady state", "followups.sweep after a day"):
        assert re.search(rf"\| {re.escape(row)}.*\| median \d+\.\d+ s", out), (row, out)
    assert "reproduce: .venv/bin/python bench/jobs.py --cases 40 --templates 4" in out
