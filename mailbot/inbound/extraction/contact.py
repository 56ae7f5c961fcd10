"""Who to call back: name, title, phone and email of the person who wrote the request.

In: the prepared text (signature, forward author) and the message's From/Reply-To. Out: a
``Contact``. In a forward the original author is the contact. Phones are normalised to E.164
with phonenumbers (US numbering by default); fax lines are skipped. Titles and rank words come
from rules/contacts.toml.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import phonenumbers

from mailbot.inbound.extraction.text import RequestText
from mailbot.rules import load_toml, require

_NAME_WORD = re.compile(r"^[^\W\d_][^\W\d_'’.-]*(?:[-'’][^\W\d_]+)*\.?$")
_FAX = re.compile(r"\b(fax|f:|facsimile)\b", re.I)
_NOT_A_NAME = re.compile(
    r"\b(police|sheriff|department|office|county|city|state|university|dispatch|records|"
    r"information|services|team|desk|admin|inbox|intake|noreply|no-reply|the)\b",
    re.I,
)


@dataclass(frozen=True)
class ContactRules:
    titles: tuple[str, ...]
    title_patterns: tuple[re.Pattern[str], ...]
    prefixes: frozenset[str]


@dataclass(frozen=True)
class Contact:
    name: str | None
    title: str | None
    phone: str | None
    email: str | None


@lru_cache(maxsize=4)
def load_rules(rules_dir: Path) -> ContactRules:
    path = rules_dir / "contacts.toml"
    data = load_toml(path)
    titles = tuple(sorted(require(path, data, "titles", list), key=len, reverse=True))
    return ContactRules(
        titles,
        tuple(re.compile(rf"(?<![\w-]){re.escape(t)}(?![\w-])", re.I) for t in titles),
        frozenset(p.lower().rstrip(".") for p in require(path, data, "name_prefixes", list)),
    )


def person_name(rules: ContactRules, text: str | None) -> str | None:
    """``text`` as a person's name without rank words, or None if it does not look like one.

    "Whitfield, Dana" is turned around; an all-lower-case name ("tom brandt") is capitalised.
    """
    if not text:
        return None
    if text.count(",") == 1:
        last, _, first = text.partition(",")
        if first.strip() and len(last.split()) == 1:
            text = f"{first.strip()} {last.strip()}"
    words = text.replace(",", " ").split()
    while words and words[0].lower().rstrip(".") in rules.prefixes:
        words.pop(0)
    if not 2 <= len(words) <= 4 or _NOT_A_NAME.search(" ".join(words)):
        return None
    if not all(_NAME_WORD.match(w) for w in words):
        return None
    if all(w.islower() for w in words):
        words = [w.capitalize() for w in words]
    if not all(w[0].isupper() for w in words):
        return None
    return " ".join(words)


_NOT_TITLE_LINE = re.compile(
    r"(@|\d{3}|\b(police department|sheriff['’]?s? (office|department)|county|police services|"
    r"department of|state police|patrol$|dps$|pd$|so$|office$)\b)",
    re.I,
)
# "Chief of Police" is a title line although "police" marks an agency line; "Sheriff's
# Office" is not.
_TITLE_FIRST = re.compile(r"^(chief|sheriff)\b(?!['’]s)", re.I)
RANKS = {
    "lt": "Lieutenant",
    "sgt": "Sergeant",
    "capt": "Captain",
    "cmdr": "Commander",
    "det": "Detective",
    "maj": "Major",
    "col": "Colonel",
    "dep": "Deputy",
    "cpl": "Corporal",
    "insp": "Inspector",
    "tpr": "Trooper",
}


def _title_after_name(line: str, name: str | None) -> str | None:
    """ "Eli Navarro, Chief of Police" and "Mia Chen | Detective Sergeant | Santa Fe Police
    Department": the title written after the name on its line (not an agency)."""
    found = re.match(rf"[\s-]*{re.escape(name)}\s*([,|])\s*(.+)$", line, re.I) if name else None
    if not found:
        return None
    separator, rest = found.groups()
    title = rest.split("|")[0].strip() if separator == "|" else rest.strip()
    if not title or (_NOT_TITLE_LINE.search(title) and not _TITLE_FIRST.match(title)):
        return None
    return title.title() if title.islower() else title


def _title(rules: ContactRules, lines: list[str], name: str | None, from_name: str) -> str | None:
    """A signature line naming a title; else the rank before the name ("Lt. Ann Cole")."""
    for line in lines:
        title = _title_after_name(line, name)
        if title:
            return title
    own_lines = [line for line in lines if not name or name.lower() not in line.lower()]
    for line in own_lines:
        rest = line.strip(" ,|-–")
        if _NOT_TITLE_LINE.search(rest) and not _TITLE_FIRST.match(rest):
            continue
        if any(p.search(rest) for p in rules.title_patterns) and len(rest.split()) <= 6:
            return _expand_rank(rest)
    for line in [*lines[:2], from_name]:
        first = line.split()[0] if line.split() else ""
        if first.lower().rstrip(".") in rules.prefixes and name and name.lower() in line.lower():
            return _expand_rank(first)
    return None


def _rank_in_text(rules: ContactRules, text: str, name: str | None) -> str | None:
    """The rank written before the writer's name in the text ("Chief Ostrander, Laurel PD")."""
    if not name:
        return None
    last = re.escape(name.split()[-1])
    first = re.escape(name.split()[0])
    found = re.search(rf"\b([A-Z][a-z]+\.?)\s+(?:{first}\s+)?{last}\b", text)
    if found and found.group(1).lower().rstrip(".") in rules.prefixes:
        return _expand_rank(found.group(1))
    return None


def _expand_rank(title: str) -> str:
    head, _, tail = title.partition(" ")
    full = RANKS.get(head.lower().rstrip("."))
    return f"{full} {tail}".strip() if full else title


# A number the writer (or a forwarder, for the author) asks to be called on: "her cell is
# 541-555-0186", "call me at ...", "269-555-0118 is my cell". Only the words around a cue are
# searched for the number.
_CALL_ON = re.compile(
    r"\b(cell|mobile|call (me|him|her|us)|reach (me|him|her|us)|(my|his|her) (number|phone)|"
    r"direct line)\b",
    re.I,
)
_CUE_TO_NUMBER = re.compile(r"[^.\n]{0,40}")  # the cue and its number in one sentence
_NUMBER_TO_CUE = re.compile(r"\W{0,3}(is )?(my|his|her) $", re.I)


def asked_phone(text: str) -> str | None:
    """The first number in ``text`` that the words around it offer as the one to call."""
    flat = " ".join(text.split())
    for cue in _CALL_ON.finditer(flat):
        start = max(0, cue.start() - 30)
        for match in phonenumbers.PhoneNumberMatcher(flat[start : cue.end() + 60], "US"):
            number_start, number_end = start + match.start, start + match.end
            after_cue = number_start >= cue.end() and _CUE_TO_NUMBER.fullmatch(
                flat, cue.end(), number_start
            )
            before_cue = number_end <= cue.start() and _NUMBER_TO_CUE.fullmatch(
                flat, number_end, cue.start()
            )
            if after_cue or before_cue:
                return phonenumbers.format_number(match.number, phonenumbers.PhoneNumberFormat.E164)
    return None


def phone_in(text: str) -> str | None:
    for line in text.splitlines():
        if _FAX.search(line):
            continue
        for match in phonenumbers.PhoneNumberMatcher(line, "US"):
            return phonenumbers.format_number(match.number, phonenumbers.PhoneNumberFormat.E164)
    return None


def find_contact(
    rules: ContactRules,
    prepared: RequestText,
    from_name: str,
    from_addr: str,
    reply_to: tuple[str, ...],
    own_domain: str,
) -> Contact:
    sig_lines = [line.strip() for line in prepared.signature.splitlines() if line.strip()]
    if prepared.forwarded and prepared.author_email:
        email = prepared.author_email
        names = [prepared.author_name, *sig_lines[:2]]
    else:
        usable = [a for a in reply_to if not a.endswith("@" + own_domain)]
        email = usable[0] if usable else (from_addr or None)
        names = [from_name, *sig_lines[:2]]
    found = [n for n in (person_name(rules, c) for c in names) if n]
    name = found[0] if found else None
    # The name as signed ("Lt. Pam Rourke", sent as "Rourke, Pamela"): a signature line that
    # shares the surname wins over the header's form.
    signed = [n for n in found[1:] if name and n.split()[-1].lower() == name.split()[-1].lower()]
    name = signed[0] if signed else name
    title = _title(rules, sig_lines[:6], name, "" if prepared.forwarded else from_name)
    title = title or _rank_in_text(rules, prepared.full, name)
    phone = asked_phone(prepared.body) or phone_in(prepared.signature) or phone_in(prepared.body)
    return Contact(name, title, phone, email)
