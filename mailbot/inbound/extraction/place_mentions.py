"""Places named in one part of a request: the body, the signature or the agency's name.

In: the text of one part, the gazetteer, and the requesting agency's name. Out: ``Mention``s
of cities, counties and states, each with its form ("city-state", "county", "agency name",
"venue"...), a score for where and how it stands (near incident words, after "here in", in a
comparison, as the seat of an agency, where the suspect was caught), and its state when the
text writes one. ``places`` settles the mentions into one place. Text written all in lower
case is read title-cased. Pure; never raises.
"""

from __future__ import annotations

import re
from bisect import bisect_left
from collections.abc import Iterator
from dataclasses import dataclass

import us

from mailbot.inbound.extraction.gazetteer import Gazetteer, place_key

# AP-style abbreviations (and a few older ones: Cal., Kans., Penn., Tex.).
_AP_STYLE = {
    "Ala.": "AL", "Ariz.": "AZ", "Ark.": "AR", "Calif.": "CA", "Cal.": "CA", "Colo.": "CO",
    "Conn.": "CT", "Del.": "DE", "D.C.": "DC", "Fla.": "FL", "Ga.": "GA", "Ill.": "IL",
    "Ind.": "IN", "Kan.": "KS", "Kans.": "KS", "Ky.": "KY", "La.": "LA", "Md.": "MD",
    "Mass.": "MA", "Mich.": "MI", "Minn.": "MN", "Miss.": "MS", "Mo.": "MO", "Mont.": "MT",
    "Neb.": "NE", "Nev.": "NV", "N.H.": "NH", "N.J.": "NJ", "N.M.": "NM", "N.Y.": "NY",
    "N.C.": "NC", "N.D.": "ND", "Okla.": "OK", "Ore.": "OR", "Pa.": "PA", "Penn.": "PA",
    "R.I.": "RI", "S.C.": "SC", "S.D.": "SD", "Tenn.": "TN", "Tex.": "TX", "Vt.": "VT",
    "Va.": "VA", "Wash.": "WA", "W.Va.": "WV", "Wis.": "WI", "Wyo.": "WY",
}  # fmt: skip
STATES = {s.abbr: s.name for s in us.states.STATES_AND_TERRITORIES}
_STATE_KEYS = {
    **{code.lower(): code for code in STATES},
    **{name.lower().replace(" ", ""): code for code, name in STATES.items()},
    **{ap.lower().replace(".", ""): code for ap, code in _AP_STYLE.items()},
}
_STATE_FORMS = [*STATES, *STATES.values(), *(n.upper() for n in STATES.values()), *_AP_STYLE]
_STATE = "(?:" + "|".join(re.escape(f) for f in sorted(_STATE_FORMS, key=len, reverse=True)) + ")"
_STATE_TOKEN = re.compile(rf"(?<![\w.]){_STATE}(?![\w])")
_STATE_AFTER = re.compile(rf"[ \t]*,?[ \t]*({_STATE})(?![\w])")

_CAP = r"[A-Z][A-Za-z'’.-]*"
_WORD = rf"(?:{_CAP}|de|del|la|las|los|du|des|of|on|upon|au|d'[A-Za-z]+)"
_NAME_BEFORE = re.compile(rf"((?:{_WORD}[ \t]+){{0,4}}{_WORD})[ \t]*,?[ \t]*$")
# Only "X County" names a county (a parish or borough is not labelled as one).
_COUNTY = re.compile(rf"((?:{_WORD}[ \t]+){{0,3}}{_CAP})[ \t]+(?:County|COUNTY)\b")
# "Lea County deputies helped us": another agency's county, not the incident's.
_COUNTY_AGENCY_AFTER = re.compile(
    r"['’]?s?[ \t]+(?:deputies|deputy|sheriff|sheriff['’]s|police|officers|SO|PD|troopers|"
    r"dispatch|EMS|fire)\b",
    re.I,
)
_IN_NAME = re.compile(
    rf"\b(?:[Ii]n|[Nn]ear|[Oo]utside(?: of)?|(?:[Cc]ity|[Tt]own|[Vv]illage|[Tt]ownship) of)"
    rf"[ \t]+({_CAP}(?:[ \t]+{_WORD}){{0,3}})"
)
_VENUE = re.compile(rf"\b(?:[Aa]t|[Nn]ear) (?:the )?({_CAP}(?:[ \t]+{_WORD}){{1,4}})")
# "a shooting at a Leesburg nightclub": a town named as the modifier of a place noun.
_TOWN_BEFORE_NOUN = re.compile(
    rf"\b(?:[Aa]t|[Nn]ear|[Ii]n|[Oo]utside) an? ({_CAP}(?:[ \t]+{_CAP}){{0,2}})(?=[ \t]+[a-z])"
)
_AGENCY = re.compile(
    rf"((?:{_WORD}[ \t]+){{1,5}})"
    r"(?:Police|POLICE|PD\b|Pd\b|Sheriff|Marshal|Department of Public Safety)"
)
_COUNTY_WORDS = {"county", "parish", "borough"}
_AGENCY_NOISE = {"the", "our", "dear", "chief", "city", "town", "village", "township", "of", "and"}
# Capitalised words after "in" that name towns somewhere but hardly ever in a request.
_NOT_CITIES = {
    "January", "February", "March", "April", "May", "June", "July", "August", "September",
    "October", "November", "December", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday",
    "Saturday", "Sunday", "Advance", "Addition", "Charge", "Order", "Person", "Response",
    "Regards", "Service", "Support", "Memory", "Progress",
}  # fmt: skip
_PERSON_NAMES = {"Georgia", "Virginia", "Washington"}  # a state only with "in", "State", ...
_PERSON_NAME_CUE_BEFORE = re.compile(r"(?:\b(?:in|of|across|from|throughout|to)|,)[ \t]*$", re.I)
_PERSON_NAME_CUE_AFTER = re.compile(r"(?:[ \t]+State\b|'s\b)")
_COMMA_BEFORE = re.compile(r"[,(][ \t]*$")  # "Lake County SO (Fla.)" too
# "raleigh county so in wv": a code after "in" is a state, unless the code is also a word
# ("in OR near", "in ME") or an abbreviation of something else ("in PR").
_IN_BEFORE = re.compile(r"\b(?:[Ii]n|IN)[ \t]+$")
_WORD_CODES = frozenset("AL AS CO DE GA HI ID IN LA MA ME MO MP NE OH OK OR PA PR WA".split())
_TITLED_CODE = re.compile(r"(?<=[ \t])[A-Z][a-z]\b")
_ZIP_AFTER = re.compile(r"[ \t]+\d{5}\b")
_CAP_AFTER = re.compile(rf"[ \t]+({_CAP}(?:[ \t]+{_CAP})?)")
_COUNTY_AFTER = re.compile(r"[ \t]+(?:County|COUNTY|Parish|PARISH|Borough)\b")
_INCIDENT = re.compile(
    r"\b(?:shootings?|shot|shooter|gunman|gunfire|attack(?:ed)?|happened|occurred|incident|"
    r"killed|wounded|victims|massacre|stabbings?|tragedy|homicides?|mass casualty)\b",
    re.I,
)
_HOME = re.compile(r"\b(?:here in|our (?:city|town|community|county|village) of)[ \t]*$", re.I)
_LIKE = re.compile(
    r"\b(?:(?:like|similar to|such as|unlike|compared (?:to|with)|reminiscent of|"
    r"as (?:in|at|with|did)|lessons (?:learned )?from|learned from|remember(?:ing)?|"
    r"recall(?:ing)?|studied|saw|watched)\W+(?:[\w'’]+\W+){0,4}"
    # "compared it to the Club Q shooting in Colorado Springs"
    r"|compared (?:it|this|us|that|them) (?:to|with)\W+(?:[\w'’]+\W+){0,6})$",
    re.I,
)
_AFTER = re.compile(
    r"\b(?:after|since|following|post|in the wake of)\W+(?:what happened (?:in|at)\W+|the\W+)?$",
    re.I,
)
# "the Clark County School District Police Department in Las Vegas": where the agency sits,
# which is no nearer the incident for the incident words around it.
_AGENCY_SEAT = re.compile(
    r"\b(?:Police|Department|Dept\.?|Office|Patrol|Troopers|Service|Services|Marshal|PD|SO|DPS)"
    r"[ \t]+(?:in|of|at)[ \t]+$"
)
# "we arrested him that night at his mom's in Oakland", "he fled to Reno": where the suspect
# went or was caught, not where it happened.
_SUSPECT_WENT = re.compile(
    r"\b(arrested|caught|apprehended|captured|located|tracked|fled|fleeing|escaped|"
    r"surrendered|custody|hiding|hid out|picked (?:him|her) up)\b[^.;!?]{0,50}$",
    re.I,
)
_LOOK = 80  # characters looked at before a mention for its name and for cues
# A request names its place early; past this a pasted report or thread only slows the scan.
_MAX_CHARS = 20_000
_NEAR = 120  # characters between a mention and an incident word that count as near

BASE = {
    "city-state": 3.0,
    "city-county": 2.5,  # "in Roselle, Union County": a town set apart by its county
    "county": 2.5,
    "agency name": 1.5,
    "city": 1.5,
    "state": 1.0,
    "venue": 0.0,  # "at Lincoln Elementary" names a person as often as a town
}
WHERE = {"body": 1.0, "signature": 0.0, "agency": 0.0}


@dataclass(frozen=True)
class Mention:
    """A place named in the text; state is None until the text or the gazetteer settles it."""

    form: str  # a key of BASE
    where: str  # a key of WHERE
    order: int  # position over body, signature and agency, for ties
    score: float
    # A city or county named without its state: the ways to read it, longest first.
    city_names: tuple[str, ...] = ()
    county_names: tuple[str, ...] = ()
    city: str | None = None
    county: str | None = None
    state: str | None = None
    comparison: bool = False
    settled_by: str = "stated"


def normalize_state(token: str) -> str | None:
    """The USPS code for a code, a full name (any case) or an AP-style abbreviation, else None."""
    return _STATE_KEYS.get(re.sub(r"[\s.]", "", token).lower())


class Scanner:
    """The mentions of places in one text: the body, the signature or the agency name."""

    def __init__(
        self, gaz: Gazetteer, text: str, where: str, offset: int, agency: str | None = None
    ) -> None:
        # Under 1 capital per 100 letters; letters <= len(text), so a text with enough capitals
        # is not counted twice. (map over the str methods: half the time of a generator.)
        capitals = sum(map(str.isupper, text))
        lower = capitals < len(text) / 100 and capitals < sum(map(str.isalpha, text)) / 100
        if lower:
            text = text.title()  # written all in lower case: "ellsworth maine"
        self.gaz, self.text, self.where, self.offset = gaz, text[:_MAX_CHARS], where, offset
        self.agency = agency
        if lower:
            self.text = _TITLED_CODE.sub(self._code_after_city, self.text)
        self.incidents = [m.start() for m in _INCIDENT.finditer(self.text)]
        self.taken: list[tuple[int, int]] = []  # spans already read as a place with its state

    def _code_after_city(self, match: re.Match[str]) -> str:
        """ "Greenwood Ms" (title-cased "greenwood ms") is Greenwood, MS; "Call Me" stays."""
        code = match.group().upper()
        if code in STATES and self._city(self._words_before(match.start()), code):
            return code
        after_in = _IN_BEFORE.search(self.text, max(0, match.start() - 4), match.start())
        if code in STATES and code not in _WORD_CODES and after_in:  # "in wv"
            return code
        return match.group()

    def mentions(self) -> Iterator[Mention]:
        yield from self._counties()
        yield from self._cities_with_states()
        yield from self._cities_after_in()
        yield from self._towns_before_nouns()
        yield from self._agency_cities()
        yield from self._venue_cities()

    def _mention(
        self,
        form: str,
        start: int,
        end: int,
        *,
        city_names: tuple[str, ...] = (),
        county_names: tuple[str, ...] = (),
        city: str | None = None,
        county: str | None = None,
        state: str | None = None,
    ) -> Mention:
        before = self.text[max(0, start - _LOOK) : start]
        comparison = bool(_LIKE.search(before) or _AFTER.search(before))
        score = BASE[form] + WHERE[self.where]
        went = _SUSPECT_WENT.search(before)
        if comparison:
            score -= 3.0
        elif went and not _INCIDENT.search(before, went.end(1)):
            score -= 2.0  # not "arrested after the shooting in Harlan"
        elif _AGENCY_SEAT.search(before):
            score -= 1.0  # counts as the agency's name does, whatever words stand near it
        elif form not in ("venue", "agency name") and self._near_incident(start, end):
            score += 1.5
        if _HOME.search(before):
            score += 1.0
        if self.where == "body":
            score += 0.3 * (1 - start / max(len(self.text), 1))
        return Mention(
            form=form,
            where=self.where,
            order=self.offset + start,
            score=score,
            city_names=city_names,
            county_names=county_names,
            city=city,
            county=county,
            state=state,
            comparison=comparison,
        )

    def _near_incident(self, start: int, end: int) -> bool:
        i = bisect_left(self.incidents, start - _NEAR)
        return i < len(self.incidents) and self.incidents[i] <= end + _NEAR

    def _words_before(self, position: int) -> list[tuple[str, int]]:
        """The capitalised words (and particles) right before a position, with their starts."""
        found = _NAME_BEFORE.search(self.text, max(0, position - _LOOK), position)
        if not found:
            return []
        return [
            (w.group(), found.start(1) + w.start()) for w in re.finditer(r"\S+", found.group(1))
        ]

    def _city(self, words: list[tuple[str, int]], state: str) -> tuple[str, int] | None:
        """The longest run of trailing words that is a city of the state ("Downtown Perry")."""
        if not words or words[-1][0].endswith("."):  # "in Perry. Iowa officials"
            return None
        for i, (word, start) in enumerate(words):
            found = self.gaz.city(" ".join(w for w, _ in words[i:]), state)
            if found and word[0].isupper():
                return found.name, start
        if words[-1][0] in ("Township", "Twp"):
            return self._city(words[:-1], state)
        return None

    def _counties(self) -> Iterator[Mention]:
        for match in _COUNTY.finditer(self.text):
            if self._other_agency(match):
                continue
            words = match.group(1).split()
            runs = [" ".join(words[i:]) for i in range(len(words)) if words[i][0].isupper()]
            readings = tuple(r for r in runs if self.gaz.states_for_county(r))
            if not readings:
                continue
            start = match.end(1) - len(readings[0])
            after = _STATE_AFTER.match(self.text, match.end())
            state = normalize_state(after.group(1)) if after else None
            county = state and next((c for r in readings if (c := self.gaz.county(r, state))), None)
            if after is None or not state or not county:
                city = self._city_before_county(match.start(1))
                if city:  # "in Hawley, Wayne County": the Hawley in a Wayne County
                    yield self._mention(
                        "city-county",
                        city[1],
                        match.end(),
                        city_names=(city[0],),
                        county_names=readings,
                    )
                else:
                    yield self._mention("county", start, match.end(), county_names=readings)
                continue
            self.taken.append((match.start(), after.end()))
            city = self._city(self._words_before(match.start(1)), state)
            form = "city-state" if city else "county"
            yield self._mention(
                form, start, after.end(), city=city and city[0], county=county, state=state
            )

    def _other_agency(self, match: re.Match[str]) -> bool:
        """Whether "X County" names the county of an agency that is not the writer's."""
        if self.where == "agency" or not self.agency:
            return False
        named = place_key(match.group(1).split()[-1]) in place_key(self.agency)
        return not named and bool(_COUNTY_AGENCY_AFTER.match(self.text, match.end()))

    def _city_before_county(self, position: int) -> tuple[str, int] | None:
        """A city name and its start, set off by a comma before a county's name."""
        words = self._words_before(position)
        if not words or "," not in self.text[words[-1][1] : position]:
            return None
        for i, (_, start) in enumerate(words):
            name = " ".join(w for w, _ in words[i:])
            if self._may_be_city(name):
                self.taken.append((start, position))
                return name, start
        return None

    def _cities_with_states(self) -> Iterator[Mention]:
        for match in _STATE_TOKEN.finditer(self.text):
            state = normalize_state(match.group())
            if state is None or self._inside_taken(match.start()):
                continue
            city = self._city(self._words_before(match.start()), state)
            if city:
                self.taken.append((city[1], match.end()))
                yield self._mention("city-state", city[1], match.end(), city=city[0], state=state)
            elif self._is_state_alone(match):
                yield self._mention("state", match.start(), match.end(), state=state)

    def _is_state_alone(self, match: re.Match[str]) -> bool:
        token, text, end = match.group(), self.text, match.end()
        before = text[max(0, match.start() - _LOOK) : match.start()]
        if len(token) == 2 or token in _AP_STYLE:  # "IN", "Ind.": words too, unless set off
            after_in = token not in _WORD_CODES and _IN_BEFORE.search(before)
            return bool(_COMMA_BEFORE.search(before) or _ZIP_AFTER.match(text, end) or after_in)
        if _COUNTY_AFTER.match(text, end):  # "Washington County"
            return False
        longer = _CAP_AFTER.match(text, end)
        if longer:
            following = longer.group(1).split()
            for n in (1, 2):
                if self.gaz.cities_named(" ".join([token, *following[:n]])):
                    return False  # "Kansas City", "Virginia Beach"
        if token in _PERSON_NAMES:
            return bool(
                _PERSON_NAME_CUE_BEFORE.search(before) or _PERSON_NAME_CUE_AFTER.match(text, end)
            )
        return True

    def _inside_taken(self, position: int) -> bool:
        return any(start <= position < end for start, end in self.taken)

    def _cities_after_in(self) -> Iterator[Mention]:
        for match in _IN_NAME.finditer(self.text):
            if self._inside_taken(match.start(1)):
                continue
            names = self._readings(match.group(1).split())
            if names:
                yield self._mention("city", match.start(1), match.end(1), city_names=names)

    def _towns_before_nouns(self) -> Iterator[Mention]:
        for match in _TOWN_BEFORE_NOUN.finditer(self.text):
            names = self._readings(match.group(1).split())
            if names and not self._inside_taken(match.start(1)):
                yield self._mention("city", match.start(1), match.end(1), city_names=names)

    def _agency_cities(self) -> Iterator[Mention]:
        for match in _AGENCY.finditer(self.text):
            words = match.group(1).split()
            while words and words[0].lower() in _AGENCY_NOISE:
                words.pop(0)
            if not words or words[-1] == "State" or any(w.lower() in _COUNTY_WORDS for w in words):
                continue  # a county's or a state's agency: "New York State Police"
            names = self._readings(words)
            if names and not self._inside_taken(match.start()):
                start = match.end(1) - len(" ".join(words)) - 1
                yield self._mention("agency name", start, match.end(), city_names=names)

    def _venue_cities(self) -> Iterator[Mention]:
        """A city that starts a venue's name: "at the Silver Spring Transit Center"."""
        for match in _VENUE.finditer(self.text):
            words = match.group(1).split()
            names = self._readings(words[:-1])
            if names and not self._inside_taken(match.start(1)):
                yield self._mention("venue", match.start(1), match.end(1), city_names=names)

    def _readings(self, words: list[str]) -> tuple[str, ...]:
        """The leading runs of words that are a city somewhere, longest first ("Perry High")."""
        if not words or words[0] in _NOT_CITIES:
            return ()
        runs = [" ".join(words[:n]).rstrip(".'’-") for n in range(len(words), 0, -1)]
        return tuple(r for r in runs if self._may_be_city(r))

    def _may_be_city(self, name: str) -> bool:
        """A city somewhere, and not a state's name unless that state has a city so called."""
        state = normalize_state(name)
        if state is not None and self.gaz.city(name, state) is None:
            return False
        return bool(self.gaz.cities_named(name))
