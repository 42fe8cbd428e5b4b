"""The broker adapter: what detect consumes and which handler takes it."""

from pixtools_contracts import StepRequested
from pixtools_detect.handlers import PRODUCER, Dependencies, run_detect
from pixtools_platform.routing import route
from pixtools_platform.stage import Stage, gave_up_hook

SERVICE = PRODUCER

on_exhausted = gave_up_hook(PRODUCER)


def stage(deps: Dependencies) -> Stage:
    """Each consumed command type and its handler, bound to its dependencies; routing keys derive from them."""
    return Stage(SERVICE, dict([route(StepRequested, lambda request: run_detect(request, deps))]), on_exhausted)
