"""The broker adapter: what ingest consumes and which handler takes it."""

from collections.abc import Sequence

from pixtools_contracts import Event, SourceRequested
from pixtools_ingest.handlers import PRODUCER, Dependencies, run_step
from pixtools_ingest.handlers_source import GAVE_UP, fetch_source, source_failed
from pixtools_platform.broker import Handler, PermanentError
from pixtools_platform.worker import gave_up_hook, step_request_handlers

ROUTING_KEYS = ("step.requested.v1.ingest", "source.requested.v1.ingest")

_step_gave_up = gave_up_hook(PRODUCER)


async def on_exhausted(event: Event, reason: str) -> Sequence[Event]:
    """A dead-lettered request still ends its step or fails its source, so the job does not wait forever."""
    if isinstance(event, SourceRequested):
        return [source_failed(event, GAVE_UP, reason)]
    return await _step_gave_up(event, reason)


def handlers(deps: Dependencies) -> dict[str, Handler]:
    """Map each consumed event type to its handler, bound to its dependencies."""

    async def on_source_requested(event: Event) -> Sequence[Event]:
        if not isinstance(event, SourceRequested):
            raise PermanentError(f"expected a source request, got {event.type}")
        return await fetch_source(event, deps)

    return {
        **step_request_handlers(lambda request: run_step(request, deps)),
        "source.requested.v1": on_source_requested,
    }
