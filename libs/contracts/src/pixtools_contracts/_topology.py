"""Exchange and queue names other teams bind to, under a deployment's namespace."""

DEFAULT_NAMESPACE = "pixtools"
"""The namespace of a deployment that sets no PIXTOOLS_NAMESPACE."""

EVENTS_EXCHANGE = "pixtools.events"
"""Durable topic exchange carrying every event and step command, in the default namespace."""


def events_exchange(namespace: str = DEFAULT_NAMESPACE) -> str:
    """The events exchange of a namespace: '<namespace>.events'."""
    return f"{namespace}.events"


def example_queue(namespace: str, event_type: str) -> str:
    """A name a subscribing team may give its own queue for one event type, shown in the AsyncAPI document."""
    return f"{namespace}.example-team.{event_type}"
