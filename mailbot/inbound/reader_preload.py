"""Imported by the extraction workers' fork server (see ``mailbot.inbound.reader``): loads the
rules, the place gazetteer and the spaCy pipeline once, so every worker forked from it shares
one copy of the model instead of loading its own.

The daemon names the rules directory and its log format in the environment it starts the fork
server with. Only the fork server imports this module (importing it elsewhere would load the
model and set that process's logging to WARNING). Anything that goes wrong here is left to the
worker: it loads the same things itself, and says what is wrong the way it always did.
"""

from __future__ import annotations

import gc
import os
from pathlib import Path

from mailbot.inbound.reader import PRELOAD_LOG_FORMAT_ENV, PRELOAD_RULES_ENV, work_modules


def _warm_up(rules: Path) -> None:
    """Extract the bundled sample requests once (``extraction.warm_up``): what the rules and
    the pipeline build on first use is then built here and shared by every worker, rather
    than built in each. The memory the samples' own work used is given back before the fork."""
    from mailbot.inbound import extraction
    from mailbot.inbound.reader import _release_freed_memory

    extraction.warm_up(rules)
    gc.collect()
    _release_freed_memory()()


def _preload() -> None:
    rules = os.environ.get(PRELOAD_RULES_ENV)
    if not rules:
        return
    from mailbot.logs import setup as setup_logging

    # a warning here (no model: rules only) is in the daemon's format and redacted
    setup_logging("WARNING", os.environ.get(PRELOAD_LOG_FORMAT_ENV, "text"))
    try:
        extraction, _, _ = work_modules()  # all a worker imports, shared by every worker
        extraction.preload(Path(rules))
        _warm_up(Path(rules))
    except Exception:  # noqa: BLE001 - the worker loads again and reports it
        return
    # what is loaded now is never freed: keep the collector from writing to its pages (which
    # would copy them into every worker)
    gc.freeze()


_preload()
