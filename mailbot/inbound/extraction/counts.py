"""How many people a phrase names: "twenty-three", "a dozen", "three children and a teacher".

In: a phrase, or a group of people joined by "and" and commas. Out: ``parse_count`` gives
the number a phrase starts with, ``group_value`` the sum over a group; vague amounts
("several") give None. The patterns here (numbers, people, groups) are the nouns of the
casualty statements that ``quantities`` reads. Pure; never raises.
"""

from __future__ import annotations

import re

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
ORDINALS = ["second", "third", "fourth", "fifth", "sixth", "seventh", "eighth", "ninth", "tenth"]

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
NUMERIC = (
    rf"(?:a couple(?: of)?|couple of|a pair of|a dozen|both|no one|nobody|none|{_VAGUE}"
    rf"|{_NUMBER})"
)
_COUNT = rf"(?:{NUMERIC}|(?:{_INDEFINITE})\b)"
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
PERP = (
    r"(?:gunm[ae]n|shooters?|suspects?|attackers?|perpetrators?|assailants?|killers?|bombers?"
    r"|offenders?|himself|herself|themselves"
    # the perpetrator told by the act: "the man who set it", "the driver who rammed them"
    r"|(?:man|woman|person|teen|teenager|boy|girl|driver) who (?:set|planted|placed|left|built"
    r"|detonated|fired|opened fire|attacked|carried out|started|drove|rammed|stabbed|shot))\b"
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
_POSSESSIVE = r"(?:our|my|his|her|their)"
_MEMBER = (
    rf"(?:{_QUALIFIER}\s+)?(?:(?:{_INDEFINITE})\s+(?:{_WORD}\s+){{0,2}}{_PERSON}|{_TITLE}"
    r"|another(?=\s+(?:was|is|has|had|died|later)\b)"
    rf"|an?\s+(?:{'|'.join(ORDINALS)})(?=\s+(?:was|is|has|had|later)\b)"
    rf"|(?:{_POSSESSIVE}\s+)?{NUMERIC}(?!\s+{_UNIT_AFTER})(?:\s+{_PARTITIVE})?(?:\s+{_WORD}){{0,3}})"
)
_PERP_MEMBER = rf"(?:(?:the|a|an|one|their|his|her)\s+(?:{_WORD}\s+)?{PERP}|{PERP})"
_SEPARATOR = r"(?:\s*,\s*(?:and\s+)?|\s+(?:and|as well as|plus|along with)\s+)"
GROUP = (
    rf"(?P<group>{_MEMBER}(?:{_SEPARATOR}(?:{_MEMBER}|{_PERP_MEMBER}))*"
    rf"|{_PERP_MEMBER}(?:{_SEPARATOR}{_MEMBER})+)"
)
_INDEFINITE_PERSON = re.compile(rf"(?:{_INDEFINITE})\s+(?:{_WORD}\s+){{0,2}}{_PERSON}", re.I)
PERP_WORD = re.compile(PERP, re.I)
PERSON_WORD = re.compile(_PERSON, re.I)
_PARTITIVE_WORD = re.compile(r"\bof (?:them|whom|those)\b", re.I)
TITLE_WORDS = re.compile(_TITLE)
_BARE_NUMBER = re.compile(rf"\s*(?:{_QUALIFIER}\s+)?(?:{_NUMBER})\s*", re.I)
_HOW_BADLY = re.compile(rf"\s*(?:{NUMERIC})\s+[a-z]+ly\s*", re.I)  # "two seriously"
_NO_COUNT = re.compile(r"\s*(?:no|none)\b", re.I)
SPLIT_MEMBERS = re.compile(_SEPARATOR, re.I)
# "her two children", "our three officers": a possessive before a number
_LEADING_COUNT = re.compile(
    rf"\s*(?:{_QUALIFIER}\s+|~\s*)?(?:{_POSSESSIVE}\s+(?=(?:{NUMERIC})\s))?"
    rf"(?P<count>{_COUNT})",
    re.I,
)
_ONE_MORE_BY_ORDINAL = re.compile(rf"\s*an?\s+(?:{'|'.join(ORDINALS)})\s*", re.I)
_VAGUE_WORDS = re.compile(_VAGUE)
# A group that starts with an amount no one counted: "Several others", "many of the guests".
VAGUE_GROUP = re.compile(rf"\s*(?:{_QUALIFIER}\s+)?(?:{_VAGUE})\b", re.I)
_INDEFINITE_WORD = re.compile(_INDEFINITE)
_PLURAL = re.compile(
    r"(?:[^s]s|people|children|men|women|freshmen|deputies|babies|staff|personnel|faculty)$",
    re.I,
)


def parse_count(phrase: str) -> int | None:
    """The number a phrase starts with: "twenty-three" 23, "a dozen" 12, "no one" 0.

    "a"/"an" count 1 only when a person follows ("a teacher was killed"); vague words
    ("several", "dozens") and anything without a leading number give None.
    """
    if _ONE_MORE_BY_ORDINAL.fullmatch(phrase):
        return 1  # "two were killed and a third was wounded"
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


def group_value(group: str, closed: bool = False) -> int | None:
    """The sum over "three children and three adults". A named shooter counts nothing, and
    neither does a part already counted ("three people, two of them children", "six hurt,
    two seriously", "two of them children, and three more"), nor an apposition closed by a
    comma ("One of them, a 19 year old, died", "Two of them, a nurse and a clerk, died")."""
    members = SPLIT_MEMBERS.split(group.strip())
    separators = SPLIT_MEMBERS.findall(group.strip())
    if (
        len(members) > 1
        and separators[0].strip().startswith(",")
        and _PARTITIVE_WORD.search(members[0])
    ):
        if closed:  # "Two of them, a nurse and the front desk manager, were killed"
            members, separators = members[:1], []
        else:  # "Four died, two of them children, and three more were hurt": an aside
            members, separators = members[1:], separators[1:]
    if closed and separators and separators[-1].strip() == ",":
        members.pop()
    total, counted, bare = 0, False, False
    for index, member in enumerate(members):
        if (
            (PERP_WORD.search(member) and not _NO_COUNT.match(member))
            or (index and _PARTITIVE_WORD.search(member))
            or _HOW_BADLY.fullmatch(member)
        ):
            continue
        value = 1 if TITLE_WORDS.fullmatch(member) else parse_count(member)
        if value is None:
            return None
        total, counted = total + value, True
        bare = bare or _BARE_NUMBER.fullmatch(member) is not None
    if bare and len(members) > 1 and any(PERP_WORD.search(m) for m in members):
        return None  # "around 6 and the suspect was killed": a time, not a count
    return total if counted else None
