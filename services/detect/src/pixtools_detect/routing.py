"""The broker adapter: what detect consumes and which handler takes it."""

from pixtools_detect.handlers import PRODUCER, Dependencies, run_detect
from pixtools_platform.broker import Handler
from pixtools_platform.stage import gave_up_hook, step_request_handlers

ROUTING_KEYS = ("step.requested.v1.detect",)

on_exhausted = gave_up_hook(PRODUCER)


def handlers(deps: Dependencies) -> dict[str, Handler]:
    """Map each consumed event type to its handler, bound to its dependencies."""
    return step_request_handlers(lambda request: run_detect(request, deps))
