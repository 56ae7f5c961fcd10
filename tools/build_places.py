"""Build mailbot/data/us_places.tsv.gz from the USPS ZIP data of the ``zipcodes`` package.

Run by a developer when the source changes, never at run time (zipcodes is not a dependency):

    .venv/bin/pip install zipcodes==3.0.0
    .venv/bin/python tools/build_places.py

In: every civilian ZIP code in zipcodes, with its USPS city, the other city names USPS accepts
for it, its county and its area codes. Out: one row per (city, state), USPS names and accepted
aliases alike, with the number of ZIP codes (a size rank for names such as Springfield), the
county holding most of them (suffix cut off, kept as a kind) and the area codes; sorted, and
byte-identical for the same input. Exits with a message if the wrong zipcodes is installed.
"""

from __future__ import annotations

import gzip
import re
import sys
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mailbot.inbound.extraction.gazetteer import COLUMNS, DATA_FILE, place_key

SOURCE_PACKAGE, SOURCE_VERSION = "zipcodes", "3.0.0"
OUTPUT = Path(__file__).resolve().parents[1] / "mailbot" / "data" / DATA_FILE
_MILITARY_STATES = {"AA", "AE", "AP"}
# Names the source writes without their suffix, whose last word is part of the name.
_WHOLE_NAMES = {"James City": "county", "Carson City": "city"}
_COUNTY_FORMS = (
    (re.compile(r"^City and Borough of (.+)$"), "borough"),
    (re.compile(r"^Municipality of (.+)$"), "municipality"),
    (re.compile(r"^(.+) City and Borough$"), "borough"),
    (re.compile(r"^(.+) Census Area$"), "census area"),
    (re.compile(r"^(.+) (County|Parish|Borough|Municipality|Municipio)$"), None),
    # Independent cities (Virginia's, Baltimore, St. Louis), written "Richmond city".
    (re.compile(r"^(.+) [Cc]ity$"), "city"),
)
_MC = re.compile(r"\bMc([a-z])")


def usps_case(name: str) -> str:
    """The source's title case, with "Mc" names as written: "Mcallen" -> "McAllen"."""
    return _MC.sub(lambda m: "Mc" + m.group(1).upper(), name)


def split_county(raw: str) -> tuple[str, str]:
    """("Kern County") -> ("Kern", "county"); a name with no known suffix has kind ""."""
    if raw in _WHOLE_NAMES:
        return raw, _WHOLE_NAMES[raw]
    for pattern, kind in _COUNTY_FORMS:
        match = pattern.match(raw)
        if match:
            return match.group(1), kind or match.group(2).lower()
    return raw, ""


@dataclass
class _Place:
    """What the ZIP codes of one (city, state) say, gathered before it becomes a row."""

    usps_names: Counter[str] = field(default_factory=Counter)
    alias_names: Counter[str] = field(default_factory=Counter)
    usps_cities_of_aliases: Counter[str] = field(default_factory=Counter)
    zips: set[str] = field(default_factory=set)
    counties: Counter[tuple[str, str]] = field(default_factory=Counter)
    area_codes: set[str] = field(default_factory=set)

    def add_zip(self, record: dict[str, Any]) -> None:
        self.zips.add(record["zip_code"])
        self.area_codes.update(record["area_codes"] or ())
        if record["county"]:
            self.counties[split_county(usps_case(record["county"]))] += 1

    def row(self, state: str) -> list[str]:
        usps = not self.alias_names or bool(self.usps_names)
        names = self.usps_names if usps else self.alias_names
        # The most used spelling; among equals the longest ("Mount Pleasant" over "Mt Pleasant").
        name = min(names, key=lambda n: (-names[n], -len(n), n))
        usps_city = "" if usps else _most_common(self.usps_cities_of_aliases)
        ranked = sorted(self.counties, key=lambda c: (-self.counties[c], c))
        county, kind = ranked[0] if ranked else ("", "")
        others: dict[str, str] = {}  # one spelling each: "St. Louis" and "St Louis" are one
        for other, _ in ranked[1:]:
            if place_key(other) != place_key(county):
                others.setdefault(place_key(other), other)
        codes = "|".join(sorted(self.area_codes))
        other_counties = "|".join(others.values())
        return [name, state, usps_city, str(len(self.zips)), county, kind, other_counties, codes]


def _most_common(counter: Counter[str]) -> str:
    return min(counter, key=lambda n: (-counter[n], n))


def build_rows(records: list[dict[str, Any]]) -> list[list[str]]:
    places: dict[tuple[str, str], _Place] = defaultdict(_Place)
    for record in records:
        state = record["state"]
        if record["zip_code_type"] == "MILITARY" or state in _MILITARY_STATES:
            continue
        if record["city"]:
            place = places[(place_key(record["city"]), state)]
            place.usps_names[usps_case(record["city"])] += 1
            place.add_zip(record)
        for alias in record["acceptable_cities"] or ():
            place = places[(place_key(alias), state)]
            place.alias_names[usps_case(alias)] += 1
            place.usps_cities_of_aliases[usps_case(record["city"])] += 1
            place.add_zip(record)
    rows = [place.row(state) for (_, state), place in places.items()]
    for row in rows:
        if any("\t" in value or "\n" in value for value in row):
            raise ValueError(f"a tab or newline in {row}")
    return sorted(rows, key=lambda r: (r[1], place_key(r[0]), r[0]))


def render(rows: list[list[str]]) -> bytes:
    source = (
        f"# US places from {SOURCE_PACKAGE} {SOURCE_VERSION} (PyPI; USPS ZIP code data), "
        "built by tools/build_places.py: one row per (city, state)"
    )
    lines = [source, "\t".join(COLUMNS), *("\t".join(row) for row in rows)]
    return gzip.compress(("\n".join(lines) + "\n").encode("utf-8"), compresslevel=9, mtime=0)


def main() -> int:
    try:
        import zipcodes
    except ImportError:
        print(f"install it first: pip install {SOURCE_PACKAGE}=={SOURCE_VERSION}", file=sys.stderr)
        return 1
    if zipcodes.__version__ != SOURCE_VERSION:
        print(
            f"need {SOURCE_PACKAGE} {SOURCE_VERSION}, found {zipcodes.__version__}", file=sys.stderr
        )
        return 1
    rows = build_rows(zipcodes.list_all())
    data = render(rows)
    OUTPUT.parent.mkdir(parents=True, exist_ok=True)
    OUTPUT.write_bytes(data)
    print(f"{OUTPUT}: {len(rows)} (city, state) rows, {len(data)} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
