"""Start-up time: from `python -m mailbot run` to the first poll (log line "imap: connected").

Run: .venv/bin/python bench/startup.py [--runs 5]

The daemon is started against the test bed's Dovecot and SmtpRelay with an empty INBOX. The
first run finds an empty SQLite database (migrations run); the others find it migrated, the
usual case. Each run is stopped with SIGTERM once connected and its extraction ready. Also
printed: when the extraction is ready (the first worker forked: its fork server has loaded
the model; a backlog's first acknowledgement cannot come sooner), the daemon's own "ready in"
figure (prepare + catch-up, after the imports) and the bare import time of the CLI module, so
the cost of the Python imports is visible on its own.
"""

from __future__ import annotations

import argparse
import atexit
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.harness import (  # noqa: E402
    ROOT,
    WORKER,
    command_line,
    machine,
    mailbot_process,
    process_roles,
    spawn,
    table,
    testbed,
    uptime,
    wait_for_log,
)


def import_seconds(module: str) -> float:
    started = time.monotonic()
    subprocess.run([sys.executable, "-c", f"import {module}"], check=True, cwd=ROOT)
    return time.monotonic() - started


def wait_for_worker(daemon_pid: int, timeout: float) -> float:
    """Poll every 10 ms until an extraction worker exists: the fork server forks workers
    once it has loaded the model."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if WORKER in process_roles(daemon_pid).values():
            return time.monotonic()
        time.sleep(0.01)
    raise TimeoutError(f"no extraction worker after {timeout}s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    print(f"machine: {machine()}")
    load_before = uptime()
    work = Path(tempfile.mkdtemp(prefix="mailbot-bench-"))
    atexit.register(shutil.rmtree, work, True)  # also when a run fails
    connects: list[float] = []
    workers: list[float] = []
    readies: list[float] = []
    with testbed(()) as (dovecot, relay):
        proc = mailbot_process(work, dovecot, relay)
        for _ in range(args.runs + 1):
            started, offset = spawn(proc)
            try:
                connects.append(wait_for_log(proc, "imap: connected", offset, 60) - started)
                assert proc.proc is not None
                workers.append(wait_for_worker(proc.proc.pid, 60) - started)
            finally:
                proc.stop()
            ready = re.findall(r"\(ready in ([0-9.]+)s\)", proc.log()[offset:])
            readies.append(float(ready[0]) if ready else float("nan"))
    python_s = import_seconds("sys")
    cli_s = import_seconds("mailbot.cli")
    daemon_s = import_seconds("mailbot.daemon")
    spacy_s = import_seconds("spacy")
    load_after = uptime()
    warm = connects[1:]
    rows = [
        ["measurement", "seconds"],
        ["first start, empty database (migrations)", f"{connects[0]:.2f}"],
        [
            f"start with a migrated database, {len(warm)} runs",
            f"median {statistics.median(warm):.2f}, min {min(warm):.2f}, max {max(warm):.2f}"
            " (target <= 3 s)",
        ],
        [
            f"extraction ready (the first worker forked: model loaded), {len(warm)} runs",
            f"median {statistics.median(workers[1:]):.2f}, min {min(workers[1:]):.2f}, "
            f"max {max(workers[1:]):.2f} (first run {workers[0]:.2f})",
        ],
        [
            "  daemon's own 'ready in' (first / median of the rest)",
            f"{readies[0]:.1f} / {statistics.median(readies[1:]):.1f}",
        ],
        [
            "  `import mailbot.cli` / `mailbot.daemon` / `spacy`, each a fresh interpreter",
            f"{cli_s:.2f} / {daemon_s:.2f} / {spacy_s:.2f} (bare interpreter {python_s:.2f})",
        ],
        ["load avg (1/5/15 min): before | after", f"{load_before} | {load_after}"],
    ]
    print()
    print(table(rows))
    print(f"\nreproduce: {command_line()}")


if __name__ == "__main__":
    main()
