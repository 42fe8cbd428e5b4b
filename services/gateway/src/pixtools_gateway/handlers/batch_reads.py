"""Read models of a batch: totals by state and pages of items, each computed in SQL."""

import uuid
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from sqlalchemy import and_, bindparam, func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from pixtools_contracts import JOB_TERMINAL, BatchTotals, StepState
from pixtools_db import Batch, Job, Output, Step
from pixtools_gateway.errors import NotFound
from pixtools_gateway.responses import (
    BatchItemView,
    BatchOutput,
    BatchProgress,
    BatchView,
    ErrorView,
)

OutputUrl = Callable[[uuid.UUID, Mapping[str, Any]], Awaitable[str]]

_BATCH = select(Batch).where(Batch.id == bindparam("batch_id"), Batch.tenant_id == bindparam("tenant_id"))
_TOTALS = select(Job.state, func.count()).where(Job.batch_id == bindparam("batch_id")).group_by(Job.state)
# The first failed step's reason stands for the job when the job itself has none.
_FIRST_FAILURE = (
    select(func.json_build_object("code", Step.error_code, "message", Step.error_message))
    .where(Step.job_id == Job.id, Step.state == StepState.FAILED)
    .order_by(Step.position)
    .limit(1)
    .scalar_subquery()
)
_ITEMS = (
    select(
        Job.id,
        Job.batch_position,
        Job.item_id,
        Job.source_url,
        Job.source_name,
        Job.state,
        Job.error_code,
        Job.error_message,
        _FIRST_FAILURE.label("failure"),
    )
    .where(Job.batch_id == bindparam("batch_id"))
    .order_by(Job.batch_position)
    .offset(bindparam("offset"))
    .limit(bindparam("limit"))
)
_OUTPUTS = (
    select(Output.id, Output.job_id, Output.step_id, Output.name, Output.content_type, Output.key)
    .join(Step, and_(Step.job_id == Output.job_id, Step.step_id == Output.step_id))
    .where(Output.job_id.in_(bindparam("job_ids", expanding=True)), Output.is_final.is_(True))
    .order_by(Output.job_id, Step.position, Output.name)
)


async def fetch_batch(connection: AsyncConnection, tenant_id: uuid.UUID, batch_id: uuid.UUID) -> Any:
    """The tenant's batch row (its columns as attributes), or NotFound."""
    batch = (await connection.execute(_BATCH, {"batch_id": batch_id, "tenant_id": tenant_id})).one_or_none()
    if batch is None:
        raise NotFound(f"no batch {batch_id}")
    return batch


async def batch_totals(connection: AsyncConnection, batch_id: uuid.UUID) -> BatchTotals:
    """Jobs of the batch counted by state, in one GROUP BY."""
    counts = {state: count for state, count in await connection.execute(_TOTALS, {"batch_id": batch_id})}
    return BatchTotals.from_counts(counts)


def batch_state(batch: Any, totals: BatchTotals) -> str:
    """The stored state once finished or cancelled; otherwise accepted until a job starts, then running."""
    if batch.finished_at is not None or batch.cancelled_at is not None or batch.state in JOB_TERMINAL:
        return str(batch.state)
    return totals.unfinished_state()


def progress_of(totals: BatchTotals) -> BatchProgress:
    """Finished jobs over all jobs."""
    finished = totals.succeeded + totals.partially_failed + totals.failed + totals.cancelled
    return BatchProgress(finished=finished, total=totals.total, fraction=finished / totals.total if totals.total else 1)


async def read_batch_view(
    connection: AsyncConnection,
    *,
    tenant_id: uuid.UUID,
    batch_id: uuid.UUID,
    offset: int,
    limit: int,
    output_url: OutputUrl,
) -> BatchView:
    """The batch, its totals and one page of items with their outputs: three indexed queries, whatever the size."""
    batch = await fetch_batch(connection, tenant_id, batch_id)
    totals = await batch_totals(connection, batch_id)
    rows = (await connection.execute(_ITEMS, {"batch_id": batch_id, "offset": offset, "limit": limit})).all()
    outputs: dict[uuid.UUID, list[BatchOutput]] = {row.id: [] for row in rows}
    if rows:
        for output in (await connection.execute(_OUTPUTS, {"job_ids": list(outputs)})).mappings():
            outputs[output["job_id"]].append(
                BatchOutput(
                    step=output["step_id"],
                    name=output["name"],
                    content_type=output["content_type"],
                    url=await output_url(output["job_id"], dict(output)),
                )
            )
    items = [
        BatchItemView(
            position=row.batch_position,
            id=row.item_id,
            url=row.source_url,
            filename=row.source_name,
            job_id=row.id,
            state=row.state,
            error=_error(row),
            outputs=outputs[row.id],
        )
        for row in rows
    ]
    return BatchView(
        batch_id=batch.id,
        state=batch_state(batch, totals),
        source=batch.source,
        created_at=batch.created_at,
        finished_at=batch.finished_at,
        pipeline=batch.pipeline,
        totals=totals,
        progress=progress_of(totals),
        duplicates=batch.duplicates,
        items=items,
        offset=offset,
        limit=limit,
        next_offset=offset + limit if offset + limit < totals.total else None,
    )


def _error(row: Any) -> ErrorView | None:
    if row.error_code:
        return ErrorView(code=row.error_code, message=row.error_message or "")
    if row.failure:
        return ErrorView(code=row.failure["code"] or "unknown", message=row.failure["message"] or "")
    return None
