"""Real mail servers on loopback for the end-to-end tests.

Dovecot serves IMAP and LMTP; SmtpRelay (aiosmtpd, in-process) and Postfix (a real MTA)
accept SMTP and hand every message to Dovecot's LMTP. Every server binds 127.0.0.1 only
and lives in its own world-traversable temp dir under /tmp (pytest's tmp_path is not
traversable by Dovecot's users). Daemons run in their own process group and are stopped
by that group's id; close() or leaving the `with` block also removes the temp dir.

TLS on request: TestCA makes a throwaway CA and a server certificate for localhost and
127.0.0.1 with the openssl CLI; Dovecot(tls=True) adds IMAPS and STARTTLS with it, and
SmtpRelay(tls="starttls" | "ssl") offers STARTTLS or listens with implicit TLS.

A watchdog process beside each daemon removes it and its temp dir if the test process
dies without stopping it, so even a killed test run leaves nothing behind.
"""

from __future__ import annotations

import asyncio
import atexit
import base64
import contextlib
import grp
import os
import pwd
import queue
import secrets
import shutil
import signal
import smtplib
import socket
import ssl
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.policy import SMTP as SMTP_POLICY
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, Self

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session
from imapclient import IMAPClient

LOOPBACK = "127.0.0.1"
DEFAULT_FOLDERS = ("Archive", "Drafts", "Junk", "Sent", "Trash")
POSTFIX_MASTER = Path("/usr/lib/postfix/sbin/master")
SBIN_PATH = "/usr/local/sbin:/usr/sbin:/sbin"
PORT_TAKEN = "Address already in use"
TLS_HOSTNAME = "localhost"  # what the test certificate is for, besides 127.0.0.1


class TestbedError(RuntimeError):
    """A test-bed server failed to start or refused something; the message says why."""

    __test__ = False  # not a test class, whatever pytest thinks of the name


def dovecot_binary() -> str | None:
    """Path of the dovecot binary (sbin is often missing from a user's PATH), or None."""
    return shutil.which("dovecot") or shutil.which("dovecot", path=SBIN_PATH)


def postfix_binary() -> str | None:
    """Path of Postfix's master daemon (Debian layout), or None."""
    return str(POSTFIX_MASTER) if os.access(POSTFIX_MASTER, os.X_OK) else None


def openssl_binary() -> str | None:
    """Path of the openssl CLI (TestCA needs it), or None."""
    return shutil.which("openssl")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        return int(sock.getsockname()[1])


def send_mail(
    host: str,
    port: int,
    message: bytes | str | EmailMessage,
    mail_from: str,
    rcpt_tos: str | Sequence[str],
    *,
    username: str | None = None,
    password: str | None = None,
    timeout: float = 10.0,
) -> dict[str, tuple[int, bytes]]:
    """Send one message over SMTP; return the refused recipients (smtplib raises if all are)."""
    if isinstance(message, EmailMessage):
        message = message.as_bytes(policy=SMTP_POLICY)
    recipients = [rcpt_tos] if isinstance(rcpt_tos, str) else list(rcpt_tos)
    with smtplib.SMTP(host, port, timeout=timeout) as client:
        if username is not None:
            client.login(username, password or "")
        return client.sendmail(mail_from, recipients, message)


def lmtp_deliver(
    port: int, mail_from: str, rcpt: str, data: bytes, *, timeout: float = 10.0
) -> tuple[int, str]:
    """Deliver to one recipient over LMTP on 127.0.0.1; return the server's (code, text).

    One recipient per session on purpose: smtplib reads one reply after DATA, while LMTP
    sends one per recipient.
    """
    try:
        with smtplib.LMTP(LOOPBACK, port, timeout=timeout) as client:
            return lmtp_transaction(client, mail_from, rcpt, data)
    except (OSError, smtplib.SMTPException) as error:
        return 451, f"4.4.1 LMTP server unreachable: {error}"


def lmtp_transaction(
    client: smtplib.LMTP, mail_from: str, rcpt: str, data: bytes
) -> tuple[int, str]:
    """One delivery on an open LMTP connection: the server's (code, text) for rcpt. A broken
    connection raises (OSError or SMTPException) for the caller to handle."""
    try:
        client.sendmail(mail_from, [rcpt], data)
    except smtplib.SMTPRecipientsRefused as refused:
        code, text = refused.recipients[rcpt]
        return code, text.decode(errors="replace")
    except smtplib.SMTPResponseException as error:
        return error.smtp_code, error.smtp_error.decode(errors="replace")
    return 250, "2.0.0 Delivered"


def _world_dir(prefix: str) -> Path:
    path = Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))
    path.chmod(0o755)
    return path


def _greets(port: int, prefix: bytes, context: ssl.SSLContext | None = None) -> bool:
    """Whether port answers with prefix; with context, after a TLS handshake (implicit TLS)."""
    try:
        with socket.create_connection((LOOPBACK, port), timeout=0.5) as sock:
            if context is None:
                return sock.recv(512).startswith(prefix)
            with context.wrap_socket(sock, server_hostname=TLS_HOSTNAME) as tls:
                return tls.recv(512).startswith(prefix)
    except OSError:  # ssl.SSLError included
        return False


_OPENSSL_CONFIG = """# Generated by tests/testbed.py.
[req]
distinguished_name = dn
prompt = no
[dn]
CN = unused
[ca]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
[server]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = DNS:{hostname}, IP:{ip}
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always
"""


@dataclass(frozen=True)
class TestCA:
    """A throwaway CA and one server certificate it signed, as PEM files in one folder.

    ca_path is what a client trusts (a config's ca_file); cert_path and key_path are the
    server's, for DNS:localhost and IP:127.0.0.1 (subjectAltName). EC P-256 keys, valid
    for a week, extensions that pass strict X.509 checking; create() takes ~40 ms.
    """

    __test__ = False  # not a test class, whatever pytest thinks of the name

    ca_path: Path
    cert_path: Path
    key_path: Path

    @classmethod
    def create(cls, directory: Path) -> TestCA:
        """Make the CA and the server certificate in directory (created if need be)."""
        openssl = openssl_binary()
        if openssl is None:
            raise TestbedError("openssl is not installed (Debian: openssl)")
        directory.mkdir(mode=0o755, parents=True, exist_ok=True)
        config = directory / "openssl.cnf"
        config.write_text(_OPENSSL_CONFIG.format(hostname=TLS_HOSTNAME, ip=LOOPBACK))
        ca_key, csr = directory / "ca.key", directory / "server.csr"
        ca = cls(directory / "ca.pem", directory / "server.pem", directory / "server.key")
        new_key = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]
        steps: list[list[str | Path]] = [
            ["req", "-x509", "-new", *new_key, "-config", config, "-extensions", "ca"]
            + ["-subj", "/CN=mailbot test bed CA", "-days", "7"]
            + ["-keyout", ca_key, "-out", ca.ca_path],
            ["req", "-new", *new_key, "-config", config, "-subj", f"/CN={TLS_HOSTNAME}"]
            + ["-keyout", ca.key_path, "-out", csr],
            ["x509", "-req", "-in", csr, "-CA", ca.ca_path, "-CAkey", ca_key, "-days", "7"]
            + ["-set_serial", str(secrets.randbits(63)), "-extfile", config]
            + ["-extensions", "server", "-out", ca.cert_path],
        ]
        for step in steps:
            done = subprocess.run(
                [openssl, *map(str, step)], capture_output=True, text=True, check=False
            )
            if done.returncode != 0:
                raise TestbedError(f"openssl {step[0]} failed: {done.stderr.strip()}")
        for key in (ca_key, ca.key_path):
            key.chmod(0o600)  # Dovecot reads its key as root, before dropping privileges
        return ca

    def server_context(self) -> ssl.SSLContext:
        """A server-side context presenting the certificate (aiosmtpd, or a test's own)."""
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self.cert_path, self.key_path)
        return context

    def client_context(self) -> ssl.SSLContext:
        """A verifying client context that trusts this CA only (hostname checked too)."""
        return ssl.create_default_context(cafile=str(self.ca_path))


# Run beside each daemon: when the test process dies without stopping it (SIGKILL, a CI
# timeout), the pipe on stdin closes and this removes the daemon's group and temp dir.
# (PR_SET_PDEATHSIG cannot do it: Dovecot and Postfix change credentials, which clears it.)
_WATCHDOG = (
    'while read -r _; do :; done; kill -s TERM -- "-$1" 2>/dev/null && sleep 1 && '
    'kill -s KILL -- "-$1" 2>/dev/null; rm -rf -- "$2"'
)


def _process_group(pgid: int) -> list[int]:
    """PIDs of the live (non-zombie) processes in process group pgid."""
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        state, _ppid, group = stat.rsplit(")", 1)[1].split()[:3]
        if int(group) == pgid and state != "Z":
            members.append(int(entry.name))
    return members


def _backdate(path: Path) -> None:
    """Postfix waits ~1.5 s before reading a file modified in the current second."""
    past = time.time() - 5
    os.utime(path, (past, past))


class _Daemon:
    """One server process leading its own process group, stopped through that group.

    Its stdout/stderr go to `output`; `log` is the file it logs to (often the same),
    scanned for `fatal` since the last start.
    """

    def __init__(
        self,
        argv: Sequence[str],
        root: Path,
        output: Path,
        log: Path | None = None,
        fatal: str = "Fatal:",
    ) -> None:
        self.argv = list(argv)
        self.root = root
        self.output = output
        self.log = log or output
        self.fatal = fatal
        self.process: subprocess.Popen[bytes] | None = None
        self._watchdog: subprocess.Popen[bytes] | None = None
        self._log_start = 0

    @property
    def pid(self) -> int:
        if self.process is None:
            raise TestbedError(f"{self.argv[0]} is not running")
        return self.process.pid

    def start(self) -> None:
        self._log_start = self.log.stat().st_size if self.log.exists() else 0
        with self.output.open("ab") as output:
            self.process = subprocess.Popen(
                self.argv,
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=output,
                start_new_session=True,
            )
        self._watchdog = subprocess.Popen(
            ["/bin/sh", "-c", _WATCHDOG, "testbed-watchdog", str(self.process.pid), str(self.root)],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def healthy(self) -> bool:
        """Running, with nothing fatal logged since start."""
        return self.alive() and self.fatal not in self.recent_log()

    def recent_log(self) -> str:
        """What the daemon logged since its last start."""
        try:
            with self.log.open("rb") as log:
                log.seek(self._log_start)
                return log.read().decode(errors="replace")
        except OSError:
            return ""

    def diagnostics(self, lines: int = 30) -> str:
        """The end of the log since start, and of the output when that is a separate file."""
        text = self.recent_log()
        if self.output != self.log and self.output.exists():
            text += self.output.read_text(errors="replace")
        return "\n".join(text.splitlines()[-lines:])

    def send_signal(self, signum: int) -> None:
        if self.process is not None and self.alive():
            os.kill(self.process.pid, signum)

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM the whole group and wait until it is gone; SIGKILL it if need be.

        The group, not just the master: Dovecot's master leaves the imap process of a
        connected client running (after waiting ~1 s) when only it gets SIGTERM.
        """
        if self._watchdog is not None:
            self._watchdog.kill()
            self._watchdog.wait()
            if self._watchdog.stdin is not None:
                self._watchdog.stdin.close()
            self._watchdog = None
        if self.process is None:
            return
        pgid = self.process.pid
        for signum in (signal.SIGTERM, signal.SIGKILL):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pgid, signum)
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                if self.process.poll() is not None and not _process_group(pgid):
                    self.process = None
                    return
                time.sleep(0.01)
        raise TestbedError(f"{self.argv[0]} (process group {pgid}) survived SIGKILL")


_OPEN: set[_Server] = set()  # created and not closed yet: closed at exit at the latest


@atexit.register
def _close_leftovers() -> None:
    for server in list(_OPEN):
        server.close()


class _Server:
    """Lifecycle shared by Dovecot and Postfix: start with retries, stop, restart, close."""

    root: Path
    log_path: Path
    _daemon: _Daemon
    _ever_started = False

    def _prepare(self) -> None:
        """Write config files before each start."""
        raise NotImplementedError

    def _greetings(self) -> list[tuple[int, bytes, ssl.SSLContext | None]]:
        """(port, greeting prefix, TLS context for implicit TLS or None): ready when all greet."""
        raise NotImplementedError

    def _pick_ports(self) -> None:
        """Choose new ports (the first start found one taken)."""
        raise NotImplementedError

    def start(self, timeout: float = 15.0) -> None:
        """Start the daemon and wait until it greets on every port; TestbedError if not."""
        if self.running:
            return
        for attempt in range(3):
            self._prepare()
            self._daemon.start()
            if self._wait_ready(time.monotonic() + timeout):
                self._ever_started = True
                return
            log = self._daemon.diagnostics()
            self.stop()
            if PORT_TAKEN not in log or self._ever_started or attempt == 2:
                raise TestbedError(f"{type(self).__name__} did not start:\n{log}")
            self._pick_ports()  # lost a race for a free port: only before the first start

    def _wait_ready(self, deadline: float) -> bool:
        for port, greeting, context in self._greetings():
            while not _greets(port, greeting, context):
                if not self._daemon.healthy() or time.monotonic() > deadline:
                    return False
                time.sleep(0.02)
        return True

    def stop(self) -> None:
        """Stop every process of the server (data and ports are kept for a restart)."""
        self._daemon.stop()

    def restart(self) -> None:
        """Stop, then start on the same ports with the same data."""
        self.stop()
        self.start()

    def close(self) -> None:
        """Stop and remove the temp dir."""
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)
        _OPEN.discard(self)

    @property
    def running(self) -> bool:
        return self._daemon.alive()

    def pids(self) -> list[int]:
        """The live processes of this server."""
        return _process_group(self._daemon.pid) if self.running else []

    def log(self) -> str:
        """The server's whole log so far."""
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def __enter__(self) -> Self:
        try:
            self.start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class Dovecot(_Server):
    """Dovecot serving IMAP and LMTP on 127.0.0.1 to passwd-file users, mail in Maildir.

    Users log in with their full address; add_user() works before and after start.
    Run as root, mail belongs to nobody:nogroup (Dovecot refuses uid 0); run as anyone
    else, everything runs as that user.

    With tls=True, imaps_port takes implicit TLS and imap_port offers STARTTLS (plaintext
    login stays allowed there, so the helpers below work unchanged), with the certificate
    of `ca` (clients trust ca_path, and connect to "localhost" or 127.0.0.1). LMTP stays
    plain. Without it, imaps_port is None.

    With oauth2 (the settings of Dovecot's oauth2 passdb, written to its args file, e.g.
    introspection_url), XOAUTH2 and OAUTHBEARER logins are offered and their bearer tokens
    checked by that passdb; PLAIN and LOGIN keep using the passwords.
    """

    def __init__(
        self,
        users: dict[str, str] | None = None,
        *,
        folders: Iterable[str] = DEFAULT_FOLDERS,
        tls: bool = False,
        oauth2: Mapping[str, str] | None = None,
    ) -> None:
        self.root = _world_dir("mailbot-dovecot-")
        _OPEN.add(self)
        self.tls = tls
        self.oauth2 = dict(oauth2) if oauth2 else None
        self.oauth2_path = self.root / "dovecot-oauth2.conf.ext"
        self._ca: TestCA | None = None
        self.folders_to_create = tuple(folders)
        self.config_path = self.root / "dovecot.conf"
        self.users_path = self.root / "users"
        self.mail_root = self.root / "mail"
        self.log_path = self.root / "dovecot.log"
        self._pick_ports()
        self._users: dict[str, str] = {}
        self._listeners: list[Callable[[], None]] = []
        self._lock = threading.Lock()
        self._daemon = _Daemon(
            [dovecot_binary() or "dovecot", "-F", "-c", str(self.config_path)],
            self.root,
            self.log_path,
        )
        self._mail_uid, self._mail_gid = _mail_owner()
        self.mail_root.mkdir()
        os.chown(self.mail_root, self._mail_uid, self._mail_gid)
        self.users_path.touch(mode=0o644)
        for email, password in (users or {}).items():
            self.add_user(email, password)

    @property
    def ca(self) -> TestCA:
        """The test bed's CA and server certificate, made in the temp dir at first use."""
        if self._ca is None:
            self._ca = TestCA.create(self.root / "tls")
        return self._ca

    @property
    def ca_path(self) -> Path:
        """The CA certificate (PEM) that clients of the TLS listeners trust."""
        return self.ca.ca_path

    @property
    def lmtp_socket(self) -> Path:
        """Dovecot's LMTP unix socket, for clients that prefer one to lmtp_port."""
        return self.root / "run" / "lmtp"

    @property
    def users(self) -> dict[str, str]:
        """A copy of the address -> password table."""
        with self._lock:
            return dict(self._users)

    def domains(self) -> list[str]:
        """The domains of all users, sorted."""
        return sorted({email.rpartition("@")[2] for email in self.users})

    def add_user(self, email: str, password: str) -> None:
        """Create or update a user. While running this takes up to a second (see below)."""
        email = email.lower()
        if "@" not in email or any(c in email + password for c in ":\n\r "):
            raise ValueError(f"unusable user or password for a passwd-file: {email!r}")
        with self._lock:
            self._users[email] = password
            staging = self.users_path.with_suffix(".new")
            staging.write_text("".join(f"{u}:{{PLAIN}}{p}::::::\n" for u, p in self._users.items()))
            staging.chmod(0o644)
            # Dovecot re-reads the file when its size or whole-second mtime changed.
            mtime = max(time.time(), self.users_path.stat().st_mtime + 1)
            os.utime(staging, (mtime, mtime))
            staging.replace(self.users_path)
            listeners = list(self._listeners)
        if self.running:
            # ...but stats it at most once per second of its clock: let that second pass.
            time.sleep(1.05 - time.time() % 1)
        for listener in listeners:
            listener()

    def on_users_changed(self, listener: Callable[[], None]) -> None:
        """Call listener() after every add_user (Postfix refreshes its map this way)."""
        self._listeners.append(listener)

    def remove_listener(self, listener: Callable[[], None]) -> None:
        with contextlib.suppress(ValueError):
            self._listeners.remove(listener)

    def deliver(self, rcpt: str, raw: bytes, mail_from: str = "testbed@testbed.test") -> None:
        """Deliver raw to rcpt over LMTP; TestbedError if Dovecot refuses."""
        code, text = lmtp_deliver(self.lmtp_port, mail_from, rcpt, raw)
        if code != 250:
            raise TestbedError(f"LMTP refused {rcpt}: {code} {text}")

    def imap_client(self, user: str, password: str | None = None) -> IMAPClient:
        """A logged-in IMAPClient for user (password: the one given to add_user)."""
        password = password if password is not None else self.users[user.lower()]
        return imap_login(self.imap_port, user, password)

    def fetch_all(self, user: str, folder: str = "INBOX") -> list[bytes]:
        """All raw messages in folder in UID order, leaving \\Seen alone. A message moved or
        expunged between the SEARCH and the FETCH (say, by a running daemon) is left out."""
        with self.imap_client(user) as client:
            client.select_folder(folder, readonly=True)
            uids = sorted(int(uid) for uid in client.search("ALL"))
            if not uids:
                return []
            # A list of ints: imapclient 4.1.0 raises on range strings like "1:*".
            fetched = client.fetch(uids, ["BODY.PEEK[]"])
            return [fetched[uid][b"BODY[]"] for uid in uids if b"BODY[]" in fetched.get(uid, {})]

    def wait_for_messages(
        self,
        user: str,
        count: int,
        folder: str = "INBOX",
        timeout: float = 30.0,
        *,
        containing: bytes | None = None,
    ) -> list[bytes]:
        """Poll until folder holds at least count messages; return them (TimeoutError if not).

        With containing (a Message-ID, say), only messages whose bytes include it count.
        """
        deadline = time.monotonic() + timeout
        while True:
            messages = self.fetch_all(user, folder)
            if containing is not None:
                messages = [raw for raw in messages if containing in raw]
            if len(messages) >= count:
                return messages
            if time.monotonic() > deadline:
                raise TimeoutError(f"{user}/{folder}: {len(messages)} of {count} after {timeout}s")
            time.sleep(0.2)

    def folders(self, user: str) -> list[str]:
        """The names of user's folders, sorted."""
        with self.imap_client(user) as client:
            return sorted(name for _flags, _sep, name in client.list_folders())

    def append(self, user: str, raw: bytes, folder: str = "INBOX") -> None:
        """Put raw into folder with IMAP APPEND (no delivery headers added)."""
        with self.imap_client(user) as client:
            client.append(folder, raw)

    def purge(self, user: str | None = None) -> None:
        """Expunge every message in every folder of user (default: of every user)."""
        for name in [user] if user else list(self.users):
            with self.imap_client(name) as client:
                for flags, _sep, folder in client.list_folders():
                    if {b"\\noselect", b"\\nonexistent"} & {flag.lower() for flag in flags}:
                        continue  # a parent that exists only in name, like MVAI of MVAI/Done
                    client.select_folder(folder)
                    uids = client.search("ALL")
                    if uids:
                        client.delete_messages(uids)
                        client.expunge()
                    client.unselect_folder()

    def uidvalidity(self, user: str, folder: str = "INBOX") -> int:
        """The folder's current UIDVALIDITY."""
        with self.imap_client(user) as client:
            return int(client.folder_status(folder, [b"UIDVALIDITY"])[b"UIDVALIDITY"])

    def recreate_mailbox(self, user: str, folder: str = "INBOX") -> None:
        """Give folder a new UIDVALIDITY and renumber its messages from UID 1; they stay.

        Works on the Maildir's index files, so Dovecot is stopped around it when running:
        open IMAP sessions are dropped, much as in a server migration.
        """
        was_running = self.running
        self.stop()
        local, _, domain = user.lower().partition("@")
        maildir = self.mail_root / domain / local / "Maildir"
        box = maildir if folder.upper() == "INBOX" else maildir / ("." + folder.replace("/", "."))
        if not box.is_dir():
            raise TestbedError(f"no folder {folder!r} for {user} at {box}")
        # dovecot-uidvalidity in the Maildir root stays: it makes the next value new.
        for path in [box / "dovecot-uidlist", *box.glob("dovecot.index*")]:
            path.unlink(missing_ok=True)
        for path in maildir.glob("dovecot.list.index*"):
            path.unlink()
        if was_running:
            self.start()

    def _pick_ports(self) -> None:
        self.imap_port = free_port()
        self.lmtp_port = free_port()
        self.imaps_port: int | None = free_port() if self.tls else None

    def _greetings(self) -> list[tuple[int, bytes, ssl.SSLContext | None]]:
        ready: list[tuple[int, bytes, ssl.SSLContext | None]] = [
            (self.imap_port, b"* OK", None),
            (self.lmtp_port, b"220", None),
        ]
        if self.imaps_port is not None:
            ready.append((self.imaps_port, b"* OK", self.ca.client_context()))
        return ready

    def _prepare(self) -> None:
        self.config_path.write_text(self._config())
        if self.oauth2 is not None:
            self.oauth2_path.write_text("".join(f"{k} = {v}\n" for k, v in self.oauth2.items()))

    def _config(self) -> str:
        mail_user = pwd.getpwuid(self._mail_uid).pw_name
        mail_group = grp.getgrgid(self._mail_gid).gr_name
        internal = ""
        if os.geteuid() != 0:
            internal = (
                f"default_internal_user = {mail_user}\n"
                f"default_internal_group = {mail_group}\n"
                f"default_login_user = {mail_user}\n"
            )
        ssl_settings = "ssl = no\n"
        imaps = "  inet_listener imaps {\n    port = 0\n  }\n"
        lmtp_plain = ""
        if self.imaps_port is not None:
            # Dovecot reads `<file` settings as root, before it drops privileges.
            ssl_settings = (
                f"ssl = yes\nssl_cert = <{self.ca.cert_path}\nssl_key = <{self.ca.key_path}\n"
                "ssl_min_protocol = TLSv1.2\n"
            )
            imaps = (
                f"  inet_listener imaps {{\n    address = {LOOPBACK}\n"
                f"    port = {self.imaps_port}\n    ssl = yes\n  }}\n"
            )
            lmtp_plain = "protocol lmtp {\n  ssl = no\n}\n"  # no STARTTLS in LHLO
        mechanisms, oauth2_passdb, password_mechanisms = "plain login", "", ""
        if self.oauth2 is not None:
            mechanisms += " xoauth2 oauthbearer"
            oauth2_passdb = (
                "passdb {\n  driver = oauth2\n  mechanisms = xoauth2 oauthbearer\n"
                f"  args = {self.oauth2_path}\n}}\n"
            )
            password_mechanisms = "  mechanisms = plain login\n"
        mailboxes = "".join(
            f"  mailbox {name} {{\n    auto = subscribe\n"
            + (f"    special_use = \\{name}\n" if name in DEFAULT_FOLDERS else "")
            + "  }\n"
            for name in self.folders_to_create
        )
        return f"""# Generated by tests/testbed.py.
instance_name = {self.root.name}
base_dir = {self.root}/run
state_dir = {self.root}/state
protocols = imap lmtp
listen = {LOOPBACK}
{ssl_settings}log_path = /dev/stderr
auth_verbose = yes
disable_plaintext_auth = no
auth_mechanisms = {mechanisms}
auth_username_format = %Lu
{internal}mail_uid = {mail_user}
mail_gid = {mail_group}
first_valid_uid = 1
mail_location = maildir:~/Maildir
mail_max_userip_connections = 100
{oauth2_passdb}passdb {{
  driver = passwd-file
  args = scheme=PLAIN {self.users_path}
{password_mechanisms}}}
userdb {{
  driver = passwd-file
  args = {self.users_path}
  default_fields = home={self.mail_root}/%d/%n
}}
namespace inbox {{
  inbox = yes
  separator = /
{mailboxes}}}
service anvil {{
  chroot =
}}
service imap-login {{
  chroot =
  inet_listener imap {{
    address = {LOOPBACK}
    port = {self.imap_port}
  }}
{imaps}}}
service lmtp {{
  inet_listener lmtp {{
    address = {LOOPBACK}
    port = {self.lmtp_port}
  }}
}}
{lmtp_plain}"""


def _mail_owner() -> tuple[int, int]:
    """nobody:nogroup when root (Dovecot refuses uid 0 for mail), else ourselves."""
    if os.geteuid() != 0:
        return os.geteuid(), os.getegid()
    groups = {group.gr_name: group.gr_gid for group in grp.getgrall()}
    return pwd.getpwnam("nobody").pw_uid, groups.get("nogroup", groups.get("nobody", 65534))


@dataclass(frozen=True)
class ReceivedMail:
    """One message the SmtpRelay accepted, with the recipients it was delivered to."""

    mail_from: str
    rcpt_tos: tuple[str, ...]
    data: bytes
    at: float = field(default_factory=time.monotonic)  # when it was accepted
    tls: bool = False  # whether it came over TLS (STARTTLS or implicit)


def imap_login(port: int, user: str, password: str, timeout: float = 10) -> IMAPClient:
    """A logged-in IMAPClient on 127.0.0.1:port (plain: loopback); for a process that has only
    the port, not the Dovecot object (``Dovecot.imap_client`` for the others)."""
    client = IMAPClient(LOOPBACK, port=port, ssl=False, timeout=timeout)
    try:
        client.login(user, password)
    except BaseException:
        client.shutdown()
        raise
    return client


class SmtpRelay:
    """An in-process SMTP server (aiosmtpd) on 127.0.0.1 that relays into Dovecot's LMTP.

    RCPT is checked against Dovecot's LMTP, so an unknown user gets Dovecot's 550.
    With username/password, MAIL needs AUTH PLAIN or LOGIN first. TLS uses dovecot.ca's
    certificate (clients trust ca_path): tls="starttls" offers STARTTLS, and AUTH only
    after it; tls="ssl" takes implicit TLS only (AUTH then allowed at once); without tls
    it is plain, AUTH included (loopback). With xoauth2 (a check of user and bearer token),
    MAIL needs AUTH XOAUTH2 instead, and a refused token gets the error challenge first, as
    Gmail and Microsoft 365 send it.
    Fault hooks: fail_next_temporary answers that many DATA commands with temporary_reply
    (a "421 ..." reply also drops the connection); reject_recipients get 550 at RCPT.
    With queue = True it behaves like a real MTA: 250 once the message is taken, delivery to
    Dovecot right after (instead of delivering before it answers), and a recipient Dovecot has
    accepted once is not asked about again (Postfix's address verification cache does the
    same), so the benchmarks do not charge an LMTP session per RCPT to the daemon's run.
    Queued mail is delivered in order by one courier thread over one LMTP connection kept
    open between messages (opened again when it breaks), as Postfix's connection cache does.
    hold() keeps queued mail from being delivered until release() (a benchmark whose clock
    stops when the mail is handed to SMTP, not when it reaches the recipient's mailbox);
    drained() tells when everything queued has been delivered or has failed.
    """

    def __init__(
        self,
        dovecot: Dovecot,
        *,
        username: str | None = None,
        password: str | None = None,
        tls: Literal["starttls", "ssl"] | None = None,
        xoauth2: Callable[[str, str], bool] | None = None,
    ) -> None:
        if tls not in (None, "starttls", "ssl"):
            raise ValueError(f"tls must be None, 'starttls' or 'ssl', not {tls!r}")
        self.dovecot = dovecot
        self.username = username
        self.password = password
        self.tls = tls
        self.xoauth2 = xoauth2
        self.xoauth2_logins: list[tuple[str, bool]] = []  # (user, accepted) per AUTH XOAUTH2
        self.port = free_port()
        self.received: list[ReceivedMail] = []
        self.delivery_failures: list[tuple[str, int, str]] = []
        self.fail_next_temporary = 0
        self.temporary_reply = "451 4.3.0 Temporary failure injected by the test bed"
        self.reject_recipients: set[str] = set()
        self.queue = False
        self._verified: set[str] = set()  # with queue: recipients Dovecot accepted
        self._queued: queue.SimpleQueue[tuple[str, tuple[str, ...], bytes] | None] = (
            queue.SimpleQueue()
        )
        self._courier: threading.Thread | None = None
        self._released = threading.Event()
        self._released.set()
        self._undelivered = 0  # queued, not yet delivered or failed
        self._count_lock = threading.Lock()
        self._controller: Controller | None = None

    @property
    def ca_path(self) -> Path:
        """The CA certificate (PEM) that clients of a TLS relay trust (dovecot's)."""
        return self.dovecot.ca_path

    def start(self) -> None:
        """Listen on 127.0.0.1:port; returns once the server answers."""
        if self._controller is not None:
            return
        options: dict[str, Any] = {}
        if self.username is not None:
            # aiosmtpd counts only STARTTLS as TLS for AUTH, not an implicit-TLS listener.
            options["auth_require_tls"] = self.tls == "starttls"
            options["authenticator"] = self._authenticate
        if self.xoauth2 is None:
            options["auth_exclude_mechanism"] = ["XOAUTH2"]
        else:
            options["auth_require_tls"] = self.tls == "starttls"
        if self.tls == "starttls":
            options["tls_context"] = self.dovecot.ca.server_context()
        elif self.tls == "ssl":
            options["ssl_context"] = self.dovecot.ca.server_context()
        self._controller = Controller(
            self, hostname=LOOPBACK, port=self.port, server_hostname="relay.testbed.test", **options
        )
        self._controller.start()

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None
        if self._courier is not None:
            self._released.set()  # what is held is delivered before the courier ends
            self._queued.put(None)  # after what is queued
            self._courier.join(30)
            self._courier = None

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def hold(self) -> None:
        """Queued mail waits (from the next message on) until release()."""
        self._released.clear()

    def release(self) -> None:
        self._released.set()

    def drained(self) -> bool:
        """Whether every queued message has been delivered (or has failed)."""
        return self._undelivered == 0

    def _enqueue(self, mail_from: str, rcpts: tuple[str, ...], data: bytes) -> None:
        if self._courier is None:
            self._courier = threading.Thread(target=self._courier_loop, daemon=True)
            self._courier.start()
        with self._count_lock:
            self._undelivered += 1
        self._queued.put((mail_from, rcpts, data))

    def _courier_loop(self) -> None:
        client: smtplib.LMTP | None = None
        try:
            while (item := self._queued.get()) is not None:
                self._released.wait()
                mail_from, rcpts, data = item
                for rcpt in rcpts:
                    code, text, client = self._deliver_on(client, mail_from, rcpt, data)
                    if code != 250:
                        self.delivery_failures.append((rcpt, code, text))
                with self._count_lock:
                    self._undelivered -= 1
        finally:
            if client is not None:
                with contextlib.suppress(OSError, smtplib.SMTPException):
                    client.quit()

    def _deliver_on(
        self, client: smtplib.LMTP | None, mail_from: str, rcpt: str, data: bytes
    ) -> tuple[int, str, smtplib.LMTP | None]:
        """Deliver over the courier's connection (opened, or opened again once, as needed)."""
        error: Exception | None = None
        for _attempt in range(2):
            try:
                if client is None:
                    client = smtplib.LMTP(LOOPBACK, self.dovecot.lmtp_port, timeout=10)
                return (*lmtp_transaction(client, mail_from, rcpt, data), client)
            except (OSError, smtplib.SMTPException) as broken:
                error = broken
                if client is not None:
                    with contextlib.suppress(OSError):
                        client.close()
                client = None
        return 451, f"4.4.1 LMTP server unreachable: {error}", None

    def _authenticate(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, auth_data: Any
    ) -> AuthResult:
        ok = isinstance(auth_data, LoginPassword) and (
            auth_data.login.decode(),
            auth_data.password.decode(),
        ) == (self.username, self.password)
        # handled=False makes aiosmtpd send the 535 itself; its default assumes we did.
        return AuthResult(success=ok, handled=False, auth_data=auth_data)

    async def auth_XOAUTH2(self, server: SMTP, args: list[str]) -> AuthResult:
        """AUTH XOAUTH2 (offered only with xoauth2): "user=U^Aauth=Bearer T^A^A" in base64."""
        assert self.xoauth2 is not None
        try:
            if len(args) == 2:
                response = base64.b64decode(args[1], validate=True)
            else:  # no initial response: ask for it (challenge_auth decodes the answer)
                answer = await server.challenge_auth("", encode_to_b64=False)
                if not isinstance(answer, bytes):
                    return AuthResult(success=False)
                response = answer
            parts = [part.split("=", 1) for part in response.decode().split("\x01") if part]
            fields = {key: value for key, value in parts}
            user, token = fields["user"], fields["auth"].removeprefix("Bearer ")
        except (ValueError, KeyError):
            return AuthResult(success=False, handled=False, message="501 5.5.2 Bad XOAUTH2")
        accepted = self.xoauth2(user, token)
        self.xoauth2_logins.append((user, accepted))
        if accepted:
            return AuthResult(success=True, auth_data=user)
        await server.challenge_auth('{"status":"401","schemes":"Bearer","scope":"mail"}')
        return AuthResult(success=False, handled=False)

    async def handle_MAIL(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        needs_auth = self.username is not None or self.xoauth2 is not None
        if needs_auth and not session.authenticated:
            return "530 5.7.0 Authentication required"
        envelope.mail_from = address
        envelope.mail_options.extend(options)
        return "250 2.1.0 OK"

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        if address.lower() in {rcpt.lower() for rcpt in self.reject_recipients}:
            return "550 5.1.1 Recipient rejected by the test bed"
        if not (self.queue and address.lower() in self._verified):
            loop = asyncio.get_running_loop()
            code, text = await loop.run_in_executor(None, self._probe_recipient, address)
            if code != 250:
                return f"{code} {text}"
            self._verified.add(address.lower())
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        loop = asyncio.get_running_loop()
        if self.fail_next_temporary > 0:
            self.fail_next_temporary -= 1
            if self.temporary_reply.startswith("421") and server.transport is not None:
                loop.call_soon(server.transport.close)  # after the reply is written
            return self.temporary_reply
        data = envelope.original_content or b""
        mail_from = envelope.mail_from or ""
        tls = server.transport is not None and bool(server.transport.get_extra_info("ssl_object"))
        if self.queue:
            rcpts = tuple(envelope.rcpt_tos)
            self.received.append(ReceivedMail(mail_from, rcpts, data, tls=tls))
            self._enqueue(mail_from, rcpts, data)
            return "250 2.0.0 Message queued"
        results = [
            (rcpt, *await loop.run_in_executor(None, self._deliver, mail_from, rcpt, data))
            for rcpt in envelope.rcpt_tos
        ]
        delivered = tuple(rcpt for rcpt, code, _text in results if code == 250)
        failed = [result for result in results if result[1] != 250]
        self.delivery_failures.extend(failed)
        if not delivered:
            _rcpt, code, text = failed[0]
            return f"{code} {text}"
        self.received.append(ReceivedMail(mail_from, delivered, data, tls=tls))
        return "250 2.0.0 Message accepted"

    def _probe_recipient(self, address: str) -> tuple[int, str]:
        """Ask Dovecot's LMTP whether it would take mail for address."""
        try:
            with smtplib.LMTP(LOOPBACK, self.dovecot.lmtp_port, timeout=10) as client:
                client.mail("")
                code, text = client.rcpt(address)
                client.rset()
        except (OSError, smtplib.SMTPException) as error:
            return 451, f"4.4.1 mailbox server unreachable: {error}"
        return code, text.decode(errors="replace")

    def _deliver(self, mail_from: str, rcpt: str, data: bytes) -> tuple[int, str]:
        return lmtp_deliver(self.dovecot.lmtp_port, mail_from, rcpt, data)


class Postfix(_Server):
    """A real Postfix on 127.0.0.1 delivering mail for the test domains into Dovecot's LMTP.

    Config and queue live in the temp dir; `master -c DIR` runs in the foreground. The
    test domains are those of Dovecot's users plus `domains`; their unknown recipients
    are refused at RCPT, and add_user on Dovecot reloads Postfix. Mail for any other
    domain bounces: nothing leaves loopback. Needs root, as Postfix's master does.
    """

    def __init__(self, dovecot: Dovecot, domains: Iterable[str] = ()) -> None:
        self.dovecot = dovecot
        self.extra_domains = tuple(domains)
        self.root = _world_dir("mailbot-postfix-")
        _OPEN.add(self)
        self.config_dir = self.root / "conf"
        self.queue_dir = self.root / "queue"
        self.data_dir = self.root / "data"
        self.log_path = self.root / "postfix.log"
        self._pick_ports()
        self._daemon = _Daemon(
            [str(POSTFIX_MASTER), "-c", str(self.config_dir)],
            self.root,
            self.root / "master.out",
            log=self.log_path,
            fatal="fatal:",
        )

    def start(self, timeout: float = 15.0) -> None:
        """Write the config, lay out the queue, run master; wait for the 220 greeting."""
        if self.running:
            return
        if os.geteuid() != 0:
            raise TestbedError("Postfix's master daemon only runs as root")
        super().start(timeout)
        self.dovecot.on_users_changed(self.reload)

    def stop(self) -> None:
        self.dovecot.remove_listener(self.reload)
        super().stop()

    def reload(self) -> None:
        """Rewrite config and recipient map from Dovecot's users; wait for Postfix to reload."""
        self._prepare()
        if not self.running:
            return
        master = self._daemon.pid
        old = set(_process_group(master)) - {master}
        self._daemon.send_signal(signal.SIGHUP)
        # The children that hold the old map leave within ~50 ms of the HUP.
        deadline = time.monotonic() + 5
        while old & set(_process_group(master)) and time.monotonic() < deadline:
            time.sleep(0.02)

    def domains(self) -> list[str]:
        return sorted(set(self.dovecot.domains()) | set(self.extra_domains))

    def _pick_ports(self) -> None:
        self.port = free_port()

    def _greetings(self) -> list[tuple[int, bytes, ssl.SSLContext | None]]:
        return [(self.port, b"220", None)]

    def _prepare(self) -> None:
        self.config_dir.mkdir(exist_ok=True)
        files = {
            "main.cf": self._main_cf(),
            "master.cf": self._master_cf(),
            "mailboxes": "".join(f"{user} OK\n" for user in sorted(self.dovecot.users)),
        }
        for name, text in files.items():
            staging = self.config_dir / f"{name}.new"
            staging.write_text(text)
            _backdate(staging)
            staging.replace(self.config_dir / name)
        self._make_queue()

    def _main_cf(self) -> str:
        nowhere = "error:5.7.1 the test bed delivers to its own domains only"
        return f"""# Generated by tests/testbed.py.
compatibility_level = 3.6
queue_directory = {self.queue_dir}
data_directory = {self.data_dir}
mail_owner = postfix
setgid_group = postdrop
maillog_file = {self.log_path}
maillog_file_prefixes = {self.root}
myhostname = mta.testbed.test
mydomain = testbed.test
myorigin = $myhostname
mydestination =
inet_interfaces = {LOOPBACK}
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
smtputf8_enable = no
biff = no
smtpd_peername_lookup = no
smtp_dns_support_level = disabled
smtp_host_lookup = native
lmtp_host_lookup = native
alias_maps =
alias_database =
local_recipient_maps =
local_transport = {nowhere}
default_transport = {nowhere}
relay_transport = {nowhere}
smtpd_relay_restrictions = permit_mynetworks, reject_unauth_destination
virtual_mailbox_domains = {" ".join(self.domains())}
virtual_mailbox_maps = texthash:{self.config_dir}/mailboxes
virtual_transport = lmtp:inet:{LOOPBACK}:{self.dovecot.lmtp_port}
# Retry deferred mail (say, while Dovecot restarts) within seconds, not minutes.
queue_run_delay = 1s
minimal_backoff_time = 1s
maximal_backoff_time = 2s
"""

    def _master_cf(self) -> str:
        services = [
            f"{LOOPBACK}:{self.port} inet n - n - - smtpd",
            "pickup unix n - n 60 1 pickup",
            "cleanup unix n - n - 0 cleanup",
            "qmgr unix n - n 300 1 qmgr",
            "rewrite unix - - n - - trivial-rewrite",
            "bounce unix - - n - 0 bounce",
            "defer unix - - n - 0 bounce",
            "trace unix - - n - 0 bounce",
            "verify unix - - n - 1 verify",
            "flush unix n - n 1000? 0 flush",
            "proxymap unix - - n - - proxymap",
            "showq unix n - n - - showq",
            "error unix - - n - - error",
            "retry unix - - n - - error",
            "discard unix - - n - - discard",
            "lmtp unix - - n - - lmtp",
            "smtp unix - - n - - smtp",
            "anvil unix - - n - 1 anvil",
            "scache unix - - n - 1 scache",
            "postlog unix-dgram n - n - 1 postlogd",
        ]
        return "# Generated by tests/testbed.py: no chroot.\n" + "\n".join(services) + "\n"

    def _make_queue(self) -> None:
        """The queue layout of Debian's postfix-files (much faster than `postfix check`)."""
        postfix = pwd.getpwnam("postfix").pw_uid
        postdrop = grp.getgrnam("postdrop").gr_gid
        private = "active bounce corrupt defer deferred flush hold incoming private saved trace"
        layout = [(name, postfix, 0, 0o700) for name in private.split()]
        layout += [
            ("maildrop", postfix, postdrop, 0o730),
            ("public", postfix, postdrop, 0o710),
            ("pid", 0, 0, 0o755),
        ]
        self.queue_dir.mkdir(mode=0o755, exist_ok=True)
        self.data_dir.mkdir(mode=0o700, exist_ok=True)
        os.chown(self.data_dir, postfix, -1)
        for name, uid, gid, mode in layout:
            path = self.queue_dir / name
            path.mkdir(exist_ok=True)
            os.chown(path, uid, gid)
            path.chmod(mode)
