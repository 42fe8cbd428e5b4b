"""The state machine driven through its real handlers, with a small in-memory repository."""

import uuid
from datetime import UTC, datetime

import pytest

from pixtools_aggregator.errors import UnknownJob
from pixtools_aggregator.handlers import Dependencies, apply_step_completed, apply_step_failed, apply_step_started
from pixtools_aggregator.job_control import apply_job_cancelled, apply_source_failed, apply_source_fetched
from pixtools_aggregator.terminal import terminal_event
from pixtools_contracts import (
    ErrorInfo,
    Event,
    JobCancelled,
    JobCompleted,
    JobFailed,
    ObjectRef,
    Pipeline,
    SourceFailed,
    SourceFetched,
    StepCompleted,
    StepFailed,
    StepOutput,
    StepStarted,
    flatten,
    plan,
)
from pixtools_db import Job, Output, Step, WebhookDelivery

NOW = datetime(2025, 1, 1, tzinfo=UTC)
FORK = [
    {"op": "resize", "params": {"width": 64}},
    {"parallel": [[{"op": "convert", "params": {"format": "webp"}}], [{"op": "metadata"}]]},
]


class FakeJobRepository:
    """Keeps one job in memory and records what a transaction would have written."""

    def __init__(self, pipeline: list, *, state: str = "accepted", webhook_url: str | None = None) -> None:
        self.job = Job(
            id=uuid.uuid4(),
            tenant_id=uuid.uuid4(),
            state=state,
            pipeline=pipeline,
            correlation_id="corr",
            webhook_url=webhook_url,
            traceparent=None,
            created_at=NOW,
        )
        planned = flatten(plan(Pipeline.model_validate(pipeline)))
        self.step_rows = [
            Step(
                job_id=self.job.id,
                step_id=p.id,
                position=i,
                parent_id=p.parent_id,
                op=p.spec.op,
                is_leaf=p.is_leaf,
                state="pending",
            )
            for i, p in enumerate(planned)
        ]
        self.inbox: set[uuid.UUID] = set()
        self.outputs: dict[tuple[str, str], Output] = {}
        self.outbox: list[Event] = []
        self.webhooks: list[WebhookDelivery] = []
        self.notified: list[uuid.UUID] = []

    async def prepare(self, events):
        """Nothing to load ahead: the one job is in memory."""

    async def claim_event(self, event_id):
        if event_id in self.inbox:
            return False
        self.inbox.add(event_id)
        return True

    async def lock_job(self, job_id):
        return self.job if job_id == self.job.id else None

    async def steps(self, job_id):
        return self.step_rows

    async def add_outputs(self, outputs):
        for output in outputs:
            self.outputs.setdefault((output.step_id, output.name), output)

    async def final_outputs(self, job_id):
        return [output for output in self.outputs.values() if output.is_final]

    def stage(self, event):
        self.outbox.append(event)

    def add_webhook(self, delivery):
        self.webhooks.append(delivery)

    async def notify(self, job_id):
        self.notified.append(job_id)

    def step(self, step_id: str) -> Step:
        return next(step for step in self.step_rows if step.step_id == step_id)


def _ids(repo: FakeJobRepository) -> dict:
    return {"job_id": repo.job.id, "tenant_id": repo.job.tenant_id, "correlation_id": "corr", "producer": "ingest"}


def _image(name: str) -> ObjectRef:
    return ObjectRef(key=name, content_type="image/webp", bytes=10, sha256="0" * 64)


def completed(repo: FakeJobRepository, step_id: str, **extra) -> StepCompleted:
    output = StepOutput(name="image", role="image", **_image(f"{step_id}.webp").model_dump())
    return StepCompleted(
        step_id=step_id,
        op=repo.step(step_id).op,
        started_at=NOW,
        finished_at=NOW,
        image=_image("x"),
        outputs=[output],
        **_ids(repo),
        **extra,
    )


def failed(repo: FakeJobRepository, step_id: str) -> StepFailed:
    error = ErrorInfo(code="image.corrupt", message="bad bytes")
    return StepFailed(step_id=step_id, op=repo.step(step_id).op, error=error, **_ids(repo))


def deps(repo: FakeJobRepository) -> Dependencies:
    return Dependencies(jobs=repo, now=NOW, traceparent="00-" + "1" * 32 + "-" + "2" * 16 + "-01")


async def test_fan_in_finishes_the_job_only_after_the_last_leaf():
    repo = FakeJobRepository(FORK, webhook_url="https://example.com/hook")
    await apply_step_completed(completed(repo, "0"), deps(repo))
    await apply_step_completed(completed(repo, "1.0.0"), deps(repo))
    assert repo.job.state == "running"
    assert repo.outbox == []
    applied = await apply_step_completed(completed(repo, "1.1.0", result={"width": 64}), deps(repo))
    assert repo.job.state == "succeeded"
    assert applied.finished == "succeeded"
    [event] = repo.outbox
    assert isinstance(event, JobCompleted)
    assert sorted(output.step_id for output in event.outputs) == ["1.0.0", "1.1.0"]
    assert event.results == {"1.1.0": {"width": 64}}
    assert event.traceparent == deps(repo).traceparent
    [webhook] = repo.webhooks
    assert webhook.event_type == "job.completed.v1"


async def test_late_start_after_completion_changes_nothing():
    repo = FakeJobRepository(FORK)
    await apply_step_completed(completed(repo, "0"), deps(repo))
    started = StepStarted(step_id="0", op="resize", **_ids(repo))
    applied = await apply_step_started(started, deps(repo))
    assert applied.outcome == "unchanged"
    assert repo.step("0").state == "succeeded"


async def test_duplicate_event_is_applied_once():
    repo = FakeJobRepository(FORK)
    event = StepStarted(step_id="0", op="resize", **_ids(repo))
    assert (await apply_step_started(event, deps(repo))).outcome == "applied"
    assert (await apply_step_started(event, deps(repo))).outcome == "duplicate"
    assert len(repo.notified) == 1


async def test_failure_skips_downstream_steps_and_fails_the_job_without_outputs():
    repo = FakeJobRepository(FORK)
    await apply_step_failed(failed(repo, "0"), deps(repo))
    assert [step.state for step in repo.step_rows] == ["failed", "skipped", "skipped"]
    assert {step.error_code for step in repo.step_rows[1:]} == {"upstream_failed"}
    [event] = repo.outbox
    assert isinstance(event, JobFailed)
    assert [error.step_id for error in event.errors] == ["0"]


async def test_results_for_a_cancelled_job_are_ignored():
    repo = FakeJobRepository(FORK, state="cancelled")
    applied = await apply_step_completed(completed(repo, "0"), deps(repo))
    assert applied.outcome == "ignored"
    assert repo.step("0").state == "pending"


async def test_event_for_an_unknown_job_is_an_error():
    repo = FakeJobRepository(FORK)
    stray = StepStarted(
        step_id="0", op="resize", job_id=uuid.uuid4(), tenant_id=uuid.uuid4(), correlation_id="c", producer="x"
    )
    with pytest.raises(UnknownJob):
        await apply_step_started(stray, deps(repo))


def fetched(repo: FakeJobRepository) -> SourceFetched:
    original = ObjectRef(key="originals/t/j", content_type="image/png", bytes=99, sha256="e" * 64, width=4, height=3)
    return SourceFetched(url="https://a.example/x.png", final_url="https://a.example/x.png", input=original,
                         attempts=2, **_ids(repo))  # fmt: skip


def fetch_failed(repo: FakeJobRepository) -> SourceFailed:
    error = ErrorInfo(code="fetch.blocked_address", message="10.0.0.1 is private")
    return SourceFailed(url="https://a.example/x.png", error=error, attempts=1, **_ids(repo))


async def test_fetched_source_is_recorded_and_starts_the_job():
    repo = FakeJobRepository(FORK)
    event = fetched(repo)
    applied = await apply_source_fetched(event, deps(repo))
    assert applied.outcome == "applied"
    job = repo.job
    assert (job.input_key, job.input_content_type, job.input_bytes, job.input_sha256) == (
        "originals/t/j",
        "image/png",
        99,
        "e" * 64,
    )
    assert (job.input_width, job.input_height) == (4, 3)
    assert (job.state, job.started_at) == ("running", event.occurred_at)
    assert repo.notified == [job.id]
    assert (await apply_source_fetched(event, deps(repo))).outcome == "duplicate"


async def test_fetched_source_of_a_finished_job_is_recorded_without_reopening_it():
    repo = FakeJobRepository(FORK, state="failed")
    applied = await apply_source_fetched(fetched(repo), deps(repo))
    assert applied.outcome == "applied"
    assert repo.job.input_key == "originals/t/j"
    assert (repo.job.state, repo.job.started_at) == ("failed", None)


async def test_failed_source_skips_every_step_and_fails_the_job_with_its_reason():
    repo = FakeJobRepository(FORK, webhook_url="https://example.com/hook")
    applied = await apply_source_failed(fetch_failed(repo), deps(repo))
    assert (applied.outcome, applied.finished, applied.webhook) == ("applied", "failed", True)
    assert (repo.job.state, repo.job.error_code) == ("failed", "fetch.blocked_address")
    assert repo.job.finished_at == NOW
    assert {(step.state, step.error_code) for step in repo.step_rows} == {("skipped", "source_failed")}
    [event] = repo.outbox
    assert isinstance(event, JobFailed)
    [error] = event.errors
    assert (error.step_id, error.op, error.error) == ("source", "fetch", fetch_failed(repo).error)
    [webhook] = repo.webhooks
    assert webhook.event_type == "job.failed.v1"


async def test_failed_source_of_a_cancelled_job_is_ignored():
    repo = FakeJobRepository(FORK, state="cancelled")
    applied = await apply_source_failed(fetch_failed(repo), deps(repo))
    assert applied.outcome == "ignored"
    assert (repo.outbox, repo.job.error_code) == ([], None)
    assert {step.state for step in repo.step_rows} == {"pending"}


async def test_cancellation_sends_the_webhook_of_a_cancelled_job_only():
    cancelled = FakeJobRepository(FORK, state="cancelled", webhook_url="https://example.com/hook")
    event = JobCancelled(**(_ids(cancelled) | {"producer": "gateway"}))
    applied = await apply_job_cancelled(event, deps(cancelled))
    assert (applied.outcome, applied.finished, applied.webhook) == ("applied", "cancelled", True)
    [webhook] = cancelled.webhooks
    assert (webhook.event_type, webhook.job_id, webhook.batch_id) == ("job.cancelled.v1", cancelled.job.id, None)
    assert cancelled.outbox == []

    retried = FakeJobRepository(FORK, state="running", webhook_url="https://example.com/hook")
    applied = await apply_job_cancelled(JobCancelled(**(_ids(retried) | {"producer": "gateway"})), deps(retried))
    assert applied.outcome == "ignored"
    assert retried.webhooks == []


def test_terminal_event_lists_the_job_level_reason_before_failed_steps():
    repo = FakeJobRepository(FORK)
    repo.job.error_code, repo.job.error_message = "fetch.timeout", "no answer in 10 s"
    repo.step("1.0.0").state, repo.step("1.0.0").error_code = "failed", "image.corrupt"
    event = terminal_event(repo.job, repo.step_rows, [], "failed", None)
    assert [(error.step_id, error.error.code) for error in event.errors] == [
        ("source", "fetch.timeout"),
        ("1.0.0", "image.corrupt"),
    ]
