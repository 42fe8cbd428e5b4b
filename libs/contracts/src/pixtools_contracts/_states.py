"""The state vocabulary of jobs, steps and batches: the states, which of them are terminal, and the allowed moves.

This is the one place the states are spelled. The database stores their values, the HTTP API and the events
show them, and `pixtools_db.lifecycle`, the one writer of state, refuses any move this table does not allow.
"""

from collections.abc import Iterable
from enum import StrEnum
from typing import Literal


class JobState(StrEnum):
    """Where a job is; a batch goes through the same states, with the same meaning, for all its jobs."""

    ACCEPTED = "accepted"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    PARTIALLY_FAILED = "partially_failed"
    FAILED = "failed"
    CANCELLED = "cancelled"


class StepState(StrEnum):
    """Where one step of a job is."""

    PENDING = "pending"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    SKIPPED = "skipped"


CompletedJobState = Literal[JobState.SUCCEEDED, JobState.PARTIALLY_FAILED]
"""The states of a job that produced outputs: what `job.completed.v1` reports."""
FinishedJobState = Literal[JobState.SUCCEEDED, JobState.PARTIALLY_FAILED, JobState.FAILED]
"""The states a job's steps decide once every one of them is terminal."""
EndedJobState = Literal[JobState.SUCCEEDED, JobState.PARTIALLY_FAILED, JobState.FAILED, JobState.CANCELLED]
"""Every terminal job state: the finished ones, and cancelled by its owner."""
FinishedBatchState = EndedJobState
"""A batch's terminal states: the job states' terminal meaning, applied to the batch as a whole."""

JOB_TERMINAL: frozenset[JobState] = frozenset(
    {JobState.SUCCEEDED, JobState.PARTIALLY_FAILED, JobState.FAILED, JobState.CANCELLED}
)
JOB_UNFINISHED: tuple[JobState, ...] = (JobState.ACCEPTED, JobState.RUNNING)
"""The states of a job that can still change by itself, in the order a job passes them."""
JOB_RETRYABLE: tuple[JobState, ...] = (JobState.FAILED, JobState.PARTIALLY_FAILED)
"""The states from which the owner may run a job's failed steps again."""
STEP_TERMINAL: frozenset[StepState] = frozenset({StepState.SUCCEEDED, StepState.FAILED, StepState.SKIPPED})
STEP_UNFINISHED: tuple[StepState, ...] = (StepState.PENDING, StepState.RUNNING)
STEP_REOPENABLE: tuple[StepState, ...] = (StepState.FAILED, StepState.SKIPPED)
"""The states of a step that a retry or a replayed command may run again."""

JOB_MOVES: dict[JobState, frozenset[JobState]] = {
    # A fetch that fails before any step starts fails the job straight from accepted.
    JobState.ACCEPTED: frozenset({JobState.RUNNING, JobState.FAILED, JobState.CANCELLED}),
    JobState.RUNNING: frozenset({JobState.SUCCEEDED, JobState.PARTIALLY_FAILED, JobState.FAILED, JobState.CANCELLED}),
    JobState.SUCCEEDED: frozenset(),
    # A retry runs failed steps again (running), or fetches a source that never arrived (accepted): steps can
    # overtake their job's source.fetched, so even a partially failed job may still lack its source.
    JobState.PARTIALLY_FAILED: frozenset({JobState.RUNNING, JobState.ACCEPTED}),
    JobState.FAILED: frozenset({JobState.RUNNING, JobState.ACCEPTED}),
    JobState.CANCELLED: frozenset(),
}
"""Every move a job may make; staying in the same state is always allowed and is not a move."""

_STEP_RANK = {
    StepState.PENDING: 0,
    StepState.RUNNING: 1,
    StepState.SUCCEEDED: 2,
    StepState.FAILED: 2,
    StepState.SKIPPED: 2,
}


def job_may_move(current: str, target: JobState) -> bool:
    """True when a job in `current` may move to `target` (or already is there)."""
    return current == target or target in JOB_MOVES[JobState(current)]


def step_may_advance(current: str, target: StepState) -> bool:
    """True when a step may move from `current` to `target`: only forward, never out of a terminal state.

    The one way back is a reopen, for a retry or a replayed command: see `STEP_REOPENABLE`.
    """
    return current not in STEP_TERMINAL and _STEP_RANK[target] > _STEP_RANK[StepState(current)]


def all_terminal(step_states: Iterable[str]) -> bool:
    """True when no step can change any more."""
    return all(state in STEP_TERMINAL for state in step_states)


def finished_state(leaf_states: Iterable[str]) -> FinishedJobState:
    """The terminal state of a job whose steps are all terminal, from its leaves' states."""
    states = list(leaf_states)
    succeeded = sum(state == StepState.SUCCEEDED for state in states)
    if succeeded == len(states):
        return JobState.SUCCEEDED
    if succeeded == 0:
        return JobState.FAILED
    return JobState.PARTIALLY_FAILED
