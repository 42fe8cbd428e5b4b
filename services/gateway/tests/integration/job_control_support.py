"""Helpers of the job-control API tests: a database handle, problem checks, outbox and batch reads."""

from sqlalchemy import or_, select

from pixtools_contracts import Event, parse_event
from pixtools_db import Job, Outbox

RESIZE_THEN_PNG = [{"op": "resize", "params": {"width": 32}}, {"op": "convert", "params": {"format": "png"}}]


def problem(response, status: int, slug: str) -> dict:
    """The problem+json body of a response, checked for its status and type."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body["type"].endswith("/" + slug)
    return body


async def outbox_events(db, job_ids) -> list[Event]:
    """The outbox events of these jobs, in the order they were staged."""
    wanted = [Outbox.body.contains(f'"job_id":"{job_id}"'.encode()) for job_id in job_ids]
    async with db() as session:
        rows = await session.scalars(select(Outbox).where(or_(*wanted)).order_by(Outbox.id))
        return [parse_event(row.body) for row in rows]


async def jobs_of(db, batch_id) -> list[Job]:
    """A batch's jobs in batch order."""
    async with db() as session:
        return list(await session.scalars(select(Job).where(Job.batch_id == batch_id).order_by(Job.batch_position)))


async def submit_url_batch(api, key, urls, pipeline=None, **extra):
    """POST a JSON batch of these URLs, with ids item-0, item-1, …"""
    items = [{"url": url, "id": f"item-{index}"} for index, url in enumerate(urls)]
    return await api.client.post(
        "/v1/batches",
        json={"items": items, "pipeline": pipeline or RESIZE_THEN_PNG, **extra},
        headers=api.as_tenant(key),
    )
