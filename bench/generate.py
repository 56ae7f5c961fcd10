"""Realistic request emails for benchmarks: agencies, places, incident types, lengths, formats.

`generate(n, seed)` yields (file name, raw bytes). Deterministic for a seed; fictional people,
real US places, phone numbers in the 555-01XX range. Formats: plain text, HTML only,
multipart/alternative and forwards; lengths from two lines to several paragraphs.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.utils import format_datetime

PLACES = [
    ("Harlan", "KY", "Harlan County"),
    ("Uvalde", "TX", "Uvalde County"),
    ("Hollister", "CA", "San Benito County"),
    ("Perry", "IA", "Dallas County"),
    ("Lewiston", "ME", "Androscoggin County"),
    ("Highland Park", "IL", "Lake County"),
    ("Allen", "TX", "Collin County"),
    ("Nashville", "TN", "Davidson County"),
    ("Louisville", "KY", "Jefferson County"),
    ("Buffalo", "NY", "Erie County"),
    ("Colorado Springs", "CO", "El Paso County"),
    ("Dayton", "OH", "Montgomery County"),
    ("Sutherland Springs", "TX", "Wilson County"),
    ("Boulder", "CO", "Boulder County"),
    ("Monterey Park", "CA", "Los Angeles County"),
    ("Half Moon Bay", "CA", "San Mateo County"),
    ("Chesapeake", "VA", "Chesapeake city"),
    ("Oxford", "MI", "Oakland County"),
    ("Kenosha", "WI", "Kenosha County"),
    ("Dadeville", "AL", "Tallapoosa County"),
]
AGENCY_KINDS = [
    "Police Department",
    "PD",
    "Sheriff's Office",
    "Department of Public Safety",
    "Police Services",
]
FIRST = ["Dana", "Marcus", "Amira", "Luis", "Karen", "James", "Tanya", "Robert", "Mei", "Omar"]
LAST = ["Whitfield", "Reyes", "Patel", "Okafor", "Nguyen", "Hansen", "Brooks", "Castillo"]
TITLES = [
    "Chief of Police",
    "Sheriff",
    "Public Information Officer",
    "Lieutenant",
    "Victim Services Coordinator",
    "Assistant Chief",
]
INCIDENTS = [
    ("a shooting at {place} High School", "school_shooting"),
    ("a gunman opened fire inside the {place} Walmart", "retail_business"),
    ("a driver plowed into the crowd at our holiday parade", "vehicle_ramming"),
    ("a shooting during Sunday service at First Baptist Church", "house_of_worship"),
    ("a former employee opened fire at the distribution center", "workplace_shooting"),
    ("a shooting at the Riverside nightclub", "nightclub_venue"),
    ("an explosive device detonated near the courthouse", "bombing"),
    ("a stabbing attack at the transit station", "stabbing"),
]
NEEDS = [
    "We are overwhelmed by media requests and need help with public information.",
    "Our officers are struggling and we would like peer support for them.",
    "The families need support; our victim services staff are stretched thin.",
    "We would value advice on running the investigation and the evidence workload.",
    "The community is hurting and we are planning a vigil and a town hall.",
    "Unified command is still in place and we need help with incident management.",
]
WHEN = ["yesterday", "last night", "on Saturday", "this past Sunday", "two days ago"]
FILLER = (
    "Our department has about {n} sworn officers and we have never dealt with anything like "
    "this. The mayor and the city council are asking for updates every few hours, and the "
    "school district is asking when classes can resume. We have had help from neighboring "
    "agencies, but we would like to speak with a leader who has been through this."
)


def _body(
    rng: random.Random, city: str, state: str, agency: str, name: str, title: str, phone: str
) -> str:
    incident, _kind = rng.choice(INCIDENTS)
    killed, injured = rng.randint(1, 9), rng.randint(0, 15)
    parts = [
        rng.choice(["Good morning,", "Hello,", "To whom it may concern,", "Hi,"]),
        f"{rng.choice(WHEN).capitalize()} there was {incident.format(place=city)} here in "
        f"{city}, {state}. {killed} people were killed and {injured} were injured.",
        " ".join(rng.sample(NEEDS, rng.randint(1, 3))),
    ]
    parts += [FILLER.format(n=rng.randint(12, 400))] * rng.randint(0, 3)
    parts.append(f"Thank you,\n{name}\n{title}\n{agency}\n{phone}")
    return "\n\n".join(parts) + "\n"


def generate(n: int, seed: int = 1, sent: datetime | None = None) -> Iterator[tuple[str, bytes]]:
    rng = random.Random(seed)
    base = sent or datetime(2026, 11, 16, 14, 0, tzinfo=UTC)
    for i in range(n):
        city, state, _county = rng.choice(PLACES)
        agency = f"{city} {rng.choice(AGENCY_KINDS)}"
        name = f"{rng.choice(FIRST)} {rng.choice(LAST)}"
        title = rng.choice(TITLES)
        phone = f"({rng.randint(201, 989)}) 555-01{rng.randint(0, 99):02d}"
        body = _body(rng, city, state, agency, name, title, phone)
        msg = EmailMessage()
        local = name.lower().replace(" ", ".")
        msg["From"] = f"{name} <{local}@{city.lower().replace(' ', '')}.example.gov>"
        msg["To"] = "mvai@mvai.example.org"
        msg["Subject"] = rng.choice(
            [
                "Request for assistance",
                "Peer support request",
                f"{city} incident - help",
                "Need help after shooting",
                "MVAI request",
            ]
        )
        msg["Date"] = format_datetime(base + timedelta(minutes=i))
        msg["Message-ID"] = f"<bench-{seed}-{i}@{city.lower().replace(' ', '')}.example.gov>"
        style = rng.random()
        html = (
            "<html><body>"
            + "".join(f"<p>{p.replace(chr(10), '<br>')}</p>" for p in body.split("\n\n"))
            + "</body></html>"
        )
        if style < 0.15:
            msg.set_content(html, subtype="html")
        elif style < 0.4:
            msg.set_content(body)
            msg.add_alternative(html, subtype="html")
        elif style < 0.5:
            msg.set_content(
                "Forwarding from the chief, see below.\n\n---------- Forwarded message "
                f"---------\nFrom: {name} <{local}@example.gov>\nDate: {msg['Date']}\n"
                f"Subject: help\nTo: Ops <ops@example.gov>\n\n{body}"
            )
        else:
            msg.set_content(body)
        yield f"bench-{i:05d}.eml", msg.as_bytes()
