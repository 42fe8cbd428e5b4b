"""Routes: which handler takes each event type, written once; a service's routing keys derive from them."""

from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import TypeVar, cast

from pixtools_contracts import Event
from pixtools_platform.broker import Handler

__all__ = ["Routes", "command_routing_keys", "event_routing_keys", "route", "type_of"]

E = TypeVar("E", bound=Event)

Routes = Mapping[str, Handler]
"""Handlers by event type tag, for example {'step.requested.v1': run_step}."""


def type_of(kind: type[Event]) -> str:
    """The type tag of an event class, for example 'step.requested.v1'."""
    return str(kind.model_fields["type"].default)


def route(kind: type[E], handler: Callable[[E], Awaitable[Sequence[Event]]]) -> tuple[str, Handler]:
    """Route events of `kind` to `handler`, which takes that class only.

    The consumer decodes each message into the class its type tag names and looks the handler up by that
    same tag, so `handler` is only ever given a `kind`; a message of any other type has no route and is
    dead-lettered as such ('<service> has no handler for <type>').
    """
    return type_of(kind), cast(Handler, handler)


def command_routing_keys(routes: Routes, service: str) -> list[str]:
    """Commands route to their service: '<type>.<service>' for each routed type (lanes add '.bulk')."""
    return [f"{event_type}.{service}" for event_type in routes]


def event_routing_keys(routes: Routes) -> list[str]:
    """Events route by their type alone."""
    return list(routes)
