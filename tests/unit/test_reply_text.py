"""Reply text (mailbot.inbound.reply_text) on the replies corpus and on focused cases.

The corpus (shared/corpora/replies) gathers the fixtures of eleven open-source reply parsers.
expected.json holds the reply text each source's own tests assert; assertions.json says how to
compare it (exact, strip, whitespace_insensitive) and keeps the weaker upstream checks. A file
with an expected text passes when ours matches it with whitespace folded (or removed, for
whitespace_insensitive), or when the two differ only by a signature block at the end: the
sources disagree on signatures (talon keeps "Sent from my iPhone", github drops "-Name").
A file without one passes the upstream checks that concern new text: what the first fragment
contains, how it starts, what must not be in the reply, and the time limits. ``reply_contains``
is not used: some sources keep the quote above an inline answer, which we never do.

Files where our rules knowingly differ from a source are listed with the reason and run as
strict xfails, so a change that fixes one is noticed.
"""

from __future__ import annotations

import json
import re
import time
from collections import Counter
from email.message import EmailMessage

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mailbot.inbound.reply_text import new_text, reply_text
from tests.conftest import CORPORA

CORPUS = CORPORA / "replies"
TARGET = 0.90
SLOW_SECONDS = 1.0  # the upstream limit for its performance traps


def _load(name: str) -> dict:
    path = CORPUS / name
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}


EXPECTED: dict[str, str] = _load("expected.json")
ASSERTIONS: dict[str, dict] = _load("assertions.json")

_KEEPS_QUOTE = "trimmer keeps a quote that has new text below it, or a body that is only a quote"
_TOP_ATTRIBUTION = (
    "an attribution with nothing above it, then unquoted text: trimmer reads the text as the "
    "reply; we read it as the quoted message of an empty reply, so nothing quoted passes as new"
)
KNOWN_DIFFERENCES = {
    "talon__sig_johndoeexamplecom.txt": (
        "talon marks this fixture's signature lines with its '#sig#' training markup; we keep "
        "lines that start with '#', as advisors' commands do"
    ),
    "trimmer__embedded_email_7.txt": _KEEPS_QUOTE,
    "trimmer__embedded_email_16.txt": _KEEPS_QUOTE,
    "trimmer__quote_and_text.txt": _KEEPS_QUOTE,
    "trimmer__quote_only.txt": _KEEPS_QUOTE,
    "trimmer__embedded_email_17.txt": _TOP_ATTRIBUTION + "; trimmer also keeps an inline quote",
    "trimmer__embedded_email_18.txt": _TOP_ATTRIBUTION,
    "trimmer__forwarded_message.txt": (
        "a forward with no text of its own: trimmer returns the forwarded message, we return "
        "nothing new (as quotequail does for its bare forwards)"
    ),
    "erp-edgetier__bet_at_home_footer_separator.txt": (
        "a company footer below a dotted rule ('**. . . .**') holds prose, so it is not taken "
        "for a signature"
    ),
}

# --- comparing with the corpus ----------------------------------------------------------------

# How a signature block the sources disagree on starts (our own list, not the module's).
_SIGNATURE_START = re.compile(
    r"^(?:--|__|—|[-/]\w|sent\s(?:from|with|via)|get\soutlook|envoy[ée]\s|von\smeinem|gesendet"
    r"|enviado|thanks|thank\syou|cheers|best|(?:kind\s|warm\s)?regards|sincerely|cordialement"
    r"|(?:mit\s)?freundliche|viele\sgrü|saludos|groeten|pozdrawiam)",
    re.IGNORECASE,
)
_NAME = re.compile(r"^[A-Z][\w.'-]*(?:\s[A-Z][\w.'-]*){0,2}$")
_SIGNATURE_TAIL_LINES = 6
_SIGNATURE_TAIL_CHARS = 60


def run(name: str) -> str:
    data = (CORPUS / name).read_bytes()
    if name.endswith(".eml"):
        return reply_text(data)
    return new_text(data.decode("utf-8"), html=name.endswith(".html"))


def _fold(text: str, mode: str) -> str:
    if mode == "whitespace_insensitive":
        return re.sub(r"\s+", "", text)
    return " ".join(text.split())


def _lines(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if line.strip()]


def _signature_tail(lines: list[str]) -> bool:
    if not 0 < len(lines) <= _SIGNATURE_TAIL_LINES:
        return False
    if any(len(line) > _SIGNATURE_TAIL_CHARS for line in lines):
        return False
    if len(lines) == 1 and _NAME.match(lines[0]):  # a bare "Bob" under the text
        return True
    return bool(_SIGNATURE_START.match(lines[0]))


def matches(got: str, expected: str, mode: str) -> bool:
    """Equal with whitespace folded, or equal but for a signature block at the end of one."""
    if _fold(got, mode) == _fold(expected, mode):
        return True
    shorter, longer = sorted((_lines(got), _lines(expected)), key=len)
    head = [_fold(line, mode) for line in longer[: len(shorter)]]
    return head == [_fold(line, mode) for line in shorter] and _signature_tail(
        longer[len(shorter) :]
    )


def matches_strictly(got: str, expected: str, mode: str) -> bool:
    """As the source's own test compares."""
    if mode == "exact":
        return got == expected
    if mode == "strip":
        return got.strip() == expected.strip()
    return _fold(got, mode) == _fold(expected, mode)


def _as_list(value: object) -> list[str]:
    values = value if isinstance(value, list) else [value]
    return [v for v in values if isinstance(v, str) and v]


def upstream_problems(name: str, got: str, seconds: float) -> list[str]:
    """The upstream checks, other than the expected text, that concern new text."""
    flat = " ".join(got.split())
    problems = []
    for record in ASSERTIONS[name]["assertions"]:
        kind = record["kind"]
        value = record.get("value")
        if kind == "first_fragment_contains":
            problems += [f"lost {v!r}" for v in _as_list(value) if " ".join(v.split()) not in flat]
        if kind == "startswith" and not got.startswith(str(value).strip()):
            problems.append(f"does not start with {value!r}")
        if kind == "nonempty_and_not_contains" and not got:
            problems.append("empty")
        unwanted = [record.get(key) for key in ("reply_not_contains", "body_not_contains")]
        unwanted.append(record.get("first_fragment_not_contains"))
        if kind in ("reply_not_contains", "nonempty_and_not_contains"):
            unwanted.append(value)
        for item in unwanted:
            problems += [f"kept {v!r}" for v in _as_list(item) if " ".join(v.split()) in flat]
        if kind == "performance" and seconds > SLOW_SECONDS:
            problems.append(f"took {seconds:.2f} s")
    return problems


def _corpus_params() -> list:
    return [
        pytest.param(
            name,
            marks=pytest.mark.xfail(reason=KNOWN_DIFFERENCES[name], strict=True)
            if name in KNOWN_DIFFERENCES
            else (),
            id=name,
        )
        for name in sorted(ASSERTIONS)
    ]


@pytest.mark.parametrize("name", _corpus_params())
def test_corpus_file(name: str, caplog: pytest.LogCaptureFixture):
    started = time.perf_counter()
    got = run(name)
    seconds = time.perf_counter() - started
    assert not [r for r in caplog.records if r.name == "mailbot.inbound.reply_text"]
    if name in EXPECTED:
        mode = ASSERTIONS[name]["expected_compare"]
        assert matches(got, EXPECTED[name], mode), (got, EXPECTED[name])
    assert upstream_problems(name, got, seconds) == []


@pytest.mark.skipif(not EXPECTED, reason="replies corpus not present")
def test_corpus_pass_rate():
    passed: Counter[str] = Counter()
    strict: Counter[str] = Counter()
    total: Counter[str] = Counter()
    failing = []
    for name in sorted(EXPECTED):
        source, got = name.split("__")[0], run(name)
        expected, mode = EXPECTED[name], ASSERTIONS[name]["expected_compare"]
        total[source] += 1
        passed[source] += matches(got, expected, mode)
        strict[source] += matches_strictly(got, expected, mode)
        if not matches(got, expected, mode):
            why = KNOWN_DIFFERENCES.get(name, f"got {got[:160]!r}, expected {expected[:160]!r}")
            failing.append(f"  {name}: {why}")
    rate = sum(passed.values()) / sum(total.values())
    print(f"\nreplies corpus: {sum(passed.values())}/{sum(total.values())} = {rate:.1%}")
    print(f"as the sources compare (no folding, signatures as asserted): {sum(strict.values())}")
    for source in sorted(total):
        print(f"  {source:16} {passed[source]:3}/{total[source]:3}  strict {strict[source]:3}")
    print("failing files:", *failing, sep="\n")
    assert rate >= TARGET, "\n".join(failing)


# --- focused cases ----------------------------------------------------------------------------

ATTRIBUTION = "On Mon, Jan 5, 2026 at 9:00 AM Pat Coordinator <coord@mvai.test> wrote:"
QUOTED_COMMAND = "#status closed"


@pytest.mark.parametrize(
    "history",
    [
        f"{ATTRIBUTION}\n> {QUOTED_COMMAND}\n> Closing this one.",
        f"{ATTRIBUTION}\n>> {QUOTED_COMMAND}",
        f"{ATTRIBUTION}\n\n{QUOTED_COMMAND}\nClosing this one.",
        f"-----Original Message-----\nFrom: Pat\nSent: Monday\n\n{QUOTED_COMMAND}",
        f"---------- Forwarded message ---------\nFrom: Pat <coord@mvai.test>\n\n{QUOTED_COMMAND}",
        f"Begin forwarded message:\n\n{QUOTED_COMMAND}",
        f"Pat Coordinator wrote:\n\n{QUOTED_COMMAND}",
    ],
)
def test_a_command_in_quoted_text_is_not_new(history: str):
    assert new_text(f"Thanks, I will look at it.\n\n{history}\n") == "Thanks, I will look at it."


def test_a_command_above_the_quote_is_new():
    body = f"#status active\nI am on it.\n\n{ATTRIBUTION}\n> {QUOTED_COMMAND}\n"
    assert new_text(body) == "#status active\nI am on it."


def test_inline_answers_between_quotes_are_new():
    body = (
        f"{ATTRIBUTION}\n> Which status should the case have?\n\n#status active\n\n"
        f"> {QUOTED_COMMAND}\n> Anything else?\n\nNo, that is all.\n"
    )
    assert new_text(body) == "#status active\n\nNo, that is all."


@pytest.mark.parametrize(
    "attribution",
    [
        "On Tue, 16 Nov 2021, 12:34 pm John Doe <john@example.com>\nwrote:",
        "On Dec 16, 2011, at 12:47 PM, Corey Donohoe\n<reply@reply.github.com>\nwrote:",
        "Am 26.5.2017\num 12:00 schrieb Adam\n<adam@example.com>:",
        "tir. 18. apr. 2017 kl. 13:09 skrev Test user <test@example.com\n>:",
        "pe 20. lokakuuta 2017 klo 17.50 John Coe\n<john@example.com> kirjoitti:",
    ],
)
def test_wrapped_attributions(attribution: str):
    body = f"Reply above.\n\n{attribution}\n\n> {QUOTED_COMMAND}\n"
    assert new_text(body) == "Reply above."


@pytest.mark.parametrize(
    "attribution",
    [
        "Le lun. 15 nov. 2021 à 19:42, John <john@example.com> a écrit :",
        "Le 29 avr. 2025 à 11:11, Chris <chris@example.com> a écrit :",
        "Am 12.06.2016 um 10:00 schrieb Wilhelm N <w@example.com>:",
        "Adam Mustermann <adam@example.com> schrieb am Di., 16. Mai 2017 um 10:20:",
        "El mar., 16 nov. 2021 a las 12:34, John (<john@example.com>) escribió:",
        "Il giorno mar 16 nov 2021 alle ore 12:34 John <john@example.com> ha scritto:",
        "Op di 16 nov. 2021 om 12:34 schreef John <john@example.com>:",
        "Em ter., 16 de nov. de 2021 às 12:34, John <john@example.com> escreveu:",
        "16 нояб. 2021 г., в 12:34, John <john@example.com> написал(а):",
        "W dniu 16.11.2021 o 12:34, John <john@example.com> pisze:",
        "Den tis 16 nov. 2021 kl 12:34 skrev John <john@example.com>:",
        "2021年11月16日(火) 12:34 John <john@example.com>:",
        "在 2021年11月16日 12:34，John <john@example.com> 写道：",
    ],
)
def test_attributions_in_other_languages_end_the_new_text(attribution: str):
    body = f"Reply above.\n\n{attribution}\n\n{QUOTED_COMMAND}\nThe original message.\n"
    assert new_text(body) == "Reply above."


@pytest.mark.parametrize(
    "headers",
    [
        "________________________________\nFrom: Pat <coord@mvai.test>\n"
        "Sent: Monday, January 5, 2026 9:00 AM\nTo: Advisors\nSubject: RE: Case 12",
        "From: Pat [mailto:coord@mvai.test]\nSent: Monday, January 5, 2026 9:00 AM\n"
        "To: Advisors\nSubject: RE: Case 12",
        "*From:* Pat [mailto:coord@mvai.test]\n*Sent:* Monday, January 5, 2026 9:00 AM",
        "Von: Pat <coord@mvai.test>\nGesendet: Montag, 5. Januar 2026 09:00\nAn: Beratung\n"
        "Betreff: AW: Fall 12",
        "De : Pat <coord@mvai.test>\nEnvoyé : lundi 5 janvier 2026 09:00\nÀ : Conseil\n"
        "Objet : RE: Dossier 12",
        "-----Ursprüngliche Nachricht-----\nVon: Pat <coord@mvai.test>\nAn: Beratung",
    ],
)
def test_outlook_header_blocks_end_the_new_text(headers: str):
    body = f"Reply above.\n\n{headers}\n\n{QUOTED_COMMAND}\n"
    assert new_text(body) == "Reply above."


@pytest.mark.parametrize(
    "markup",
    [
        '<div dir="ltr">Reply above.</div><br><div class="gmail_quote"><div class="gmail_attr">'
        "On Mon, Jan 5, 2026 at 9:00 AM Pat &lt;coord@mvai.test&gt; wrote:<br></div>"
        '<blockquote class="gmail_quote" style="margin:0 0 0 .8ex;border-left:1px #ccc solid">'
        f"<div>{QUOTED_COMMAND}</div></blockquote></div>",
        "<div>Reply above.</div><div><br><div>On Jan 5, 2026, at 09:00, Pat wrote:</div>"
        f'<blockquote type="cite"><div>{QUOTED_COMMAND}</div></blockquote></div>',
        '<div>Reply above.</div><div id="appendonsend"></div><hr><div id="divRplyFwdMsg">'
        f"<b>From:</b> Pat<br><b>Sent:</b> Monday</div><div>{QUOTED_COMMAND}</div>",
        "<p>Reply above.</p><div style='border:none;border-top:solid #E1E1E1 1.0pt;"
        f"padding:3.0pt 0in 0in 0in'><p><b>From:</b> Pat</p></div><p>{QUOTED_COMMAND}</p>",
        '<div>Reply above.</div><div class="yahoo_quoted"><div>On Monday, January 5, 2026, '
        f"Pat wrote:</div><div>{QUOTED_COMMAND}</div></div>",
        '<p>Reply above.</p><div class="moz-cite-prefix">On 05/01/2026 09:00, Pat wrote:<br>'
        f'</div><blockquote type="cite">{QUOTED_COMMAND}</blockquote>',
    ],
)
def test_html_quotes_are_cut_before_conversion(markup: str):
    assert new_text(f"<html><body>{markup}</body></html>", html=True) == "Reply above."


@pytest.mark.parametrize(
    "signature",
    [
        "Sent from my iPhone",
        "Sent from my Android",
        "Sent from my Samsung Galaxy smartphone.",
        "Get Outlook for iOS<https://aka.ms/o0ukef>",
        "Sent from Mail for Windows 10",
        "Envoyé de mon iPhone",
        "Von meinem iPhone gesendet",
        "Enviado desde mi iPhone",
        "-- \nPat Advisor\nMass Violence Advisory Initiative",
        "Best regards,\nPat Advisor\n+1 555 0100",
        "Mit freundlichen Grüßen\nPat Advisor",
    ],
)
def test_signatures_are_not_new_text(signature: str):
    assert new_text(f"#status active\nWill do.\n\n{signature}\n") == "#status active\nWill do."


def test_a_mobile_line_at_the_top_is_dropped_alone():
    assert new_text("Sent from my iPhone\n\nHi,\n\nWill do.") == "Hi,\n\nWill do."


@pytest.mark.parametrize(
    "body",
    [
        "Thanks!",
        "Here is another email\n\nSent from my desk, is much easier then my mobile phone.",
        "The notification was sent from my iPhone app to all users.",
        "Here is a fix -- this is not a signature.",
        "On the surface, this looks like a quote header but it's not.",
        "On Thursday:\n\nWe meet at 10:00.",
        "Here is what the officer wrote:\n\nThree people injured.",
        "Meeting notes:\nFrom: the officer's report, 3 injured.\nTo: be confirmed.",
        "Update 05/01/2026 09:00 from pat@example.com:\nAll quiet.",
        "## Key Points\n----\n\n1. Performance improved by 50%\n\n----\n\nThe dashes above are "
        "markdown formatting, not signatures.",
    ],
)
def test_text_that_only_looks_like_a_signature_or_quote_stays(body: str):
    assert new_text(body) == body


def test_reply_text_prefers_the_plain_part():
    msg = EmailMessage()
    msg["From"] = "advisor@example.com"
    msg.set_content(f"#status active\n\n{ATTRIBUTION}\n> {QUOTED_COMMAND}\n")
    msg.add_alternative("<p>HTML version</p>", subtype="html")
    assert reply_text(msg.as_bytes()) == "#status active"


def test_reply_text_falls_back_to_html():
    msg = EmailMessage()
    msg["From"] = "advisor@example.com"
    msg.set_content(
        f'<p>#status active</p><blockquote type="cite"><p>{QUOTED_COMMAND}</p></blockquote>',
        subtype="html",
    )
    assert reply_text(msg.as_bytes()) == "#status active"


def test_reply_text_of_broken_bytes_is_a_string():
    assert isinstance(reply_text(b"\x00\xff garbage \r\n\r\n--"), str)


@pytest.mark.parametrize(
    ("body", "html"),
    [
        ("<div" * 200_000, True),
        ("< " * 300_000, True),
        ("-----\n" * 200_000, False),
        ("a <b\n" + ">:\n" * 200_000, False),
        ("x" * 5_000_000, False),
        (f"text\n{ATTRIBUTION}\n> x\nreply\n" * 50_000, False),
    ],
    ids=["unclosed-tags", "stray-lt", "rules", "address-ends", "one-long-line", "inline"],
)
def test_pathological_bodies_are_fast(body: str, html: bool):
    started = time.perf_counter()
    assert isinstance(new_text(body, html=html), str)
    assert time.perf_counter() - started < 2 * SLOW_SECONDS


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet=st.characters(blacklist_characters="#>"), max_size=300))
def test_a_quoted_command_never_becomes_new_text(reply: str):
    body = f"{reply}\n\n{ATTRIBUTION}\n> {QUOTED_COMMAND}\n"
    assert QUOTED_COMMAND not in new_text(body)
    assert QUOTED_COMMAND not in new_text(body.replace("\n", "\r\n"))
