"""Progress of one job as a sequence of state changes, woken by database notifications."""

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from typing import Any

from pixtools_contracts import JOB_TERMINAL
from pixtools_gateway.api.deps import Resources
from pixtools_gateway.handlers.job_query import fetch_job
from pixtools_gateway.handlers.reads import step_view

POLL_S = 1.0  # fallback when a notification is missed or the listener is down


async def job_progress(
    shared: Resources, tenant_id: uuid.UUID, job_id: uuid.UUID
) -> AsyncIterator[tuple[str, dict[str, Any]]]:
    """Yield ('step' | 'job', payload) for every change, ending after the terminal job state."""
    sent_steps: dict[str, str] = {}
    sent_state: str | None = None
    with shared.notifications.watch(str(job_id)) as changed:
        while True:
            changed.clear()
            async with shared.reader.connect() as connection:
                found = await fetch_job(connection, tenant_id, job_id)
            if found is None:
                return
            job, steps, _ = found
            for step in steps:
                if sent_steps.get(step["step_id"]) != step["state"]:
                    sent_steps[step["step_id"]] = step["state"]
                    yield "step", step_view(step).model_dump(mode="json")
            if job.state != sent_state:
                sent_state = job.state
                yield "job", {"job_id": str(job.id), "state": job.state, "finished_at": job.finished_at}
            if job.state in JOB_TERMINAL:
                return
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(changed.wait(), timeout=POLL_S)
