"""The state vocabulary: forward-only steps, the allowed job moves and the terminal-state decisions."""

from typing import get_args

import pytest

from pixtools_contracts import (
    JOB_MOVES,
    JOB_TERMINAL,
    BatchTotals,
    CompletedJobState,
    EndedJobState,
    FinishedBatchState,
    FinishedJobState,
    JobCompleted,
    JobState,
    StepState,
    all_terminal,
    descendants,
    finished_state,
    job_may_move,
    step_may_advance,
)


@pytest.mark.parametrize(
    ("leaves", "expected"),
    [
        (["succeeded"], "succeeded"),
        (["succeeded", "succeeded", "succeeded"], "succeeded"),
        (["failed"], "failed"),
        (["failed", "skipped"], "failed"),
        (["skipped", "skipped"], "failed"),
        (["succeeded", "failed"], "partially_failed"),
        (["succeeded", "skipped", "succeeded"], "partially_failed"),
    ],
)
def test_job_state_follows_its_leaves(leaves, expected):
    assert finished_state(leaves) == expected


@pytest.mark.parametrize(
    ("current", "target", "allowed"),
    [
        ("pending", "running", True),
        ("pending", "succeeded", True),
        ("pending", "failed", True),
        ("pending", "skipped", True),
        ("running", "succeeded", True),
        ("running", "failed", True),
        ("running", "running", False),
        ("succeeded", "running", False),
        ("succeeded", "failed", False),
        ("failed", "succeeded", False),
        ("skipped", "succeeded", False),
    ],
)
def test_steps_only_move_forward(current, target, allowed):
    assert step_may_advance(current, target) is allowed


def test_job_is_done_only_when_every_step_is_terminal():
    assert all_terminal(["succeeded", "failed", "skipped"])
    assert not all_terminal(["succeeded", "running"])
    assert not all_terminal(["pending"])


def test_descendants_follow_parents_through_branches():
    parents = {"0": None, "1.0.0": "0", "1.1.0": "0", "1.1.1": "1.1.0", "1.2.0": "0"}
    assert descendants(parents, "0") == {"1.0.0", "1.1.0", "1.1.1", "1.2.0"}
    assert descendants(parents, "1.1.0") == {"1.1.1"}
    assert descendants(parents, "1.2.0") == set()


@pytest.mark.parametrize(
    ("counts", "cancelled", "expected"),
    [
        ({"succeeded": 3}, False, "succeeded"),
        ({"succeeded": 2, "failed": 1}, False, "partially_failed"),
        ({"partially_failed": 1, "failed": 2}, False, "partially_failed"),
        ({"failed": 2, "cancelled": 1}, False, "failed"),
        ({"cancelled": 2}, False, "failed"),
        ({"succeeded": 1, "cancelled": 2}, True, "cancelled"),
        ({"succeeded": 3}, True, "cancelled"),
    ],
)
def test_batch_state_follows_its_jobs(counts, cancelled, expected):
    assert BatchTotals.from_counts(counts).finished_state(cancelled=cancelled) == expected


def test_batch_totals_count_accepted_jobs_as_queued():
    totals = BatchTotals.from_counts({"accepted": 4, "running": 1, "failed": 2})
    assert (totals.queued, totals.running, totals.failed, totals.succeeded, totals.total) == (4, 1, 2, 0, 7)


def test_an_unfinished_batch_is_accepted_until_one_of_its_jobs_starts():
    assert BatchTotals.from_counts({"accepted": 3}).unfinished_state() == "accepted"
    assert BatchTotals.from_counts({"accepted": 2, "running": 1}).unfinished_state() == "running"
    assert BatchTotals.from_counts({"accepted": 2, "succeeded": 1}).unfinished_state() == "running"


@pytest.mark.parametrize(
    ("current", "target", "allowed"),
    [
        ("accepted", "running", True),
        ("accepted", "failed", True),
        ("accepted", "cancelled", True),
        ("accepted", "succeeded", False),
        ("running", "succeeded", True),
        ("running", "partially_failed", True),
        ("running", "failed", True),
        ("running", "cancelled", True),
        ("running", "accepted", False),
        ("failed", "running", True),
        ("failed", "accepted", True),
        ("partially_failed", "running", True),
        ("partially_failed", "accepted", True),
        ("succeeded", "accepted", False),
        ("succeeded", "running", False),
        ("cancelled", "running", False),
        ("cancelled", "accepted", False),
        ("running", "running", True),
        ("cancelled", "cancelled", True),
    ],
)
def test_jobs_move_only_along_the_table(current, target, allowed):
    assert job_may_move(current, JobState(target)) is allowed


def test_terminal_jobs_move_only_when_their_owner_retries_them():
    assert {state for state in JOB_TERMINAL if JOB_MOVES[state]} == {JobState.FAILED, JobState.PARTIALLY_FAILED}


def test_the_narrower_state_types_are_subsets_of_the_vocabulary():
    assert set(get_args(EndedJobState)) == set(JOB_TERMINAL)
    assert set(get_args(FinishedBatchState)) == set(JOB_TERMINAL)
    assert set(get_args(FinishedJobState)) == set(JOB_TERMINAL) - {JobState.CANCELLED}
    assert set(get_args(CompletedJobState)) == {JobState.SUCCEEDED, JobState.PARTIALLY_FAILED}


def test_states_travel_as_their_plain_names():
    assert [state.value for state in StepState] == ["pending", "running", "succeeded", "failed", "skipped"]
    schema = JobCompleted.model_json_schema()["properties"]["state"]
    assert schema["enum"] == ["succeeded", "partially_failed"]
