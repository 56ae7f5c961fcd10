"""Extraction: what a request says, as the fields a case stores.

In: a ``ParsedMessage`` of a new request (and, in batches, the spaCy docs made with
``nlp.pipe``). Out: an ``Extraction`` with the JSON field names of the case record, a
confidence per field and the list of fields that need a coordinator's review. Steps:

    text.prepare (forward, signature) -> spaCy (agency ruler before the NER) ->
    agency, places, dates, quantities, classify (type, venue), suspect,
    asks (services, visit), contact, triage

Helpers: sentences (sentence and paragraph splitting, comparisons), place_mentions (for
places), date_phrases and clock (for dates), counts (for quantities), milestones (for
triage), gazetteer, nlp. Rules live in rules/ (agencies, incident_types, services, contacts,
triage). A field the email does not state is None, never guessed: a state the text does not
write stays None even when the gazetteer knows it. Never raises on odd text.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import phonenumbers
import us

from mailbot.inbound.extraction import agency as agency_mod
from mailbot.inbound.extraction import asks, classify, contact, nlp, suspect, text, triage
from mailbot.inbound.extraction.dates import incident_when
from mailbot.inbound.extraction.gazetteer import gazetteer as load_gazetteer
from mailbot.inbound.extraction.places import resolve_place
from mailbot.inbound.extraction.quantities import casualties
from mailbot.inbound.parse import ParsedMessage

MAX_CHARS = 20_000
# Documents per nlp.pipe batch. The model's tok2vec holds about 16 KB per token of a batch
# until the batch is done (3 MB for a 180-token request), and its speed per document is the
# same from 2 to 64 documents a batch (BENCHMARKS.md, session 5): small batches keep a
# worker's working memory small, and under glibc's mmap threshold (no page faults).
PIPE_BATCH = 4
SUBJECT_CHARS = 300  # a longer subject is noise, and spaCy time grows with it
REVIEW_BELOW = 0.5
REVIEWED_FIELDS = (
    "agency",
    "city",
    "state",
    "incident_type",
    "incident_date",
    "contact_name",
    "contact_phone",
)


@dataclass
class Extraction:
    agency: str | None = None
    city: str | None = None
    state: str | None = None
    county: str | None = None
    incident_type: str | None = None
    incident_date: date | None = None
    incident_time: str | None = None
    venue: str | None = None
    killed: int | None = None
    injured: int | None = None
    suspect_status: str | None = None
    services: list[str] = field(default_factory=list)
    in_person_requested: bool | None = None
    contact_name: str | None = None
    contact_title: str | None = None
    contact_phone: str | None = None
    contact_email: str | None = None
    priority: str = "P3"
    priority_reason: str = ""
    confidence: dict[str, float] = field(default_factory=dict)
    needs_review: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["incident_date"] = self.incident_date.isoformat() if self.incident_date else None
        return data


def _area_codes(*texts: str) -> list[str]:
    codes = []
    for chunk in texts:
        for match in phonenumbers.PhoneNumberMatcher(chunk, "US"):
            codes.append(str(match.number.national_number)[:3])
    return codes


def check_rules(rules_dir: Path) -> None:
    """Compile every extraction rule file (RulesError if one is bad), without the model."""
    agency_mod.load_rules(rules_dir)
    classify.load_rules(rules_dir)
    contact.load_rules(rules_dir)
    triage.load_rules(rules_dir)


def preload(rules_dir: Path) -> None:
    """Compile every extraction rule file, load the place gazetteer and the spaCy pipeline
    (RulesError if a rule file is bad), so that the first message is not the slow one."""
    check_rules(rules_dir)
    load_gazetteer()
    nlp.load(rules_dir)


SAMPLES = Path(__file__).resolve().parents[2] / "samples"  # the requests `make run` drops in


def warm_up(rules_dir: Path) -> list[Extraction]:
    """Extract the bundled sample requests: what the rules and the pipeline build on first use
    (RE2's automata, spaCy's lexemes, patterns compiled on the fly) is then built. The
    extraction workers' fork server does this before it forks them."""
    from mailbot.inbound.parse import parse

    samples = sorted(SAMPLES.glob("*.eml"))
    return extract_many([parse(path.read_bytes()) for path in samples], rules_dir)


def _nlp_text(msg: ParsedMessage, prepared: text.RequestText) -> str:
    """What spaCy reads: the subject (capped) and the prepared request with its signature."""
    return f"{msg.subject[:SUBJECT_CHARS]}\n\n{prepared.full}"


def extract(
    msg: ParsedMessage,
    rules_dir: Path,
    doc: Any | None = None,
    prepared: text.RequestText | None = None,
) -> Extraction:
    """The fields of one request; ``doc`` and ``prepared`` are given when made in a batch."""
    prepared = prepared or text.prepare(msg.text[:MAX_CHARS])
    full = _nlp_text(msg, prepared)
    if doc is None:
        doc = nlp.load(rules_dir)(full)
    body = f"{msg.subject[:SUBJECT_CHARS]}\n\n{prepared.body}"
    sent = msg.date or datetime.now(UTC)
    ex = Extraction()
    conf = ex.confidence

    found = agency_mod.find_agency(
        agency_mod.load_rules(rules_dir),
        doc,
        len(full) - len(prepared.signature),
        prepared.author_email or msg.from_addr,
    )
    ex.agency, conf["agency"] = found.name, found.confidence

    place = resolve_place(body, prepared.signature, ex.agency, _area_codes(prepared.signature))
    ex.city, ex.county = place.city, place.county
    ex.state = place.state if place.written else None  # never filled in from the gazetteer
    conf["city"] = conf["state"] = place.confidence

    rules = classify.load_rules(rules_dir)
    ex.incident_type, conf["incident_type"] = classify.incident_type(rules, body)
    when = incident_when(body, sent)
    ex.incident_date, ex.incident_time, conf["incident_date"] = (
        when.date,
        when.time,
        when.confidence,
    )
    counts = casualties(body)
    ex.killed, ex.injured = counts.killed, counts.injured
    has_incident = ex.incident_type is not None
    if not has_incident:
        ex.incident_date = ex.incident_time = None
    state_name = (
        us.states.lookup(ex.state).name if ex.state and us.states.lookup(ex.state) else None
    )
    known_places = {p.lower() for p in (ex.city, ex.county, state_name) if p}
    ex.venue = classify.venue(rules, body, known_places) if has_incident else None
    flat = " ".join(body.split())
    ex.suspect_status = suspect.suspect_status(flat, has_incident)
    ex.services = asks.services(rules, body)
    ex.in_person_requested = asks.in_person_requested(flat)

    who = contact.find_contact(
        contact.load_rules(rules_dir),
        prepared,
        msg.from_name,
        msg.from_addr,
        msg.reply_to,
        msg.to[0].rpartition("@")[2] if msg.to else "",
    )
    ex.contact_name, ex.contact_title = who.name, who.title
    ex.contact_phone, ex.contact_email = who.phone, who.email
    conf["contact_name"] = 0.9 if who.name else 0.0
    conf["contact_phone"] = 0.9 if who.phone else 0.0

    ex.priority, ex.priority_reason = triage.priority(
        triage.load_rules(rules_dir),
        body,
        ex.incident_date,
        sent.date(),
        has_incident,
        ex.suspect_status,
    )
    ex.needs_review = [
        name
        for name in REVIEWED_FIELDS
        if getattr(ex, name) is None
        and (has_incident or name not in ("incident_type", "incident_date"))
        or conf.get(name, 1.0) < REVIEW_BELOW
    ] + ([] if ex.services else ["services"])
    return ex


def extract_many(
    msgs: Sequence[ParsedMessage], rules_dir: Path, batch_size: int = PIPE_BATCH
) -> list[Extraction]:
    """Extract a batch: ``nlp.pipe`` over all texts (``batch_size`` documents at a time),
    then the rules per message."""
    pipeline = nlp.load(rules_dir)
    prepared = [text.prepare(m.text[:MAX_CHARS]) for m in msgs]
    docs = pipeline.pipe(
        (_nlp_text(m, p) for m, p in zip(msgs, prepared, strict=True)), batch_size=batch_size
    )
    return [extract(m, rules_dir, doc, p) for m, doc, p in zip(msgs, docs, prepared, strict=True)]
