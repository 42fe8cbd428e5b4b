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
# What the job view and its event stream show, and the tenant it is checked against; not the request's bookkeeping
# (idempotency key, request hash, trace context, webhook URL), which every read would otherwise fetch and decode.
_JOB_COLUMNS = (
    Job.id,
    Job.tenant_id,
    Job.state,
    Job.pipeline,
    Job.source_url,
    Job.input_key,
    Job.input_content_type,
    Job.input_bytes,
    Job.input_sha256,
    Job.input_width,
    Job.input_height,
    Job.error_code,
    Job.error_message,
    Job.batch_id,
    Job.created_at,
    Job.started_at,
    Job.finished_at,
)


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
    # By id alone, so the primary key is the only index that answers it. With the tenant in the WHERE clause the
    # planner took one of the tenant's indexes whenever the jobs table had no statistics (a new database, one
    # not analysed since a burst, a server without autovacuum) and filtered every job of the tenant: 639 rows
    # and 73-91 buffers per read in a bench database, against 13. The tenant is compared in fetch_job instead.
    return select(*_JOB_COLUMNS, steps.label("steps"), outputs.label("outputs")).where(Job.id == bindparam("job_id"))


# Built once: constructing and cache-keying this statement per request costs more than running it.
JOB_QUERY = _job_query()


async def fetch_job(
    connection: AsyncConnection, tenant_id: uuid.UUID, job_id: uuid.UUID
) -> tuple[Any, list[dict[str, Any]], list[dict[str, Any]]] | None:
    """(job row, step dicts, output dicts), or None when the tenant has no such job."""
    row = (await connection.execute(JOB_QUERY, {"job_id": job_id})).one_or_none()
    if row is None or row.tenant_id != tenant_id:
        return None
    return row, row.steps, row.outputs
