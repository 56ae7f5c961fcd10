"""Timed work: the scheduler drives outbox retries and housekeeping."""
