"""APScheduler drives the daemon's timed work; all state lives in our tables.

Jobs (in-memory job store, interval and cron only, never pickled): outbox retries, the
follow-up sweep and the daily digest. A job that fails is logged and runs again next time.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import tzinfo

from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.cron import CronTrigger

log = logging.getLogger(__name__)


def _guarded(name: str, func: Callable[[], object]) -> Callable[[], None]:
    def run() -> None:
        try:
            func()
        except Exception as exc:  # a failing job must not stop the scheduler
            log.error("job %s failed: %s: %s", name, type(exc).__name__, exc)

    return run


def make_scheduler(
    interval_jobs: dict[str, tuple[Callable[[], object], float]],
    daily_jobs: dict[str, tuple[Callable[[], object], int, int, tzinfo]] | None = None,
) -> BackgroundScheduler:
    """Interval jobs (name -> function, seconds) and daily cron jobs (function, hour, minute,
    time zone), in the in-memory job store."""
    scheduler = BackgroundScheduler(job_defaults={"coalesce": True, "max_instances": 1})
    for name, (func, seconds) in interval_jobs.items():
        scheduler.add_job(_guarded(name, func), "interval", seconds=seconds, id=name, name=name)
    for name, (func, hour, minute, tz) in (daily_jobs or {}).items():
        trigger = CronTrigger(hour=hour, minute=minute, timezone=tz)
        scheduler.add_job(_guarded(name, func), trigger, id=name, name=name)
    return scheduler
