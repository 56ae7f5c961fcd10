"""Is the From of a message authenticated? Read from trusted Authentication-Results headers.

In: a ``ParsedMessage`` and the authserv-ids of our own mail servers. Out: a ``Verdict`` that
passes when a trusted header (RFC 8601) reports dkim=pass for the From domain (header.d, or
header.i's domain; a subdomain of the From domain's organisation counts) or dmarc=pass for it
(header.from). Headers from any other server are ignored: anyone can write one. Our own MX
must remove or rename incoming headers that claim its authserv-id (RFC 8601, section 5).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from mailbot.inbound.parse import ParsedMessage

_RESULT = re.compile(r"\b(dkim|dmarc)\s*=\s*(\w+)([^;]*)", re.I)
_PROPERTY = re.compile(r"\bheader\.(d|i|from)\s*=\s*\"?([^\s;\"]+)", re.I)


@dataclass(frozen=True)
class Verdict:
    passed: bool
    reason: str


def _aligned(domain: str, from_domain: str) -> bool:
    domain = domain.lower().lstrip("@").rpartition("@")[2]
    return (
        domain == from_domain
        or from_domain.endswith("." + domain)
        or domain.endswith("." + from_domain)
    )


def verdict(msg: ParsedMessage, trusted: tuple[str, ...]) -> Verdict:
    from_domain = msg.from_domain
    if not from_domain:
        return Verdict(False, "no From address")
    trusted_ids = {t.lower() for t in trusted}
    seen_trusted = False
    for header in msg.headers("Authentication-Results"):
        authserv = header.split(";", 1)[0].strip().split()[0].lower() if header.strip() else ""
        if authserv not in trusted_ids:
            continue
        seen_trusted = True
        for method, result, props in _RESULT.findall(header):
            if result.lower() != "pass":
                continue
            for _name, value in _PROPERTY.findall(props):
                if _aligned(value, from_domain):
                    return Verdict(True, f"{method.lower()}=pass for {from_domain} ({authserv})")
    if not seen_trusted:
        return Verdict(False, "no Authentication-Results header from a trusted server")
    return Verdict(False, f"no dkim or dmarc pass for {from_domain}")
