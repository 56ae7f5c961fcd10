"""Run every benchmark, one after the other, and print each one's table and command.

Run: .venv/bin/python bench/run_all.py [--quick] [--profile]

Full: backlog of 2,000 requests, 200 latency requests, 5 start-ups, digest and sweep over
10,000 cases (about 15 minutes on 2 cores). --quick: 300 / 40 / 3 / 2,000 (about 4 minutes).
--profile adds a py-spy profiled backlog run (py-spy from PyPI in .venv). Each benchmark runs
in its own interpreter, so one's memory and threads never touch the next one's numbers;
`uptime` is printed before and after each, as the machine may be shared.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent


def uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True, check=False).stdout.strip()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, a few minutes")
    parser.add_argument("--profile", action="store_true", help="also a py-spy profiled backlog")
    args = parser.parse_args()
    q = args.quick
    runs = [
        ["backlog.py", "--n", "300" if q else "2000"],
        ["latency.py", "--n", "40" if q else "200"],
        ["startup.py", "--runs", "3" if q else "5"],
        ["jobs.py", "--cases", "2000" if q else "10000"],
    ]
    if args.profile:
        runs.insert(1, ["backlog.py", "--n", "300" if q else "1000", "--profile"])
    failed = []
    for script, *options in runs:
        command = [sys.executable, str(BENCH / script), *options]
        print(f"\n=== {' '.join(['.venv/bin/python', f'bench/{script}', *options])}", flush=True)
        print(f"uptime before: {uptime()}", flush=True)
        started = time.monotonic()
        done = subprocess.run(command, cwd=ROOT, check=False)
        print(f"uptime after:  {uptime()}  ({time.monotonic() - started:.0f} s)", flush=True)
        if done.returncode != 0:
            failed.append(script)
    if failed:
        raise SystemExit(f"failed: {', '.join(failed)}")


if __name__ == "__main__":
    main()
