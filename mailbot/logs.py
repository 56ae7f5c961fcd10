"""Logging: one line per event, to stderr, with no message bodies and no secrets.

Pipeline and outbox lines carry ids, kinds, case references, outcomes and timings only. Email
addresses that reach a log line through an error text are redacted to their domain.
"""

from __future__ import annotations

import logging
import re
import sys

_ADDRESS = re.compile(r"[\w.+-]+@([\w-]+\.[\w.-]+)")


class RedactingFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return _ADDRESS.sub(r"…@\1", super().format(record))


def setup(level: str = "INFO") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        RedactingFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s", "%Y-%m-%dT%H:%M:%S")
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for noisy in ("mailparser", "apscheduler", "alembic", "imapclient"):
        logging.getLogger(noisy).setLevel(logging.ERROR)
