"""`mailbot eval DIR`: extraction scored against a folder's gold.json.

Per field: accuracy over the files whose gold names the field (null counts: the extractor
must then say null too). Services: micro precision, recall and F1 over the sets. Strings are
compared case-insensitively with punctuation and spacing folded.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mailbot.errors import NotFound

FIELDS = (
    "agency",
    "city",
    "state",
    "county",
    "incident_type",
    "incident_date",
    "incident_time",
    "venue",
    "killed",
    "injured",
    "suspect_status",
    "in_person_requested",
    "contact_name",
    "contact_title",
    "contact_phone",
    "contact_email",
    "priority",
)


def fold(value: Any) -> Any:
    if isinstance(value, str):
        text = value.lower().replace("’", "'")
        text = re.sub(r"\bst\.?\s", "saint ", text)
        return " ".join(re.sub(r"[^\w\s']", " ", text).split()) or None
    return value


@dataclass
class Score:
    right: dict[str, int] = field(default_factory=dict)
    total: dict[str, int] = field(default_factory=dict)
    misses: list[tuple[str, str, Any, Any]] = field(default_factory=list)
    tp: int = 0
    fp: int = 0
    fn: int = 0

    def add(self, name: str, field_name: str, got: Any, want: Any) -> None:
        self.total[field_name] = self.total.get(field_name, 0) + 1
        if fold(got) == fold(want):
            self.right[field_name] = self.right.get(field_name, 0) + 1
        else:
            self.misses.append((name, field_name, got, want))

    def add_services(self, name: str, got: list[str], want: list[str]) -> None:
        got_set, want_set = set(got), set(want)
        self.tp += len(got_set & want_set)
        self.fp += len(got_set - want_set)
        self.fn += len(want_set - got_set)
        if got_set != want_set:
            self.misses.append((name, "services", sorted(got_set), sorted(want_set)))

    def accuracy(self, field_name: str) -> float:
        return self.right.get(field_name, 0) / self.total[field_name]

    @property
    def services_prf(self) -> tuple[float, float, float]:
        precision = self.tp / (self.tp + self.fp) if self.tp + self.fp else 0.0
        recall = self.tp / (self.tp + self.fn) if self.tp + self.fn else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        return precision, recall, f1


def load_gold(folder: Path) -> dict[str, dict[str, Any]]:
    path = folder / "gold.json"
    try:
        gold = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise NotFound(f"{path}: no gold.json in {folder}") from None
    except json.JSONDecodeError as exc:
        raise NotFound(f"{path}:{exc.lineno}: not valid JSON: {exc.msg}") from None
    missing = [name for name in gold if not (folder / name).is_file()]
    if missing:
        raise NotFound(f"{path}: names files that are not in {folder}: {', '.join(missing[:5])}")
    return gold


def score(results: dict[str, dict[str, Any]], gold: dict[str, dict[str, Any]]) -> Score:
    out = Score()
    for name, want in sorted(gold.items()):
        got = results[name]
        for field_name in FIELDS:
            if field_name in want:
                out.add(name, field_name, got.get(field_name), want[field_name])
        if "services" in want:
            out.add_services(name, got.get("services") or [], want["services"] or [])
    return out


def report(result: Score, files: int) -> str:
    lines = [f"{files} files", f"{'field':<20} {'accuracy':>8}  right/total"]
    for field_name in FIELDS:
        if field_name in result.total:
            lines.append(
                f"{field_name:<20} {result.accuracy(field_name):>8.1%}  "
                f"{result.right.get(field_name, 0)}/{result.total[field_name]}"
            )
    precision, recall, f1 = result.services_prf
    lines.append(f"{'services':<20} P {precision:.2f}  R {recall:.2f}  F1 {f1:.2f}")
    if result.misses:
        lines.append("misses (file: field: got != expected):")
        lines.extend(f"  {n}: {f}: {g!r} != {w!r}" for n, f, g, w in result.misses)
    return "\n".join(lines)
