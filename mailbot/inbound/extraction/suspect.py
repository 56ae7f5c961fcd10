"""The suspect's status: at large, in custody, deceased, or unknown.

In: the request body on one line, and whether it describes an incident. Out: the status as
last stated (a suspect arrested after a manhunt is in custody), ``unknown`` when an incident
is described without its suspect, None when there is no incident. Short patterns; never raises.
"""

from __future__ import annotations

import re

_AT_LARGE = re.compile(
    r"\b((still|remains?|is|are) (at large|outstanding|on the loose|out there)|at large|manhunt|"
    r"not (yet )?(been )?(apprehended|caught|located|identified|found|in custody)|"
    r"(neither|none|no one|nobody)( of them| one)? (is |are )?(in custody|arrested)|"
    r"(suspects?|shooters?|gunm[ae]n|attackers?) (fled|escaped|got away|outstanding)|on the run|"
    r"(searching|looking) for (the )?(suspects?|shooters?|gunm[ae]n)|(still|remains?) (loose|in "
    r"the area)|no (arrests? (has|have) been|one has been|arrests? (was|were)) (made|arrested|"
    r"charged)|not (yet )?been (arrested|charged|identified)|"
    r"(don['’]?t|do not|doesn['’]?t|does not) (yet )?have (him|her|them|a suspect|anyone|"
    r"the (suspect|shooter|gunman|attacker))( (identified|in custody))?)\b",
    re.I,
)
# The suspect dead: by name ("the gunman died"), by a self-inflicted act whoever did it ("the
# student who fired took his own life"), as "he was shot and killed", or as a sentence's
# subject "He" ("He died at the scene"; not "held one of those men while he died").
_DECEASED = re.compile(
    r"\b((suspect|shooter|gunman|attacker|perpetrator)\b[^.]{0,60}\b(was (shot and )?killed|"
    r"is dead|died|was neutralized)|"
    r"took (his|her|their) own li(fe|ves)|(killed|shot) (himself|hisself|herself|themselves)|"
    r"turned the (gun|rifle|weapon) on (himself|herself)|"
    r"(shot|killed) (and killed )?(him|her|the (suspect|shooter|gunman|attacker))|"
    r"suicide|plus the (shooter|gunman|suspect|attacker)|(he|she) was (shot and )?killed|"
    r"one of (them|the dead|those killed),? (was |being )?the (suspect|shooter|gunman|attacker|"
    r"bomber|(man|woman|person) who))\b"
    r"|(?:^|(?<=[.!?;] ))(?-i:He|She) (is dead|died)\b",
    re.I,
)
_CUSTODY = re.compile(
    # "SuspectArrested August 4": table cells glued together when HTML is flattened
    r"(?:\b|(?-i:(?<=[a-z])(?=[A-Z])))(in (our |their |police |federal |state |county )?custody|"
    r"into custody|arrested|"
    r"apprehended|detained|booked|surrendered|under arrest|charged with|has been charged|"
    r"subdued|tackled|restrained|pinned (him|her) down|"
    r"held without (bond|bail)|in (the )?([\w-]+ ){0,3}jail|behind bars|in prison|pleaded guilty|"
    r"convicted|sentenced)\b",
    re.I,
)


def suspect_status(text: str, has_incident: bool) -> str | None:
    """The suspect's status as last stated: at large, in custody, deceased, else unknown."""
    if not has_incident:
        return None
    found = []
    for status, pattern in (
        ("at_large", _AT_LARGE),
        ("deceased", _DECEASED),
        ("in_custody", _CUSTODY),
    ):
        found.extend((m.start(), status) for m in pattern.finditer(text))
    if not found:
        return "unknown"
    # A negated custody ("neither one in custody yet") is at large, not custody.
    last_at_large = max((pos for pos, st in found if st == "at_large"), default=None)
    if last_at_large is not None:
        found = [
            (pos, st)
            for pos, st in found
            if not (st == "in_custody" and 0 <= pos - last_at_large < 40)
        ]
    return max(found)[1]
