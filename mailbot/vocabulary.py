"""The shared vocabulary (../shared/DESIGN.md): service areas, incident types, priorities.

Rules, the database, JSON output and templates all use these keys; the labels are for people.
"""

SERVICES: dict[str, str] = {
    "incident_management": "Incident management",
    "public_information": "Public information and media",
    "criminal_investigation": "Criminal investigation",
    "victim_witness_wellness": "Victim and witness wellness",
    "first_responder_wellness": "First responder wellness",
    "community_wellness": "Community wellness",
}

INCIDENT_TYPES: dict[str, str] = {
    "school_shooting": "school shooting",
    "workplace_shooting": "workplace shooting",
    "house_of_worship": "attack at a house of worship",
    "nightclub_venue": "attack at a nightclub or venue",
    "public_event": "attack at a public event",
    "retail_business": "attack at a retail business",
    "vehicle_ramming": "vehicle ramming",
    "bombing": "bombing",
    "stabbing": "stabbing",
    "other_shooting": "shooting",
    "other": "other incident",
}

PRIORITIES = ("P1", "P2", "P3", "P4")
CASE_STATUSES = ("new", "active", "monitoring", "closed")
