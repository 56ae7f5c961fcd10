"""Signs of a personal crisis in a message, from rules/crisis.toml.

In: text (a request, or the new text of a reply). Out: the sentence that raised the alarm,
or None. The perpetrator's own suicide, a common part of incident reports, is excluded.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from mailbot.rules import compile_patterns, load_toml, require


@dataclass(frozen=True)
class CrisisRules:
    patterns: tuple[re.Pattern[str], ...]
    exclude: tuple[re.Pattern[str], ...]


@lru_cache(maxsize=4)
def load_rules(rules_dir: Path) -> CrisisRules:
    path = rules_dir / "crisis.toml"
    data = load_toml(path)
    return CrisisRules(
        tuple(
            compile_patterns(
                path, "patterns", [rf"\b(?:{p})" for p in require(path, data, "patterns", list)]
            )
        ),
        tuple(compile_patterns(path, "exclude", require(path, data, "exclude", list))),
    )


def detect(rules: CrisisRules, text: str) -> str | None:
    """The first sentence that shows a sign of crisis (perpetrator suicide excluded)."""
    for sentence in re.split(r"(?<=[.!?])\s+|\n\s*\n", text):
        flat = " ".join(sentence.split())
        if any(p.search(flat) for p in rules.exclude):
            continue
        if any(p.search(flat) for p in rules.patterns):
            return flat[:300]
    return None
