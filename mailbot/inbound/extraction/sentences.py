"""How a request's text divides into sentences, and which words turn to another incident.

In: plain text. Out: ``sentence_spans`` (character spans of sentences, lines of a paragraph
that start a list item or a "Label:" line, for counts and dates), ``paragraphs`` and
``sentences`` (folded text of paragraphs and list items, for classification), and whether an
offset follows a comparison with another incident ("like Parkland, where 17 died"). A period
after an abbreviation ("St. Casimir", "Sept. 20") ends no sentence. Pure; never raises.
"""

from __future__ import annotations

import re
from functools import lru_cache

_SENTENCE_BREAK = re.compile(
    r"(?<=[.!?])[\"')\]]*\s+(?=[\"'(\[]?[A-Z0-9])|\n[ \t]*\n\s*"
    r"|\n(?=[ \t]*(?:[-*\u2022\u2013>]|\d+[.)]\s|[A-Z][\w /]{0,30}:))"
)
# "St. Casimir", "Sept. 20", "Lt. Reyes", "6:45 a.m. Two": a period that ends no sentence.
_ABBREVIATION = re.compile(
    r"(?:\b(?i:Mr|Mrs|Ms|Dr|St|Ft|Mt|Lt|Sgt|Capt|Det|Ofc|Dep|Maj|Cmdr|Jan|Feb|Mar|Apr|Jun|Jul"
    r"|Aug|Sep|Sept|Oct|Nov|Dec|No|approx|vs|etc|e\.g|i\.e|U\.S|[ap]\.m)|\b[A-Z])\.$"
)
_NOT_A_PLACE = (
    r"(?!(?:I|We|Our|The|My|This|That|Chief|Sheriff|Officer|Deputy|Sgt|Lt|Captain|Mr|Mrs|Ms|Dr"
    r"|Monday|Tuesday|Wednesday|Thursday|Friday|Saturday|Sunday|January|February|March|April"
    r"|May|June|July|August|September|October|November|December)\b)"
)
# Case matters here: "like Parkland" compares, "I would like to" does not.
_COMPARISON = re.compile(
    r"\b(?:[Ll]ike (?:the |in |at |what happened (?:in|at) )?[A-Z]|[Ss]imilar to|[Cc]ompared"
    r" (?:to|with)|[Aa]s in [A-Z]|[Ss]uch as [A-Z]|[Uu]nlike|[Rr]emind(?:s|ed)? (?:me|us) of"
    rf"|[Aa]fter {_NOT_A_PLACE}[A-Z][\w.'-]+"
    r"|(?<!here )\b[Ii]n [A-Z][\w.'-]+(?:[ -][A-Z][\w.'-]+)*,? where\b)"
)
_OWN = re.compile(
    r"\b(?:our|we|we've|we're|us|here|my|yesterday|today|tonight|this morning|last night"
    r"|this (?:shooting|incident|attack|tragedy))\b",
    re.I,
)
_LIST_ITEM = re.compile(r"^[ \t]*(?:[-*\u2022\u2013>]|\d+[.)])[ \t]")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")
_SHORT_WORD_END = re.compile(r"\b[A-Z][a-z]{1,4}\.$")


def _split(flat: str) -> list[str]:
    found: list[str] = []
    for piece in _SENTENCE_END.split(flat):
        # "Sand Springs, Okla. and opened fire": a short capitalised word before a period
        # ends no sentence that goes on in lower case
        short = _SHORT_WORD_END.search(found[-1]) if found else None
        if found and (_ABBREVIATION.search(found[-1]) or (short and piece[:1].islower())):
            found[-1] = f"{found[-1]} {piece}"
        elif piece:
            found.append(piece)
    return found


@lru_cache(maxsize=8)  # the steps of one extraction each read the same body
def paragraphs(text: str) -> tuple[tuple[bool, tuple[str, ...]], ...]:
    """Paragraphs (a subject line is one) as their sentences, with line breaks folded, and
    whether each starts as a list item; a list item on its own line starts a new paragraph."""
    found = []
    for block in re.split(r"\n\s*\n", text):
        lines = block.splitlines()
        if not lines:  # an empty block (text that opens with a blank line, say)
            continue
        starts = [i for i, line in enumerate(lines) if i == 0 or _LIST_ITEM.match(line)]
        for first, end in zip(starts, [*starts[1:], len(lines)], strict=True):
            flat = " ".join(" ".join(lines[first:end]).split())
            if flat:
                found.append((bool(_LIST_ITEM.match(lines[first])), tuple(_split(flat))))
    return tuple(found)


def sentences(text: str) -> list[str]:
    """Sentences with their line breaks folded; paragraphs and list items end one."""
    return [sentence for _, found in paragraphs(text) for sentence in found]


def sentence_spans(text: str) -> list[tuple[int, int]]:
    """(start, end) of each sentence, paragraph line or list item, in order."""
    spans: list[tuple[int, int]] = []
    start = 0
    for match in _SENTENCE_BREAK.finditer(text):
        if "\n" not in match.group() and _ABBREVIATION.search(
            text, max(0, match.start() - 10), match.start()
        ):
            continue  # "Mar. 3", "Lt. Reyes": not the end of a sentence
        if text[start : match.start()].strip():
            spans.append((start, match.start()))
        start = match.end()
    if text[start:].strip():
        spans.append((start, len(text)))
    return spans


def mentions_other_incident(sentence: str, offset: int) -> bool:
    """Whether ``offset`` in ``sentence`` follows a cue that turns to another incident.

    "like Parkland, where 17 died": the cue holds until a word about the writer's own
    incident ("our", "we", "yesterday") comes between it and the offset.
    """
    cues = list(_COMPARISON.finditer(sentence, 0, offset))
    return bool(cues) and _OWN.search(sentence, cues[-1].end(), offset) is None


def speaks_of_own(sentence: str) -> bool:
    """Whether a sentence speaks of the writer's own incident ("our", "we", "yesterday")."""
    return _OWN.search(sentence) is not None
