"""The broker adapter: what denoise consumes and which handler takes it."""

from collections.abc import Sequence

from pixtools_contracts import Event, StepRequested, step_failed
from pixtools_denoise.handlers import PRODUCER, Dependencies, run_denoise
from pixtools_platform.broker import Handler

ROUTING_KEYS = ("step.requested.v1.denoise",)


def handlers(deps: Dependencies) -> dict[str, Handler]:
    """Map each consumed event type to its handler, bound to its dependencies."""

    async def on_step_requested(event: Event) -> Sequence[Event]:
        assert isinstance(event, StepRequested)
        return await run_denoise(event, deps)

    return {"step.requested.v1": on_step_requested}


async def on_exhausted(event: Event, reason: str) -> Sequence[Event]:
    """A request that is dead-lettered still ends its step, so the job does not wait forever."""
    if isinstance(event, StepRequested):
        return [step_failed(event, "step.gave_up", reason, PRODUCER)]
    return []
