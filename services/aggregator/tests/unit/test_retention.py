"""The retention cleanup's order of work, driven with small fake adapters."""

import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta

import pytest

from pixtools_aggregator.retention import Deleted, ExpiredJob, RetentionPolicy, clean_up, job_prefix
from pixtools_aggregator.settings import AggregatorSettings
from pixtools_contracts import ObjectRef, Pipeline, StepRequested, first_steps, original_key, output_key, plan

NOW = datetime(2030, 1, 31, tzinfo=UTC)
POLICY = RetentionPolicy(max_age=timedelta(days=7), outbox_max_age=timedelta(days=1), chunk=2)


class FakeRepository:
    """Expired jobs in memory; every call is written to a shared journal."""

    def __init__(self, journal: list[str], jobs: list[ExpiredJob]) -> None:
        self.journal = journal
        self.jobs = jobs
        self.locked: list[ExpiredJob] = []

    async def lock_expired_jobs(self, *, created_before: datetime, limit: int) -> list[ExpiredJob]:
        assert created_before == NOW - timedelta(days=7)
        self.locked = self.jobs[:limit]
        return self.locked

    async def delete_jobs(self, job_ids: Sequence[uuid.UUID]) -> int:
        self.journal.append(f"delete jobs {len(job_ids)}")
        self.jobs = [job for job in self.jobs if job.job_id not in job_ids]
        return len(job_ids)

    async def delete_emptied_batches(self, *, created_before: datetime, limit: int) -> int:
        self.journal.append("delete batches")
        return 0

    async def delete_inbox(self, *, processed_before: datetime, limit: int) -> int:
        self.journal.append("delete inbox")
        return 0

    async def delete_published_outbox(self, *, published_before: datetime, limit: int) -> int:
        assert published_before == NOW - timedelta(days=1)
        self.journal.append("delete outbox")
        return 0


class FakeBlobStore:
    """Counts the folders it is asked to delete; `broken` makes every deletion fail."""

    def __init__(self, journal: list[str], broken: bool = False) -> None:
        self.journal = journal
        self.broken = broken

    async def delete_prefix(self, prefix: str) -> int:
        if self.broken:
            raise OSError("storage unreachable")
        self.journal.append("delete objects")
        return 3


def expired(count: int) -> list[ExpiredJob]:
    return [ExpiredJob(tenant_id=uuid.uuid4(), job_id=uuid.uuid4()) for _ in range(count)]


def transactions_over(repository: FakeRepository):
    @asynccontextmanager
    async def transaction() -> AsyncIterator[FakeRepository]:
        yield repository

    return transaction


def test_job_prefix_is_the_folder_of_the_original_and_of_every_step_output() -> None:
    tenant_id, job_id = uuid.uuid4(), uuid.uuid4()
    [(step, rest)] = first_steps(plan(Pipeline.model_validate([{"op": "resize", "params": {"width": 8}}])))
    request = StepRequested(
        job_id=job_id, tenant_id=tenant_id, correlation_id="c", producer="test", service="ingest",
        input=ObjectRef(key="k", content_type="image/png", bytes=1, sha256="0" * 64), step=step, remaining=rest,
    )  # fmt: skip
    prefix = job_prefix(tenant_id, job_id)
    assert prefix.endswith("/")
    assert original_key(tenant_id, job_id).startswith(prefix)
    assert output_key(request, "image", "png").startswith(prefix)


async def test_objects_go_before_their_rows_and_batches_only_after_every_job() -> None:
    journal: list[str] = []
    repository = FakeRepository(journal, expired(3))

    deleted = await clean_up(
        transactions=transactions_over(repository), blobs=FakeBlobStore(journal), policy=POLICY, now=NOW
    )

    assert deleted == Deleted(jobs=3, objects=9)
    assert journal == [
        "delete objects", "delete objects", "delete jobs 2",
        "delete objects", "delete jobs 1",
        "delete batches", "delete inbox", "delete outbox",
    ]  # fmt: skip


async def test_rows_stay_when_their_objects_cannot_be_deleted() -> None:
    journal: list[str] = []
    repository = FakeRepository(journal, expired(2))

    with pytest.raises(ExceptionGroup):
        await clean_up(
            transactions=transactions_over(repository),
            blobs=FakeBlobStore(journal, broken=True),
            policy=POLICY,
            now=NOW,
        )

    assert journal == []
    assert len(repository.jobs) == 2


def test_retention_settings_default_to_a_week_and_read_the_environment(monkeypatch) -> None:
    defaults = AggregatorSettings()
    assert (defaults.retention_days, defaults.retention_outbox_days) == (7.0, 1.0)
    assert (defaults.retention_interval_s, defaults.retention_chunk) == (300.0, 100)

    monkeypatch.setenv("PIXTOOLS_RETENTION_DAYS", "30")
    monkeypatch.setenv("PIXTOOLS_RETENTION_INTERVAL_S", "60")
    settings = AggregatorSettings()
    assert (settings.retention_days, settings.retention_interval_s) == (30.0, 60.0)
