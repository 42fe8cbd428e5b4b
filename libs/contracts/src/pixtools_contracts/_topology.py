"""Exchange and queue names other teams bind to."""

EVENTS_EXCHANGE = "pixtools.events"
"""Durable topic exchange carrying every event and step command."""


def service_queue(service: str, namespace: str = "pixtools") -> str:
    """The durable quorum queue a service consumes."""
    return f"{namespace}.{service}"
