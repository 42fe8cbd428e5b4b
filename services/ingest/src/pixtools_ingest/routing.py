"""The broker adapter: what ingest consumes and which handler takes it."""

from collections.abc import Sequence

from pixtools_contracts import Event, SourceRequested, StepRequested
from pixtools_ingest.handlers import GAVE_UP, PRODUCER, Dependencies, fetch_source, run_step, source_failed
from pixtools_platform.routing import route
from pixtools_platform.stage import Stage, gave_up_hook

SERVICE = PRODUCER

_step_gave_up = gave_up_hook(PRODUCER)


async def on_exhausted(event: Event, reason: str) -> Sequence[Event]:
    """A dead-lettered request still ends its step or fails its source, so the job does not wait forever."""
    if isinstance(event, SourceRequested):
        return [source_failed(event, GAVE_UP, reason)]
    return await _step_gave_up(event, reason)


def stage(deps: Dependencies) -> Stage:
    """Each consumed command type and its handler, bound to its dependencies; routing keys derive from them."""
    routes = dict(
        [
            route(StepRequested, lambda request: run_step(request, deps)),
            route(SourceRequested, lambda request: fetch_source(request, deps)),
        ]
    )
    return Stage(SERVICE, routes, on_exhausted=on_exhausted)
