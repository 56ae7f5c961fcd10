"""US places: which city names exist in which state, their county, size and area codes.

In: mailbot/data/us_places.tsv.gz, built by tools/build_places.py from the USPS ZIP data of the
``zipcodes`` package (one row per city and state, USPS names and their accepted aliases). Out:
lookups by name, read once per process on first use. Names match case-insensitively and without
punctuation, with St./Ste./Ft./Mt./Pt. read as Saint/Sainte/Fort/Mount/Point, so "St. Louis",
"ST LOUIS" and "Saint Louis" are one place. A missing or broken data file raises on first use.
"""

from __future__ import annotations

import csv
import gzip
import io
import re
import unicodedata
from collections import defaultdict
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources

DATA_FILE = "us_places.tsv.gz"
COLUMNS = (
    "city",
    "state",
    "usps_city",
    "zips",
    "county",
    "county_kind",
    "other_counties",
    "area_codes",
)
# An area code counts for a state when at least this share of its ZIP codes lie there; the
# USPS data lists a neighbouring state's code for some border ZIPs.
_AREA_CODE_SHARE = 0.1
_WORD_EXPANSIONS = {"st": "saint", "ste": "sainte", "ft": "fort", "mt": "mount", "pt": "point"}
_WORDS = re.compile(r"[a-z0-9]+")
_COUNTY_SUFFIX = re.compile(
    r"\s+(?:county|parish|borough|census area|city and borough|municipality|municipio)\.?$", re.I
)


def place_key(name: str) -> str:
    """The form names are compared in: "St. Mary's" and "Saint Marys" both give "saintmarys"."""
    if not name.isascii():
        name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    words = _WORDS.findall(name.lower().replace("'", ""))
    return "".join(_WORD_EXPANSIONS.get(word, word) for word in words)


@dataclass(frozen=True)
class City:
    name: str
    state: str
    zips: int
    counties: tuple[str, ...]  # the one holding most of its ZIP codes first
    area_codes: tuple[str, ...]


class Gazetteer:
    """In-memory indexes over the rows of the data file."""

    def __init__(self, rows: list[dict[str, str]]) -> None:
        self._cities: dict[tuple[str, str], City] = {}
        self._by_name: dict[str, list[City]] = defaultdict(list)
        self._by_state: dict[str, set[str]] = defaultdict(set)
        self._counties: dict[tuple[str, str], str] = {}
        self._county_states: dict[str, set[str]] = defaultdict(set)
        area_zips: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
        seen_counties: set[tuple[str, str]] = set()
        for row in rows:
            state, zips = row["state"], int(row["zips"])
            codes = tuple(row["area_codes"].split("|")) if row["area_codes"] else ()
            counties = tuple(filter(None, [row["county"], *row["other_counties"].split("|")]))
            city = City(row["city"], state, zips, counties, codes)
            key = place_key(city.name)
            self._cities[(key, state)] = city
            self._by_name[key].append(city)
            self._by_state[state].add(city.name)
            for county in counties:
                if (state, county) not in seen_counties:
                    seen_counties.add((state, county))
                    self._counties.setdefault((place_key(county), state), county)
                    self._county_states[place_key(county)].add(state)
            for code in codes:
                area_zips[code][state] += zips
        for cities in self._by_name.values():
            cities.sort(key=lambda c: (-c.zips, c.state))
        self._area_codes = {
            code: {s for s, n in states.items() if n >= _AREA_CODE_SHARE * sum(states.values())}
            for code, states in area_zips.items()
        }

    def __len__(self) -> int:
        return len(self._cities)

    def city(self, name: str, state: str) -> City | None:
        return self._cities.get((place_key(name), state.upper()))

    def cities_named(self, name: str) -> list[City]:
        """Every city of that name, largest (most ZIP codes) first."""
        return self._by_name.get(place_key(name), [])

    def cities_in(self, state: str) -> frozenset[str]:
        return frozenset(self._by_state.get(state.upper(), ()))

    def county(self, name: str, state: str) -> str | None:
        """The county's spelling, without its suffix; None if the state has no such county."""
        return self._counties.get((place_key(_COUNTY_SUFFIX.sub("", name)), state.upper()))

    def states_for_county(self, name: str) -> set[str]:
        return set(self._county_states.get(place_key(_COUNTY_SUFFIX.sub("", name)), ()))

    def states_for_area_code(self, code: str) -> set[str]:
        return set(self._area_codes.get(code.strip(), ()))


def read_rows(text: str) -> list[dict[str, str]]:
    """Rows of the data file's text: a '#' source line, the column names, then the rows."""
    lines = io.StringIO(text)
    source = lines.readline()
    reader = csv.reader(lines, delimiter="\t", quoting=csv.QUOTE_NONE)
    header = next(reader, None)
    if not source.startswith("#") or tuple(header or ()) != COLUMNS:
        raise ValueError(f"{DATA_FILE}: expected a '#' source line and the columns {COLUMNS}")
    rows = []
    for number, values in enumerate(reader, start=3):
        if len(values) != len(COLUMNS):
            raise ValueError(f"{DATA_FILE} line {number}: {len(values)} fields, not {len(COLUMNS)}")
        rows.append(dict(zip(COLUMNS, values, strict=True)))
    return rows


@lru_cache(maxsize=1)
def gazetteer() -> Gazetteer:
    """The shipped gazetteer, loaded on first use and kept for the life of the process."""
    data = (resources.files("mailbot") / "data" / DATA_FILE).read_bytes()
    return Gazetteer(read_rows(gzip.decompress(data).decode("utf-8")))


def cities_in(state: str) -> frozenset[str]:
    """The city names of a state (USPS spelling), empty for an unknown state."""
    return gazetteer().cities_in(state)


def is_city(name: str, state: str) -> bool:
    return gazetteer().city(name, state) is not None


def states_for_city(name: str) -> list[str]:
    """The states that have a city of that name, the largest such city's state first."""
    return [city.state for city in gazetteer().cities_named(name)]


def county_of(city: str, state: str) -> str | None:
    """The county (no "County" suffix) that holds most of the city's ZIP codes."""
    found = gazetteer().city(city, state)
    return found.counties[0] if found and found.counties else None


def states_for_area_code(code: str) -> set[str]:
    return gazetteer().states_for_area_code(code)


def is_county(name: str, state: str) -> bool:
    """True if the state has a county (parish, borough, ...) of that name, suffix or not."""
    return gazetteer().county(name, state) is not None
