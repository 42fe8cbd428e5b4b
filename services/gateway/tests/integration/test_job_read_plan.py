"""The read of one job goes through the jobs primary key, whatever Postgres knows about the table."""

import pytest
from sqlalchemy.dialects import postgresql

from pixtools_gateway.handlers.job_query import JOB_QUERY

from ..conftest import EXAMPLE_PIPELINE, jpeg

pytestmark = pytest.mark.integration


async def test_a_job_is_read_through_the_primary_key_before_the_table_has_statistics(api, tenant_key, db):
    # The session's database is new and nothing has analysed it: with the tenant in the WHERE clause, the planner
    # answered from the tenant's idempotency-key index and filtered every job of the tenant by id.
    job_ids = []
    for _ in range(3):
        response = await api.client.post(
            "/v1/jobs",
            files={"file": ("photo.jpg", jpeg())},
            data={"pipeline": EXAMPLE_PIPELINE},
            headers=api.as_tenant(tenant_key),
        )
        assert response.status_code == 202, response.text
        job_ids.append(response.json()["job_id"])
    statement = str(JOB_QUERY.compile(dialect=postgresql.asyncpg.dialect()))
    async with db() as session:
        connection = await session.connection()
        plan = (await connection.exec_driver_sql("EXPLAIN " + statement, (job_ids[1],))).scalars().all()
    jobs_scan = next(line for line in plan if " on jobs" in line)
    assert "using jobs_pkey on jobs" in jobs_scan, "\n".join(plan)
