"""Priority from rules/triage.toml: the first rule that holds decides; its reason is stored.

In: the request text, the incident date and the request's date. Out: (priority, reason).
A rule's conditions are described at the top of rules/triage.toml.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date
from functools import lru_cache
from pathlib import Path

from mailbot.errors import RulesError
from mailbot.inbound.extraction.milestones import days_to_milestone
from mailbot.rules import compile_patterns, load_toml, require
from mailbot.vocabulary import PRIORITIES


@dataclass(frozen=True)
class Rule:
    priority: str
    reason: str
    patterns: tuple[re.Pattern[str], ...]
    max_days: int | None
    needs_incident: bool
    suspect: str | None
    milestone_days: int | None = None


@lru_cache(maxsize=4)
def load_rules(rules_dir: Path) -> tuple[Rule, ...]:
    path = rules_dir / "triage.toml"
    data = load_toml(path)
    rules = []
    for index, raw in enumerate(require(path, data, "rule", list)):
        where = f"rule[{index}]"
        if not isinstance(raw, dict) or raw.get("priority") not in PRIORITIES:
            raise RulesError(f"{path}: {where}: priority must be one of {', '.join(PRIORITIES)}")
        rules.append(
            Rule(
                raw["priority"],
                str(raw.get("reason") or raw["priority"]),
                tuple(compile_patterns(path, f"{where}.patterns", list(raw.get("patterns", [])))),
                int(raw["max_days"]) if "max_days" in raw else None,
                bool(raw.get("incident", False)),
                raw.get("suspect"),
                int(raw["milestone_days"]) if "milestone_days" in raw else None,
            )
        )
    last = rules[-1] if rules else None
    if last is None or last.patterns or last.max_days is not None or last.suspect:
        raise RulesError(f"{path}: the last rule must have no condition (the default)")
    return tuple(rules)


def priority(
    rules: tuple[Rule, ...],
    text: str,
    incident: date | None,
    sent: date,
    has_incident: bool,
    suspect: str | None = None,
) -> tuple[str, str]:
    for rule in rules:
        if rule.suspect is not None and rule.suspect != suspect:
            continue
        if rule.milestone_days is not None:
            if not any(p.search(text) for p in rule.patterns):
                continue
            ahead = days_to_milestone(text, sent, incident, rule.patterns)
            if ahead is None or ahead > rule.milestone_days:
                continue
        elif rule.patterns and not any(p.search(text) for p in rule.patterns):
            continue
        if rule.max_days is not None:
            if incident is None or not 0 <= (sent - incident).days <= rule.max_days:
                continue
            days = (sent - incident).days
            return rule.priority, f"{rule.reason} ({days} day{'s' if days != 1 else ''} before)"
        if rule.needs_incident and not has_incident:
            continue
        return rule.priority, rule.reason
    return "P3", "no rule matched"
