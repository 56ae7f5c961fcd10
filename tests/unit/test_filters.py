"""Tests of mailbot.inbound.filters and mailbot.rules.

The corpora in ../shared/corpora drive the main tests: every bounce must be found as a bounce
(except the sisimai__not-* controls), every auto-reply as an auto-reply, and of the general
messages and replies only the files in ``EXPECTED_DISCARDS`` (each checked by hand) may be
discarded. Small hand-written messages pin down each check.
"""

from __future__ import annotations

import dataclasses
import json
import re
from email.header import Header
from email.message import Message
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mailbot.errors import Discard, RulesError
from mailbot.inbound.filters import (
    CHECKS,
    FilterContext,
    FilterRules,
    classify,
    own_mail,
)
from mailbot.inbound.parse import ParsedMessage, parse
from mailbot.outbound.compose import MARKER_HEADER
from mailbot.rules import compile_patterns, load_toml, require

ROOT = Path(__file__).resolve().parents[2]
CORPORA = ROOT.parent / "shared" / "corpora"
OWN = "mvai@advisory.example.org"

# What the filters make of the general corpora; every file not listed here must pass.
EXPECTED_DISCARDS = {
    "messages/cpython__msg_25.eml": "bounce",  # sendmail DSN, multipart/report
    "messages/cpython__msg_43.eml": "bounce",  # virus-scanner DSN, multipart/report
    "messages/cpython__msg_33.eml": "list",  # freebsd-isp list post, Precedence: bulk
    "messages/flanker__apache-message-news-mime.eml": "list",  # new-httpd list, Precedence: bulk
    "messages/flanker__from-encoding.eml": "list",  # new-httpd list post, Precedence: bulk
    "messages/mikel__error_emails__bad_date_header.eml": "list",  # spam, Precedence: junk
    "messages/mikel__error_emails__empty_in_reply_to.eml": "list",  # carries List-Id
    "messages/spamscope__mail_test_5.eml": "list",  # newsletter, List-Unsubscribe
    "messages/spamscope__mail_test_6.eml": "list",  # Russian newsletter, List-Id
    "messages/spamscope__mail_test_13.eml": "list",  # MailChimp newsletter, List-Id
    "messages/phpmmp__issue212.eml": "autoreply",  # Polish Outlook "Automatyczna odpowiedź:"
    # A fixture that uses postmaster@example.com as a placeholder sender. Mail From
    # postmaster is MTA mail by rule (rules/filters.toml, bounce.sender_localparts).
    "messages/flanker__long-links.eml": "bounce",
}


@pytest.fixture(scope="module")
def ctx() -> FilterContext:
    return FilterContext(frozenset({OWN}), FilterRules.load(ROOT / "rules"))


def kind_of(msg: ParsedMessage, ctx: FilterContext) -> str | None:
    try:
        classify(msg, ctx)
    except Discard as stop:
        return stop.kind
    return None


def reason_of(msg: ParsedMessage, ctx: FilterContext) -> str:
    with pytest.raises(Discard) as stop:
        classify(msg, ctx)
    return stop.value.reason


def indexed(folder: str) -> list[str]:
    index = CORPORA / folder / "INDEX.json"
    if not index.exists():
        return []
    return sorted(entry["file"] for entry in json.loads(index.read_text(encoding="utf-8")))


def corpus_files(*folders: str) -> list[str]:
    return sorted(
        f"{folder}/{path.name}" for folder in folders for path in (CORPORA / folder).glob("*.eml")
    )


def load(relative: str) -> ParsedMessage:
    return parse((CORPORA / relative).read_bytes())


# --- the corpora --------------------------------------------------------------------------


@pytest.mark.parametrize("folder", ["bounces", "autoreplies"])
def test_every_corpus_file_is_indexed(folder: str) -> None:
    if not (CORPORA / folder).is_dir():
        pytest.skip(f"no corpus at {CORPORA / folder}")
    assert [name.partition("/")[2] for name in corpus_files(folder)] == indexed(folder)


@pytest.mark.parametrize("name", indexed("bounces"))
def test_bounce_corpus(name: str, ctx: FilterContext) -> None:
    # sisimai's "not" folder holds ordinary messages that bounce parsers must leave alone.
    # ARF complaints (flanker__complaints-*, sisimai__arf-*) are recorded as bounces.
    expected = None if name.startswith("sisimai__not-") else "bounce"
    assert kind_of(load(f"bounces/{name}"), ctx) == expected


@pytest.mark.parametrize("name", indexed("autoreplies"))
def test_autoreply_corpus(name: str, ctx: FilterContext) -> None:
    assert kind_of(load(f"autoreplies/{name}"), ctx) == "autoreply"


@pytest.mark.parametrize("name", corpus_files("messages", "replies"))
def test_general_corpus_only_expected_discards(name: str, ctx: FilterContext) -> None:
    # Any exception other than Discard fails here too: odd mail must never break the stage.
    assert kind_of(load(name), ctx) == EXPECTED_DISCARDS.get(name)


def test_expected_discards_name_existing_files() -> None:
    if not CORPORA.is_dir():
        pytest.skip(f"no corpora at {CORPORA}")
    assert [name for name in EXPECTED_DISCARDS if not (CORPORA / name).is_file()] == []


# --- hand-written messages ----------------------------------------------------------------


def message(headers: dict[str, str], body: str = "Please call me.\n") -> ParsedMessage:
    """A message as a mail client writes it: non-ASCII header values RFC 2047-encoded."""
    base = {"From": "Chief Ann Lee <alee@pd.example.gov>", "To": OWN, "Subject": "Request"}
    lines = [
        f"{name}: {value if value.isascii() else Header(value, 'utf-8').encode()}"
        for name, value in {**base, **headers}.items()
    ]
    return parse(("\r\n".join(lines) + "\r\n\r\n" + body).encode())


def test_normal_request_passes(ctx: FilterContext) -> None:
    assert kind_of(message({"Subject": "Request for assistance after shooting"}), ctx) is None


def test_out_of_office_only_in_the_body_passes(ctx: FilterContext) -> None:
    body = "Our PIO is out of office until Monday; please reply to me.\nOut of Office\n"
    assert kind_of(message({"Subject": "Need PIO support"}, body), ctx) is None


@pytest.mark.parametrize(
    "subject",
    [
        "Away team debrief request",
        "Vacation rental shooting - need advice",
        "Leave policy for officers after the incident",
        "Absent victims' families: how to reach them",
        "Re: Automatic reply settings for our chief?",
        "Read the attached after-action report",
        "Delivery of the community wellness session",
    ],
)
def test_subjects_that_only_look_automatic_pass(subject: str, ctx: FilterContext) -> None:
    assert kind_of(message({"Subject": subject}), ctx) is None


def test_x_auto_response_suppress_alone_passes(ctx: FilterContext) -> None:
    assert kind_of(message({"X-Auto-Response-Suppress": "All"}), ctx) is None


@pytest.mark.parametrize("value", ["no", "No", "no (explicitly human)"])
def test_auto_submitted_no_passes(value: str, ctx: FilterContext) -> None:
    assert kind_of(message({"Auto-Submitted": value}), ctx) is None


@pytest.mark.parametrize(
    "value", ["auto-replied", "auto-generated (failure)", "auto-notified", "AUTO-REPLIED"]
)
def test_auto_submitted_other_than_no_is_autoreply(value: str, ctx: FilterContext) -> None:
    msg = message({"Auto-Submitted": value})
    assert kind_of(msg, ctx) == "autoreply"
    assert reason_of(msg, ctx) == f"Auto-Submitted: {value.split()[0]}"


@pytest.mark.parametrize(
    "headers",
    [
        {"X-Autoreply": "yes"},
        {"X-Autorespond": "Request"},
        {"X-Autogenerated": "Reply"},
        {"X-Apple-Action": "VACATION"},
        {"X-Mailer": "vacation 1.2.7"},
        {"Precedence": "auto_reply"},
    ],
)
def test_auto_reply_headers(headers: dict[str, str], ctx: FilterContext) -> None:
    assert kind_of(message(headers), ctx) == "autoreply"


def test_free_text_header_reason_is_only_its_name(ctx: FilterContext) -> None:
    msg = message({"X-Autorespond": "Re: victim Jane Roe"})
    assert reason_of(msg, ctx) == "X-Autorespond"


def test_auto_forward_header_passes(ctx: FilterContext) -> None:
    # An auto-forwarded genuine request must still be answered.
    assert kind_of(message({"X-Autogenerated": "Forward"}), ctx) is None


@pytest.mark.parametrize(
    "subject",
    [
        "Out of Office: Request",
        "Out of the office until 5 May",
        "Automatic reply: Request",
        "Auto-Reply: Request",
        "Away until May 5",
        "On annual leave",
        "Abwesenheitsnotiz: Anfrage",
        "Automatische Antwort: Anfrage",
        "Abwesend bis 5. Mai",
        "Réponse automatique : Demande",
        "Absence du bureau",
        "Respuesta automática: Solicitud",
        "Fuera de la oficina",
        "Risposta automatica: Richiesta",
        "Automatisch antwoord: Verzoek",
        "Resposta automática: Pedido",
        "Automatiskt svar: Begäran",
        "Automatisk svar: Forespørsel",
        "Automaattinen vastaus: Pyyntö",
        "Odpowiedź automatyczna: Prośba",
        "自動応答: ご依頼",
        "自动回复: 请求",
        "[EXTERNAL] Automatic reply: Request",
    ],
)
def test_auto_reply_subjects(subject: str, ctx: FilterContext) -> None:
    assert kind_of(message({"Subject": subject}), ctx) == "autoreply"


def test_german_vacation_subject_encoded(ctx: FilterContext) -> None:
    subject = "=?iso-8859-1?q?Abwesenheitsnotiz=3A_Anfrage_wegen_Einsatz?="
    assert kind_of(message({"Subject": subject}), ctx) == "autoreply"


def test_raw_utf8_subject_is_matched(ctx: FilterContext) -> None:
    raw = "From: a@pd.example.gov\r\nSubject: Réponse automatique : Demande\r\n\r\nx\r\n"
    assert kind_of(parse(raw.encode()), ctx) == "autoreply"


def test_subject_reason_names_the_keyword_not_the_subject(ctx: FilterContext) -> None:
    msg = message({"Subject": "Automatic reply: victim Jane Roe at Lincoln High"})
    assert reason_of(msg, ctx) == "subject matches 'Automatic reply'"


@pytest.mark.parametrize("subject", ["Read: Request", "Gelesen: Anfrage", "Not read: Request"])
def test_read_receipt_subjects(subject: str, ctx: FilterContext) -> None:
    assert kind_of(message({"Subject": subject}), ctx) == "autoreply"


@pytest.mark.parametrize(
    "sender",
    [
        "MAILER-DAEMON@mx.example.net",
        "Mail Delivery Subsystem <mailer-daemon@googlemail.com>",
        "postmaster@example.org",
        "Mail Delivery System <Mail.Delivery.System@mx.example.com>",
        "MAILER-DAEMON <>",
        "mailer-daemon",
    ],
)
def test_bounce_senders(sender: str, ctx: FilterContext) -> None:
    assert kind_of(message({"From": sender, "Subject": "Nyaan"}), ctx) == "bounce"


def test_bounce_sender_reason_hides_the_domain(ctx: FilterContext) -> None:
    msg = message({"From": "MAILER-DAEMON@mx.example.net", "Subject": "x"})
    assert reason_of(msg, ctx) == "sender mailer-daemon@…"


@pytest.mark.parametrize(
    "subject",
    [
        "Undeliverable: Request",
        "Undelivered Mail Returned to Sender",
        "Delivery Status Notification (Failure)",
        "Mail delivery failed: returning message to sender",
        "Returned mail: see transcript for details",
        "failure notice",
        "Delivery failure",
        "Nondeliverable mail",
        "DELIVERY FAILURE: User x not listed",
        "Warning: could not send message for past 4 hours",
        "Mail System Error - Returned Mail",
    ],
)
def test_bounce_subjects(subject: str, ctx: FilterContext) -> None:
    assert kind_of(message({"Subject": subject}), ctx) == "bounce"


def report(report_type: str, part_type: str) -> tuple[str, str]:
    return (
        f'multipart/report; report-type={report_type}; boundary="b"',
        f"--b\r\nContent-Type: text/plain\r\n\r\nA report.\r\n"
        f"--b\r\nContent-Type: {part_type}\r\n\r\nReporting-MTA: dns; mx.example.net\r\n\r\n"
        f"--b--\r\n",
    )


@pytest.mark.parametrize(
    ("report_type", "part_type", "kind"),
    [
        ("delivery-status", "message/delivery-status", "bounce"),
        ("disposition-notification", "message/disposition-notification", "autoreply"),
        ("feedback-report", "message/feedback-report", "bounce"),
    ],
)
def test_reports(report_type: str, part_type: str, kind: str, ctx: FilterContext) -> None:
    content_type, body = report(report_type, part_type)
    msg = message({"MIME-Version": "1.0", "Content-Type": content_type}, body)
    assert kind_of(msg, ctx) == kind
    assert reason_of(msg, ctx) == f"multipart/report; report-type={report_type}"


def test_status_part_outside_a_report(ctx: FilterContext) -> None:
    _, body = report("delivery-status", "message/delivery-status")
    msg = message({"MIME-Version": "1.0", "Content-Type": 'multipart/mixed; boundary="b"'}, body)
    assert reason_of(msg, ctx) == "message/delivery-status part"


def test_forwarded_bounce_passes(ctx: FilterContext) -> None:
    # An agency forwarding "my mail to you bounced" is a person writing to us.
    content_type, report_body = report("delivery-status", "message/delivery-status")
    body = (
        "--outer\r\nContent-Type: text/plain\r\n\r\nOur request bounced, here it is.\r\n"
        "--outer\r\nContent-Type: message/rfc822\r\n\r\n"
        "From: MAILER-DAEMON@mx.example.net\r\nSubject: Undeliverable: Request\r\n"
        f"Auto-Submitted: auto-replied\r\nList-Id: <x.example.net>\r\n"
        f"MIME-Version: 1.0\r\nContent-Type: {content_type}\r\n\r\n{report_body}"
        "--outer--\r\n"
    )
    headers = {
        "Subject": "Fwd: Undeliverable: Request",
        "MIME-Version": "1.0",
        "Content-Type": 'multipart/mixed; boundary="outer"',
    }
    assert kind_of(message(headers, body), ctx) is None


def test_deeply_nested_parts_do_not_recurse(ctx: FilterContext) -> None:
    top = inner = Message()
    inner["Content-Type"] = "multipart/mixed"
    for _ in range(5000):
        child = Message()
        child["Content-Type"] = "multipart/mixed"
        inner.set_payload([child])
        inner = child
    inner.replace_header("Content-Type", "message/delivery-status")
    msg = dataclasses.replace(message({}), message=top, content_type="multipart/mixed")
    assert kind_of(msg, ctx) == "bounce"


@pytest.mark.parametrize("value", ["<>", "< >", ""])
def test_null_return_path_is_bounce(value: str, ctx: FilterContext) -> None:
    assert kind_of(message({"Return-Path": value}), ctx) == "bounce"


def test_null_return_path_with_auto_reply_subject_is_autoreply(ctx: FilterContext) -> None:
    # RFC 3834 auto-replies are sent from <> too; the subject says which it is.
    msg = message({"Return-Path": "<>", "Subject": "Automatic reply: Request"})
    assert kind_of(msg, ctx) == "autoreply"


def test_ordinary_return_path_passes(ctx: FilterContext) -> None:
    assert kind_of(message({"Return-Path": "<alee@pd.example.gov>"}), ctx) is None


@pytest.mark.parametrize(
    "headers",
    [
        {"List-Id": "Chiefs <chiefs.lists.example.org>"},
        {"List-Unsubscribe": "<mailto:leave@lists.example.org>"},
        {"List-Post": "<mailto:chiefs@lists.example.org>"},
        {"Precedence": "list"},
        {"Precedence": "bulk"},
        {"Precedence": "junk"},
    ],
)
def test_list_mail(headers: dict[str, str], ctx: FilterContext) -> None:
    assert kind_of(message(headers), ctx) == "list"


@pytest.mark.parametrize(
    "sender", [OWN, "MVAI <MVAI@Advisory.Example.org>", "mvai+c7f3@advisory.example.org"]
)
def test_own_address_and_plus_addresses_are_own(sender: str, ctx: FilterContext) -> None:
    assert kind_of(message({"From": sender}), ctx) == "own"


def test_other_plus_address_at_our_domain_passes(ctx: FilterContext) -> None:
    msg = message({"From": "coordinator+mvai@advisory.example.org"})
    assert kind_of(msg, ctx) is None


def test_own_addresses_are_compared_without_case() -> None:
    rules = FilterRules.load(ROOT / "rules")
    context = FilterContext(frozenset({"MVAI@Advisory.Example.org"}), rules)
    with pytest.raises(Discard, match="own address"):
        own_mail(message({"From": OWN}), context)


def test_marker_header_is_own_before_anything_else(ctx: FilterContext) -> None:
    # Our outbound mail carries the marker and Auto-Submitted; it must be recorded as ours.
    msg = message({MARKER_HEADER: "ack", "Auto-Submitted": "auto-replied"})
    assert kind_of(msg, ctx) == "own"
    assert CHECKS[0] is own_mail


def test_message_without_headers_passes(ctx: FilterContext) -> None:
    assert kind_of(parse(b"\r\n\r\nJust a body.\r\n"), ctx) is None


_HEADER_NAMES = [
    "From",
    "Subject",
    "Return-Path",
    "Auto-Submitted",
    "Precedence",
    "List-Id",
    "X-Autoreply",
    "X-Mailer",
    "Content-Type",
    "MIME-Version",
    MARKER_HEADER,
]
_HEADER_VALUES = st.text(
    alphabet=st.characters(exclude_categories=("Cs",), exclude_characters="\r\n"),
    max_size=60,
) | st.sampled_from(
    [
        "<>",
        "=?utf-8?b?invalid?=",
        "=?x-unknown?q?abc?=",
        "multipart/report",
        'multipart/report; report-type="',
        "message/delivery-status",
        "multipart/mixed; boundary=",
    ]
)


@settings(max_examples=300, deadline=None)
@given(
    headers=st.lists(st.tuples(st.sampled_from(_HEADER_NAMES), _HEADER_VALUES), max_size=8),
    body=st.binary(max_size=200),
)
def test_odd_input_raises_nothing_but_discard(
    headers: list[tuple[str, str]], body: bytes, ctx: FilterContext
) -> None:
    raw = b"".join(f"{name}: {value}\r\n".encode() for name, value in headers) + b"\r\n" + body
    kind_of(parse(raw), ctx)


# --- mailbot.rules ------------------------------------------------------------------------


def write(tmp_path: Path, text: str, name: str = "filters.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_toml_syntax_error_names_file_and_line(tmp_path: Path) -> None:
    path = write(tmp_path, "[bounce]\nsubjects = ['a'\n  'b']\n")
    with pytest.raises(RulesError) as error:
        load_toml(path)
    assert str(error.value).startswith(f"{path}:3: ")
    assert "(at line" not in str(error.value)


def test_toml_error_at_end_of_document_names_last_line(tmp_path: Path) -> None:
    path = write(tmp_path, "[bounce]\nsubjects = [\n")
    with pytest.raises(RulesError, match=rf"^{re.escape(str(path))}:2: "):
        load_toml(path)


def test_unreadable_rules_file(tmp_path: Path) -> None:
    with pytest.raises(RulesError, match=r"cannot read"):
        load_toml(tmp_path / "missing.toml")


def test_rules_file_that_is_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "filters.toml"
    path.write_bytes(b"# ok\nsubjects = ['caf\xe9']\n")
    with pytest.raises(RulesError, match=rf"^{re.escape(str(path))}:2: not valid UTF-8"):
        load_toml(path)


def test_bad_pattern_names_file_and_line(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "# filters\n[bounce]\nsubjects = [\n    '^ok$',\n    '^(unclosed',\n]\n"
        "[autoreply]\nsubjects = ['^(unclosed']\n",
    )
    data = load_toml(path)
    with pytest.raises(RulesError) as error:
        compile_patterns(path, "bounce.subjects", require(path, data, "bounce.subjects", list))
    assert str(error.value).startswith(f"{path}:5: bounce.subjects: bad pattern '^(unclosed': ")
    with pytest.raises(
        RulesError, match=rf"^{re.escape(str(path))}:8: autoreply.subjects: bad pattern"
    ):
        compile_patterns(
            path, "autoreply.subjects", require(path, data, "autoreply.subjects", list)
        )


def test_a_pattern_that_sets_a_flag_for_the_whole_expression_is_refused(tmp_path: Path) -> None:
    # "(?i)" compiles alone but not inside the one search that joins a key's patterns
    path = write(tmp_path, "[bounce]\nsubjects = ['^ok$', '(?i)undeliverable']\n")
    data = load_toml(path)
    with pytest.raises(
        RulesError, match=rf"^{re.escape(str(path))}:2: bounce.subjects: bad pattern '\(\?i\)"
    ):
        compile_patterns(path, "bounce.subjects", require(path, data, "bounce.subjects", list))


def test_bad_pattern_in_a_basic_string_is_found_too(tmp_path: Path) -> None:
    path = write(tmp_path, '[list.headers]\nList-Id = "a\\"("\nPrecedence = "a\\"(["\n')
    pattern = require(path, load_toml(path), "list.headers.Precedence", str)
    with pytest.raises(
        RulesError, match=rf"^{re.escape(str(path))}:3: list.headers.Precedence: bad pattern"
    ):
        compile_patterns(path, "list.headers.Precedence", [pattern])


def test_bad_pattern_not_found_in_the_text_falls_back_to_the_key(tmp_path: Path) -> None:
    path = write(tmp_path, '[bounce]\n\nsubjects = ["\\u0028"]\n')
    with pytest.raises(
        RulesError, match=rf"^{re.escape(str(path))}:3: bounce.subjects: bad pattern '\('"
    ):
        compile_patterns(
            path, "bounce.subjects", require(path, load_toml(path), "bounce.subjects", list)
        )


def test_pattern_that_is_not_a_string(tmp_path: Path) -> None:
    path = write(tmp_path, "[bounce]\nsubjects = ['ok', 3]\n")
    with pytest.raises(
        RulesError, match=rf"^{re.escape(str(path))}:2: bounce.subjects: expected a string"
    ):
        compile_patterns(path, "bounce.subjects", load_toml(path)["bounce"]["subjects"])


def test_missing_key(tmp_path: Path) -> None:
    path = write(tmp_path, "[bounce]\n")
    with pytest.raises(
        RulesError, match=rf"^{re.escape(str(path))}: bounce.subjects: missing \(expected a list\)"
    ):
        require(path, load_toml(path), "bounce.subjects", list)


def test_key_of_the_wrong_type(tmp_path: Path) -> None:
    path = write(tmp_path, "[bounce]\n\nsubjects = 'Undeliverable'\n")
    expected = rf"^{re.escape(str(path))}:3: bounce.subjects: expected a list, got a str"
    with pytest.raises(RulesError, match=expected):
        require(path, load_toml(path), "bounce.subjects", list)


def test_filter_rules_load_reports_the_rules_file(tmp_path: Path) -> None:
    write(tmp_path, "[bounce]\nsender_localparts = []\n")
    with pytest.raises(RulesError, match=r"filters.toml: bounce.subjects: missing"):
        FilterRules.load(tmp_path)


def test_shipped_rules_compile() -> None:
    rules = FilterRules.load(ROOT / "rules")
    assert rules.bounce_subjects and rules.autoreply_subjects and rules.list_headers
