"""Synchronous submissions: wait, woken by the job's database notifications, until the job is terminal."""

import asyncio
import contextlib
import uuid

from sqlalchemy import select

from pixtools_contracts import JOB_TERMINAL
from pixtools_db import Job
from pixtools_gateway.api.deps import Resources
from pixtools_gateway.api.progress import POLL_S
from pixtools_gateway.handlers.reads import OutputUrl, read_job_view
from pixtools_gateway.responses import JobView


async def terminal_view(
    shared: Resources, *, tenant_id: uuid.UUID, job_id: uuid.UUID, seconds: float, output_url: OutputUrl
) -> JobView | None:
    """The job's full view once it is terminal, or None when `seconds` pass first.

    No connection is held while waiting: each change notification (or, if one is missed, the slow fallback
    poll) reads the job's state on a short-lived connection.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    async with shared.notifications.watch(str(job_id)) as changed:
        while True:
            changed.clear()
            async with shared.reader.connect() as connection:
                state = await connection.scalar(select(Job.state).where(Job.id == job_id, Job.tenant_id == tenant_id))
                if state in JOB_TERMINAL:
                    return await read_job_view(connection, tenant_id=tenant_id, job_id=job_id, output_url=output_url)
            remaining = deadline - loop.time()
            if remaining <= 0:
                return None
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(changed.wait(), timeout=min(remaining, POLL_S))
