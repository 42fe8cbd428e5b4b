"""The state rules of jobs and steps: forward-only steps and the terminal-state decision."""

from collections.abc import Iterable
from typing import Literal

from pixtools_contracts import BatchTotals, FinishedBatchState, descendants

StepState = Literal["pending", "running", "succeeded", "failed", "skipped"]
JobState = Literal["accepted", "running", "succeeded", "partially_failed", "failed", "cancelled"]
FinishedJobState = Literal["succeeded", "partially_failed", "failed"]
EndedJobState = FinishedJobState | Literal["cancelled"]

STEP_TERMINAL: frozenset[str] = frozenset({"succeeded", "failed", "skipped"})
JOB_TERMINAL: frozenset[str] = frozenset({"succeeded", "partially_failed", "failed", "cancelled"})
JOB_UNFINISHED: tuple[str, ...] = ("accepted", "running")

_RANK = {"pending": 0, "running": 1, "succeeded": 2, "failed": 2, "skipped": 2}


def can_advance(current: str, target: StepState) -> bool:
    """True when a step may move from `current` to `target`: only forward, never out of a terminal state."""
    return current not in STEP_TERMINAL and _RANK[target] > _RANK[current]


def finished_state(leaf_states: Iterable[str]) -> FinishedJobState:
    """The terminal state of a job whose steps are all terminal, from its leaves' states."""
    states = list(leaf_states)
    succeeded = sum(state == "succeeded" for state in states)
    if succeeded == len(states):
        return "succeeded"
    if succeeded == 0:
        return "failed"
    return "partially_failed"


def all_terminal(step_states: Iterable[str]) -> bool:
    """True when no step can change any more."""
    return all(state in STEP_TERMINAL for state in step_states)


def downstream(parents: dict[str, str | None], step_id: str) -> set[str]:
    """Ids of every step fed, directly or not, by `step_id`, given each step's parent."""
    return descendants(parents, step_id)


def batch_state(totals: BatchTotals, *, cancelled: bool) -> FinishedBatchState:
    """The terminal state of a batch whose jobs are all terminal."""
    if cancelled:
        return "cancelled"
    if totals.succeeded == totals.total:
        return "succeeded"
    if totals.succeeded + totals.partially_failed == 0:
        return "failed"
    return "partially_failed"
