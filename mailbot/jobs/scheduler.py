"""APScheduler drives the daemon's timed work; all state lives in our tables.

Jobs (in-memory job store, interval and cron only, never pickled): the outbox retry sweep and
housekeeping. A job that fails is logged and runs again at its next time.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from apscheduler.schedulers.background import BackgroundScheduler

log = logging.getLogger(__name__)


def _guarded(name: str, func: Callable[[], object]) -> Callable[[], None]:
    def run() -> None:
        try:
            func()
        except Exception as exc:  # a failing job must not stop the scheduler
            log.error("job %s failed: %s: %s", name, type(exc).__name__, exc)

    return run


def make_scheduler(jobs: dict[str, tuple[Callable[[], object], float]]) -> BackgroundScheduler:
    """A scheduler with one interval job per entry: name -> (function, seconds)."""
    scheduler = BackgroundScheduler(job_defaults={"coalesce": True, "max_instances": 1})
    for name, (func, seconds) in jobs.items():
        scheduler.add_job(_guarded(name, func), "interval", seconds=seconds, id=name, name=name)
    return scheduler
