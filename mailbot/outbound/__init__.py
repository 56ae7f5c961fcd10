"""Outbound: render templates -> outbox rows (same transaction as the case) -> transport."""
