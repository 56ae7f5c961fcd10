"""Authentication-Results: only trusted servers count; dkim or dmarc must pass for From."""

from __future__ import annotations

import pytest

from mailbot.inbound.parse import parse
from mailbot.inbound.sender_auth import verdict

TRUSTED = ("mx.mvai.test",)


def message(*results: str, sender: str = "adv@advisors.test") -> bytes:
    head = "".join(f"Authentication-Results: {r}\r\n" for r in results)
    return f"{head}From: {sender}\r\nSubject: x\r\n\r\nbody\r\n".encode()


@pytest.mark.parametrize(
    ("results", "passed"),
    [
        (["mx.mvai.test; dkim=pass header.d=advisors.test header.s=s1"], True),
        (["mx.mvai.test; spf=fail; dmarc=pass header.from=advisors.test"], True),
        (["mx.mvai.test; dkim=pass header.i=@mail.advisors.test"], True),
        (["evil.example; dkim=pass header.d=advisors.test"], False),
        (["mx.mvai.test; dkim=fail header.d=advisors.test"], False),
        (["mx.mvai.test; dkim=pass header.d=attacker.test"], False),
        (["mx.mvai.test; dkim=pass header.d=notadvisors.test"], False),
        ([], False),
    ],
)
def test_verdict(results, passed):
    assert verdict(parse(message(*results)), TRUSTED).passed is passed


def test_reason_says_why():
    assert verdict(parse(message()), TRUSTED).reason == (
        "no Authentication-Results header from a trusted server"
    )
    result = verdict(parse(message("mx.mvai.test; dkim=pass header.d=advisors.test")), TRUSTED)
    assert result.reason == "dkim=pass for advisors.test (mx.mvai.test)"
