"""Shared pieces of the end-to-end benchmarks: the test bed, the daemon, the machine's load.

Every benchmark starts the real test bed of tests/testbed.py (Dovecot IMAP + LMTP, and the
in-process relay with ``queue = True``, which answers 250 once it has taken a message and
hands it to Dovecot's LMTP right after, like a real MTA: the LeanRelay below, the tests'
SmtpRelay with a small SMTP server of its own), runs ``python -m mailbot run`` as a
subprocess exactly as tests/e2e/daemon.py does, and stops everything it started by PID (the
test bed stops Dovecot through its process group) when it leaves its ``with`` block.
"""

from __future__ import annotations

import contextlib
import os
import platform
import re
import smtplib
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from email import message_from_bytes
from email.utils import parseaddr
from pathlib import Path
from typing import BinaryIO

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.e2e.daemon import PASSWORD, MailbotProcess, imap_config  # noqa: E402
from tests.testbed import (  # noqa: E402
    LOOPBACK,
    Dovecot,
    ReceivedMail,
    SmtpRelay,
    dovecot_binary,
)

MVAI = "mvai@mvai.test"
COORDINATOR = "coord@mvai.test"
PYTHON = str(ROOT / ".venv" / "bin" / "python")
# No per-sender cap on acknowledgements (generated agencies write many times) and no digest
# at start-up: the benchmarks measure the intake path only.
EXTRA_CONFIG = """
[limits]
auto_replies_per_sender_per_day = 1000000

[digest]
enabled = false
"""
_MESSAGE_ID = re.compile(rb"^message-id:\s*<([^>]*)>", re.IGNORECASE | re.MULTILINE)


def uptime() -> str:
    """The load averages right now (`uptime`), to print beside each measurement."""
    out = subprocess.run(["uptime"], capture_output=True, text=True, check=False).stdout
    return out.strip().split("load average:")[-1].strip()


def machine() -> str:
    """nproc, memory, CPU model and Python, one line."""
    mem_kb = 0
    model = platform.processor() or "?"
    with contextlib.suppress(OSError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_kb = int(line.split()[1])
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return (
        f"{code_state()}; nproc={os.cpu_count()}, memory={mem_kb / 1024 / 1024:.1f} GiB, "
        f"cpu={model}, python={platform.python_version()}"
    )


def code_state() -> str:
    """The commit and the uncommitted changes under mailbot/ (others edit it while we measure)."""

    def git(*args: str) -> str:
        done = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=False)
        return done.stdout.strip()

    dirty = git("status", "--short", "--", "mailbot", "rules").splitlines()
    head = git("rev-parse", "--short", "HEAD")
    return f"commit {head}, {len(dirty)} changed files in mailbot/ rules/"


def command_line() -> str:
    """How this script was run, as a command to paste (relative to the project root)."""
    script = Path(sys.argv[0]).resolve()
    with contextlib.suppress(ValueError):
        script = script.relative_to(ROOT)
    return " ".join([".venv/bin/python", str(script), *sys.argv[1:]])


def message_id(raw: bytes) -> str | None:
    """The Message-ID (without <>) of a raw message, read from its header only."""
    head = raw.split(b"\r\n\r\n", 1)[0].split(b"\n\n", 1)[0]
    found = _MESSAGE_ID.search(head)
    return found.group(1).decode(errors="replace") if found else None


_ADDRESS = re.compile(rb"[A-Za-z0-9._+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}")


def addresses(raw: bytes) -> set[str]:
    """Every address written anywhere in a message (a forward names its original sender in
    the body, and the acknowledgement goes there), lower case."""
    return {found.decode().lower() for found in _ADDRESS.findall(raw)}


def sender(raw: bytes) -> str:
    """The From address of a raw message, lower case."""
    head = raw.split(b"\n\n", 1)[0]
    return parseaddr(message_from_bytes(head + b"\n\n")["From"] or "")[1].lower()


def acks_sent(relay: SmtpRelay) -> int:
    """How many acknowledgements the relay has taken (Message-ID ack.<case ref>@...)."""
    return sum(
        1 for mail in list(relay.received) if (message_id(mail.data) or "").startswith("ack.")
    )


def alerts_sent(relay: SmtpRelay) -> int:
    return sum(
        1 for mail in list(relay.received) if (message_id(mail.data) or "").startswith("alert.")
    )


def rss_kb(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM (peak) of a process, in kB."""
    values: dict[str, int] = {}
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            key, _, rest = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                values[key] = int(rest.split()[0])
    return values


def descendants(pid: int) -> list[int]:
    """Child processes of pid, and theirs (the daemon's extraction workers)."""
    found: list[int] = []
    todo = [pid]
    while todo:
        current = todo.pop()
        for task in Path(f"/proc/{current}/task").glob("*"):
            with contextlib.suppress(OSError):
                children = [int(c) for c in (task / "children").read_text().split()]
                found += children
                todo += children
    return found


TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU of pid and of its children it has waited for (0 if gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return 0.0
    # after the name: state is field 3, so utime..cstime (14-17) are items 11-14 here
    return sum(int(x) for x in fields[11:15]) / TICKS


def tree_cpu_seconds(pids: Iterable[int]) -> float:
    """cpu_seconds summed over pids and all their descendants."""
    every = set()
    for pid in pids:
        every |= {pid, *descendants(pid)}
    return sum(cpu_seconds(pid) for pid in every)


def machine_busy_seconds() -> tuple[float, float]:
    """(busy CPU seconds, all CPU seconds) of the whole machine since boot (/proc/stat)."""
    values = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = values[3] + values[4]  # idle + iowait
    return (sum(values) - idle) / TICKS, sum(values) / TICKS


def machine_steal_seconds() -> float:
    """CPU seconds since boot that this VM's cores wanted to run but the host gave to someone
    else (/proc/stat "steal"; counted as busy above): a run with much of it ran slower for a
    reason outside the machine."""
    return int(Path("/proc/stat").read_text().splitlines()[0].split()[8]) / TICKS


def tree_rss_kb(pid: int) -> dict[str, int]:
    """rss_kb summed over pid and its descendants. The summed VmHWM is the sum of each
    process's own peak: an upper bound of the peak of the whole (peaks need not coincide)."""
    total: dict[str, int] = {"VmRSS": 0, "VmHWM": 0, "processes": 0}
    for each in [pid, *descendants(pid)]:
        values = rss_kb(each)
        if values:
            total["processes"] += 1
            for key in ("VmRSS", "VmHWM"):
                total[key] += values.get(key, 0)
    return total


DAEMON, FORK_SERVER, WORKER = "daemon", "fork server (model loaded once)", "extraction worker"


def process_roles(pid: int) -> dict[int, str]:
    """The role of the daemon (pid) and of each of its descendants: multiprocessing's fork
    server and resource tracker, and the extraction workers, children of the server (they
    share its command line, so they are told apart by their parent)."""
    roles = {pid: DAEMON}
    for each in descendants(pid):  # a parent comes before its children
        try:
            cmdline = Path(f"/proc/{each}/cmdline").read_bytes()
            parent = int(Path(f"/proc/{each}/stat").read_text().rpartition(")")[2].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        if roles.get(parent) == FORK_SERVER:
            roles[each] = WORKER
        elif b"forkserver" in cmdline:
            roles[each] = FORK_SERVER
        elif b"resource_tracker" in cmdline:
            roles[each] = "resource tracker"
        else:
            roles[each] = "other child"
    return roles


def memory_by_process(pid: int) -> list[tuple[str, int, int]]:
    """(role, PSS kB, private kB) of pid and each descendant (``process_roles``). Summed, the
    PSS counts each shared page once (split between its sharers), unlike summed RSS: the
    memory the daemon takes from the machine, the workers' shared model once."""
    rows = []
    for each, role in process_roles(pid).items():
        fields = {}
        try:
            for line in Path(f"/proc/{each}/smaps_rollup").read_text().splitlines()[1:]:
                key, _, rest = line.partition(":")
                fields[key] = int(rest.split()[0])
        except (OSError, ValueError, IndexError):
            continue
        private = fields.get("Private_Clean", 0) + fields.get("Private_Dirty", 0)
        rows.append((role, fields.get("Pss", 0), private))
    return rows


@contextlib.contextmanager
def database(kind: str) -> Iterator[str]:
    """Where write_config puts the daemon's database: "sqlite" (a file in the run's folder),
    or "postgresql": a PostgreSQL 15 started here on 127.0.0.1 as the tests start it
    (tests/pg.py: fsync and synchronous_commit off, as for a test server), a fresh migrated
    database per folder. Yields a description for the output."""
    if kind == "sqlite":
        yield "SQLite (WAL, synchronous=NORMAL)"
        return
    from tests.conftest import configs_on_postgres

    with configs_on_postgres():
        yield "PostgreSQL 15 on 127.0.0.1 (tests/pg.py: fsync=off, synchronous_commit=off)"


class LeanRelay(SmtpRelay):
    """SmtpRelay's queue, hold and LMTP courier behind a small SMTP server of its own: plain
    SMTP on loopback (EHLO/HELO, MAIL, RCPT, DATA, RSET, NOOP, QUIT; no AUTH, no TLS, no
    PIPELINING), one thread per connection, buffered line reads. The relay stands for the
    agencies' mail servers, which in use are not on mailbot's machine, but here it runs on the
    same two cores: aiosmtpd took 0.90 ms of CPU per mail (2 mails per request), this one
    0.26 ms. RCPT is still checked against Dovecot's LMTP (once per address, as with queue)."""

    LINE = 1002  # RFC 5321 4.5.3.1.6: 1000 octets with the CRLF; a longer line is refused

    def start(self) -> None:
        if self.username or self.password or self.tls or self.xoauth2 or not self.queue:
            raise ValueError("LeanRelay: plain SMTP with queue = True only")
        if getattr(self, "_listener", None) is not None:
            return
        self._listener: socket.socket | None = socket.create_server((LOOPBACK, self.port))
        self._acceptor = threading.Thread(target=self._accept, daemon=True, name="lean-relay")
        self._acceptor.start()

    def stop(self) -> None:
        listener, self._listener = getattr(self, "_listener", None), None
        if listener is not None:
            # shutdown wakes the thread blocked in accept(); close alone does not on Linux
            with contextlib.suppress(OSError):
                listener.shutdown(socket.SHUT_RDWR)
            listener.close()
            self._acceptor.join(10)
        super().stop()

    def _accept(self) -> None:
        assert self._listener is not None
        while True:
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        with conn, conn.makefile("rb") as lines:
            send = conn.sendall
            send(b"220 relay.testbed.test ESMTP\r\n")
            mail_from: str | None = None
            rcpts: list[str] = []
            while line := lines.readline(self.LINE):
                if not line.endswith(b"\r\n"):
                    send(b"500 5.5.2 Line too long or not ended by CRLF\r\n")
                    return
                verb, _, arg = line[:-2].decode("utf-8", "replace").partition(" ")
                verb = verb.upper()
                if verb == "EHLO":
                    send(b"250-relay.testbed.test\r\n250-8BITMIME\r\n250 SMTPUTF8\r\n")
                elif verb == "HELO":
                    send(b"250 relay.testbed.test\r\n")
                elif verb == "MAIL" and arg.upper().startswith("FROM:"):
                    mail_from, rcpts = _path(arg[5:]), []
                    send(b"250 2.1.0 OK\r\n")
                elif verb == "RCPT" and arg.upper().startswith("TO:") and mail_from is not None:
                    address = _path(arg[3:])
                    reply = self._rcpt(address)
                    if reply.startswith("250"):
                        rcpts.append(address)
                    send(reply.encode() + b"\r\n")
                elif verb == "DATA" and rcpts:
                    send(b"354 End data with <CR><LF>.<CR><LF>\r\n")
                    data = self._data(lines)
                    if data is None:
                        send(b"500 5.5.2 Line too long (see RFC5321 4.5.3.1.6)\r\n")
                        return
                    self.received.append(ReceivedMail(mail_from or "", tuple(rcpts), data))
                    self._enqueue(mail_from or "", tuple(rcpts), data)
                    mail_from, rcpts = None, []
                    send(b"250 2.0.0 Message queued\r\n")
                elif verb == "RSET":
                    mail_from, rcpts = None, []
                    send(b"250 2.0.0 OK\r\n")
                elif verb == "NOOP":
                    send(b"250 2.0.0 OK\r\n")
                elif verb == "QUIT":
                    send(b"221 2.0.0 Bye\r\n")
                    return
                elif verb in ("MAIL", "RCPT", "DATA"):
                    send(b"503 5.5.1 Bad sequence of commands\r\n")
                else:
                    send(b"502 5.5.2 Command not implemented\r\n")

    def _rcpt(self, address: str) -> str:
        if address.lower() in {rcpt.lower() for rcpt in self.reject_recipients}:
            return "550 5.1.1 Recipient rejected by the test bed"
        if address.lower() not in self._verified:
            code, text = self._probe_recipient(address)
            if code != 250:
                return f"{code} {text}"
            self._verified.add(address.lower())
        return "250 2.1.5 OK"

    def _data(self, lines: BinaryIO) -> bytes | None:
        """The message up to the lone dot, dot-unstuffed, with its CRLFs; None for a line
        that is too long (the rest of the message is read and dropped first)."""
        parts: list[bytes] = []
        too_long = False
        while line := lines.readline(self.LINE):
            if line == b".\r\n":
                return None if too_long else b"".join(parts)
            if not line.endswith(b"\r\n"):
                too_long = True
                continue
            parts.append(line[1:] if line.startswith(b".") else line)
        return None  # the client went away mid-message: nothing is queued


RELAYS: dict[str, type[SmtpRelay]] = {"lean": LeanRelay, "aiosmtpd": SmtpRelay}


def _path(arg: str) -> str:
    """The address of a MAIL FROM or RCPT TO argument: "<a@b> SIZE=10" -> "a@b"."""
    arg = arg.strip()
    if arg.startswith("<"):
        return arg[1:].partition(">")[0]
    return arg.partition(" ")[0]


@contextlib.contextmanager
def testbed(users: Iterable[str], relay_kind: str = "lean") -> Iterator[tuple[Dovecot, SmtpRelay]]:
    """Dovecot with mvai@, coord@ and every address in users; a queueing relay into it: the
    LeanRelay, or with relay_kind "aiosmtpd" the tests' SmtpRelay (as before session 10).

    Every sender of a generated request must be a Dovecot user: the relay asks Dovecot's LMTP
    at RCPT, so an acknowledgement to an unknown address would be refused.
    """
    if relay_kind not in RELAYS:
        raise ValueError(f"relay_kind must be one of {sorted(RELAYS)}, not {relay_kind!r}")
    if dovecot_binary() is None:
        raise SystemExit("dovecot is not installed (Debian: dovecot-imapd dovecot-lmtpd)")
    accounts = {MVAI: PASSWORD, COORDINATOR: PASSWORD}
    accounts.update({address: PASSWORD for address in users})
    dovecot = Dovecot()
    # add_user rewrites the whole passwd-file each time; write it once, before the start.
    dovecot._users.update(accounts)
    dovecot.users_path.write_text("".join(f"{u}:{{PLAIN}}{p}::::::\n" for u, p in accounts.items()))
    with dovecot:
        relay = RELAYS[relay_kind](dovecot)
        relay.queue = True  # 250 once queued, LMTP delivery right after: a real MTA
        with relay:
            yield dovecot, relay


def lmtp_bulk(dovecot: Dovecot, rcpt: str, raws: Sequence[bytes], per_session: int = 200) -> None:
    """Deliver raws to rcpt over Dovecot's LMTP, many messages per session (fast)."""
    for start in range(0, len(raws), per_session):
        with smtplib.LMTP(LOOPBACK, dovecot.lmtp_port, timeout=60) as client:
            for raw in raws[start : start + per_session]:
                client.sendmail("loader@bench.test", [rcpt], raw)


def mailbot_process(
    folder: Path, dovecot: Dovecot, relay: SmtpRelay, extra: str = ""
) -> MailbotProcess:
    """The daemon (not started) configured for the test bed, its files in folder."""
    folder.mkdir(parents=True, exist_ok=True)
    return MailbotProcess(imap_config(folder, dovecot, relay.port, EXTRA_CONFIG + extra))


def wait_for_log(proc: MailbotProcess, text: str, offset: int, timeout: float) -> float:
    """Poll the daemon's log every 10 ms until text appears after offset; monotonic time seen."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if text in proc.log()[offset:]:
            return time.monotonic()
        if proc.proc is not None and proc.proc.poll() is not None:
            raise RuntimeError(f"mailbot exited {proc.proc.returncode}:\n{proc.log()[-3000:]}")
        time.sleep(0.01)
    raise TimeoutError(f"no {text!r} in the log after {timeout}s:\n{proc.log()[-3000:]}")


def spawn(proc: MailbotProcess) -> tuple[float, int]:
    """Start the daemon without waiting; (monotonic start time, log offset)."""
    offset = proc.log_path.stat().st_size if proc.log_path.exists() else 0
    log = proc.log_path.open("ab")
    started = time.monotonic()
    proc.proc = subprocess.Popen(
        [sys.executable, "-m", "mailbot", "run", "--config", str(proc.config)],
        cwd=proc.config.parent,
        stdout=log,
        stderr=subprocess.STDOUT,
        env=proc.env,
    )
    log.close()
    return started, offset


def percentile(values: Sequence[float], pct: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(pct / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


def summary(values: Sequence[float]) -> str:
    return (
        f"p50 {percentile(values, 50):.3f} s, p95 {percentile(values, 95):.3f} s, "
        f"max {max(values):.3f} s, mean {statistics.fmean(values):.3f} s"
    )


def table(rows: Sequence[Sequence[str]]) -> str:
    """A Markdown table; the first row is the header."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = [
        "| " + " | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) + " |"
        for row in rows
    ]
    lines.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(lines)
