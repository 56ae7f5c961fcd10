"""bench/backlog.py still runs end to end on the test bed (tiny N, the ceiling given rather
than measured): every request becomes a case with its acknowledgement and alert, and the
table has the rows BENCHMARKS.md quotes. No figure is asserted: speed is for bench/."""

from __future__ import annotations

import re

from tests.conftest import run_script


def test_backlog_benchmark_runs_and_accounts_for_every_request():
    out = run_script(
        "bench/backlog.py", "--n", "12", "--ceiling", "40", "--timeout", "240", timeout=600
    )
    assert "'cases': 12" in out and "'outbox ack sent': 12" in out, out
    assert "'outbox alert sent': 12" in out, out
    # held by the relay while the clock ran, then delivered into Dovecot, none lost
    assert re.search(
        r"relay: 24 mails taken, delivered into Dovecot after the clock .*, 0 delivery failures",
        out,
    ), out
    for row in (
        "mailbot backlog throughput, extraction workers = 2, sqlite",
        "mailbot as % of ceiling",
        "CPU per request: daemon process",
        "extraction worker process(es)",
        "peak memory during backlog, PSS summed",
    ):
        assert re.search(rf"\|\s+{re.escape(row)}[^|]*\|\s+\S", out), (row, out)
    # the PSS was read: the daemon and a worker with the model loaded take over 100 MB
    peak = re.search(r"peak memory during backlog, PSS[^|]*\|\s+(\d+) MB", out)
    assert peak is not None and int(peak.group(1)) > 100, out
