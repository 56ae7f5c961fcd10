"""Casualty counts in a request's text.

In: plain text (the visible body, with the subject in front if the caller wants it read).
Out: ``parse_count`` turns a number phrase into an int; ``casualties`` finds how many people
were killed and injured in the writer's own incident, with the matched span per field as
evidence. A count the text does not state is None, never guessed. Statements about another
incident that the writer compares with ("like Parkland, where 17 died") are set aside.
``sentence_spans`` and ``mentions_other_incident`` are shared with ``dates``. Pure
functions; odd text gives None fields, never an exception.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

_UNITS = [
    "zero",
    "one",
    "two",
    "three",
    "four",
    "five",
    "six",
    "seven",
    "eight",
    "nine",
    "ten",
    "eleven",
    "twelve",
    "thirteen",
    "fourteen",
    "fifteen",
    "sixteen",
    "seventeen",
    "eighteen",
    "nineteen",
]
_TENS = ["twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"]
_WORD_VALUES = {w: i for i, w in enumerate(_UNITS)} | {w: 20 + 10 * i for i, w in enumerate(_TENS)}
_ORDINALS = ["second", "third", "fourth", "fifth", "sixth", "seventh", "eighth", "ninth", "tenth"]

_UNIT_WORDS = "|".join(sorted(_UNITS, key=len, reverse=True))
_UNDER_100 = rf"(?:(?:{'|'.join(_TENS)})(?:[- ](?:{'|'.join(_UNITS[1:10])}))?|{_UNIT_WORDS})\b"
# A number in digits or words, up to the hundreds.
_NUMBER = (
    rf"(?:(?:a|one|{'|'.join(_UNITS[2:10])})[ -]hundred(?:(?: and)? {_UNDER_100})?"
    rf"|{_UNDER_100}|(?<![\w$#:/.,-])\d{{1,3}}(?![\d:/%]|[.,]\d|-year))"
)
_VAGUE = r"several|multiple|numerous|many|dozens(?: of)?|scores of|hundreds of|a few|few|some"
# These count (1, or 0 for "no") only when a person follows: "a teacher", "the other deputy",
# "the owner", "our school resource officer" (a possessive or "the" only before one person,
# not "our officers").
_INDEFINITE = (
    r"another|an|a|no|our|my|his|her|their|the (?:other|second|third|fourth|remaining)|the"
)
_NUMERIC = (
    rf"(?:a couple(?: of)?|couple of|a pair of|a dozen|both|no one|nobody|none|{_VAGUE}"
    rf"|{_NUMBER})"
)
_COUNT = rf"(?:{_NUMERIC}|(?:{_INDEFINITE})\b)"
_QUALIFIER = (
    r"(?:at least|about|approximately|around|nearly|almost|roughly|an estimated|a total of"
    r"|as many as|up to|more than|over|only|all|like)"
)
_UNIT_AFTER = (
    r"(?:days?|weeks?|months?|years?|hours?|minutes?|seconds|times?|shots|rounds|bullets"
    r"|percent|miles?|feet|yards|blocks|o'clock|[ap]\.?m)\b"
)
_PERSON_STEMS = (
    r"adult|agent|athlete|attendee|aunt|bartender|boy|brother|bystander|cashier|chaperone|"
    r"churchgoer|citizen|civilian|classmate|clerk|coach|colleague|concertgoer|congregant|cook|"
    r"counselor|cousin|coworker|co-worker|custodian|customer|cyclist|dancer|daughter|detective|"
    r"dispatcher|doctor|driver|employee|fan|father|firefighter|friend|girl|grandfather|"
    r"grandmother|guard|guest|husband|individual|infant|inmate|instructor|janitor|jailer|"
    r"juvenile|kid|librarian|lieutenant|manager|marshal|member|minor|mother|mourner|musician|"
    r"neighbor|nephew|niece|nurse|officer|owner|paramedic|parent|parishioner|partygoer|"
    r"passenger|pastor|patient|patron|pedestrian|performer|person|player|priest|principal|"
    r"professor|rabbi|receptionist|relative|resident|secretary|senior|sergeant|server|shopper|"
    r"sister|soldier|son|spectator|staffer|student|supervisor|teacher|teen|teenager|tenant|"
    r"usher|greeter|deacon|elder|attendant|assistant|occupant|participant|aide|intern|cadet|"
    r"recruit|constable|warden|chef|vendor|grandparent|grandchild|grandson|granddaughter|"
    r"boyfriend|girlfriend|fiance|fiancee|newborn|freshman|sophomore|junior|alumnus|"
    r"teller|toddler|trooper|uncle|victim|visitor|volunteer|waiter|waitress|wife|worker|"
    r"worshiper|worshipper|youth"
)
# Listed people, and nouns for what people do ("fourth-grader", "technician", "motorist").
_PERSON = (
    rf"(?:(?:{_PERSON_STEMS})s?|people|persons|children|men|women|man|woman|freshmen"
    r"|deputy|deputies|baby|babies|staff|personnel|faculty|others|one|\d{1,3}[- ]years?[- ]olds?"
    r"|(?!(?:number|quarter|corner|matter|letter|water|center|order|power|tower|trailer"
    r"|computer|chapter|cover|counter|border|door|floor|error|other|hour|minor)s?\b)"
    r"[a-z][a-z-]*(?:er|or|ist|ian)s?)\b"
)
_PERP = (
    r"(?:gunm[ae]n|shooters?|suspects?|attackers?|perpetrators?|assailants?|killers?"
    r"|offenders?|himself|herself|themselves)\b"
)
# Words that end the noun phrase of a count: verbs, conjunctions, casualty words, units.
_STOP = (
    r"(?:and|or|but|plus|as|of|were|was|is|are|be|been|being|have|has|had|who|that|which|whom"
    r"|whose|when|while|where|with|by|from|at|in|on|into|to|after|before|during|inside"
    r"|outside|near|including|among|not|also|later|all|each|both|the|a|an|this|these|those"
    r"|killed|dead|died|deceased|murdered|injured|wounded|hurt|hospitali[sz]ed|fatalities"
    r"|fatality|deaths|injuries|shot|fatally|mortally|lost|perished|slain|ago|gunshot|grazed"
    rf"|struck|stabbed|{_UNIT_WORDS}|{'|'.join(_TENS)})\b"
)
_WORD = (
    r"(?:\d{1,3}[- ]years?[- ]old|of (?:the|our|their|his|her|its) [a-z][a-z'-]*"
    rf"|(?!{_STOP}|{_UNIT_AFTER})[a-z][a-z'-]*)"
)
# "two of them", "one of our officers"; not "two of the wounded", which refers back.
_PARTITIVE = rf"of (?:them|those|whom|us)\b|of (?:our|the|his|their|its)\s+{_WORD}"
_TITLE = (
    r"(?-i:(?:Officer|Deputy|Sgt\.|Sergeant|Trooper|Detective|Det\.|Lt\.|Lieutenant|Cpl\."
    r"|Corporal|Agent|Captain|Capt\.|Chief|Marshal|Firefighter|Mr\.|Mrs\.|Ms\.|Dr\.)"
    r"(?:\s+[A-Z][\w'-]+){1,2})"
)
_MEMBER = (
    rf"(?:{_QUALIFIER}\s+)?(?:(?:{_INDEFINITE})\s+(?:{_WORD}\s+){{0,2}}{_PERSON}|{_TITLE}"
    r"|another(?=\s+(?:was|is|has|had|died|later)\b)"
    rf"|{_NUMERIC}(?!\s+{_UNIT_AFTER})(?:\s+{_PARTITIVE})?(?:\s+{_WORD}){{0,3}})"
)
_PERP_MEMBER = rf"(?:(?:the|a|an|one|their|his|her)\s+(?:{_WORD}\s+)?{_PERP}|{_PERP})"
_SEPARATOR = r"(?:\s*,\s*(?:and\s+)?|\s+(?:and|as well as|plus|along with)\s+)"
_GROUP = (
    rf"(?P<group>{_MEMBER}(?:{_SEPARATOR}(?:{_MEMBER}|{_PERP_MEMBER}))*"
    rf"|{_PERP_MEMBER}(?:{_SEPARATOR}{_MEMBER})+)"
)
# ", including the gunman," takes one off the count; ", not counting the gunman," does not.
_INCLUDING = (
    r"(?:\s*,?\s*\(?(?:(?P<incl>including|among them)|not including|not counting|excluding"
    rf"|plus|in addition to|besides)\s+(?:\w+\s+){{0,2}}?{_PERP}\)?,?)?"
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
    r"|went to (?:the |a )?(?:hospitals?|emergency rooms?|ER)\b"
)
# Everyone hit, killed or not: "sixteen people were struck; two of them died".
_SHOT = r"(?:shot|stabbed|struck|hit|run over)(?! and (?:killed|survived)| dead| to death)"
_TRANSITIVE = re.compile(
    r"killed|murdered|(?:shot|stabbed|beaten).*|(?:non-?)?fatally \w+|mortally \w+|injured"
    r"|wounded|hurt|grazed|struck|hit|run over",
    re.I,
)

# "Two students and a teacher were killed", "three dead", "no one was hurt".
_SUBJECT = re.compile(
    r"(?<![\w'-])"
    + _GROUP
    + _INCLUDING
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
    r" of|(?:the )?deaths? of|lost)|(?P<injury>wounded|wounding|injured|injuring|hurt|hurting)"
    r"|(?P<shot>shot|shooting|stabbed|stabbing|struck|striking|hit|hitting|ran over))\s+"
    + _GROUP
    + _INCLUDING,
    re.I,
)
# "Fatalities: 3" in a form-like list.
# A table flattened to text may glue the cells: "Deceased victims3", "Hospitalized5".
_FORM = re.compile(
    r"^[ \t>*-]*(?:(?:number|total|no\.)\s+(?:of\s+)?)?(?:(?P<death>killed|dead|deceased|deaths"
    r"|fatalities|fatal)|(?P<injury>injured|wounded|injuries|non-fatal|hospitali[sz]ed"
    r"|treated and released))(?:[ \t]+(?:victims|people|persons|patients))?"
    r"(?:[ \t]*[:=(-][ \t]*|(?=\d)|\t[ \t]*| {2,})"
    rf"(?P<group>\d{{1,3}}\b|{_NUMERIC})",
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
    rf"\bdeath toll\s+(?:\w+\s+){{0,3}}?(?:to|at|is|of)\s+(?P<group>{_NUMERIC})", re.I
)
_ORDINAL = re.compile(
    rf"\b(?:a|the)\s+(?P<ord>{'|'.join(_ORDINALS)})\s+(?:[\w-]+\s+){{0,2}}?(?:has\s+|have\s+)?"
    r"(?:since\s+|later\s+|also\s+)?(?:died|passed away|succumbed|been pronounced dead)",
    re.I,
)
_PERP_INCLUDED_AFTER = re.compile(
    rf"\s*[,;(\u2013\u2014-]?\s*(?:including|among them|counting)\s+(?:\w+\s+){{0,2}}?{_PERP}",
    re.I,
)
_PERP_AMONG = re.compile(
    rf"\b(?:{_PERP}\s+(?:\w+\s+){{0,2}}?(?:is|was)\s+(?:among|one of)\s+(?:the\s+)?"
    r"(?:dead|deceased|killed|fatalities|those killed|them)|one of (?:them|whom|the dead)"
    rf"\s+(?:was|is|being)\s+the\s+{_PERP}|(?:that|this|the) (?:number|count|total|figure)"
    rf" includes? the\s+{_PERP})",
    re.I,
)
_OBJECT_AHEAD = re.compile(
    rf"\s+(?!(?:a|one|the)\s+(?:day|week|month|year)s?\b)(?:the|a|an|his|her|their|him|them"
    rf"|our|{_NUMERIC})\b",
    re.I,
)
_REFERS_BACK = re.compile(r"(?<!\bof )\bthe\s+$", re.I)
_LABEL_AFTER = re.compile(r"[ \t]*:")
_SUBSET_BEFORE = re.compile(r"\b(?:including|among them|such as)\s+$", re.I)
_CASUALTY_WORD = re.compile(
    r"\b(?:kill|dead|died|death|murder|deceased|fatal|perish|slain|lost|passed|succumb|surviv"
    r"|injur|wound|hurt|hospital|shot|struck|hit|transported|taken|rushed|airlifted|flown"
    r"|treated|suffered|sustained|stab|went to|graz|beat)",
    re.I,
)
_ADDITIVE = re.compile(r"\b(?:also|another|others?|additional|more|too|as well|else)\b", re.I)
_SURVIVAL = re.compile(
    r"\b(?:expected to (?:survive|recover)|survived|non-life-threatening|recovering"
    r"|(?:critical|serious|stable|fair|good) condition)\b",
    re.I,
)
_INDEFINITE_PERSON = re.compile(rf"(?:{_INDEFINITE})\s+(?:{_WORD}\s+){{0,2}}{_PERSON}", re.I)
_PERP_WORD = re.compile(_PERP, re.I)
_PERSON_WORD = re.compile(_PERSON, re.I)
_PARTITIVE_WORD = re.compile(r"\bof (?:them|whom|those)\b", re.I)
_TITLE_WORDS = re.compile(_TITLE)
_PLURAL = re.compile(
    r"(?:[^s]s|people|children|men|women|freshmen|deputies|babies|staff|personnel|faculty)$",
    re.I,
)
_HOW_BADLY = re.compile(rf"\s*(?:{_NUMERIC})\s+[a-z]+ly\s*", re.I)  # "two seriously"
_NO_COUNT = re.compile(r"\s*(?:no|none)\b", re.I)
_SPLIT_MEMBERS = re.compile(_SEPARATOR, re.I)
_LEADING_COUNT = re.compile(rf"\s*(?:{_QUALIFIER}\s+|~\s*)?(?P<count>{_COUNT})", re.I)
_VAGUE_WORDS = re.compile(_VAGUE)
_INDEFINITE_WORD = re.compile(_INDEFINITE)

_SENTENCE_BREAK = re.compile(
    r"(?<=[.!?])[\"')\]]*\s+(?=[\"'(\[]?[A-Z0-9])|\n[ \t]*\n\s*"
    r"|\n(?=[ \t]*(?:[-*\u2022>]|\d+[.)]\s|[A-Z][\w /]{0,30}:))"
)
_ABBREVIATION = re.compile(
    r"(?:\b(?:Mr|Mrs|Ms|Dr|St|Lt|Sgt|Capt|Det|Ofc|Dep|Jan|Feb|Mar|Apr|Jun|Jul|Aug|Sep|Sept"
    r"|Oct|Nov|Dec|No|approx|vs|etc|e\.g|i\.e|U\.S|[ap]\.m)|\b[A-Z])\.$"
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
_YEARS_BACK = re.compile(r"\b(?:(?:19|20)\d\d|years ago)\b")


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


def parse_count(phrase: str) -> int | None:
    """The number a phrase starts with: "twenty-three" 23, "a dozen" 12, "no one" 0.

    "a"/"an" count 1 only when a person follows ("a teacher was killed"); vague words
    ("several", "dozens") and anything without a leading number give None.
    """
    match = _LEADING_COUNT.match(phrase)
    if not match:
        return None
    token = " ".join(match["count"].lower().replace("-", " ").split())
    if _VAGUE_WORDS.fullmatch(token):
        return None
    if token == "another" and not phrase[match.end() :].strip():
        return 1  # "another was injured"
    if _INDEFINITE_WORD.fullmatch(token):
        person = _INDEFINITE_PERSON.match(phrase, match.start("count"))
        if not person or (token not in ("a", "an", "another", "no") and _PLURAL.search(person[0])):
            return None
        return 0 if token == "no" else 1
    if token in ("no one", "nobody", "none"):
        return 0
    if token.startswith(("a couple", "couple", "a pair", "both")):
        return 2
    if token == "a dozen":
        return 12
    if token.isdigit():
        return int(token)
    words = [w for w in token.split() if w != "and"]
    if "hundred" in words:
        hundreds = 1 if words[0] in ("a", "one") else _WORD_VALUES[words[0]]
        return 100 * hundreds + sum(_WORD_VALUES[w] for w in words[2:])
    return sum(_WORD_VALUES[w] for w in words)


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


def _group_value(group: str, closed: bool = False) -> int | None:
    """The sum over "three children and three adults". A named shooter counts nothing, and
    neither does a part already counted ("three people, two of them children", "six hurt,
    two seriously"), nor an apposition closed by a comma ("One of them, a 19 year old, died")."""
    members = _SPLIT_MEMBERS.split(group.strip())
    separators = _SPLIT_MEMBERS.findall(group.strip())
    if closed and separators and separators[-1].strip() == ",":
        members.pop()
    total, counted = 0, False
    for index, member in enumerate(members):
        if (
            (_PERP_WORD.search(member) and not _NO_COUNT.match(member))
            or (index and _PARTITIVE_WORD.search(member))
            or _HOW_BADLY.fullmatch(member)
        ):
            continue
        value = 1 if _TITLE_WORDS.fullmatch(member) else parse_count(member)
        if value is None:
            return None
        total, counted = total + value, True
    return total if counted else None


def _kind(match: re.Match[str]) -> str:
    return "killed" if match["death"] else "injured" if match["injury"] else "shot"


def _statement(text: str, match: re.Match[str], kind: str) -> _Statement | None:
    if "group" in match.re.groupindex:
        value = _group_value(match["group"], text.startswith(",", match.end("group")))
    else:
        value = 0
    if value is None:
        return None
    named_shooter = _PERP_WORD.search(match.groupdict().get("group") or "") is not None
    included = match.groupdict().get("incl") or _PERP_INCLUDED_AFTER.match(text, match.end())
    if included and not named_shooter and value > 0:
        value -= 1  # "six people died, including the gunman"
    return _Statement(kind, value, *match.span(), additive=bool(_ADDITIVE.search(match[0])))


def _statements(text: str) -> list[_Statement]:
    """Every count statement, in the sentences that use a casualty word."""
    spans = sentence_spans(text)
    found: list[_Statement] = []
    for index, (start, end) in enumerate(spans):
        if not _CASUALTY_WORD.search(text, start, end):
            continue
        in_sentence = _sentence_statements(text, start, end)
        sentence = text[start:end]
        own = _OWN.search(sentence) is not None
        long_ago = not own and _YEARS_BACK.search(sentence) is not None
        until = spans[index + 1][1] if index + 1 < len(spans) else end
        for statement in in_sentence:
            statement.sentence, statement.own, statement.long_ago = index, own, long_ago
            statement.other = mentions_other_incident(sentence, statement.start - start)
            if statement.kind == "killed" and _PERP_AMONG.search(text, statement.end, until):
                statement.value = max(statement.value - 1, 0)  # "the gunman is among the dead"
        found.extend(in_sentence)
    return found


def _subject_holds(text: str, match: re.Match[str], end: int) -> bool:
    """Whether the count of a subject match is the people it happened to."""
    before = text[max(0, match.start() - 12) : match.start()]
    if _REFERS_BACK.search(before) or _LABEL_AFTER.match(text, match.end()):
        return False  # "the two students who...", or "3\nInjured: 5" in a form
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
            found.append(_statement(text, match, _kind(match)))
            pos = match.end()
        else:
            pos = match.start() + 1  # a later, shorter group may still hold
    taken = [(s.start, s.end) for s in found if s]
    for match in _OBJECT.finditer(text, start, end):
        verb = match["death"] or match["injury"] or match["shot"]
        if verb.lower() == "lost" and not _PERSON_WORD.search(match["group"]):
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
        value = _ORDINALS.index(match["ord"].lower()) + 2
        found.append(_Statement("killed", value, *match.span(), total=True))
    statements = [s for s in found if s]
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
    ]


def _total(chosen: list[_Statement]) -> int | None:
    if not chosen:
        return None
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
        if s.kind == kind and not s.other and s not in chosen and s.value != total
    ]
    return 0.7 if rivals else 0.9


def casualties(text: str) -> Casualties:
    """How many were killed and injured in the incident the text is about."""
    statements = _statements(text)
    chosen = {kind: _choose(statements, kind) for kind in ("killed", "injured", "shot")}
    killed, injured = _total(chosen["killed"]), _total(chosen["injured"])
    evidence = {
        kind: " | ".join(text[s.start : s.end] for s in chosen[kind])
        for kind in ("killed", "injured")
        if chosen[kind]
    }
    confidence = [_agreement(statements, k, chosen[k]) for k in evidence]
    if injured is None and chosen["shot"]:
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
