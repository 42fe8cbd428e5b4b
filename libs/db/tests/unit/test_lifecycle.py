"""The state writer on rows in memory: steps only move forward, jobs only along the table, reopens reset."""

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from pixtools_contracts import JobState, StepState
from pixtools_db import Batch, Job, Step, lifecycle

T0 = datetime(2026, 1, 1, tzinfo=UTC)
T1 = T0 + timedelta(seconds=1)
# A fork: step 0 feeds 1.0.0 and 1.1.0; 1.1.0 feeds 1.1.1.
TREE = {"0": None, "1.0.0": "0", "1.1.0": "0", "1.1.1": "1.1.0"}


def _job(state: JobState = JobState.RUNNING) -> Job:
    return Job(id=uuid.uuid4(), state=state)


def _steps(job: Job, **states: StepState) -> list[Step]:
    return [
        Step(job_id=job.id, step_id=step_id, parent_id=parent, state=states.get(step_id.replace(".", "_"), "pending"))
        for step_id, parent in TREE.items()
    ]


def test_a_step_starts_once_and_never_after_it_ended():
    step = Step(step_id="0", state=StepState.PENDING)
    assert lifecycle.start_step(step, at=T0)
    assert (step.state, step.started_at) == ("running", T0)
    assert not lifecycle.start_step(step, at=T1)
    assert step.started_at == T0
    assert lifecycle.complete_step(step, started_at=T1, finished_at=T1, result={"width": 3})
    assert (step.state, step.started_at, step.finished_at, step.result) == ("succeeded", T0, T1, {"width": 3})
    assert not lifecycle.start_step(step, at=T1)
    assert not lifecycle.fail_step(step, started_at=T1, finished_at=T1, code="x", message="y")
    assert step.state == "succeeded"


def test_a_failed_step_keeps_its_reason_and_skipping_leaves_ended_steps_alone():
    job = _job()
    steps = _steps(job, **{"1_0_0": StepState.SUCCEEDED})
    assert lifecycle.fail_step(steps[0], started_at=T0, finished_at=T1, code="image.corrupt", message="bad")
    lifecycle.skip_steps(steps[1:], at=T1, code="upstream_failed", message="step 0 failed")
    assert [step.state for step in steps] == ["failed", "succeeded", "skipped", "skipped"]
    assert steps[1].error_code is None
    assert (steps[2].error_code, steps[2].finished_at) == ("upstream_failed", T1)


def test_jobs_move_along_the_table_and_refuse_anything_else():
    job = _job(JobState.ACCEPTED)
    lifecycle.start_job(job, at=T0)
    assert (job.state, job.started_at) == ("running", T0)
    lifecycle.finish_job(job, JobState.PARTIALLY_FAILED, at=T1)
    assert (job.state, job.finished_at, job.updated_at) == ("partially_failed", T1, T1)
    with pytest.raises(lifecycle.IllegalMove):
        lifecycle.start_job(job, at=T1)
    cancelled = _job(JobState.CANCELLED)
    with pytest.raises(lifecycle.IllegalMove):
        lifecycle.finish_job(cancelled, JobState.SUCCEEDED, at=T1)
    assert cancelled.state == "cancelled"


def test_a_job_that_failed_as_a_whole_carries_its_reason():
    job = _job(JobState.ACCEPTED)
    lifecycle.finish_job(job, JobState.FAILED, at=T1, error_code="fetch.not_found", error_message="404")
    assert (job.state, job.error_code, job.error_message) == ("failed", "fetch.not_found", "404")


def test_reopening_a_failed_step_resets_it_and_what_it_skipped_and_runs_the_job_again():
    job = _job(JobState.PARTIALLY_FAILED)
    job.finished_at, job.error_code = T1, "x"
    steps = _steps(job, **{"0": StepState.SUCCEEDED, "1_0_0": StepState.SUCCEEDED, "1_1_0": StepState.FAILED})
    steps[3].state = StepState.SKIPPED
    steps[2].error_code, steps[2].result = "image.corrupt", {"a": 1}
    assert lifecycle.reopen_steps(job, steps, {"1.1.0"}, at=T1)
    assert [step.state for step in steps] == ["succeeded", "succeeded", "pending", "pending"]
    assert (steps[2].error_code, steps[2].result, steps[2].finished_at) == (None, None, None)
    assert (job.state, job.finished_at, job.error_code, job.updated_at) == ("running", None, None, T1)


def test_reopening_steps_that_did_not_fail_changes_nothing():
    job = _job(JobState.SUCCEEDED)
    steps = _steps(job, **{step_id.replace(".", "_"): StepState.SUCCEEDED for step_id in TREE})
    assert not lifecycle.reopen_steps(job, steps, {"0", "1.1.0"}, at=T1)
    assert job.state == "succeeded"
    assert {step.state for step in steps} == {"succeeded"}


def test_a_job_whose_fetch_failed_waits_for_its_source_again():
    job = _job(JobState.FAILED)
    job.error_code = "fetch.not_found"
    steps = _steps(job, **{step_id.replace(".", "_"): StepState.SKIPPED for step_id in TREE})
    lifecycle.await_source(job, steps, at=T1)
    assert (job.state, job.error_code) == ("accepted", None)
    assert {step.state for step in steps} == {"pending"}


def test_a_partially_failed_job_whose_source_never_arrived_may_wait_for_it_again():
    job = _job(JobState.PARTIALLY_FAILED)
    lifecycle.await_source(job, [], at=T1)
    assert job.state == "accepted"


def test_a_succeeded_or_cancelled_job_never_waits_for_its_source_again():
    for state in (JobState.SUCCEEDED, JobState.CANCELLED):
        job = _job(state)
        with pytest.raises(lifecycle.IllegalMove):
            lifecycle.await_source(job, [], at=T1)
        assert job.state == state


def test_a_batch_is_cancelled_once_and_finishes_with_its_state():
    batch = Batch(id=uuid.uuid4(), state=JobState.RUNNING)
    assert lifecycle.cancel_batch(batch, at=T0)
    assert (batch.state, batch.cancelled_at) == ("cancelled", T0)
    assert not lifecycle.cancel_batch(batch, at=T1)
    assert batch.cancelled_at == T0
    lifecycle.finish_batch(batch, JobState.CANCELLED, at=T1)
    assert (batch.finished_at, batch.updated_at) == (T1, T1)
