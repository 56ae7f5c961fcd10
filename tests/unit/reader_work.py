"""A reader work class for tests/unit/test_reader.py, loaded by name in a real worker process.

It does the real work, except for requests whose subject asks it to misbehave ("LOGME" logs
a warning that names an address):
"HANG" sleeps, "CRASH" ends the process at once (as a segfault would), "HOG" allocates
2 GiB (over the worker's address-space cap, so it fails only if the cap is applied).
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Sequence
from pathlib import Path

from mailbot.inbound.reader import Item, Read, _Work


class MisbehavingWork(_Work):
    def __init__(self, rules_dir: Path, own_address: str) -> None:
        super().__init__(rules_dir, own_address)

    def __call__(self, items: Sequence[Item]) -> dict[int, Read]:
        for _, raw in items:
            if b"Subject: LOGME" in raw:  # a warning from the worker, naming an address
                logging.getLogger("mailbot.inbound.reader").warning(
                    "reading ahead for chief@harlanpd.test"
                )
            if b"Subject: HANG" in raw:
                time.sleep(3600)
            if b"Subject: CRASH" in raw:
                os._exit(70)
            if b"Subject: HOG" in raw:
                hog = bytearray(2 * 1024**3)
                hog[-1] = 1
        return super().__call__(items)


class BrokenWork:
    """A worker that cannot start (a broken install, say)."""

    def __init__(self, rules_dir: Path, own_address: str) -> None:
        raise RuntimeError("cannot load the model")
