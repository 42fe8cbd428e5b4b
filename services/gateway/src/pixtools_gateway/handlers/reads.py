"""Read models: a job with its steps and outputs, and cursor-paginated listings."""

import base64
import binascii
import json
import uuid
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import and_, or_, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from pixtools_db import Job, Output
from pixtools_gateway.errors import InvalidRequest, NotFound
from pixtools_gateway.handlers.job_query import fetch_job
from pixtools_gateway.responses import ErrorView, InputView, JobSummary, JobView, OutputView, StepView

OutputUrl = Callable[[uuid.UUID, Mapping[str, Any]], Awaitable[str]]


async def read_job_view(
    connection: AsyncConnection, *, tenant_id: uuid.UUID, job_id: uuid.UUID, output_url: OutputUrl
) -> JobView:
    """The full view of the tenant's job, read in one round trip."""
    found = await fetch_job(connection, tenant_id, job_id)
    if found is None:
        raise NotFound(f"no job {job_id}")
    job, steps, outputs = found
    return JobView(
        job_id=job.id,
        state=job.state,
        created_at=job.created_at,
        started_at=job.started_at,
        finished_at=job.finished_at,
        pipeline=job.pipeline,
        source_url=job.source_url,
        input=_input_view(job),
        error=ErrorView(code=job.error_code, message=job.error_message or "") if job.error_code else None,
        batch_id=job.batch_id,
        steps=[step_view(step) for step in steps],
        outputs=[
            OutputView(
                id=output["id"],
                step=output["step_id"],
                op=output["op"],
                name=output["name"],
                content_type=output["content_type"],
                width=output["width"],
                height=output["height"],
                bytes=output["bytes"],
                sha256=output["sha256"],
                url=await output_url(job.id, output),
            )
            for output in outputs
        ],
        metadata={step["step_id"]: step["result"] for step in steps if step["op"] == "metadata" and step["result"]},
    )


def _input_view(job: Any) -> InputView | None:
    if job.input_key is None:
        return None
    return InputView(
        content_type=job.input_content_type,
        bytes=job.input_bytes,
        sha256=job.input_sha256,
        width=job.input_width,
        height=job.input_height,
    )


def step_view(step: Mapping[str, Any]) -> StepView:
    """One step as the API shows it, from its row fields."""
    error = ErrorView(code=step["error_code"], message=step["error_message"] or "") if step["error_code"] else None
    return StepView(
        id=step["step_id"],
        op=step["op"],
        params=step["params"],
        state=step["state"],
        started_at=step["started_at"],
        finished_at=step["finished_at"],
        error=error,
        result=step["result"],
    )


async def get_output(session: AsyncSession, *, tenant_id: uuid.UUID, job_id: uuid.UUID, output_id: uuid.UUID) -> Output:
    """One output of the tenant's job; anything of another tenant's is reported as not found."""
    output = await session.scalar(
        select(Output)
        .join(Job, Job.id == Output.job_id)
        .where(Output.id == output_id, Output.job_id == job_id, Job.tenant_id == tenant_id)
    )
    if output is None:
        raise NotFound(f"no output {output_id} in job {job_id}")
    return output


def encode_cursor(job: Job) -> str:
    """An opaque cursor after this job in newest-first order."""
    raw = json.dumps([job.created_at.isoformat(), str(job.id)]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_cursor(cursor: str) -> tuple[datetime, uuid.UUID]:
    try:
        created, job_id = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        return datetime.fromisoformat(created), uuid.UUID(job_id)
    except (ValueError, TypeError, binascii.Error) as error:
        raise InvalidRequest("invalid cursor") from error


async def list_jobs(
    session: AsyncSession,
    *,
    tenant_id: uuid.UUID,
    state: str | None,
    cursor: str | None,
    limit: int,
    status_url: Callable[[uuid.UUID], str],
) -> tuple[list[JobSummary], str | None]:
    """A newest-first page of the tenant's jobs using keyset pagination."""
    query = select(Job).where(Job.tenant_id == tenant_id)
    if state:
        query = query.where(Job.state == state)
    if cursor:
        created, job_id = _decode_cursor(cursor)
        query = query.where(or_(Job.created_at < created, and_(Job.created_at == created, Job.id < job_id)))
    jobs = (await session.scalars(query.order_by(Job.created_at.desc(), Job.id.desc()).limit(limit + 1))).all()
    page = jobs[:limit]
    summaries = [
        JobSummary(
            job_id=job.id,
            state=job.state,
            created_at=job.created_at,
            finished_at=job.finished_at,
            status_url=status_url(job.id),
        )
        for job in page
    ]
    return summaries, (encode_cursor(page[-1]) if len(jobs) > limit else None)
