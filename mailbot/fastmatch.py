"""A faster "is there a match?" for the rules' large case-insensitive alternations.

Python's ``re`` tries each alternative of ``(?:a)|(?:b)|...`` at each position of the text, so
the gates of the extraction rules (any phrase of a service area, any incident statement) cost
about 20 us per sentence. RE2 (the ``google-re2`` package) runs all alternatives at once.
RE2 has no look-arounds and differs from ``re`` on some input, so here it only rules text out:

- it gets the pattern without its look-arounds, which can only match more, never less;
- it is asked only about text on which both engines read every construct the same way: ASCII
  (``\\b``, ``\\w``, ``\\d`` and case-folding are ASCII in RE2) without ``\\v`` or
  ``\\x1c``-``\\x1f`` (``re``'s ``\\s`` matches them, RE2's does not);
- a pattern RE2 cannot take (a back-reference, ``$``, which ``re`` also matches before a final
  newline) gets no pre-check.

Where RE2 finds a match, or cannot be asked, ``re`` answers: the result is always ``re``'s.
Without google-re2 installed every search is ``re``'s.
"""

from __future__ import annotations

import re
from typing import Any

try:
    import re2
except ImportError:  # pragma: no cover - google-re2 is a dependency; this keeps mailbot working
    re2 = None

_LOOKAROUNDS = ("(?=", "(?!", "(?<=", "(?<!")


def _class_end(pattern: str, start: int) -> int:
    """The index after the character class that opens at ``start`` ("[")."""
    i = start + 1
    if pattern.startswith("^", i):
        i += 1
    if pattern.startswith("]", i):  # a "]" first is a member
        i += 1
    while i < len(pattern):
        if pattern[i] == "\\":
            i += 2
            continue
        if pattern[i] == "]":
            return i + 1
        i += 1
    raise ValueError("unterminated character class")


def _group_end(pattern: str, start: int) -> int:
    """The index after the group that opens at ``start`` ("(")."""
    depth, i = 0, start
    while i < len(pattern):
        char = pattern[i]
        if char == "\\":
            i += 2
            continue
        if char == "[":
            i = _class_end(pattern, i)
            continue
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
            if depth == 0:
                return i + 1
        i += 1
    raise ValueError("unbalanced parenthesis")


def without_lookarounds(pattern: str) -> str | None:
    """``pattern`` with its look-around groups taken out (it then matches a superset), or None
    where RE2 would read it otherwise: ``$`` outside a class."""
    out: list[str] = []
    i = 0
    try:
        while i < len(pattern):
            char = pattern[i]
            if char == "\\":
                out.append(pattern[i : i + 2])
                i += 2
            elif char == "[":
                end = _class_end(pattern, i)
                out.append(pattern[i:end])
                i = end
            elif char == "$":
                return None
            elif pattern.startswith(_LOOKAROUNDS, i):
                i = _group_end(pattern, i)
            else:
                out.append(char)
                i += 1
    except ValueError:
        return None
    return "".join(out)


def _superset(pattern: re.Pattern[str]) -> Any:
    """An RE2 pattern that matches wherever ``pattern`` does on plain text, or None."""
    if re2 is None or pattern.flags & ~(re.I | re.U):
        return None
    stripped = without_lookarounds(pattern.pattern)
    if stripped is None:
        return None
    options = re2.Options()
    options.log_errors = False  # else RE2 writes to stderr when it refuses a pattern or its
    # DFA runs out of its memory budget (it then goes on with a slower engine)
    try:
        return re2.compile(("(?i)" if pattern.flags & re.I else "") + stripped, options)
    except Exception:  # re2.error, and anything its parser refuses
        return None


class Gate:
    """``re.Pattern.search`` with an RE2 pre-check that can only say "no match"."""

    __slots__ = ("pattern", "_re2")

    def __init__(self, pattern: re.Pattern[str]) -> None:
        self.pattern = pattern
        self._re2 = _superset(pattern)

    @property
    def checked(self) -> bool:
        """Whether RE2 pre-checks this pattern (False: ``re`` alone)."""
        return self._re2 is not None

    def search(self, text: str) -> re.Match[str] | None:
        # RE2 is given ASCII text as bytes: its wrapper then skips mapping byte offsets back
        # to characters (the same offsets in ASCII), about a fifth of a pre-check's cost.
        if (
            self._re2 is not None
            and re2_reads_alike(text)
            and self._re2.search(text.encode()) is None
        ):
            return None
        return self.pattern.search(text)


def re2_reads_alike(text: str) -> bool:
    """Whether RE2 reads ``text`` as ``re`` does: ASCII without \\v or \\x1c-\\x1f (which
    ``re``'s \\s matches and RE2's does not). Five substring tests: a character-class regex
    took longer than the RE2 search it guards (3.2 against 2.7 us on 700 characters)."""
    return text.isascii() and not (
        "\x0b" in text or "\x1c" in text or "\x1d" in text or "\x1e" in text or "\x1f" in text
    )
