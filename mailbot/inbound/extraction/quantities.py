"""Casualty counts in a request's text.

In: plain text (the visible body, with the subject in front if the caller wants it read).
Out: ``casualties`` finds how many people were killed and injured in the writer's own
incident, with the matched span per field as evidence (the numbers of people come from
``counts``). A count the text does not state is None, never guessed. Statements about another
incident that the writer compares with ("like Parkland, where 17 died") are set aside.
Pure functions; odd text gives None fields, never an exception.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from mailbot.inbound.extraction.counts import (
    GROUP,
    NUMERIC,
    ORDINALS,
    PERP,
    PERP_WORD,
    PERSON_WORD,
    SPLIT_MEMBERS,
    TITLE_WORDS,
    VAGUE_GROUP,
    group_value,
)
from mailbot.inbound.extraction.sentences import (
    mentions_other_incident,
    sentence_spans,
    speaks_of_own,
)

# ", including the gunman," takes one off the count; ", not counting the gunman," does not.
_INCLUDING = (
    r"(?:\s*,?\s*\(?(?:(?P<incl>including|among them)|not including|not counting|excluding"
    rf"|plus|in addition to|besides)\s+(?:\w+\s+){{0,2}}?{PERP}\)?,?)?"
)
_PLACE = r"(?:\s+(?:at|in|inside|outside|from|on|near|of)\s+(?:the|our|a)(?:\s+[\w'-]+){1,3}?)?"
# "A driver waiting in line was killed": what the person was doing.
_DOING = r"(?:\s+(?!being\b)[a-z]+ing(?:\s+[\w'-]+){0,3}?)?"
_AUX = (
    r"(?P<aux>(?:\s+(?:were|was|are|is|be|been|have|has|had|got|all|also|both|each|later"
    r"|since|now|confirmed|pronounced|remain|remains|remained|too"
    r"|(?!fatally|mortally|non)[a-z]+ly)\b){0,4})"
)
_DEATH = (
    r"fatally (?:shot|wounded|injured|stabbed|struck)|mortally wounded|(?:shot|stabbed|beaten)"
    r" (?:and killed|dead|to death)|killed|dead|died|murdered|deceased|perished|slain"
    r"|fatalities|fatality|deaths"
    r"|lost their lives|lost (?:his|her) life|passed away|did not survive|didn't survive"
    r"|succumbed|fatally"
)
_INJURY = (
    r"(?:shot|stabbed) and (?:survived|wounded|injured)|non-?fatally (?:shot|wounded|injured)"
    r"|injured|wounded|hurt|grazed"
    r"|hospitali[sz]ed|injuries|survived (?:with )?(?:\w+ )?(?:wounds|injuries)"
    r"|(?:treated|transported|taken|rushed|airlifted|flown)(?: to (?:[\w'-]+ ){0,4}?"
    r"(?:hospitals?|medical cent(?:er|re)s?|trauma cent(?:er|re)s?)| for (?:[\w-]+ ){0,2}?"
    r"(?:wounds|injuries)| at (?:[\w'-]+ ){0,3}?(?:hospitals?|medical cent(?:er|re)s?))"
    r"(?: with (?:[\w-]+ ){0,2}?(?:wounds|injuries))?"
    r"|(?:transported|taken|rushed|airlifted|flown) with (?:[\w-]+ ){0,2}?(?:wounds|injuries)"
    r"|(?:suffered|sustained) (?:[\w-]+ ){0,2}?(?:wounds|injuries)"
    r"|beaten|assaulted|pistol-whipped"
    r"|went to (?:the |a )?(?:hospitals?|emergency rooms?|ER)\b"
)
# Everyone hit, killed or not: "sixteen people were struck; two of them died".
_SHOT = r"(?:shot|stabbed|struck|hit|run over)(?! and (?:killed|survived)| dead| to death)"
_TRANSITIVE = re.compile(
    r"killed|murdered|(?:shot|stabbed|beaten).*|(?:non-?)?fatally \w+|mortally \w+|injured"
    r"|wounded|hurt|grazed|struck|hit|run over",
    re.I,
)

# "Five people, including two students, were killed": a part named on the way is in the count.
_PART_OF_THEM = r"(?:\s*,\s*(?:including|among them|most of them|many of them)\s+[^,.;()]{1,40}?,)?"
# "Deputy Aaron Spires, who was working the fair detail, was killed": a clause set off.
_WHO_CLAUSE = r"(?:\s*,\s*(?:who|whom|whose)\s+[^,.;()]{1,80}?,)?"
# "Two students and a teacher were killed", "three dead", "no one was hurt".
_SUBJECT = re.compile(
    r"(?<![\w'-])"
    + GROUP
    + _INCLUDING
    + _PART_OF_THEM
    + _WHO_CLAUSE
    + _DOING
    + _PLACE
    + r",?"
    + _AUX
    + rf"\s+(?:(?P<death>{_DEATH})|(?P<injury>{_INJURY})|(?P<shot>{_SHOT}))\b",
    re.I,
)
# "A gunman killed three people", "wounding two officers", "shot seven people".
_OBJECT = re.compile(
    r"\b(?:(?P<death>killed|killing|kills|murdered|murdering|fatally (?:shot|shooting|wounded"
    r"|wounding)|shot and killed|shooting and killing|(?:took|taking|claimed|claiming) the lives"
    r" of|(?:the )?deaths? of|lost)|(?P<injury>wounded|wounding|injured|injuring|hurt|hurting"
    r"|beat|beating|assaulted|assaulting|pistol-whipped|pistol-whipping)"
    r"|(?P<shot>shot|shooting|stabbed|stabbing|struck|striking|hit|hitting|ran over|attacked"
    r"|attacking))\s+" + GROUP + _INCLUDING,
    re.I,
)
# "Fatalities: 3" in a form-like list.
# A table flattened to text may glue the cells: "Deceased victims3", "Hospitalized5".
_FORM = re.compile(
    r"^[ \t>*-]*(?:(?:number|total|no\.)\s+(?:of\s+)?)?(?:(?P<death>killed|dead|deceased|deaths"
    r"|fatalities|fatal)|(?P<injury>injured|wounded|injuries|non-fatal|hospitali[sz]ed"
    r"|treated and released))(?:[ \t]+(?:victims|people|persons|patients))?"
    r"(?:[ \t]*[:=(-][ \t]*|(?=\d)|\t[ \t]*| {2,})"
    rf"(?P<group>\d{{1,3}}\b|{NUMERIC})",
    re.I | re.M,
)
# "There were no fatalities", "no other injuries".
_NONE = re.compile(
    r"\bno\s+(?:(?:other|additional|further|serious|reported)\s+)?(?:(?P<death>fatalities"
    r"|deaths)|(?P<injury>injuries))\b",
    re.I,
)
# "The death toll rose to 5", "a third victim died at the hospital".
_TOLL = re.compile(
    rf"\bdeath toll\s+(?:\w+\s+){{0,3}}?(?:to|at|is|of)\s+(?P<group>{NUMERIC})", re.I
)
_ORDINAL = re.compile(
    rf"\b(?:a|the)\s+(?P<ord>{'|'.join(ORDINALS)})\s+(?:[\w-]+\s+){{0,2}}?(?:has\s+|have\s+)?"
    r"(?:since\s+|later\s+|also\s+)?(?:died|passed away|succumbed|been pronounced dead)",
    re.I,
)
_PERP_INCLUDED_AFTER = re.compile(
    rf"\s*[,;(\u2013\u2014-]?\s*(?:including|among them|counting)\s+(?:\w+\s+){{0,2}}?{PERP}",
    re.I,
)
# "The blast killed two people, one of them the man who set it"
_ONE_WAS_PERP = re.compile(
    rf"[^.;!?]{{0,80}}?\bone of (?:them|whom|those)\s*,?\s+(?:was\s+|being\s+|is\s+)?"
    rf"(?:the\s+|a\s+)?(?:\w+\s+)?{PERP}",
    re.I,
)
_PERP_AMONG = re.compile(
    rf"\b(?:{PERP}\s+(?:\w+\s+){{0,2}}?(?:is|was)\s+(?:among|one of)\s+(?:the\s+)?"
    r"(?:dead|deceased|killed|fatalities|those killed|them)|one of (?:them|whom|the dead)"
    rf"\s+(?:was|is|being)\s+the\s+{PERP}|(?:that|this|the) (?:number|count|total|figure)"
    rf" includes? the\s+{PERP})",
    re.I,
)
_OBJECT_AHEAD = re.compile(
    rf"\s+(?!(?:a|one|the)\s+(?:day|week|month|year)s?\b)(?:the|a|an|his|her|their|him|them"
    rf"|our|{NUMERIC})\b",
    re.I,
)
_REFERS_BACK = re.compile(r"(?<!\bof )\bthe\s+$", re.I)
_LABEL_AFTER = re.compile(r"[ \t]*:")
_SUBSET_BEFORE = re.compile(r"\b(?:including|among them|such as)\s+$", re.I)
_CASUALTY_WORD = re.compile(
    r"\b(?:kill|dead|died|death|murder|deceased|fatal|perish|slain|lost|passed|succumb|surviv"
    r"|injur|wound|hurt|hospital|shot|struck|hit|transported|taken|rushed|airlifted|flown"
    r"|treated|suffered|sustained|stab|went to|graz|beat|attack)",
    re.I,
)
_ADDITIVE = re.compile(r"\b(?:also|another|others?|additional|more|too|as well|else)\b", re.I)
_SURVIVAL = re.compile(
    r"\b(?:expected to (?:survive|recover)|survived|non-life-threatening|recovering"
    r"|(?:critical|serious|stable|fair|good) condition)\b",
    re.I,
)
_COVERS_ANYONE = re.compile(
    r"\b(?:people|persons|victims|others|individuals|officers?|deputies|deputy|troopers?)\b", re.I
)
_ONE_MORE = re.compile(r"\s*an?\s", re.I)
_OF_THE_HURT = re.compile(r"[\w-]+(?: [\w-]+)? of (?:the|those) (?:wounded|injured|hurt)\b", re.I)
# "... was killed, along with a 17-year-old from Lancaster": more people after the verb.
_ALONG_WITH = re.compile(r"\s*,?\s*(?:along with|together with|as was|as were)\s+" + GROUP, re.I)
_OPEN_BRACKET = re.compile(r"\s*[(\[]\s*")
_SURVIVED_AFTER = re.compile(r"[^.;]{0,80}?\band survived\b", re.I)

_YEARS_BACK = re.compile(r"\b(?:(?:19|20)\d\d|years ago)\b")


@dataclass(frozen=True)
class Casualties:
    killed: int | None = None
    injured: int | None = None
    evidence: dict[str, str] = field(default_factory=dict)
    confidence: float = 0.0


@dataclass
class _Statement:
    kind: str  # "killed", "injured" or "shot"
    value: int
    start: int
    end: int
    sentence: int = 0
    additive: bool = False
    total: bool = False  # a running total ("the death toll rose to 5") replaces, never adds
    other: bool = False  # about an incident the writer compares with
    own: bool = False  # its sentence speaks of "our", "we", "yesterday"...
    long_ago: bool = False
    row: bool = False  # a row of a form or table ("Hospitalized: 5"); rows of one kind add up
    vague: bool = False  # "several others were hurt": people no one counted
    group: str = ""  # who: "two of his neighbors", "Officer Daniel Hoyt"
    said: str = ""  # the statement's words

    @property
    def from_injured(self) -> bool:
        """A death among those counted injured: "One of the wounded ... died this morning"."""
        return self.kind == "killed" and _OF_THE_HURT.match(self.said) is not None

    @property
    def named(self) -> bool:
        """Whether the statement is about people named by rank ("Officer Daniel Hoyt")."""
        members = SPLIT_MEMBERS.split(self.group.strip())
        return bool(self.group) and all(TITLE_WORDS.fullmatch(m) for m in members)

    def new_people_after(self, base: _Statement) -> bool:
        """Whether a later sentence's statement is about other people than ``base``'s.

        A named officer after "two of his neighbors, both of whom died", or "a woman in the
        next unit" after a named officer, is someone else; after "five people", "two
        officers" or "three" a named officer may be one of them.
        """
        if self.named:  # "Three were killed" may hold him: only other people named don't
            others = PERSON_WORD.search(base.group) and not _COVERS_ANYONE.search(base.group)
            return not base.named and bool(others)
        return base.named and _ONE_MORE.match(self.group) is not None


def _kind(match: re.Match[str]) -> str:
    return "killed" if match["death"] else "injured" if match["injury"] else "shot"


def _statement(text: str, match: re.Match[str], kind: str) -> _Statement | None:
    if "group" in match.re.groupindex:
        value = group_value(match["group"], text.startswith(",", match.end("group")))
    else:
        value = 0
    if value is None:
        if match.groupdict().get("group") and VAGUE_GROUP.match(match["group"]):
            # "Several others were injured": a count no one gave, which leaves the field open
            return _Statement(kind, 0, *match.span(), vague=True, said=match[0])
        return None
    named_shooter = PERP_WORD.search(match.groupdict().get("group") or "") is not None
    included = (
        match.groupdict().get("incl")
        or _PERP_INCLUDED_AFTER.match(text, match.end())
        or _ONE_WAS_PERP.match(text, match.start(), match.end() + 60)
    )
    if included and not named_shooter and value > 0:
        value -= 1  # "six people died, including the gunman"
    group = match.groupdict().get("group") or ""
    return _Statement(
        kind,
        value,
        *match.span(),
        additive=bool(_ADDITIVE.search(match[0])),
        group=group,
        said=match[0],
    )


def _statements(text: str) -> list[_Statement]:
    """Every count statement, in the sentences that use a casualty word."""
    spans = sentence_spans(text)
    found: list[_Statement] = []
    for index, (start, end) in enumerate(spans):
        if not _CASUALTY_WORD.search(text, start, end):
            continue
        in_sentence = _sentence_statements(text, start, end)
        sentence = text[start:end]
        own = speaks_of_own(sentence)
        long_ago = not own and _YEARS_BACK.search(sentence) is not None
        until = spans[index + 1][1] if index + 1 < len(spans) else end
        for statement in in_sentence:
            statement.sentence, statement.own, statement.long_ago = index, own, long_ago
            statement.other = mentions_other_incident(sentence, statement.start - start)
            if statement.kind == "killed" and _PERP_AMONG.search(text, statement.end, until):
                statement.value = max(statement.value - 1, 0)  # "the gunman is among the dead"
            if statement.kind == "shot" and _SURVIVED_AFTER.match(text, statement.end, end):
                statement.kind = "injured"  # "was hit by a round through her wall and survived"
        found.extend(in_sentence)
    return found


def _subject_holds(text: str, match: re.Match[str], end: int) -> bool:
    """Whether the count of a subject match is the people it happened to."""
    before = text[max(0, match.start() - 12) : match.start()]
    if _REFERS_BACK.search(before):
        return False  # "the two students who..."
    if _LABEL_AFTER.match(text, match.end()) and "\n" in match[0]:
        return False  # "3\nInjured: 5" in a form; not "Four people were wounded: three ..."
    if _SUBSET_BEFORE.search(before):
        return False  # "three were killed, including a teacher, and seven were wounded"
    lexeme = match["death"] or match["injury"] or match["shot"]
    # "an officer shot the suspect": the count is the one who shot
    return bool(match["aux"]) or not (
        _TRANSITIVE.fullmatch(lexeme) and _OBJECT_AHEAD.match(text, match.end(), end)
    )


def _sentence_statements(text: str, start: int, end: int) -> list[_Statement]:
    found: list[_Statement | None] = []
    pos = start
    while match := _SUBJECT.search(text, pos, end):
        if _subject_holds(text, match, end):
            statement = _statement(text, match, _kind(match))
            more = _ALONG_WITH.match(text, match.end(), end)
            added = more and group_value(more["group"])
            if statement and more and added:
                statement.value += added
                statement.end = more.end()
            found.append(statement)
            pos = max(match.end(), statement.end if statement else 0)
        else:
            pos = match.start() + 1  # a later, shorter group may still hold
    taken = [(s.start, s.end) for s in found if s]
    for match in _OBJECT.finditer(text, start, end):
        verb = match["death"] or match["injury"] or match["shot"]
        if verb.lower() == "lost" and not PERSON_WORD.search(match["group"]):
            continue
        if not any(first <= match.start("group") < last for first, last in taken):
            found.append(_statement(text, match, _kind(match)))
    for match in _FORM.finditer(text, start, end):
        row = _statement(text, match, _kind(match))
        if row:
            row.row = True
            found.append(row)
    found.extend(_statement(text, m, _kind(m)) for m in _NONE.finditer(text, start, end))
    for match in _TOLL.finditer(text, start, end):
        toll = _statement(text, match, "killed")
        if toll:
            toll.total = True
            found.append(toll)
    for match in _ORDINAL.finditer(text, start, end):
        value = ORDINALS.index(match["ord"].lower()) + 2
        found.append(_Statement("killed", value, *match.span(), total=True))
    statements = [s for s in found if s]
    # "Injured: 9 (two still hospitalized)": a count in brackets after one is a part of it
    statements = [
        s
        for s in statements
        if not any(
            o.kind == s.kind and o.end <= s.start and _OPEN_BRACKET.fullmatch(text, o.end, s.start)
            for o in statements
        )
    ]
    totals = [s for s in statements if s.total]
    # "a third victim died" is the running total, not one more death
    return [
        s
        for s in statements
        if s.total or not any(t.start < s.end and s.start < t.end for t in totals)
    ]


def _choose(statements: list[_Statement], kind: str) -> list[_Statement]:
    """The statements that make up one field: the first, the others in its sentence ("two
    officers were wounded and a neighbor was grazed"), later additions and totals."""
    pool = [s for s in statements if s.kind == kind and not s.other]
    pool = [s for s in pool if not s.long_ago] or pool
    if any(s.other for s in statements):  # several incidents: prefer the writer's own words
        pool = [s for s in pool if s.own] or pool
    if not pool:
        return []
    base, *rest = sorted(pool, key=lambda s: s.start)
    return [base] + [
        s
        for s in rest
        if s.total
        or s.sentence == base.sentence
        or (s.additive and s.start >= base.end)
        or (s.row and base.row)
        or s.new_people_after(base)
        or (s.from_injured and s.start >= base.end)
    ]


def _total(chosen: list[_Statement]) -> int | None:
    if not chosen or any(s.vague for s in chosen):
        return None  # "Several others were injured, and one woman was hurt": not counted
    value = chosen[0].value
    for later in chosen[1:]:
        value = max(value, later.value) if later.total else value + later.value
    return value


def _agreement(statements: list[_Statement], kind: str, chosen: list[_Statement]) -> float:
    """0.9 when no statement of the writer's incident left out gives another number."""
    total = _total(chosen)
    rivals = [
        s
        for s in statements
        if s.kind == kind and not s.other and not s.vague and s not in chosen and s.value != total
    ]
    return 0.7 if rivals else 0.9


def casualties(text: str) -> Casualties:
    """How many were killed and injured in the incident the text is about."""
    statements = _statements(text)
    chosen = {kind: _choose(statements, kind) for kind in ("killed", "injured", "shot")}
    killed, injured = _total(chosen["killed"]), _total(chosen["injured"])
    died_of_wounds = sum(s.value for s in chosen["killed"] if s.from_injured)
    if injured is not None and died_of_wounds:
        injured = max(injured - died_of_wounds, 0)  # killed people leave the injured total
    evidence = {
        kind: " | ".join(text[s.start : s.end] for s in chosen[kind])
        for kind in ("killed", "injured")
        if chosen[kind]
    }
    confidence = [_agreement(statements, k, chosen[k]) for k in evidence]
    uncounted = any(s.vague for s in chosen["injured"] + chosen["shot"][:1])
    if injured is None and chosen["shot"] and not uncounted:
        # "Seven people were shot, two of them fatally": the rest were injured.
        shot = chosen["shot"][0]
        near = killed is not None and abs(chosen["killed"][0].sentence - shot.sentence) <= 1
        survived = killed is None and _SURVIVAL.search(text, shot.start) is not None
        if (near or survived) and shot.value >= (killed or 0):
            injured = shot.value - (killed or 0)
            evidence["injured"] = text[shot.start : shot.end]
            confidence.append(0.6)
    if any(s.other for s in statements):
        confidence = [c - 0.1 for c in confidence]
    return Casualties(killed, injured, evidence, round(min(confidence, default=0.0), 2))
