"""main's (575368e) submit write path against gw-cost's, in one process, interleaved: CPU per job.

Each path builds the real statement of a one-step convert(webp) job, runs its INSERT and hands the two events to a
commit hook that only counts them. Run `submit_cost.py` once first: it creates and migrates the database.
A one-off comparison for docs/benchmarks.md (gw-cost); `main_statement` is main's code of that day.

    flock /tmp/bench.lock .venv/bin/python bench/gateway/submit_path_ab.py
"""

import asyncio
import statistics
import time
import uuid

from sqlalchemy import text

from pixtools_contracts import ObjectRef
from pixtools_db import Job, create_engine, session_factory
from pixtools_db.commits import on_commit
from pixtools_db.outbox import OUTBOX_TOPIC, events_committed, stage_event_rows
from pixtools_gateway.handlers import submit as s
from pixtools_gateway.pipelines import parse_pipeline

URL = "postgresql+asyncpg://postgres@localhost:5432/pixtools_bench_submit_cost"
handed = []


def main_statement(session, job_id, submission, original, *, fingerprint):
    # main's _job_statement (575368e): stage_event_rows on the session and an ORM Job for the answer
    job_row, step_rows, events = s._job_rows(job_id, submission, original, fingerprint=fingerprint, batch=None)
    event_rows = stage_event_rows(session, events)
    parameters = {f"job_{column}": value for column, value in job_row.items()}
    for prefix, rows in (("step", step_rows), ("event", event_rows)):
        for number, row in enumerate(rows):
            parameters.update((f"{prefix}{number}_{column}", value) for column, value in row.items())
    statement = s._job_insert(tuple(job_row), tuple(step_rows[0]), len(step_rows), len(event_rows))
    return Job(**job_row), events, statement, parameters


async def run():
    engine = create_engine(URL)
    sessions = session_factory(engine)
    reader = engine.execution_options(isolation_level="AUTOCOMMIT")
    on_commit(sessions, OUTBOX_TOPIC, handed.extend)
    async with engine.connect() as c:
        tenant = (await c.execute(text("select id from tenants limit 1"))).scalar()
    pipeline = parse_pipeline('[{"op": "convert", "params": {"format": "webp", "quality": 80}}]')

    def inputs():
        sub = s.Submission(
            tenant_id=tenant,
            pipeline=pipeline,
            webhook_url=None,
            idempotency_key=None,
            correlation_id=str(uuid.uuid4()),
            traceparent=None,
            upload=s.Upload(b"x" * 1000, "image/jpeg", 640, 480),
        )
        job_id = uuid.uuid4()
        return (
            job_id,
            sub,
            ObjectRef(key=f"t/{job_id}", content_type="image/jpeg", bytes=1000, sha256="0" * 64, width=640, height=480),
        )

    async def old():
        job_id, sub, original = inputs()
        async with sessions() as session:
            connection = await session.connection(execution_options={"isolation_level": "AUTOCOMMIT"})
            job, _events, statement, parameters = main_statement(session, job_id, sub, original, fingerprint="f")
            await connection.execute(statement, parameters)
            await session.commit()
        return (job.id, job.state, job.step_count, job.correlation_id)

    async def new():
        job_id, sub, original = inputs()
        job, encoded, statement, parameters = s._job_statement(job_id, sub, original, fingerprint="f")
        async with reader.connect() as connection:
            await connection.execute(statement, parameters)
        events_committed(sessions, encoded)
        return (job.id, job.state, job.step_count, job.correlation_id)

    results = {"main": [], "branch": []}
    for _ in range(30):
        await old()
        await new()
    for round_ in range(8):
        for name, f in (("main", old), ("branch", new)) if round_ % 2 == 0 else (("branch", new), ("main", old)):
            started = time.process_time()
            for _ in range(300):
                await f()
            results[name].append((time.process_time() - started) / 300 * 1e6)
    assert len(handed) == 2 * (2 * 30 + 2 * 8 * 300), len(handed)  # every job's two events reached the hook
    for name, values in results.items():
        print(name, "us per job:", [round(v) for v in values], "median", round(statistics.median(values)))
    ratios = [b / m for b, m in zip(results["branch"], results["main"], strict=True)]
    print("branch/main per round:", [round(r, 2) for r in ratios], "median", round(statistics.median(ratios), 3))
    async with engine.begin() as c:
        # No relay ran here: the rows written would wait for a sweep that never comes.
        await c.execute(
            text("DELETE FROM outbox WHERE published_at IS NULL AND created_at > now() - interval '1 hour'")
        )
    await engine.dispose()


asyncio.run(run())
