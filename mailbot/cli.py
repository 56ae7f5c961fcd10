"""The command line: `mailbot COMMAND`, every command with --config PATH.

User errors (bad config, unreachable server, missing file) print one line on stderr naming
what and where and exit non-zero; no tracebacks.

Only the parser and `run` live here; the other commands are in ``mailbot.commands``, imported
when one of them runs. `mailbot run` starts the extraction workers' fork server first, which
loads the model (about 2 s) while this process imports the daemon (about 0.7 s) and connects.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable, Sequence
from typing import Any

from mailbot import config as config_mod
from mailbot.config import Config
from mailbot.errors import MailbotError
from mailbot.logs import setup as setup_logging

Handler = Callable[[argparse.Namespace, Config], int]


def _command(name: str) -> Handler:
    """The command ``name`` of ``mailbot.commands``, imported when it runs."""

    def handler(args: argparse.Namespace, cfg: Config) -> int:
        return int(getattr(importlib.import_module("mailbot.commands"), name)(args, cfg))

    handler.__name__ = name
    return handler


def cmd_run(args: argparse.Namespace, cfg: Config) -> int:
    if cfg.extraction.workers:
        from mailbot.inbound.reader import start_fork_server

        start_fork_server(cfg)  # before the daemon's imports: the model loads meanwhile
    from mailbot.daemon import Daemon

    Daemon(cfg).run()
    return 0


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", metavar="PATH", help="config file (default ./config.toml)")
    parser = argparse.ArgumentParser(
        prog="mailbot", description="MVAI email intake and case tracking", parents=[common]
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(
        name: str, handler: Handler | str, helptext: str, parent: Any = sub
    ) -> argparse.ArgumentParser:
        """A command; ``handler`` is `run`'s function, or a name in ``mailbot.commands``."""
        p = parent.add_parser(name, help=helptext, parents=[common])
        p.set_defaults(handler=handler if callable(handler) else _command(handler))
        return p

    add("run", cmd_run, "run the daemon")
    p = add("ingest", "cmd_ingest", "push .eml files through the pipeline")
    p.add_argument("files", nargs="+", metavar="FILE.eml")

    p = add("extract", "cmd_extract", "print what extraction finds in .eml files")
    p.add_argument("files", nargs="+", metavar="FILE.eml")
    p.add_argument("--json", action="store_true")
    p = add("reply-text", "cmd_reply_text", "the new text of replies (.eml, .txt or .html)")
    p.add_argument("files", nargs="+", metavar="FILE")
    p.add_argument("--json", action="store_true")
    p = add("eval", "cmd_eval", "score extraction against DIR/gold.json")
    p.add_argument("dir", metavar="DIR")

    p = add("digest", "cmd_digest", "preview or send the coordinators' daily digest")
    mode = p.add_mutually_exclusive_group(required=True)
    mode.add_argument("--preview", action="store_true", help="print it")
    mode.add_argument("--send", action="store_true", help="send it now (once per day)")
    p.add_argument("--to", metavar="EMAIL", help="one coordinator (default: all)")

    cases = sub.add_parser("cases", help="list and show cases").add_subparsers(
        dest="sub", required=True, metavar="SUBCOMMAND"
    )
    p = add("list", "cmd_cases_list", "list cases", cases)
    p.add_argument("--status")
    p.add_argument("--priority")
    p.add_argument("--json", action="store_true")
    p = add("assign", "cmd_cases_assign", "assign an advisor from the roster", cases)
    p.add_argument("ref")
    p.add_argument("email")
    p = add("show", "cmd_cases_show", "show one case and its timeline", cases)
    p.add_argument("ref")
    p.add_argument("--json", action="store_true")

    inbound = sub.add_parser("inbound", help="the ledger of received mail").add_subparsers(
        dest="sub", required=True, metavar="SUBCOMMAND"
    )
    p = add("list", "cmd_inbound_list", "list the ledger", inbound)
    p.add_argument("--status", choices=["pending", "processed", "ignored", "quarantined"])
    p.add_argument("--json", action="store_true")

    out = sub.add_parser("outbox", help="outgoing mail").add_subparsers(
        dest="sub", required=True, metavar="SUBCOMMAND"
    )
    p = add("list", "cmd_outbox_list", "list the outbox", out)
    p.add_argument("--status", choices=["pending", "sent", "failed"])
    p.add_argument("--json", action="store_true")

    quarantine = sub.add_parser("quarantine", help="messages that could not be handled")
    qsub = quarantine.add_subparsers(dest="sub", required=True, metavar="SUBCOMMAND")
    p = add("list", "cmd_quarantine_list", "list quarantined messages", qsub)
    p.add_argument("--json", action="store_true")
    p = add("replay", "cmd_quarantine_replay", "process a quarantined message again", qsub)
    p.add_argument("id", type=int)

    dbp = sub.add_parser("db", help="database").add_subparsers(
        dest="sub", required=True, metavar="SUBCOMMAND"
    )
    add("upgrade", "cmd_db_upgrade", "create or migrate the database", dbp)
    p = add("purge", "cmd_purge", "remove message bodies of old closed cases")
    p.add_argument("--closed-older-than", metavar="365d", help="default: [retention]")
    p = add("status", "cmd_status", "counters: ledger, outbox, follow-ups, last poll")
    p.add_argument("--json", action="store_true")
    add("doctor", "cmd_doctor", "check config, database, mailbox, SMTP and the NLP model")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        cfg = config_mod.load(args.config)
        # The daemon logs at the configured level; one-shot commands print their own lines.
        setup_logging(
            cfg.mailbot.log_level if args.handler is cmd_run else "WARNING",
            cfg.mailbot.log_format,
        )
        return int(args.handler(args, cfg))
    except MailbotError as exc:
        print(f"mailbot: {exc}", file=sys.stderr)
        return 2 if isinstance(exc, config_mod.ConfigError) else 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0
