"""What the writer asks for: the service areas, and whether someone should come in person.

In: the request body (signature excluded) and the rules of rules/services.toml. Out: the sorted
service keys, and True / False / None for a visit. A service phrase counts in full in a
sentence that asks (an ask cue, an item of a list the writer introduced as a request, or the
sentences an ask points back to: "supporting both groups"), and a fraction elsewhere; its area
is asked for when the total reaches `min_score`. Never raises.
"""

from __future__ import annotations

import re

from mailbot.inbound.extraction.classify import ClassifyRules, scores
from mailbot.inbound.extraction.sentences import paragraphs

# "supporting them", "guidance on both groups": the ask is about the sentences before it.
_POINTS_BACK = re.compile(
    r"\b(support(ing)?|help(ing)?|car(e|ing) for|look(ing)? after|with)\s+(them|both( groups)?|"
    r"(these|those) (groups|people))\b",
    re.I,
)
_POINTS_BACK_SENTENCES = 2


def asked_sentences(rules: ClassifyRules, text: str) -> list[tuple[str, bool]]:
    """Each sentence with whether it asks for something.

    "What I need help with:" makes the sentences after it in its paragraph ask, and the
    paragraphs after it while they are list items ("- My two deputies. They aren't sleeping.").
    """
    found: list[tuple[str, bool]] = []
    in_list = False
    for is_item, sentences in paragraphs(text):
        in_list = in_list and is_item
        start = len(found)
        for sentence in sentences:
            asking = in_list or rules.ask_any.search(sentence) is not None
            found.append((sentence, asking))
            if asking and sentence.endswith(":"):
                in_list = True
            if asking and _POINTS_BACK.search(sentence):
                for back in range(max(start, len(found) - 1 - _POINTS_BACK_SENTENCES), len(found)):
                    found[back] = (found[back][0], True)
    return found


# Plurals typed on a phone the way they sound: "the familys", "my deputys".
_TYPED_PLURAL = re.compile(r"\b(famil|deput|communit|part|bab|cit|compan|agenc)ys\b", re.I)


def services(rules: ClassifyRules, text: str) -> list[str]:
    """The services asked for: phrases in asking sentences in full, elsewhere a fraction."""
    totals: dict[str, float] = {}
    text = _TYPED_PLURAL.sub(r"\1ies", text)
    for sentence, asking in asked_sentences(rules, text):
        factor = 1.0 if asking else rules.elsewhere_factor
        for key, value in scores(rules.services, sentence, rules.services_any).items():
            totals[key] = totals.get(key, 0.0) + factor * value
    return sorted(k for k, v in totals.items() if v >= rules.services_min)


# A visit counts only in a sentence that asks ("nearly all of them were on site" does not).
_ASKING = re.compile(
    r"\b(would|could|can|please|need|like|want|welcome|request(ing)?|ask(ing)?|hop(e|ing)|"
    r"grateful|possible|invite|help|appreciate|useful|valuable|ideal)\b|\?",
    re.I,
)
_IN_PERSON = re.compile(
    r"\b(in[- ]person|on[- ]?site|onsite|(come|travel|coming) (out|down|up|here|over|to (us|our|"
    r"[A-Z]\w+))|visit (us|our|[A-Z]\w+|campus|the (area|city|town|county|department))|"
    r"an? (on-?site )?visit|(someone|somebody|an advisor|a team|people) on the ground|"
    r"on the ground with us|boots on the ground|"
    r"send (someone|an advisor|a team|somebody)|be here|be with us|"
    r"join (us|me)\b(?! (on|for|by|over) (a |an |the )?(call|zoom|teams|video|phone|webinar))|"
    r"(welcome|like|want|need|have|send|get) (an advisor|someone|somebody|a team|one of your "
    r"(advisors|people)) (here|in (?-i:[A-Z])|with us))",
    re.I,
)
_REMOTE = re.compile(
    r"\b((advisor|someone|somebody) on the phone|phone consult(ation)?|by phone|over the phone|"
    r"on the phone|virtual(ly)?|zoom|teams call|video (call|conference|chat|meeting)|by video|"
    r"no need to travel|don'?t need (anyone|someone|somebody|an advisor) to (travel|come)|"
    r"(not|don'?t|do not) (need|want|looking for|asking for) (an advisor|anyone|someone|a visit)|"
    r"remote(ly)?|just the (documents|templates|materials)|"
    r"(documents|templates|materials) (are|is) all (we|i) need|"
    r"a call (with|from) (someone|somebody|an advisor|one of)|a call or two|phone call|"
    r"(teams|zoom|video|virtual) (meeting|session|consult(ation)?))\b",
    re.I,
)
_NEGATED_VISIT = re.compile(
    r"\b(no|not|don'?t|do not|nobody|no one|without|instead of|rather than|no need for)\b[^.]{0,40}"
    r"\b(in[- ]person|visit|travel|on[- ]?site|(come|drive|fly) (out|down|up|here|over|in))",
    re.I,
)


def in_person_requested(text: str) -> bool | None:
    """True when someone is asked to come, False when help by phone or video (or none in
    person) is asked for, None when the text does not say."""
    if _NEGATED_VISIT.search(text):
        return False
    if _IN_PERSON.search(text) and any(
        _IN_PERSON.search(s) and _ASKING.search(s) for s in re.split(r"(?<=[.!?])\s+", text)
    ):
        return True
    if _REMOTE.search(text):
        return False
    return None
