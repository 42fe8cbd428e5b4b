"""The skeleton of every stage step: timing, a slow-start announcement, failures, and what comes next.

A stage supplies only its own work, in two parts: `analyse` turns the input's bytes into something (a
decoded, resized or inferred image), and `produce` stores the outputs and describes them. An exception of
one of the `rejects` types raised while analysing fails the step with that exception's `code`: the input
cannot be processed, so retrying would not help. Anything `produce` raises (storage) is retried instead.
"""

import contextlib
import logging
from collections.abc import Awaitable, Callable, Coroutine, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from time import perf_counter
from typing import Any, Protocol, TypeVar

from prometheus_client import Histogram
from pydantic import JsonValue

from pixtools_contracts import (
    Event,
    ObjectRef,
    StepCompleted,
    StepFailed,
    StepOutput,
    StepRequested,
    envelope_of,
    next_requests,
    step_failed,
    step_started,
)
from pixtools_platform.blobstore import BlobNotFound, BlobStore
from pixtools_platform.progress import announce_if_slow

__all__ = ["Produced", "StepDependencies", "run_step"]

T = TypeVar("T")

INPUT_MISSING = "input.missing"

log = logging.getLogger(__name__)

STEP_SECONDS = Histogram(
    "pixtools_step_seconds",
    "Time a stage spent on one step, from reading its input to its outcome, by operation and outcome.",
    ["service", "op", "outcome"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300),
)


class StepDependencies(Protocol):
    """What the skeleton needs of a stage's dependencies: where inputs are, and how to announce a slow start."""

    @property
    def blobs(self) -> BlobStore:
        """Where the step's input is read from."""
        ...

    @property
    def announce(self) -> Callable[[Event], Coroutine[Any, Any, None]]:
        """Publishes the step-started event of a slow step."""
        ...

    @property
    def announce_after_s(self) -> float:
        """How long a step runs before it is announced as started."""
        ...


@dataclass(frozen=True)
class Produced:
    """What a step made: the image handed to the next steps, its outputs, its result, and events of its own."""

    image: ObjectRef
    outputs: list[StepOutput]
    result: dict[str, JsonValue] | None = None
    events: Sequence[Event] = field(default_factory=tuple)
    """Published after the next requests and before StepCompleted (detect's ObjectsDetected)."""


async def run_step(
    request: StepRequested,
    deps: StepDependencies,
    *,
    producer: str,
    analyse: Callable[[bytes], Awaitable[T]],
    produce: Callable[[T, datetime], Awaitable[Produced]],
    rejects: tuple[type[Exception], ...],
) -> list[Event]:
    """Run one step: read its input, analyse it, produce its outputs; return the next requests and its outcome.

    `produce` also gets the step's start time. A missing input fails the step as `input.missing`.
    """
    started_at = datetime.now(UTC)
    with _step_timer(request, producer) as timer:
        events = await _run_step(request, deps, producer, started_at, analyse, produce, rejects)
        timer.outcome = _outcome_of(events)
    return events


async def _run_step(
    request: StepRequested,
    deps: StepDependencies,
    producer: str,
    started_at: datetime,
    analyse: Callable[[bytes], Awaitable[T]],
    produce: Callable[[T, datetime], Awaitable[Produced]],
    rejects: tuple[type[Exception], ...],
) -> list[Event]:
    async with announce_if_slow(deps.announce, step_started(request, producer), deps.announce_after_s):
        try:
            data = await deps.blobs.get(request.input.key)
        except BlobNotFound:
            message = f"input {request.input.key} is gone"
            return [step_failed(request, INPUT_MISSING, message, producer, started_at)]
        try:
            analysed = await analyse(data)
        except rejects as error:
            return [step_failed(request, _code_of(error), str(error), producer, started_at)]
        produced = await produce(analysed, started_at)
    following = next_requests(request, produced.image, producer)
    completed = StepCompleted(
        **envelope_of(request, producer),
        step_id=request.step.id,
        op=request.step.spec.op,
        started_at=started_at,
        finished_at=datetime.now(UTC),
        image=produced.image,
        outputs=produced.outputs,
        result=produced.result,
        next_step_ids=[step.step.id for step in following],
    )
    return [*following, *produced.events, completed]


def _code_of(error: Exception) -> str:
    """The stable error class a rejected step reports: the exception's `code` (every rejected type has one)."""
    return str(getattr(error, "code", "step.rejected"))


@dataclass
class _StepTimer:
    """The outcome of the step being timed: 'error' until the step returns one."""

    outcome: str = "error"


@contextlib.contextmanager
def _step_timer(request: StepRequested, producer: str) -> Iterator[_StepTimer]:
    """Time the step, then write its one end-of-step log line and observe its duration, whatever happened."""
    timer = _StepTimer()
    started = perf_counter()
    try:
        yield timer
    finally:
        elapsed = perf_counter() - started
        STEP_SECONDS.labels(producer, request.step.spec.op, timer.outcome).observe(elapsed)
        log.info(
            "step finished",
            extra={
                "step_id": request.step.id,
                "op": request.step.spec.op,
                "outcome": timer.outcome,
                "duration_s": round(elapsed, 6),
            },
        )


def _outcome_of(events: Sequence[Event]) -> str:
    """'succeeded', or 'failed' when the step reported a failure (an exception leaves it 'error', to be retried)."""
    return "failed" if any(isinstance(event, StepFailed) for event in events) else "succeeded"
