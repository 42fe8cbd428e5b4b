"""Seeding and inspecting for the retention tests: old and young jobs with their rows and stored objects."""

import uuid
from dataclasses import dataclass, field

from sqlalchemy import func, select

from pixtools_contracts import ObjectRef, Pipeline, StepRequested, first_steps, original_key, output_key, plan
from pixtools_db import Batch, Job, Output, Step, WebhookDelivery
from pixtools_platform.blobstore import BlobNotFound

PIPELINE = [{"op": "resize", "params": {"width": 64}}, {"op": "convert", "params": {"format": "png"}}]


@dataclass
class StoredJob:
    """A seeded job and the keys of the objects stored for it."""

    id: uuid.UUID
    keys: list[str] = field(default_factory=list)


def step_output_key(tenant_id: uuid.UUID, job_id: uuid.UUID, step_index: int, name: str) -> str:
    """The key a stage writes a step's output under, built the way the stages build it."""
    slip = plan(Pipeline.model_validate(PIPELINE))
    step, rest = first_steps(slip[step_index:])[0]
    request = StepRequested(
        job_id=job_id, tenant_id=tenant_id, correlation_id="c", producer="test", service="ingest",
        input=ObjectRef(key="k", content_type="image/png", bytes=1, sha256="0" * 64), step=step, remaining=rest,
    )  # fmt: skip
    return output_key(request, name, "png")


async def seed_job(sessions, store, tenant_id, created_at, *, batch_id=None) -> StoredJob:
    """A job with steps, a recorded output and a webhook delivery, and three stored objects: the original,
    the recorded output, and an output of step 1 whose result was discarded (never recorded)."""
    job = StoredJob(uuid.uuid4())
    original = original_key(tenant_id, job.id)
    recorded = step_output_key(tenant_id, job.id, 0, "image")
    discarded = step_output_key(tenant_id, job.id, 1, "image")
    async with sessions.begin() as session:
        session.add(
            Job(
                id=job.id, tenant_id=tenant_id, state="cancelled", pipeline=PIPELINE, step_count=2, leaf_count=1,
                input_key=original, correlation_id="c", batch_id=batch_id, created_at=created_at,
                updated_at=created_at, finished_at=created_at,
            )
        )  # fmt: skip
        await session.flush()
        for position, op in enumerate(("resize", "convert")):
            session.add(
                Step(job_id=job.id, step_id=str(position), position=position, op=op, params={}, is_leaf=position == 1)
            )
        await session.flush()
        session.add(
            Output(
                job_id=job.id, step_id="0", op="resize", name="image", role="image", is_final=False, key=recorded,
                content_type="image/png", bytes=1, sha256="0" * 64,
            )
        )  # fmt: skip
        session.add(
            WebhookDelivery(
                id=uuid.uuid4(), tenant_id=tenant_id, job_id=job.id, url="https://example.com/hook",
                event_type="job.failed.v1", payload=b"{}",
            )
        )  # fmt: skip
    for key in (original, recorded, discarded):
        await store.put(key, b"bytes", "image/png")
        job.keys.append(key)
    return job


async def seed_batch(sessions, tenant_id, created_at) -> uuid.UUID:
    """A finished batch created at `created_at`, without jobs."""
    batch_id = uuid.uuid4()
    async with sessions.begin() as session:
        session.add(
            Batch(
                id=batch_id, tenant_id=tenant_id, state="succeeded", source="urls", pipeline=PIPELINE, item_count=2,
                duplicates=[], correlation_id="c", created_at=created_at,
            )
        )  # fmt: skip
    return batch_id


async def count(sessions, model, *criteria) -> int:
    """How many rows of `model` match."""
    async with sessions() as session:
        return await session.scalar(select(func.count()).select_from(model).where(*criteria))


async def stored(store, key) -> bool:
    """Whether the blob store still holds `key`."""
    try:
        await store.get(key)
    except BlobNotFound:
        return False
    return True
