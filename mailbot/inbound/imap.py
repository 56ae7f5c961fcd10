"""IMAP source: IDLE when the server offers it, polling otherwise.

State machine (one connection):

    DISCONNECTED --connect/login/select--> SELECTED --poll--> SELECTED
    SELECTED --wait: IDLE (renewed every idle_renew_seconds) or sleep--> SELECTED
    any state --socket error/timeout--> DISCONNECTED (reconnect with backoff and jitter)

``poll`` reconciles by UID: it lists the UIDs in the folder, fetches those the ledger does not
hold yet (by lists of integer UIDs: imapclient 4.1.0 raises on range strings), commits them to
the ledger, and only then moves them to the processed folder (MOVE, or COPY + \\Deleted + UID
EXPUNGE) or flags them. UIDVALIDITY and the last UID are kept per mailbox; a UIDVALIDITY change
is logged and the coordinators get an alert; redelivered messages are recognised by Message-ID
and content hash downstream.
"""

from __future__ import annotations

import contextlib
import logging
import math
import random
import socket
import ssl
import threading
import time
from collections.abc import Sequence

from imapclient import IMAPClient
from imapclient.exceptions import IMAPClientError, LoginError
from sqlalchemy.orm import Session, sessionmaker

from mailbot import oauth
from mailbot.config import Config, read_secret
from mailbot.errors import MailboxError, MailboxRefused, TokenError
from mailbot.inbound import ledger
from mailbot.inbound.ledger import RawMail
from mailbot.inbound.mailbox import Store, truncate_oversize

log = logging.getLogger(__name__)

LEDGERED = b"$MailbotLedgered"
KNOWN_CHUNK = 5000  # UIDs per ledger look-up
NETWORK_ERRORS = (OSError, IMAPClientError, socket.timeout, ssl.SSLError)
RETRY_MAX = 60.0  # seconds between reconnects at most (jittered down to half)
REFUSED_RETRY_MAX = 256.0  # after a refused login


class ImapSource:
    def __init__(self, cfg: Config, factory: sessionmaker[Session] | None = None) -> None:
        self.cfg = cfg
        self.opts = cfg.imap
        self.name = f"imap:{self.opts.username}@{self.opts.host}/{self.opts.folder}"
        self.factory = factory
        self.client: IMAPClient | None = None
        self.token: oauth.AccessToken | None = None  # with auth = "oauth2": this session's
        self.uidvalidity = 0
        self.can_idle = False
        self.failures = 0

    # -- connection -----------------------------------------------------------------------
    def _create_client(self) -> IMAPClient:
        """The seam tests replace; everything else talks to ``self.client``."""
        o = self.opts
        context = self.cfg.tls_context(o.ca_file)
        client = IMAPClient(
            o.host,
            port=o.port,
            ssl=o.security == "ssl",
            ssl_context=context,
            timeout=o.timeout_seconds,
        )
        if o.security == "starttls":
            client.starttls(context)
        _keepalive(client.socket())
        return client

    def connect(self) -> None:
        o = self.opts
        where = f"IMAP {o.host}:{o.port}"
        password = None
        if o.auth == "oauth2":
            try:
                oauth.tokens(self.cfg).get()  # no token, no connection
            except TokenError as exc:
                raise MailboxRefused(f"{where}: {exc}") from None
        else:
            password = read_secret(self.cfg, "imap", o.password_env, o.password_file)
            if password is None:
                raise MailboxRefused(
                    f"{where}: no password: set the environment variable {o.password_env} "
                    "or [imap] password_file"
                )
        try:
            client = self._create_client()
        except NETWORK_ERRORS as exc:
            raise MailboxError(f"{where}: cannot connect: {exc}") from None
        try:
            if o.auth == "oauth2":
                self.token = oauth.imap_login(client, oauth.tokens(self.cfg), o.username)
            else:
                assert password is not None  # read above, or connect() already failed
                client.login(o.username, password)
            info = client.select_folder(o.folder)
            if o.after == "move" and not client.folder_exists(o.processed_folder):
                client.create_folder(o.processed_folder)
        except LoginError as exc:
            _safe_logout(client)
            raise MailboxRefused(f"{where}: {type(exc).__name__}: {exc}") from None
        except NETWORK_ERRORS as exc:
            _safe_logout(client)
            raise MailboxError(f"{where}: {type(exc).__name__}: {exc}") from None
        except TokenError as exc:
            _safe_logout(client)
            raise MailboxRefused(f"{where}: {exc}") from None
        self.client = client
        self.uidvalidity = int(info[b"UIDVALIDITY"])
        self.can_idle = o.idle and client.has_capability("IDLE")
        self.failures = 0
        self._check_uidvalidity()
        log.info(
            "imap: connected to %s, folder %s, %s",
            where,
            o.folder,
            "IDLE" if self.can_idle else f"polling every {o.poll_seconds}s",
        )

    def _check_uidvalidity(self) -> None:
        if self.factory is None:
            return
        from mailbot.db import transaction
        from mailbot.models import MailboxState

        with transaction(self.factory) as session:
            state = session.get(MailboxState, self.name)
            if state is None:
                session.add(MailboxState(mailbox=self.name, uidvalidity=self.uidvalidity))
            elif state.uidvalidity != self.uidvalidity:
                log.warning(
                    "imap: UIDVALIDITY of %s changed from %s to %s; messages seen before are "
                    "recognised by Message-ID and content hash",
                    self.name,
                    state.uidvalidity,
                    self.uidvalidity,
                )
                self._alert_coordinators(session, state.uidvalidity)
                state.uidvalidity = self.uidvalidity
                state.last_uid = 0

    def _alert_coordinators(self, session: Session, old: int) -> None:
        """Tell the coordinators, not only the log: a renumbered mailbox usually means a server
        migration or a restored backup, which someone should know about. In the transaction
        that records the new UIDVALIDITY, and once per change (the dedupe key holds it)."""
        from mailbot.outbound.compose import enqueue, valid_address

        to = [a for a in self.cfg.coordinators.addresses if valid_address(a)]
        if not to:
            return
        enqueue(
            session,
            self.cfg,
            dedupe_key=f"uidvalidity.{self.name}.{self.uidvalidity}",
            kind="alert",
            to=to,
            subject=f"mailbot: mailbox {self.opts.folder} was renumbered (UIDVALIDITY changed)",
            template="coordinator/mailbox_renumbered",
            context={
                "mailbox": self.name,
                "old_uidvalidity": old,
                "new_uidvalidity": self.uidvalidity,
            },
            auto_submitted="auto-generated",
        )

    def ensure_connected(self, stop: threading.Event) -> bool:
        """Reconnect with exponential backoff and jitter; False if ``stop`` was set meanwhile.
        A server that cannot be reached is tried again within a minute at most (requests wait
        in it meanwhile); a refused login every 2-4 minutes at most, so as not to lock the
        account."""
        while self.client is None and not stop.is_set():
            try:
                self.connect()
            except MailboxError as exc:
                self.failures += 1
                ceiling = REFUSED_RETRY_MAX if isinstance(exc, MailboxRefused) else RETRY_MAX
                delay = min(ceiling, 2.0 ** min(self.failures, 10)) * random.uniform(0.5, 1.0)
                log.warning("imap: %s; retrying in %.0fs", exc, delay)
                stop.wait(delay)
        return self.client is not None

    def _drop(self, exc: BaseException) -> None:
        log.warning("imap: connection lost (%s: %s); reconnecting", type(exc).__name__, exc)
        if self.client is not None:
            _safe_logout(self.client)
        self.client = None

    # -- fetching ---------------------------------------------------------------------------
    def _candidates(self) -> list[int]:
        assert self.client is not None
        if self.opts.after == "flag":
            criteria: list[bytes | str] = ["NOT", "DELETED", "UNKEYWORD", LEDGERED.decode()]
        else:
            criteria = ["NOT", "DELETED"]
        return sorted(int(u) for u in self.client.search(criteria))

    def _fetch(self, uids: Sequence[int]) -> list[RawMail]:
        assert self.client is not None
        limit = self.cfg.limits.max_message_bytes
        sizes = self.client.fetch(list(uids), ["RFC822.SIZE"])
        small = [u for u in uids if int(sizes.get(u, {}).get(b"RFC822.SIZE", 0)) <= limit]
        large = [u for u in uids if u not in small]
        mails: list[RawMail] = []
        if small:
            for uid, data in self.client.fetch(small, ["BODY.PEEK[]"]).items():
                if data.get(b"BODY[]") is None:  # expunged meanwhile: nothing to store or mark
                    continue
                mails.append(RawMail(self.name, bytes(data[b"BODY[]"]), self.uidvalidity, int(uid)))
        if large:
            for uid, data in self.client.fetch(large, ["BODY.PEEK[HEADER]"]).items():
                if data.get(b"BODY[HEADER]") is None:
                    continue
                size = int(sizes[uid][b"RFC822.SIZE"])
                head = bytes(data.get(b"BODY[HEADER]") or b"")
                raw = truncate_oversize(head + b"\r\n", size, limit)
                mails.append(RawMail(self.name, raw, self.uidvalidity, int(uid), size=size))
        return sorted(mails, key=lambda m: m.uid or 0)

    def _mark(self, uids: Sequence[int]) -> None:
        assert self.client is not None
        client = self.client
        if self.opts.after == "flag":
            client.add_flags(list(uids), [b"\\Seen", LEDGERED])
        elif client.has_capability("MOVE"):
            client.move(list(uids), self.opts.processed_folder)
        else:
            client.copy(list(uids), self.opts.processed_folder)
            client.add_flags(list(uids), [b"\\Deleted"])
            if client.has_capability("UIDPLUS"):
                client.uid_expunge(list(uids))
            else:
                client.expunge()

    def poll(self, store: Store, limit: int = 0) -> int:
        if self.client is None:
            return 0
        try:
            uids = self._candidates()
            fresh: list[int] = []
            held: set[int] = set()
            seen = 0  # candidates looked at, oldest first; the rest wait for the next poll
            while seen < len(uids) and not (limit and len(fresh) >= limit):
                part = uids[seen : seen + KNOWN_CHUNK]  # SQL caps the parameters of one query
                seen += len(part)
                if self.factory is not None:
                    held |= ledger.known(self.factory, self.name, self.uidvalidity, part)
                fresh += [u for u in part if u not in held]
            fresh = fresh[:limit] if limit else fresh
            count = 0
            for start in range(0, len(fresh), self.opts.fetch_batch):
                batch = fresh[start : start + self.opts.fetch_batch]
                mails = self._fetch(batch)
                store(mails)
                self._mark([m.uid for m in mails if m.uid is not None])
                count += len(mails)
            if held:  # in the ledger already (a crash before the mark): mark them now
                self._mark(sorted(held))
            self._record_poll(max([*fresh, *held], default=0))
            return count
        except NETWORK_ERRORS as exc:
            self._drop(exc)
            return 0

    def _record_poll(self, last_uid: int) -> None:
        if self.factory is None:
            return
        from mailbot.db import transaction
        from mailbot.models import MailboxState, utcnow

        with transaction(self.factory) as session:
            state = session.get(MailboxState, self.name)
            if state is not None:
                state.last_uid = max(state.last_uid, last_uid)
                state.last_poll_at = utcnow()

    # -- waiting ----------------------------------------------------------------------------
    def _has_unseen_work(self) -> bool:
        """Mail that arrived while we were busy announced itself to an earlier command."""
        uids = self._candidates()
        if self.factory is None or not uids:
            return bool(uids)
        return len(ledger.known(self.factory, self.name, self.uidvalidity, uids)) < len(uids)

    def wait(self, timeout: float, stop: threading.Event) -> None:
        if self.client is None:
            self.ensure_connected(stop)
            return
        if self._token_left() <= 0:
            self._login_again(stop)
            return
        if not self.can_idle:
            stop.wait(min(timeout, self.opts.poll_seconds))
            return
        renew = min(timeout, self.opts.idle_renew_seconds, self._token_left())
        deadline = time.monotonic() + renew
        try:
            if self._has_unseen_work():
                return
            self.client.idle()
            try:
                woken = _read_ahead(self.client)
                while not woken and not stop.is_set() and time.monotonic() < deadline:
                    woken = bool(self.client.idle_check(timeout=1.0))
            finally:
                self.client.idle_done()
        except NETWORK_ERRORS as exc:
            self._drop(exc)

    def _token_left(self) -> float:
        """Seconds until this session's OAuth2 token is due for renewal (inf: a password)."""
        if self.token is None:
            return math.inf
        return oauth.tokens(self.cfg).seconds_left(self.token)

    def _login_again(self, stop: threading.Event) -> None:
        """Before the token runs out: a new one first, then a new session with it. When
        no token can be had, the current session stays while its token lasts."""
        try:
            oauth.tokens(self.cfg).get()
        except TokenError as exc:
            log.warning("imap: %s; the current session goes on for now", exc)
            stop.wait(30.0)
            return
        log.info("imap: logging in again with a new OAuth2 token before the old one expires")
        self.close()
        self.ensure_connected(stop)

    def close(self) -> None:
        if self.client is not None:
            _safe_logout(self.client)
            self.client = None


def _read_ahead(client: IMAPClient) -> bool:
    """Whether the server has already said something that ``idle_check`` cannot see.

    Mail that arrives between our last command and IDLE is announced with the IDLE
    continuation, in the same packet ("+ idling", "* 5 EXISTS"); imaplib's buffered reader
    takes both lines in, and ``idle_check`` polls only the socket, so without this check the
    EXISTS waited for the next IDLE renewal (up to idle_renew_seconds). Peeks without
    blocking at imaplib's reader (imapclient is pinned exactly, so its internals hold still).
    """
    sock = client.socket()
    previous = sock.gettimeout()
    sock.settimeout(0)
    try:
        return bool(client._imap.file.peek(1))
    except OSError:  # nothing there yet (EAGAIN, or TLS wanting more bytes)
        return False
    finally:
        sock.settimeout(previous)


def _keepalive(sock: socket.socket) -> None:
    """TCP keepalive probes after 60 s of silence, 3 unanswered ones 10 s apart: a peer that
    vanished (a dropped NAT entry, a dead host) ends the IDLE read within about 90 s, not at the
    next IDLE renewal (up to idle_renew_seconds)."""
    with contextlib.suppress(OSError, AttributeError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, 60)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL, 10)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT, 3)


def _safe_logout(client: IMAPClient) -> None:
    try:
        client.logout()
    except Exception:  # the connection is being thrown away; nothing to report
        with contextlib.suppress(Exception):
            client.shutdown()
