"""Progress of one job as a sequence of state changes, woken by database notifications."""

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from typing import Any

from pixtools_db import Job
from pixtools_gateway.api.deps import Resources
from pixtools_gateway.handlers.reads import load_steps, step_view
from pixtools_gateway.views import TERMINAL_STATES

POLL_S = 1.0  # fallback when a notification is missed or the listener is down


async def job_progress(shared: Resources, job_id: uuid.UUID) -> AsyncIterator[tuple[str, dict[str, Any]]]:
    """Yield ('step' | 'job', payload) for every change, ending after the terminal job state."""
    sent_steps: dict[str, str] = {}
    sent_state: str | None = None
    with shared.notifications.watch(str(job_id)) as changed:
        while True:
            changed.clear()
            async with shared.sessions() as session:
                job = await session.get_one(Job, job_id)
                steps = await load_steps(session, job_id)
            for step in steps:
                if sent_steps.get(step.step_id) != step.state:
                    sent_steps[step.step_id] = step.state
                    yield "step", step_view(step).model_dump(mode="json")
            if job.state != sent_state:
                sent_state = job.state
                yield "job", {"job_id": str(job.id), "state": job.state, "finished_at": job.finished_at}
            if job.state in TERMINAL_STATES:
                return
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(changed.wait(), timeout=POLL_S)
