"""The check-in cadence from rules/cadence.toml, and the due times of a case's phases.

In: the incident date (or the request date), the case's opening time and the time zone.
Out: (phase, due time, template) for every phase still ahead when the case opens, never
within the first 24 hours after the request.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from functools import lru_cache
from pathlib import Path
from zoneinfo import ZoneInfo

from mailbot.errors import RulesError
from mailbot.rules import load_toml, require

QUIET_AFTER_REQUEST = timedelta(hours=24)


@dataclass(frozen=True)
class Phase:
    name: str
    template: str
    after_hours: int | None = None
    after_days: int | None = None
    before_anniversary_days: int | None = None


@dataclass(frozen=True)
class Cadence:
    phases: tuple[Phase, ...]
    send_hour: int
    grace: timedelta

    def template(self, phase: str) -> str:
        return next((p.template for p in self.phases if p.name == phase), "manual")


@lru_cache(maxsize=4)
def load(rules_dir: Path) -> Cadence:
    path = rules_dir / "cadence.toml"
    data = load_toml(path)
    phases = []
    for index, raw in enumerate(require(path, data, "phase", list)):
        where = f"{path}: phase[{index}]"
        if not isinstance(raw, dict) or not raw.get("name") or not raw.get("template"):
            raise RulesError(f"{where}: needs name and template")
        offsets = [k for k in ("after_hours", "after_days", "before_anniversary_days") if k in raw]
        if len(offsets) != 1 or not isinstance(raw[offsets[0]], int) or raw[offsets[0]] < 0:
            raise RulesError(
                f"{where} ({raw['name']}): give exactly one of after_hours, after_days, "
                "before_anniversary_days, a whole number"
            )
        phases.append(Phase(raw["name"], raw["template"], **{offsets[0]: raw[offsets[0]]}))
    send_hour = require(path, data, "send_hour", int)
    if not 0 <= send_hour <= 23:
        raise RulesError(f"{path}: send_hour: must be 0-23")
    return Cadence(
        tuple(phases), send_hour, timedelta(hours=require(path, data, "grace_hours", int))
    )


def _at_hour(day: date, hour: int, tz: ZoneInfo) -> datetime:
    return datetime.combine(day, time(hour), tzinfo=tz)


def due_times(
    cadence: Cadence, anchor: date, opened_at: datetime, tz: ZoneInfo
) -> list[tuple[Phase, datetime]]:
    """The phases still ahead for a case anchored at ``anchor`` and opened at ``opened_at``."""
    start = _at_hour(anchor, cadence.send_hour, tz)
    try:
        anniversary = anchor.replace(year=anchor.year + 1)
    except ValueError:  # 29 February
        anniversary = anchor + timedelta(days=365)
    planned = []
    for phase in cadence.phases:
        if phase.after_hours is not None:
            due = max(start, opened_at) + timedelta(hours=phase.after_hours)
        elif phase.after_days is not None:
            due = start + timedelta(days=phase.after_days)
        else:
            day = anniversary - timedelta(days=phase.before_anniversary_days or 0)
            due = _at_hour(day, cadence.send_hour, tz)
        if due >= opened_at + QUIET_AFTER_REQUEST:
            planned.append((phase, due))
    return planned
