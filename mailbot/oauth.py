"""OAuth2 access tokens for IMAP and SMTP, and the SASL XOAUTH2 login that uses them.

With ``[imap] auth = "oauth2"`` or ``[smtp] auth = "oauth2"`` mailbot logs in with a bearer
token from the provider named in ``[oauth2]``:

- ``microsoft`` (Microsoft 365, Exchange Online): the client-credentials grant through msal,
  for an app registration with IMAP.AccessAsApp and SMTP.SendAsApp; one scope,
  ``https://outlook.office365.com/.default``, serves IMAP and SMTP;
- ``google`` (Gmail): the refresh-token grant, a form POST to ``token_url``; the refresh token
  was issued for the ``https://mail.google.com/`` scope;
- ``generic``: the same refresh-token grant against any ``token_url``.

One ``TokenSource`` per config serves IMAP and SMTP. It keeps the token in memory and fetches
a new one when there is none or it is within ``refresh_margin_seconds`` of its expiry (at most
half its lifetime), which every connect and reconnect asks; a server that refuses a token gets
one new token at once, and after that the caller's backoff takes over. The client secret and
the refresh token are read from their ``*_env`` or ``*_file`` at each fetch, so a rotated
secret is picked up without a restart.

Tokens, client secrets and refresh tokens never reach a log line or an error: errors are one
line naming ``[oauth2]``, the provider and the provider's own error text.
"""

from __future__ import annotations

import functools
import json
import logging
import re
import smtplib
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from imapclient import IMAPClient
from imapclient.exceptions import LoginError

from mailbot.config import Config, OAuth2Section, read_secret
from mailbot.errors import ConfigError, TokenError

log = logging.getLogger(__name__)

MICROSOFT_AUTHORITY = "https://login.microsoftonline.com/"
MICROSOFT_SCOPES = ("https://outlook.office365.com/.default",)
GOOGLE_TOKEN_URL = "https://oauth2.googleapis.com/token"
DEFAULT_LIFETIME = 3600.0  # seconds, when a provider does not say how long a token lives
_MAX_ERROR = 300  # characters of a provider's error text kept in a message


@dataclass(frozen=True)
class AccessToken:
    """A bearer token and when it stops working (seconds since the epoch); repr hides it."""

    value: str = field(repr=False)
    expires_at: float
    obtained_at: float
    margin: float = 0.0  # seconds before expires_at from which it is replaced

    @property
    def refresh_at(self) -> float:
        return self.expires_at - self.margin


class TokenSource:
    """The access token of one [oauth2] section: cached, renewed before expiry, thread-safe."""

    def __init__(self, cfg: Config, *, clock: Callable[[], float] = time.time) -> None:
        self.cfg = cfg
        self.opts: OAuth2Section = cfg.oauth2
        self.provider = self.opts.provider
        self.clock = clock
        self._lock = threading.Lock()
        self._token: AccessToken | None = None
        self._hidden: set[str] = set()  # the secrets read: never in an error text (nor tokens)
        self._rotated: dict[str, str] = {}  # configured refresh token -> the one it became
        self._msal_app: Any = None
        self._msal_secret = ""

    def describe(self) -> str:
        o = self.opts
        if self.provider == "microsoft":
            return f"microsoft (tenant {o.tenant or _host(o.authority)}, client {o.client_id})"
        if self.provider == "google":
            return f"google (client {o.client_id})"
        return f"{self.provider} ({_host(o.token_url)}, client {o.client_id})"

    def get(self) -> AccessToken:
        """The cached token, or a new one when there is none or it is due for renewal."""
        with self._lock:
            if self._token is None or self.clock() >= self._token.refresh_at:
                self._token = self._fetch()
            return self._token

    def renew(self, refused: AccessToken | None) -> AccessToken:
        """A new token in place of ``refused`` (a server said no to it), unless another
        connection has replaced it meanwhile; then that newer one."""
        with self._lock:
            current = self._token
            if current is None or current == refused or self.clock() >= current.refresh_at:
                self._token = self._fetch()
            return self._token

    def seconds_left(self, token: AccessToken) -> float:
        """Seconds until ``token`` is due for renewal (negative when overdue)."""
        return token.refresh_at - self.clock()

    # -- fetching ---------------------------------------------------------------------------
    def _fetch(self) -> AccessToken:
        started = self.clock()
        if self.provider == "microsoft":
            value, lifetime = self._microsoft()
        else:
            value, lifetime = self._refresh_grant()
        margin = min(float(self.opts.refresh_margin_seconds), lifetime / 2)
        token = AccessToken(value, started + lifetime, started, margin)
        log.info("oauth2: new %s access token, valid for %d s", self.provider, lifetime)
        return token

    def _secret(self, name: str) -> str:
        """client_secret or refresh_token from its *_file, else its *_env."""
        env = getattr(self.opts, f"{name}_env")
        file = getattr(self.opts, f"{name}_file")
        try:
            value = read_secret(self.cfg, "oauth2", env, file, option=f"{name}_file")
        except ConfigError as exc:
            raise TokenError(str(exc)) from None
        if not value:
            where = f"the environment variable {env} or " if env else ""
            raise TokenError(f"[oauth2] {name}: not set: set {where}[oauth2] {name}_file")
        self._hidden.add(value)
        return value

    def _microsoft(self) -> tuple[str, float]:
        import msal
        import requests

        o = self.opts
        secret = self._secret("client_secret")
        authority = o.authority or MICROSOFT_AUTHORITY + o.tenant
        try:
            if self._msal_app is None or self._msal_secret != secret:
                # verify goes with every request: requests lets REQUESTS_CA_BUNDLE override a
                # session's own verify, and ca_file must win.
                session = requests.Session()
                session.request = functools.partial(  # type: ignore[method-assign]
                    session.request,
                    timeout=o.timeout_seconds,
                    verify=str(self.cfg.path(o.ca_file)) if o.ca_file else True,
                )
                self._msal_app = msal.ConfidentialClientApplication(
                    o.client_id,
                    client_credential=secret,
                    authority=authority,
                    # Microsoft's own hosts need no instance discovery; any other authority
                    # is one the operator chose (a test's local endpoint, say).
                    instance_discovery=False,
                    http_client=session,
                    token_cache=msal.TokenCache(),
                )
                self._msal_secret = secret
            app = self._msal_app
            # Our cache decides when a token is due; msal's would hand back the old one.
            cache = app.token_cache
            for entry in list(cache.search(msal.TokenCache.CredentialType.ACCESS_TOKEN)):
                cache.remove_at(entry)
            result = app.acquire_token_for_client(scopes=list(o.scopes or MICROSOFT_SCOPES))
        except requests.RequestException as exc:
            raise self._unreachable(authority, exc) from None
        except ValueError as exc:  # msal: the authority's discovery failed (tenant, URL)
            raise self._failed(str(exc)) from None
        if not isinstance(result, dict) or not isinstance(result.get("access_token"), str):
            result = result if isinstance(result, dict) else {}
            raise self._refused(result.get("error"), result.get("error_description"))
        return result["access_token"], _lifetime(result)

    def _refresh_grant(self) -> tuple[str, float]:
        o = self.opts
        url = o.token_url or GOOGLE_TOKEN_URL
        configured = self._secret("refresh_token")
        form = {
            "grant_type": "refresh_token",
            "client_id": o.client_id,
            "client_secret": self._secret("client_secret"),
            "refresh_token": self._rotated.get(configured, configured),
        }
        if o.scopes:
            form["scope"] = " ".join(o.scopes)
        request = urllib.request.Request(
            url,
            data=urllib.parse.urlencode(form).encode(),
            headers={
                "Accept": "application/json",
                "Content-Type": "application/x-www-form-urlencoded",
            },
            method="POST",
        )
        try:
            with urllib.request.urlopen(
                request, timeout=o.timeout_seconds, context=self.cfg.tls_context(o.ca_file)
            ) as response:
                status, body = response.status, response.read()
        except urllib.error.HTTPError as exc:
            status, body = exc.code, exc.read()
        except (urllib.error.URLError, OSError) as exc:
            raise self._unreachable(url, exc) from None
        try:
            data = json.loads(body)
        except ValueError:
            data = None
        if not isinstance(data, dict):
            raise self._refused(f"HTTP {status}", "the answer is not a JSON object")
        if status == 200 and isinstance(data.get("access_token"), str):
            new_refresh = data.get("refresh_token")
            if isinstance(new_refresh, str) and new_refresh:  # a provider that rotates them
                self._rotated[configured] = new_refresh
            return data["access_token"], _lifetime(data)
        raise self._refused(data.get("error") or f"HTTP {status}", data.get("error_description"))

    # -- errors -----------------------------------------------------------------------------
    def _failed(self, problem: str) -> TokenError:
        return TokenError(f"[oauth2] {self.provider}: {self._clean(problem)}")

    def _refused(self, error: Any, description: Any) -> TokenError:
        text = str(error or "no access token in the answer")
        if description:
            text += f": {str(description).strip().splitlines()[0]}"
        return self._failed(f"token request refused: {text}")

    def _unreachable(self, url: str, exc: BaseException) -> TokenError:
        return self._failed(f"cannot reach {_host(url)}: {_reason(exc)}")

    def _clean(self, text: str) -> str:
        hidden = self._hidden | set(self._rotated.values())
        if self._token is not None:
            hidden.add(self._token.value)
        for value in sorted(hidden, key=len, reverse=True):
            text = text.replace(value, "***")
        text = " ".join(text.split())
        return text if len(text) <= _MAX_ERROR else text[: _MAX_ERROR - 3] + "..."


def _lifetime(answer: dict[str, Any]) -> float:
    try:
        seconds = float(answer.get("expires_in", DEFAULT_LIFETIME))
    except (TypeError, ValueError):
        seconds = DEFAULT_LIFETIME
    return max(seconds, 1.0)


def _host(url: str) -> str:
    return urllib.parse.urlsplit(url).netloc or url


def _reason(exc: BaseException) -> str:
    """The gist of a network error ("[Errno 111] Connection refused", "[SSL: ...] ...")."""
    text = str(getattr(exc, "reason", None) or exc)
    found = re.search(r"\[(?:Errno -?\d+|SSL: \w+)\][^'\")(]*", text)
    return found.group(0).strip() if found else f"{type(exc).__name__}: {text}"


_SOURCES: dict[tuple[str, Path, OAuth2Section], TokenSource] = {}
_SOURCES_LOCK = threading.Lock()


def tokens(cfg: Config) -> TokenSource:
    """The one TokenSource of this config, shared by IMAP and SMTP in a process."""
    key = (cfg.source, cfg.base_dir, cfg.oauth2)
    with _SOURCES_LOCK:
        source = _SOURCES.get(key)
        if source is None:
            source = _SOURCES[key] = TokenSource(cfg)
        return source


# -- SASL XOAUTH2 ---------------------------------------------------------------------------
def xoauth2_response(user: str, token: str) -> str:
    """The XOAUTH2 initial client response, before base64 (Google's and Microsoft's docs)."""
    return f"user={user}\x01auth=Bearer {token}\x01\x01"


class _Xoauth2:
    """The client side of XOAUTH2 as imaplib and smtplib call it: the initial response first;
    to the server's error challenge (a JSON status, no secret in it) an empty response, as the
    mechanism wants, after which the server says no."""

    def __init__(self, user: str, token: str) -> None:
        self._response: str | None = xoauth2_response(user, token)
        self.error = ""

    def __call__(self, challenge: bytes | None = None) -> str:
        if self._response is not None:
            response, self._response = self._response, None
            return response
        self.error = " ".join((challenge or b"").decode(errors="replace").split())
        return ""

    def __repr__(self) -> str:
        return "<XOAUTH2 client>"


def imap_login(client: IMAPClient, source: TokenSource, user: str) -> AccessToken:
    """AUTHENTICATE XOAUTH2 as ``user``; a refused token is replaced once and tried again.

    Returns the token the session was opened with. Raises LoginError when the new token is
    refused too, and TokenError when no token can be had.
    """
    token = source.get()
    for attempt in (1, 2):
        mechanism = _Xoauth2(user, token.value)
        try:
            client.sasl_login("XOAUTH2", mechanism)
            return token
        except LoginError as exc:
            refusal = " ".join(f"{exc} {mechanism.error}".split())
            if not client.has_capability("AUTH=XOAUTH2"):
                refusal += " (the server does not offer AUTH=XOAUTH2)"
            if attempt == 2:
                raise LoginError(f"XOAUTH2 login refused: {refusal}") from None
            log.warning("oauth2: IMAP refused the access token (%s); getting a new one", refusal)
            token = source.renew(token)
    raise AssertionError("unreachable")


def smtp_login(conn: smtplib.SMTP, source: TokenSource, user: str) -> AccessToken:
    """AUTH XOAUTH2 as ``user``; a refused token is replaced once and tried again.

    Raises SMTPAuthenticationError when the new token is refused too (SMTPNotSupportedError
    when the server offers no AUTH at all), and TokenError when no token can be had.
    """
    conn.ehlo_or_helo_if_needed()
    if not conn.has_extn("auth"):
        raise smtplib.SMTPNotSupportedError("the server offers no AUTH (XOAUTH2)")
    token = source.get()
    for attempt in (1, 2):
        mechanism = _Xoauth2(user, token.value)
        try:
            conn.auth("XOAUTH2", mechanism)
            return token
        except smtplib.SMTPAuthenticationError as exc:
            if attempt == 2:
                raise
            refusal = " ".join(f"{exc.smtp_code} {mechanism.error}".split())
            log.warning("oauth2: SMTP refused the access token (%s); getting a new one", refusal)
            token = source.renew(token)
    raise AssertionError("unreachable")
