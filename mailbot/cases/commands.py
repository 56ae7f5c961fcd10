"""Commands in an email reply: `#status`, `#assign`, `#priority`, `#note`, `#checkin`, `#close`.

In: the new text of a reply (quoted history already removed). Out: the ``Command`` lines, one
per line that starts with `#word`; anything else in the text is not a command. Applying them
is the case service's job; this module only reads them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

KNOWN = ("status", "assign", "priority", "note", "checkin", "close")
_LINE = re.compile(r"^\s*#([a-z][a-z_-]*)\b[ \t:]*(.*?)\s*$", re.I | re.M)
USAGE = {
    "status": "#status active|monitoring|closed",
    "assign": "#assign EMAIL or #assign N (the Nth suggestion in the alert)",
    "priority": "#priority P1|P2|P3|P4",
    "note": "#note TEXT",
    "checkin": "#checkin +3d|YYYY-MM-DD|pause|resume|stop",
    "close": "#close [reason]",
}


@dataclass(frozen=True)
class Command:
    name: str
    argument: str
    line: str

    @property
    def known(self) -> bool:
        return self.name in KNOWN


def parse_commands(text: str, limit: int = 20) -> list[Command]:
    """The command lines of ``text``, in order (at most ``limit``)."""
    found = []
    for match in _LINE.finditer(text):
        found.append(Command(match.group(1).lower(), match.group(2)[:2000], match.group(0).strip()))
        if len(found) >= limit:
            break
    return found
