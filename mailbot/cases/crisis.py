"""Signs of a personal crisis in a message, from rules/crisis.toml.

In: text (a request, or the new text of a reply). Out: the sentence that raised the alarm,
or None. The perpetrator's own suicide, a common part of incident reports, is excluded.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from mailbot.fastmatch import Gate
from mailbot.rules import any_of, compile_patterns, load_toml, require


@dataclass(frozen=True)
class CrisisRules:
    patterns: Gate  # any of the file's patterns: one search, not one per pattern
    exclude: Gate


@lru_cache(maxsize=4)
def load_rules(rules_dir: Path) -> CrisisRules:
    path = rules_dir / "crisis.toml"
    data = load_toml(path)
    patterns = [rf"\b(?:{p})" for p in require(path, data, "patterns", list)]
    return CrisisRules(
        any_of(compile_patterns(path, "patterns", patterns)),
        any_of(compile_patterns(path, "exclude", require(path, data, "exclude", list))),
    )


def detect(rules: CrisisRules, text: str) -> str | None:
    """The first sentence that shows a sign of crisis (perpetrator suicide excluded)."""
    # A sentence's words are words of the whole text too, in the same order: where the whole
    # has no sign, no sentence has one (most messages), and there is nothing to split.
    if not rules.patterns.search(" ".join(text.split())):
        return None
    for sentence in re.split(r"(?<=[.!?])\s+|\n\s*\n", text):
        flat = " ".join(sentence.split())
        if rules.exclude.search(flat):
            continue
        if rules.patterns.search(flat):
            return flat[:300]
    return None
