"""Advisor matching: rank the roster for a new case, with a one-line reason each.

In: the case's extraction (incident type, services, state, agency) and the open-case load of
each advisor. Out: the best advisors first. Inactive advisors, advisors at their maximum load
and advisors who served in the requesting agency (a conflict) are never suggested.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from mailbot.models import Assignment, Case
from mailbot.roster import Person, Roster
from mailbot.vocabulary import INCIDENT_TYPES, SERVICES

# Which roles fit which needs: a service or an incident type, and the agency's kind.
ROLE_FIT: dict[str, set[str]] = {
    "public_information": {"pio", "chief", "sheriff"},
    "incident_management": {"chief", "sheriff"},
    "criminal_investigation": {"chief", "sheriff"},
    "victim_witness_wellness": {"victim_services", "mental_health"},
    "first_responder_wellness": {"mental_health", "chief", "sheriff"},
    "community_wellness": {"community_leader", "faith_leader", "educator"},
    "school_shooting": {"educator"},
    "house_of_worship": {"faith_leader"},
}


@dataclass(frozen=True)
class Suggestion:
    person: Person
    score: float
    reason: str


# Built once: every new request runs it (see service.py on prebuilt statements).
_OPEN_CASES = (
    select(Assignment.advisor_email, func.count(Assignment.id))
    .join(Case, Case.id == Assignment.case_id)
    .where(Assignment.ended_at.is_(None), Case.status != "closed")
    .group_by(Assignment.advisor_email)
)


def open_cases(session: Session) -> dict[str, int]:
    """Open (not closed) cases per advisor address."""
    return {email: count for email, count in session.execute(_OPEN_CASES)}


def _agency_kind_role(agency: str | None) -> str | None:
    if not agency:
        return None
    return "sheriff" if "sheriff" in agency.lower() else "chief"


def rank(
    roster: Roster,
    load: dict[str, int],
    *,
    incident_type: str | None,
    services: list[str],
    state: str | None,
    agency: str | None,
    limit: int = 3,
) -> list[Suggestion]:
    ranked = []
    for person in roster.advisors:
        open_now = load.get(person.email, 0)
        if not person.active or open_now >= person.max_open_cases:
            continue
        if agency and any(agency.lower() == a.lower() for a in person.agencies):
            continue
        score, why = 0.0, []
        if incident_type and incident_type in person.incident_types:
            score += 3
            why.append(f"lived through a {INCIDENT_TYPES[incident_type]}")
        shared = [s for s in services if s in person.services]
        if shared:
            score += 1.5 * len(shared)
            why.append("advises on " + ", ".join(SERVICES[s].lower() for s in shared))
        needs = {*services, incident_type or ""}
        if any(person.role in ROLE_FIT.get(n, ()) for n in needs) or (
            person.role == _agency_kind_role(agency)
        ):
            score += 2
            why.append(f"role: {person.role.replace('_', ' ')}")
        if state and state in person.regions:
            score += 2
            why.append(f"in {state}")
        elif person.covers_state(state):
            score += 1
            why.append("same region")
        score -= 2 * open_now / person.max_open_cases
        why.append(f"{open_now} of {person.max_open_cases} open cases")
        ranked.append(Suggestion(person, round(score, 2), "; ".join(why)))
    ranked.sort(key=lambda s: (-s.score, s.person.name))
    return ranked[:limit]
