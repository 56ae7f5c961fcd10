"""fastmatch.Gate: RE2 only rules text out, so every answer is re's, on every gate we have."""

from __future__ import annotations

import re

import pytest

from mailbot import fastmatch
from mailbot.cases import crisis
from mailbot.fastmatch import Gate, without_lookarounds
from mailbot.inbound.extraction import classify
from mailbot.inbound.extraction.sentences import sentences
from mailbot.inbound.parse import parse
from tests.conftest import CORPORA, ROOT

RULES = ROOT / "rules"


@pytest.mark.parametrize(
    ("pattern", "expected"),
    [
        (r"\bfoo(?!bar)\b", r"\bfoo\b"),
        (r"(?<=the )school(?= shooting)", r"school"),
        (r"(?<!not )a(?:b|c)", r"a(?:b|c)"),
        (r"a(?!b(?:c|d)\)e)f", r"af"),  # nested groups and an escaped ")" inside
        (r"[(?=]x[\])]y", r"[(?=]x[\])]y"),  # classes hold "(?=" and "]" as members
        (r"[]a](?=b)", r"[]a]"),
        (r"\(?=not a lookahead", r"\(?=not a lookahead"),
        (r"in charge$", None),  # re's $ also matches before a final newline
        (r"a\$b", r"a\$b"),
        (r"(?!unclosed", None),
    ],
)
def test_lookarounds_are_taken_out_and_dollar_is_refused(pattern: str, expected: str | None):
    assert without_lookarounds(pattern) == expected


def test_a_negative_lookahead_still_decides():
    gate = Gate(re.compile(r"\bfoo(?!bar)", re.I))
    assert gate.checked
    assert gate.search("FOObar") is None
    found = gate.search("a Foobaz")
    assert found is not None and found.group() == "Foo"


@pytest.mark.parametrize("space", ["\x0b", "\x1c", "\x1f"])
def test_spaces_only_res_backslash_s_knows_are_left_to_re(space: str):
    gate = Gate(re.compile(r"\bpeer\s+support\b", re.I))
    assert gate.checked and gate.search(f"we need peer{space}support") is not None


@pytest.mark.parametrize("text", ["caf\u00e9 staff", "\u017ftaff", "\u212aitchen staff"])
def test_text_beyond_ascii_is_left_to_re(text: str):
    # re reads "é" as a word character, "ſ" as "s" and the Kelvin sign as "k"; RE2 would not
    gate = Gate(re.compile(r"\bstaff\b|\bkitchen\b|caf\b", re.I))
    assert (gate.search(text) is None) == (gate.pattern.search(text) is None)
    assert gate.search("\u017ftaff") is not None and gate.search("\u212aitchen") is not None


def test_what_re2_cannot_read_is_left_to_re():
    backreference = Gate(re.compile(r"\b(\w)\1\b", re.I))
    assert not backreference.checked and backreference.search("x aa y") is not None
    verbose = Gate(re.compile(r"a b", re.I | re.X))
    assert not verbose.checked and verbose.search("ab") is not None


def test_a_pattern_re2_refuses_writes_nothing_to_stderr(capfd: pytest.CaptureFixture[str]):
    gate = Gate(re.compile(r"\bend\Z", re.I))  # RE2 has no \Z
    assert not gate.checked and gate.search("the end") is not None
    assert capfd.readouterr().err == ""


def test_without_google_re2_every_search_is_res(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(fastmatch, "re2", None)
    gate = Gate(re.compile(r"\bstaff(ing)?\b", re.I))
    assert not gate.checked
    assert gate.search("our STAFFING plan") is not None and gate.search("staffers") is None


def _gates() -> dict[str, Gate]:
    rules = classify.load_rules(RULES)
    inc = rules.incident
    found = {"ask_cues": rules.ask_any, "incident": inc.incident_any}
    found["describes"] = inc.describes_any
    for name in ("planning", "no_incident", "shooting", "guns", "not_fired", "not_attack"):
        found[name] = getattr(inc, f"{name}_any")
    found |= {f"services.{k}": g for k, g in rules.services_any.items()}
    found |= {f"weapons.{k}": g for k, g in inc.weapons_any.items()}
    found |= {f"venues.{k}": g for k, g in inc.venues_any.items()}
    crisis_rules = crisis.load_rules(RULES)
    return found | {"crisis": crisis_rules.patterns, "crisis.exclude": crisis_rules.exclude}


# Text where the engines read \b, \w, \s or case differently: re's answer must stand.
TRICKY = [
    "We need help with staffing.",
    "We need help with staffïng and our officers\u2019 wellness.",
    "a debriefing for our deputies\x0bplease",
    "peer\x1csupport for the families",
    "the \u212aelvin-sign and the long \u017f: \u017ftaffing, a\u017f\u017fistance",
    "café shooting at the école; the gunman shot himself",
    "MEDIA\tRELATIONS\r\nHELP NEEDED",
    "school\u00a0shooting",
    "",
]


def _texts() -> list[str]:
    texts = list(TRICKY)
    files = sorted((ROOT / "tests" / "corpus").rglob("*.eml"))
    files += sorted(CORPORA.rglob("*.eml"))
    assert len(files) > 300, "the labelled requests and the shared corpora"
    for path in files:
        msg = parse(path.read_bytes())
        body = f"{msg.subject}\n\n{msg.text[:20_000]}"
        texts.append(body)
        texts.extend(sentences(body))
    return texts


def test_every_gate_answers_as_re_on_the_corpora_and_on_tricky_text():
    gates = _gates()
    assert all(gate.checked for gate in gates.values()), [k for k, g in gates.items()]
    texts = _texts()
    matched = 0
    for name, gate in gates.items():
        for text in texts:
            expected = gate.pattern.search(text)
            got = gate.search(text)
            assert (got is None) == (expected is None), (name, text[:200])
            if got is not None:
                assert got.span() == expected.span(), (name, text[:200])  # type: ignore[union-attr]
                matched += 1
    assert matched > 1000  # the texts do reach the gates' phrases


def test_the_incident_lists_gates_match_where_one_of_their_phrases_does():
    """A gate stands for any(p.search(text) for p in its list): checked on the corpora."""
    inc = classify.load_rules(RULES).incident
    lists = {
        "planning": inc.planning,
        "no_incident": inc.no_incident,
        "shooting": inc.shooting,
        "guns": inc.guns,
        "not_fired": inc.not_fired,
        "not_attack": (*inc.not_fired, *inc.not_the_attack),
    }
    texts = _texts()
    for name, patterns in lists.items():
        gate = getattr(inc, f"{name}_any")
        hits = 0
        for text in texts:
            one = any(p.search(text) for p in patterns)
            assert (gate.search(text) is not None) == one, (name, text[:200])
            hits += one
        assert hits, f"{name}: no text of the corpora has one of its phrases"
