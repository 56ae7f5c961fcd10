"""Load and check the data files in rules/.

In: the path of a TOML file in rules/. Out: its tables as plain dicts, and compiled regular
expressions for the pattern lists in them. On failure: ``RulesError`` with a one-line message that
starts with ``FILE:LINE:`` (or ``FILE:`` when no line applies), so whoever edited the file can go
straight to the problem. Every stage that reads rules/ (filters, extraction, triage) uses these
helpers at start-up, so a bad rules file stops the program before any mail is handled.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, TypeVar

from mailbot.errors import RulesError
from mailbot.fastmatch import Gate

T = TypeVar("T")

_TOML_LINE = re.compile(r"\s*\(at line (\d+), column \d+\)$")
_TOML_END = " (at end of document)"


def load_toml(path: Path) -> dict[str, Any]:
    """The tables of a TOML file; ``RulesError`` naming the file and line if it cannot be read."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise RulesError(f"{path}: cannot read: {exc.strerror or exc}") from exc
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise RulesError(f"{path}:{line}: not valid UTF-8") from exc
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise RulesError(_toml_error(path, text, str(exc))) from exc


def _toml_error(path: Path, text: str, message: str) -> str:
    # tomllib puts the position at the end of its message: "... (at line 3, column 7)".
    found = _TOML_LINE.search(message)
    if found:
        return f"{path}:{found.group(1)}: {message[: found.start()]}"
    if message.endswith(_TOML_END):
        return f"{path}:{max(len(text.splitlines()), 1)}: {message[: -len(_TOML_END)]}"
    return f"{path}: {message}"


def require(path: Path, data: Mapping[str, Any], key: str, kind: type[T]) -> T:
    """The value at a dotted key such as ``"bounce.subjects"``, which must be of type ``kind``."""
    value: Any = data
    for part in key.split("."):
        if not isinstance(value, Mapping) or part not in value:
            raise RulesError(f"{path}: {key}: missing (expected a {kind.__name__})")
        value = value[part]
    if not isinstance(value, kind):
        raise RulesError(
            f"{_where(path, key)}: {key}: expected a {kind.__name__}, got a {type(value).__name__}"
        )
    return value


def compile_patterns(
    path: Path, key: str, patterns: list[str], flags: int = re.I
) -> list[re.Pattern[str]]:
    """Compile the regular expressions listed under ``key``; the first bad one is reported."""
    compiled = []
    for pattern in patterns:
        if not isinstance(pattern, str):
            raise RulesError(
                f"{_where(path, key)}: {key}: expected a string pattern, "
                f"got a {type(pattern).__name__}: {pattern!r}"
            )
        try:
            compiled.append(re.compile(pattern, flags))
            re.compile(f"(?:{pattern})", flags)  # as any_of joins it with others
        except re.error as exc:
            raise RulesError(
                f"{_where(path, key, pattern)}: {key}: bad pattern {pattern!r}: {exc}"
            ) from exc
    return compiled


def any_of(patterns: Iterable[re.Pattern[str]]) -> Gate:
    """One case-insensitive pattern that matches where any of ``patterns`` does: one search
    instead of one per pattern, pre-checked by RE2 (``mailbot.fastmatch``). Each must compile
    alone first (``compile_patterns`` says which one is bad), and none may set a flag inline,
    as one in the middle of a larger expression would not compile."""
    return Gate(re.compile("|".join(f"(?:{p.pattern})" for p in patterns), re.I))


def _where(path: Path, key: str, pattern: str | None = None) -> str:
    """``FILE:LINE`` for a key, or for a pattern written under it; ``FILE`` if neither is found."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError):
        return str(path)
    start = _key_line(lines, key)
    line = start
    if pattern is not None:
        # The pattern as written: literally in a '...' string, with \\ and \" in a "..." one.
        spellings = (pattern, pattern.replace("\\", "\\\\").replace('"', '\\"'))
        line = next(
            (
                number + 1
                for number in range(start - 1 if start else 0, len(lines))
                if any(spelling in lines[number] for spelling in spellings)
            ),
            start,
        )
    return f"{path}:{line}" if line else str(path)


def _key_line(lines: list[str], key: str) -> int | None:
    """The 1-based line where ``key`` is assigned, looked for below its table's header."""
    *tables, name = key.split(".")
    start = 0
    if tables:
        header = re.compile(r"^\s*\[\s*" + re.escape(".".join(tables)) + r"\s*\]")
        start = next((n for n, text in enumerate(lines) if header.match(text)), 0)
    assignment = re.compile(r"^\s*[\"']?" + re.escape(name) + r"[\"']?\s*=")
    return next((n + 1 for n in range(start, len(lines)) if assignment.match(lines[n])), None)
