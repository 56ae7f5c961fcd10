"""A local OAuth2 authorization server on 127.0.0.1 for the OAuth2 tests.

It plays both providers mailbot knows and the mail server's side of the check:

- Microsoft (what msal talks to): ``GET /<tenant>/v2.0/.well-known/openid-configuration`` (the
  tenant discovery) and ``POST /<tenant>/oauth2/v2.0/token`` with the client-credentials grant;
- Google: ``POST /token`` with the refresh-token grant;
- the mail server: ``POST /introspect`` (RFC 7662: ``token=...`` -> ``{"active": ..., "username":
  ...}``), which Dovecot's oauth2 passdb calls for every XOAUTH2 login, and ``valid()`` for the
  in-process SMTP relay.

Client id, secret and refresh token are checked; every token is random, valid for
``expires_in`` seconds and can be revoked; with ``rotate_refresh_tokens`` each refresh grant
also hands out a new refresh token and retires the old one. ``grants`` counts the tokens
issued; ``fail_next`` answers the next token requests with an error of the provider's shape.
With ``ca`` (a TestCA of the test bed) it speaks HTTPS, as msal insists on; else plain HTTP.
"""

from __future__ import annotations

import json
import secrets
import threading
import time
import urllib.parse
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Self

from tests.testbed import LOOPBACK, TLS_HOSTNAME, TestCA

MICROSOFT_SCOPE = "https://outlook.office365.com/.default"


@dataclass
class Issued:
    token: str
    grant: str  # "client_credentials" or "refresh_token"
    scope: str
    expires_at: float
    revoked: bool = False


class TokenServer:
    def __init__(
        self,
        *,
        user: str,
        client_id: str = "mailbot-test-client",
        client_secret: str = "",
        refresh_token: str = "",
        tenant: str = "contoso-test",
        expires_in: int = 3600,
        rotate_refresh_tokens: bool = False,
        ca: TestCA | None = None,
    ) -> None:
        self.user = user
        self.client_id = client_id
        self.client_secret = client_secret or "cs-" + secrets.token_urlsafe(24)
        self.refresh_token = refresh_token or "rt-" + secrets.token_urlsafe(32)
        self.tenant = tenant
        self.expires_in = expires_in
        self.rotate_refresh_tokens = rotate_refresh_tokens
        self.ca = ca
        self.issued: list[Issued] = []
        self.introspections = 0
        # Per introspection (a login at the mail server): "live", "expired", "revoked", "unknown".
        self.introspected: list[str] = []
        self.fail_next: list[tuple[int, dict[str, Any]]] = []
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle -------------------------------------------------------------------------
    def start(self) -> None:
        server = ThreadingHTTPServer((LOOPBACK, 0), _handler(self))
        server.daemon_threads = True
        if self.ca is not None:
            server.socket = self.ca.server_context().wrap_socket(server.socket, server_side=True)
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

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

    # -- addresses -------------------------------------------------------------------------
    @property
    def port(self) -> int:
        assert self._server is not None, "not started"
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        scheme, host = ("https", TLS_HOSTNAME) if self.ca is not None else ("http", LOOPBACK)
        return f"{scheme}://{host}:{self.port}"

    @property
    def authority(self) -> str:
        """What [oauth2] authority is set to for the microsoft provider."""
        return f"{self.url}/{self.tenant}"

    @property
    def token_url(self) -> str:
        """What [oauth2] token_url is set to for the google provider."""
        return f"{self.url}/token"

    def dovecot_settings(self) -> dict[str, str]:
        """Settings for Dovecot's oauth2 passdb that check tokens against this server."""
        settings = {
            "introspection_mode": "post",
            "introspection_url": f"{self.url}/introspect",
            "force_introspection": "yes",
            "username_attribute": "username",
            "active_attribute": "active",
            "active_value": "true",
        }
        if self.ca is not None:
            settings["tls_ca_cert_file"] = str(self.ca.ca_path)
        return settings

    # -- tokens ----------------------------------------------------------------------------
    @property
    def grants(self) -> int:
        with self._lock:
            return len(self.issued)

    def tokens(self) -> list[str]:
        with self._lock:
            return [issued.token for issued in self.issued]

    def revoke_all(self) -> None:
        with self._lock:
            for issued in self.issued:
                issued.revoked = True

    def valid(self, user: str, token: str) -> bool:
        """Whether token is a live token of ours for user (what a mail server checks)."""
        return user.lower() == self.user.lower() and self._live(token) is not None

    def _live(self, token: str) -> Issued | None:
        with self._lock:
            for issued in self.issued:
                if issued.token == token and not issued.revoked:
                    return issued if time.time() < issued.expires_at else None
        return None

    def _issue(self, grant: str, scope: str) -> dict[str, Any]:
        issued = Issued(
            "at-" + secrets.token_urlsafe(32), grant, scope, time.time() + self.expires_in
        )
        with self._lock:
            self.issued.append(issued)
        return {
            "access_token": issued.token,
            "token_type": "Bearer",
            "expires_in": self.expires_in,
            **({"scope": scope} if scope else {}),
        }

    def _token_response(self, path: str, form: dict[str, str]) -> tuple[int, dict[str, Any]]:
        with self._lock:
            injected = self.fail_next.pop(0) if self.fail_next else None
        if injected is not None:
            return injected
        microsoft = path == f"/{self.tenant}/oauth2/v2.0/token"
        if not microsoft and path != "/token":
            return 404, {"error": "not_found"}
        grant = form.get("grant_type", "")
        if (form.get("client_id"), form.get("client_secret")) != (
            self.client_id,
            self.client_secret,
        ):
            description = "AADSTS7000215: Invalid client secret provided." if microsoft else ""
            return 401, {"error": "invalid_client", "error_description": description}
        if microsoft:
            if grant != "client_credentials":
                return 400, {"error": "unsupported_grant_type"}
            scope = form.get("scope", "")
            if MICROSOFT_SCOPE not in scope.split():
                return 400, {"error": "invalid_scope", "error_description": f"scope {scope!r}"}
            return 200, self._issue(grant, scope)
        if grant != "refresh_token":
            return 400, {"error": "unsupported_grant_type"}
        if form.get("refresh_token") != self.refresh_token:
            return 400, {"error": "invalid_grant", "error_description": "Bad Request"}
        answer = self._issue(grant, form.get("scope", ""))
        if self.rotate_refresh_tokens:  # the old one stops working
            self.refresh_token = answer["refresh_token"] = "rt-" + secrets.token_urlsafe(32)
        return 200, answer

    def _openid_configuration(self) -> dict[str, Any]:
        base = f"{self.url}/{self.tenant}"
        return {
            "issuer": f"{base}/v2.0",
            "authorization_endpoint": f"{base}/oauth2/v2.0/authorize",
            "token_endpoint": f"{base}/oauth2/v2.0/token",
        }

    def _introspect(self, form: dict[str, str]) -> dict[str, Any]:
        token = form.get("token", "")
        with self._lock:
            self.introspections += 1
            known = next((i for i in self.issued if i.token == token), None)
            self.introspected.append(
                "unknown"
                if known is None
                else "revoked"
                if known.revoked
                else "expired"
                if time.time() >= known.expires_at
                else "live"
            )
        issued = self._live(token)
        if issued is None:
            return {"active": False}
        return {"active": True, "username": self.user, "exp": int(issued.expires_at)}


def _handler(server: TokenServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            return None  # quiet: the tests look at the counters, not at a log

        def _reply(self, status: int, body: dict[str, Any]) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:  # noqa: N802
            path = urllib.parse.urlsplit(self.path).path
            if path == f"/{server.tenant}/v2.0/.well-known/openid-configuration":
                self._reply(200, server._openid_configuration())
            else:
                self._reply(404, {"error": "not_found"})

        def do_POST(self) -> None:  # noqa: N802
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length).decode()
            form = dict(urllib.parse.parse_qsl(raw, keep_blank_values=True))
            path = urllib.parse.urlsplit(self.path).path
            if path == "/introspect":
                self._reply(200, server._introspect(form))
            else:
                self._reply(*server._token_response(path, form))

    return Handler
