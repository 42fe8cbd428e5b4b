"""Forward-only step transitions and the terminal-state decision."""

import pytest

from pixtools_aggregator.states import (
    all_terminal,
    batch_state,
    can_advance,
    downstream,
    finished_state,
)
from pixtools_contracts import BatchTotals


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
    assert can_advance(current, target) is allowed


def test_job_is_done_only_when_every_step_is_terminal():
    assert all_terminal(["succeeded", "failed", "skipped"])
    assert not all_terminal(["succeeded", "running"])
    assert not all_terminal(["pending"])


def test_downstream_follows_parents_through_branches():
    parents = {"0": None, "1.0.0": "0", "1.1.0": "0", "1.1.1": "1.1.0", "1.2.0": "0"}
    assert downstream(parents, "0") == {"1.0.0", "1.1.0", "1.1.1", "1.2.0"}
    assert downstream(parents, "1.1.0") == {"1.1.1"}
    assert downstream(parents, "1.2.0") == set()


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
    assert batch_state(BatchTotals.from_counts(counts), cancelled=cancelled) == expected


def test_batch_totals_count_accepted_jobs_as_queued():
    totals = BatchTotals.from_counts({"accepted": 4, "running": 1, "failed": 2})
    assert (totals.queued, totals.running, totals.failed, totals.succeeded, totals.total) == (4, 1, 2, 0, 7)
