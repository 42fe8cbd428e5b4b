"""The read path of one job in a single round trip: Postgres assembles steps and outputs as JSON."""

import uuid
from typing import Any

from sqlalchemy import JSON, Select, bindparam, func, literal_column, select
from sqlalchemy.dialects.postgresql import aggregate_order_by
from sqlalchemy.ext.asyncio import AsyncConnection

from pixtools_db import Job, Output, Step

_STEP_FIELDS = (
    "step_id",
    "op",
    "params",
    "state",
    "started_at",
    "finished_at",
    "error_code",
    "error_message",
    "result",
)
_OUTPUT_FIELDS = ("id", "step_id", "op", "name", "content_type", "width", "height", "bytes", "sha256", "key")


def _json_rows(table: Any, fields: tuple[str, ...], where: Any, *order: Any) -> Any:
    pairs: list[Any] = []
    for field in fields:
        pairs += [literal_column(f"'{field}'"), getattr(table, field)]
    rows = select(func.json_agg(aggregate_order_by(func.json_build_object(*pairs), *order))).where(where)
    return func.coalesce(rows.scalar_subquery(), literal_column("'[]'::json"), type_=JSON)


def _job_query() -> Select[Any]:
    """One statement returning the job's columns, its steps in tree order and its final outputs."""
    steps = _json_rows(Step, _STEP_FIELDS, Step.job_id == Job.id, Step.position)
    # Outputs follow the tree order of the steps that made them, then their names.
    position = select(Step.position).where(Step.job_id == Output.job_id, Step.step_id == Output.step_id)
    outputs = _json_rows(
        Output, _OUTPUT_FIELDS, (Output.job_id == Job.id) & Output.is_final, position.scalar_subquery(), Output.name
    )
    return select(Job, steps.label("steps"), outputs.label("outputs")).where(
        Job.id == bindparam("job_id"), Job.tenant_id == bindparam("tenant_id")
    )


# Built once: constructing and cache-keying this statement per request costs more than running it.
JOB_QUERY = _job_query()


async def fetch_job(
    connection: AsyncConnection, tenant_id: uuid.UUID, job_id: uuid.UUID
) -> tuple[Any, list[dict[str, Any]], list[dict[str, Any]]] | None:
    """(job row, step dicts, output dicts), or None when the tenant has no such job."""
    row = (await connection.execute(JOB_QUERY, {"job_id": job_id, "tenant_id": tenant_id})).one_or_none()
    if row is None:
        return None
    return row, row.steps, row.outputs
