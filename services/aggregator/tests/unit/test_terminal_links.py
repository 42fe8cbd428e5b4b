"""Terminal events tell a subscriber how to fetch each output: the gateway path, and a signed link when one exists."""

import uuid
from datetime import UTC, datetime, timedelta

from pixtools_aggregator.adapters.links import BlobStoreLinks
from pixtools_aggregator.ports import SignedLink
from pixtools_aggregator.terminal import signed_links, terminal_event
from pixtools_contracts import JobCompleted, JobState
from pixtools_db import Job, Output, Step

NOW = datetime(2025, 1, 1, tzinfo=UTC)


def _job() -> Job:
    return Job(id=uuid.uuid4(), tenant_id=uuid.uuid4(), state="running", correlation_id="corr", created_at=NOW)


def _output(job: Job, name: str) -> Output:
    return Output(
        id=uuid.uuid4(),
        job_id=job.id,
        step_id="0",
        op="convert",
        name=name,
        role="image",
        is_final=True,
        key=f"jobs/{job.tenant_id}/{job.id}/steps/0/{name}.webp",
        content_type="image/webp",
        bytes=10,
        sha256="0" * 64,
    )


def _step(job: Job) -> Step:
    return Step(job_id=job.id, step_id="0", position=0, op="convert", is_leaf=True, state="succeeded")


class SigningStore:
    """A blob store that presigns, like S3: only what the links adapter calls."""

    async def presigned_url(self, key: str, expires_s: int) -> str | None:
        return f"https://bucket.example/{key}?X-Amz-Expires={expires_s}&X-Amz-Signature=f00"


class UnsignedStore:
    """A blob store that cannot presign, like the local directory."""

    async def presigned_url(self, key: str, expires_s: int) -> str | None:
        return None


async def test_completed_job_outputs_carry_the_gateway_download_path_and_the_signed_link() -> None:
    job = _job()
    outputs = [_output(job, "image"), _output(job, "thumb")]
    links = BlobStoreLinks(SigningStore(), expires_s=3600)  # type: ignore[arg-type]
    before = datetime.now(UTC)
    signed = await signed_links(outputs, links)
    event = terminal_event(job, [_step(job)], outputs, JobState.SUCCEEDED, None, signed=signed)
    assert isinstance(event, JobCompleted)
    for listed, row in zip(event.outputs, outputs, strict=True):
        assert listed.output_id == row.id
        assert listed.download_path == f"/v1/jobs/{job.id}/outputs/{row.id}"
        assert listed.url == f"https://bucket.example/{row.key}?X-Amz-Expires=3600&X-Amz-Signature=f00"
        assert listed.url_expires_at is not None
        assert before + timedelta(seconds=3600) <= listed.url_expires_at <= datetime.now(UTC) + timedelta(seconds=3600)


async def test_without_signed_links_outputs_still_carry_the_download_path() -> None:
    job = _job()
    outputs = [_output(job, "image")]
    links = BlobStoreLinks(UnsignedStore(), expires_s=3600)  # type: ignore[arg-type]
    signed = await signed_links(outputs, links)
    assert signed == {}
    [listed] = terminal_event(job, [_step(job)], outputs, JobState.SUCCEEDED, None, signed=signed).outputs  # type: ignore[union-attr]
    assert listed.download_path == f"/v1/jobs/{job.id}/outputs/{outputs[0].id}"
    assert (listed.url, listed.url_expires_at) == (None, None)
    assert await signed_links(outputs, None) == {}


async def test_links_are_matched_to_outputs_by_key() -> None:
    job = _job()
    first, second = _output(job, "image"), _output(job, "thumb")
    link = SignedLink(url="https://signed.example/second", expires_at=NOW)
    event = terminal_event(job, [_step(job)], [first, second], JobState.SUCCEEDED, None, signed={second.key: link})
    assert isinstance(event, JobCompleted)
    assert [output.url for output in event.outputs] == [None, "https://signed.example/second"]
