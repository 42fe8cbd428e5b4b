"""Exchange and queue names other teams bind to."""

EVENTS_EXCHANGE = "pixtools.events"
"""Durable topic exchange carrying every event and step command."""
