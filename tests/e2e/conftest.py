"""Fixtures that start the real test bed (tests/testbed.py) on 127.0.0.1.

A missing Dovecot or Postfix skips the tests on a developer machine but fails them when
the CI environment variable is set, so CI can never go green without the real servers.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.testbed import (
    Dovecot,
    Postfix,
    SmtpRelay,
    dovecot_binary,
    openssl_binary,
    postfix_binary,
)

PASSWORD = "secret"
USERS = {
    email: PASSWORD
    for email in (
        "mvai@mvai.test",
        "chief@agency.test",
        "coord@mvai.test",
        "advisor@advisors.test",
    )
}
RELAY_USER = "mailbot"  # what the TLS relays below want at AUTH
RELAY_PASSWORD = "relay-secret"
E2E_DIR = Path(__file__).parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test under tests/e2e as e2e, so `-m "not e2e"` leaves the servers off."""
    for item in items:
        if E2E_DIR in item.path.parents:
            item.add_marker(pytest.mark.e2e)


def _in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def _unavailable(reason: str) -> None:
    """Skip locally, fail in CI."""
    if _in_ci():
        pytest.fail(f"{reason} (CI is set, so this is a failure, not a skip)", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="module")
def dovecot() -> Iterator[Dovecot]:
    """Dovecot (IMAP + LMTP) with the four standard users, password "secret"; per module."""
    if dovecot_binary() is None:
        _unavailable("dovecot is not installed (Debian: dovecot-imapd dovecot-lmtpd)")
    with Dovecot(USERS) as server:
        yield server


@pytest.fixture(scope="module")
def dovecot_tls() -> Iterator[Dovecot]:
    """Like dovecot, plus TLS: IMAPS on imaps_port, STARTTLS on imap_port; per module.

    Its certificate is for localhost and 127.0.0.1, signed by a throwaway CA (ca_path).
    """
    if dovecot_binary() is None:
        _unavailable("dovecot is not installed (Debian: dovecot-imapd dovecot-lmtpd)")
    if openssl_binary() is None:
        _unavailable("openssl is not installed (Debian: openssl), the TLS tests need it")
    with Dovecot(USERS, tls=True) as server:
        yield server


@pytest.fixture
def smtp_relay_starttls(dovecot_tls: Dovecot) -> Iterator[SmtpRelay]:
    """A relay into dovecot_tls offering STARTTLS, with AUTH (RELAY_USER) only after it."""
    with SmtpRelay(
        dovecot_tls, username=RELAY_USER, password=RELAY_PASSWORD, tls="starttls"
    ) as relay:
        yield relay


@pytest.fixture
def smtp_relay_ssl(dovecot_tls: Dovecot) -> Iterator[SmtpRelay]:
    """A relay into dovecot_tls on implicit TLS, with AUTH (RELAY_USER)."""
    with SmtpRelay(dovecot_tls, username=RELAY_USER, password=RELAY_PASSWORD, tls="ssl") as relay:
        yield relay


@pytest.fixture
def smtp_relay(dovecot: Dovecot) -> Iterator[SmtpRelay]:
    """A fresh SMTP relay into dovecot per test, so fault hooks never leak between tests."""
    with SmtpRelay(dovecot) as relay:
        yield relay


@pytest.fixture(scope="module")
def postfix(dovecot: Dovecot) -> Iterator[Postfix]:
    """A real Postfix delivering the test domains into dovecot; per module."""
    if postfix_binary() is None:
        _unavailable("postfix is not installed (Debian: postfix)")
    if os.geteuid() != 0:
        _unavailable("Postfix's master daemon must run as root")
    with Postfix(dovecot) as mta:
        yield mta
