"""Progress of a job or a batch as server-sent events, woken by database notifications.

Every event carries an `id:` from which the stream can resume. A job's id spells the state it has sent of the
job and of each step, so a client reconnecting with `Last-Event-ID` gets every state that changed since, and
nothing it already has. A batch's id is a digest of the progress it has sent.
"""

import asyncio
import contextlib
import hashlib
import uuid
from collections.abc import AsyncIterator, Sequence

from sse_starlette import ServerSentEvent

from pixtools_contracts import JOB_TERMINAL, JobState, StepState
from pixtools_gateway.api.deps import Resources
from pixtools_gateway.handlers.batch_reads import batch_state, batch_totals, fetch_batch, progress_of
from pixtools_gateway.handlers.job_query import fetch_job
from pixtools_gateway.handlers.reads import step_view
from pixtools_gateway.responses import BatchProgressEvent, JobStateEvent

POLL_S = 1.0  # fallback when a notification is missed or the listener is down
PING_S = 15

_UNSENT = "-"
_JOB_CODES: dict[str, str] = {state.value: str(index) for index, state in enumerate(JobState)}
_STEP_CODES: dict[str, str] = {state.value: str(index) for index, state in enumerate(StepState)}


def job_cursor(job_state: str | None, step_states: Sequence[str | None]) -> str:
    """The event id naming what a client has seen: the job's state, then each step's, one character each."""
    return _JOB_CODES.get(str(job_state), _UNSENT) + "".join(_STEP_CODES.get(str(s), _UNSENT) for s in step_states)


def seen_states(cursor: str | None, step_ids: Sequence[str]) -> tuple[str | None, dict[str, str]]:
    """The job state and step states a cursor names; nothing, for an absent, foreign or stale cursor."""
    if not cursor or len(cursor) != len(step_ids) + 1:
        return None, {}
    jobs = {code: state for state, code in _JOB_CODES.items()}
    steps = {code: state for state, code in _STEP_CODES.items()}
    seen = {step_id: steps[code] for step_id, code in zip(step_ids, cursor[1:], strict=True) if code in steps}
    return jobs.get(cursor[0]), seen


async def job_events(
    shared: Resources, tenant_id: uuid.UUID, job_id: uuid.UUID, last_event_id: str | None = None
) -> AsyncIterator[ServerSentEvent]:
    """A 'step' event for every step state change and a 'job' event for every job state change, until terminal."""
    resumed = False
    sent_state: str | None = None
    sent_steps: dict[str, str] = {}
    async with shared.notifications.watch(str(job_id)) as changed:
        while True:
            changed.clear()
            async with shared.reader.connect() as connection:
                found = await fetch_job(connection, tenant_id, job_id)
            if found is None:
                return
            job, steps, _ = found
            order = [step["step_id"] for step in steps]
            if not resumed:
                resumed = True
                sent_state, sent_steps = seen_states(last_event_id, order)
            for step in steps:
                if sent_steps.get(step["step_id"]) != step["state"]:
                    sent_steps[step["step_id"]] = step["state"]
                    data = step_view(step).model_dump_json()
                    cursor = job_cursor(sent_state, [sent_steps.get(step_id) for step_id in order])
                    yield ServerSentEvent(data=data, event="step", id=cursor)
            if job.state != sent_state:
                sent_state = job.state
                event = JobStateEvent(job_id=job.id, state=job.state, finished_at=job.finished_at)
                cursor = job_cursor(sent_state, [sent_steps.get(step_id) for step_id in order])
                yield ServerSentEvent(data=event.model_dump_json(), event="job", id=cursor)
            if job.state in JOB_TERMINAL:
                return
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(changed.wait(), timeout=POLL_S)


async def batch_events(
    shared: Resources, tenant_id: uuid.UUID, batch_id: uuid.UUID, last_event_id: str | None = None
) -> AsyncIterator[ServerSentEvent]:
    """A 'progress' event whenever the totals change, and a final 'batch' event once the batch is terminal."""
    sent = last_event_id
    async with shared.notifications.watch(str(batch_id)) as changed:
        while True:
            changed.clear()
            async with shared.reader.connect() as connection:
                batch = await fetch_batch(connection, tenant_id, batch_id)
                totals = await batch_totals(connection, batch_id)
            state = batch_state(batch, totals)
            finished = batch.finished_at is not None and state in JOB_TERMINAL
            progress = BatchProgressEvent(
                batch_id=batch_id,
                state=state,
                totals=totals,
                progress=progress_of(totals),
                finished_at=batch.finished_at if finished else None,
            )
            data = progress.model_dump_json(exclude_none=True)
            cursor = _digest(data)
            if cursor != sent and _digest(data, final=True) != sent:
                sent = cursor
                yield ServerSentEvent(data=data, event="progress", id=cursor)
            if finished:
                if sent != _digest(data, final=True):
                    yield ServerSentEvent(data=data, event="batch", id=_digest(data, final=True))
                return
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(changed.wait(), timeout=POLL_S)


def keepalive() -> ServerSentEvent:
    """The keep-alive comment; the library's default one carries a timestamp in another format than ours."""
    return ServerSentEvent(comment="ping")


def _digest(data: str, *, final: bool = False) -> str:
    return ("f" if final else "p") + hashlib.sha256(data.encode()).hexdigest()[:16]
