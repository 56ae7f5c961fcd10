"""The outgoing mail as bytes (compose.build): what a mail reader makes of it.

build writes the MIME directly (the email package's header objects cost more than the rest of
a new case). Each case here is read back with the email package's strict modern parser and
must say exactly what was put in: headers decoded, bodies byte for byte, nothing added.
"""

from __future__ import annotations

import email
from dataclasses import replace
from email import policy
from email.message import EmailMessage

import pytest

from mailbot.config import Config
from mailbot.outbound import compose

TEXT = "Dear Chief Whitfield,\n\nWe received your request.\n\n-- \nMVAI Intake\n"
HTML = "<p>Dear Chief Whitfield,</p>\n<p>We received your request.</p>\n"


def built(cfg: Config, **kw) -> tuple[bytes, EmailMessage]:
    args = {
        "message_id": "ack.MVAI-2026-0001@mvai.test",
        "to": ["chief@agency.test"],
        "subject": "Re: Request for help [MVAI-2026-0001]",
        "text": TEXT,
        "html": HTML,
        "auto_submitted": "auto-replied",
    } | kw
    raw = compose.build(cfg, **args)
    parsed = email.message_from_bytes(raw, policy=policy.default)
    assert isinstance(parsed, EmailMessage)
    return raw, parsed


def bodies(msg: EmailMessage) -> tuple[str, str]:
    plain = msg.get_body(("plain",))
    html = msg.get_body(("html",))
    assert plain is not None and html is not None
    # the parser hands over a part's lines as they are on the wire: CRLF
    return plain.get_content().replace("\r\n", "\n"), html.get_content().replace("\r\n", "\n")


def assert_well_formed(raw: bytes) -> None:
    assert b"\n" not in raw.replace(b"\r\n", b"")  # CRLF only
    assert b"\r" not in raw.replace(b"\r\n", b"")
    lines = raw.split(b"\r\n")
    assert max(len(line) for line in lines) <= 998
    head = raw.split(b"\r\n\r\n", 1)[0]
    assert head.isascii()


def test_an_acknowledgement_reads_back_exactly(cfg: Config):
    raw, msg = built(
        cfg,
        in_reply_to="CAF=abc.123@mail.agency.test",
        references=["first@agency.test", "CAF=abc.123@mail.agency.test", "first@agency.test"],
        reply_to="mvai+0a1b2c3d4e@mvai.test",
        case_ref="MVAI-2026-0001",
    )
    assert_well_formed(raw)
    assert msg["From"] == f"{cfg.mailbot.display_name} <{cfg.mailbot.address}>"
    assert msg["To"] == "chief@agency.test" and msg["Cc"] is None
    assert msg["Subject"] == "Re: Request for help [MVAI-2026-0001]"
    assert msg["Message-ID"] == "<ack.MVAI-2026-0001@mvai.test>"
    assert msg["In-Reply-To"] == "<CAF=abc.123@mail.agency.test>"
    assert msg["References"] == "<first@agency.test> <CAF=abc.123@mail.agency.test>"
    assert msg["Reply-To"] == "mvai+0a1b2c3d4e@mvai.test"
    assert (msg["Auto-Submitted"], msg["Precedence"]) == ("auto-replied", "auto_reply")
    assert msg["X-Auto-Response-Suppress"] == "All"
    assert msg[compose.MARKER_HEADER] == "MVAI-2026-0001"
    assert msg["Date"].datetime is not None
    assert msg.get_content_type() == "multipart/alternative"
    assert [p.get_content_type() for p in msg.iter_parts()] == ["text/plain", "text/html"]
    assert bodies(msg) == (TEXT, HTML)
    assert not msg.defects and all(not p.defects for p in msg.iter_parts())
    assert [p["Content-Transfer-Encoding"] for p in msg.iter_parts()] == ["7bit", "7bit"]


def test_non_ascii_names_subjects_and_bodies(cfg: Config):
    cfg = replace(cfg, mailbot=replace(cfg.mailbot, display_name="Équipe MVAI — accueil"))
    subject = "Re: Tiroteo en la Iglesia de San José — ayuda urgente 🙏 [MVAI-2026-0002] " * 2
    text = "Estimada Jefa Núñez,\n\nRecibimos su solicitud — gracias.\n"
    html = "<p>Estimada Jefa Núñez,</p>\n"
    raw, msg = built(cfg, subject=subject, text=text, html=html, auto_submitted="auto-generated")
    assert_well_formed(raw)
    head = raw.split(b"\r\n\r\n", 1)[0].split(b"\r\n")
    assert max(len(line) for line in head) <= 78
    assert msg["From"].addresses[0].display_name == "Équipe MVAI — accueil"
    assert msg["From"].addresses[0].addr_spec == cfg.mailbot.address
    assert msg["Subject"] == compose.one_line(subject, 250)
    assert msg["Precedence"] == "bulk"
    assert bodies(msg) == (text, html)
    assert [p["Content-Transfer-Encoding"] for p in msg.iter_parts()] == ["8bit", "8bit"]


@pytest.mark.parametrize(
    "subject",
    [
        "Help\r\nBcc: victim@evil.test",
        "Help\nX-Injected: yes",
        "Help =?utf-8?b?QmNjOiBldmls?= now",
        "Help\x00\x1b[31m\u2028 now",
        "x" * 400,
    ],
)
def test_no_value_can_add_a_header_or_break_the_mail(cfg: Config, subject: str):
    raw, msg = built(cfg, subject=subject)
    assert_well_formed(raw)
    names = [name.lower() for name in msg]  # header names, repeats included
    assert "bcc" not in names and "x-injected" not in names
    assert len(names) == len(set(names))
    head = raw.split(b"\r\n\r\n", 1)[0].replace(b"\r\n ", b" ")  # unfolded header lines
    lines = head.split(b"\r\n")
    assert len([line for line in lines if line.lower().startswith(b"subject:")]) == 1
    assert not [line for line in lines if line.lower().startswith((b"bcc:", b"x-injected:"))]
    assert msg["Subject"] == compose.one_line(subject, 250)


def test_many_recipients_and_references_are_folded(cfg: Config):
    to = [f"coordinator{i}@mvai.test" for i in range(12)]
    refs = [f"ref{i}.{'a' * 30}@agency.test" for i in range(25)]
    raw, msg = built(cfg, to=to, cc=["advisor@advisors.test"], references=refs)
    assert_well_formed(raw)
    head = raw.split(b"\r\n\r\n", 1)[0].split(b"\r\n")
    assert max(len(line) for line in head) <= 78
    assert [a.addr_spec for a in msg["To"].addresses] == to
    assert [a.addr_spec for a in msg["Cc"].addresses] == ["advisor@advisors.test"]
    assert msg["References"].split() == [f"<{r}>" for r in refs[-20:]]


def test_a_body_line_longer_than_smtp_allows_is_quoted_printable(cfg: Config):
    text = "Pasted log: " + "é" * 700 + "x" * 900 + "\nnext line\n"
    html = "<p>" + "y" * 2000 + "</p>\n"
    raw, msg = built(cfg, text=text, html=html)
    assert_well_formed(raw)
    assert [p["Content-Transfer-Encoding"] for p in msg.iter_parts()] == [
        "quoted-printable",
        "quoted-printable",
    ]
    assert bodies(msg) == (text, html)


def test_an_invalid_address_is_refused(cfg: Config):
    with pytest.raises(ValueError, match="not a usable address"):
        built(cfg, to=["chief@agency.test\r\nBcc: x@evil.test"])


def test_a_message_id_too_long_for_a_line_is_left_out_of_the_thread_headers(cfg: Config):
    huge = "x" * 2000 + "@agency.test"
    raw, msg = built(cfg, in_reply_to=huge, references=["ok@agency.test", huge])
    assert_well_formed(raw)
    assert msg["In-Reply-To"] is None
    assert msg["References"] == "<ok@agency.test>"


@pytest.mark.parametrize(
    "value",
    [
        "Re: help after the shooting [MVAI-2026-0001]",
        "two  spaces\tand a tab",
        "CR\r\nBcc: evil@attacker.test",
        "nul\x00 and bell\x07",
        "line\u2028separator and nbsp\xa0here",
        "=?utf-8?q?encoded?= and \ufffd",
        "",
        "  \t ",
    ],
)
def test_one_line_takes_out_every_control_character_and_folds_spaces(value: str):
    line = compose.one_line(value, 500)
    assert line.isprintable() and "  " not in line and line == line.strip()
    reference = " ".join("".join(c if c.isprintable() else " " for c in value).split())
    assert line == reference.replace("=?", "= ?").replace("\ufffd", "?")
