"""`Client`: the blocking client of the PixTools API."""

import contextlib
import functools
import os
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from types import TracebackType
from typing import Self, TypeVar

import httpx

from pixtools_client import _requests as build
from pixtools_client._errors import (
    IntegrityError,
    RateLimited,
    ServerError,
    ServiceUnavailable,
    TransportError,
    error_for,
)
from pixtools_client._inputs import ImageInput
from pixtools_client._models import (
    Batch,
    BatchAccepted,
    BatchProgressChange,
    Job,
    JobAccepted,
    JobControlled,
    JobStateChange,
    Operation,
    WebhookSecret,
)
from pixtools_client._retry import RetryPolicy
from pixtools_client._sse import EventDecoder, ServerSentEvent
from pixtools_client._version import DEFAULT_URL, USER_AGENT

JobId = uuid.UUID | str
# Errors after which waiting goes on by polling instead of the stream.
_STREAM_FALLBACK = (TransportError, RateLimited, ServiceUnavailable, ServerError)
_RECONNECTS = 3
Change = TypeVar("Change")


class Client:
    """The PixTools API over blocking HTTP; use it as a context manager, or call `close()`."""

    def __init__(
        self,
        base_url: str = DEFAULT_URL,
        api_key: str | None = None,
        *,
        timeout: float | httpx.Timeout = 30.0,
        retry: RetryPolicy | None = None,
        user_agent: str = USER_AGENT,
        transport: httpx.BaseTransport | None = None,
    ):
        self._http = httpx.Client(timeout=timeout, headers={"User-Agent": user_agent}, transport=transport)
        self._build = build.Requests(self._http, base_url, api_key)
        self._retry = retry or RetryPolicy()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close the connections."""
        self._http.close()

    def _send(self, request: httpx.Request, *, stream: bool = False) -> httpx.Response:
        """Send with the retry policy; a refusal raises its `ApiError`, a lost connection `TransportError`."""
        attempt = 0
        while True:
            attempt += 1
            try:
                response = self._http.send(request, stream=stream)
            except httpx.TransportError as error:
                delay = self._retry.delay_after_error(request, error, attempt)
                if delay is None:
                    raise TransportError(f"{request.method} {request.url}: {error or type(error).__name__}") from error
                time.sleep(delay)
                continue
            if response.is_success:
                return response
            response.read()
            response.close()
            delay = self._retry.delay_after_response(request, response, attempt)
            if delay is None:
                raise error_for(response)
            time.sleep(delay)

    def _follow(
        self,
        what: str,
        request_for: Callable[[str | None, float], httpx.Request],
        change_of: Callable[[ServerSentEvent], Change | None],
        timeout: float | None,
    ) -> Iterator[Change]:
        """The changes an event stream carries until it ends; a dropped stream resumes from its last event id."""
        deadline = None if timeout is None else time.monotonic() + timeout
        decoder = EventDecoder()
        reconnects = 0
        while True:
            request = request_for(decoder.last_event_id, build.read_timeout(deadline))
            try:
                with contextlib.closing(self._send(request, stream=True)) as response:
                    for line in response.iter_lines():
                        build.check_deadline(deadline, what)
                        if (event := decoder.feed(line)) and (change := change_of(event)):
                            yield change
                return
            except httpx.TransportError as error:
                build.check_deadline(deadline, what)
                reconnects += 1
                if reconnects > _RECONNECTS:
                    raise TransportError(f"the event stream of {what} keeps breaking: {error}") from error

    def operations(self) -> list[Operation]:
        """The operation catalogue: every op a pipeline may name, with the JSON Schema of its params."""
        return build.parse_operations(self._send(self._build.operations()))

    def submit(
        self,
        image: ImageInput,
        pipeline: build.Pipeline,
        *,
        webhook_url: str | None = None,
        idempotency_key: str | None = None,
        filename: str | None = None,
    ) -> JobAccepted:
        """Upload an image with a pipeline; the same `idempotency_key` again answers with the first job."""
        request = self._build.submit(
            image, pipeline, webhook_url=webhook_url, idempotency_key=idempotency_key, filename=filename
        )
        return build.parse(JobAccepted, self._send(request))

    def submit_url(
        self,
        url: str,
        pipeline: build.Pipeline,
        *,
        webhook_url: str | None = None,
        idempotency_key: str | None = None,
    ) -> JobAccepted:
        """Submit a job whose image the service fetches from `url`."""
        request = self._build.submit_url(url, pipeline, webhook_url=webhook_url, idempotency_key=idempotency_key)
        return build.parse(JobAccepted, self._send(request))

    def get(self, job_id: JobId) -> Job:
        """Read a job: state, steps, outputs and metadata."""
        return build.parse(Job, self._send(self._build.get(job_id)))

    def events(self, job_id: JobId, *, timeout: float | None = None) -> Iterator[build.JobEvent]:
        """A job's step and state changes as they happen, until it is terminal; resumes a dropped stream."""
        # Typed here, so that mypy solves the stream's change type as the union, not its join.
        changes: Iterator[build.JobEvent] = self._follow(
            f"job {job_id}", functools.partial(self._build.job_events, job_id), build.job_event, timeout
        )
        yield from changes

    def wait(
        self,
        job_id: JobId,
        *,
        timeout: float = 600.0,
        poll_interval: float = 1.0,
        on_event: Callable[[build.JobEvent], None] | None = None,
    ) -> Job:
        """Follow the job's event stream until it is terminal (polling if the stream fails); the final job."""
        deadline = time.monotonic() + timeout
        with contextlib.suppress(*_STREAM_FALLBACK):
            for change in self.events(job_id, timeout=timeout):
                if on_event:
                    on_event(change)
                if isinstance(change, JobStateChange) and change.state.terminal:
                    break
        while True:
            job = self.get(job_id)
            if job.state.terminal:
                return job
            build.check_deadline(deadline, f"job {job_id}")
            time.sleep(max(0.0, min(poll_interval, deadline - time.monotonic())))

    def cancel(self, job_id: JobId) -> JobControlled:
        """Cancel a job; cancelling again changes nothing, a finished job raises `Conflict`."""
        return build.parse(JobControlled, self._send(self._build.cancel(job_id)))

    def retry(self, job_id: JobId) -> JobControlled:
        """Run a job's failed steps again; the outputs that succeeded are kept."""
        return build.parse(JobControlled, self._send(self._build.retry(job_id)))

    def download(self, output: build.Downloadable, dest: str | os.PathLike[str]) -> Path:
        """Save an output to `dest` (a file, or a directory to hold `<step>-<name>.<ext>`); checks its SHA-256."""
        target = build.download_target(output, dest)
        partial = target.with_name(target.name + ".part")
        digest = build.Digest(build.expected_sha256(output))
        with (
            contextlib.closing(self._send(self._build.download(output), stream=True)) as response,
            partial.open("wb") as file,
        ):
            for chunk in response.iter_bytes():
                digest.update(chunk)
                file.write(chunk)
        if not digest.matches():
            partial.unlink()
            raise IntegrityError(f"{target.name}: the downloaded bytes do not match the listed SHA-256")
        return partial.replace(target)

    def submit_batch(
        self,
        pipeline: build.Pipeline,
        *,
        urls: Sequence[build.UrlItem] | None = None,
        files: Sequence[ImageInput] | None = None,
        csv: str | os.PathLike[str] | bytes | None = None,
        webhook_url: str | None = None,
        idempotency_key: str | None = None,
    ) -> BatchAccepted:
        """Submit up to 1000 URLs, a CSV of URLs, or image files, all with one pipeline."""
        request = self._build.submit_batch(
            pipeline, urls=urls, files=files, csv=csv, webhook_url=webhook_url, idempotency_key=idempotency_key
        )
        return build.parse(BatchAccepted, self._send(request))

    def get_batch(self, batch_id: JobId, *, offset: int = 0, limit: int = 100, all_items: bool = False) -> Batch:
        """Read a batch with one page of items, or with every item when `all_items`."""
        batch = build.parse(Batch, self._send(self._build.get_batch(batch_id, offset, limit)))
        items = list(batch.items)
        while all_items and batch.next_offset is not None:
            batch = build.parse(Batch, self._send(self._build.get_batch(batch_id, batch.next_offset, limit)))
            items += batch.items
        return batch.model_copy(update={"items": items}) if all_items else batch

    def batch_events(self, batch_id: JobId, *, timeout: float | None = None) -> Iterator[BatchProgressChange]:
        """A batch's progress as it changes, until every job is terminal."""
        yield from self._follow(
            f"batch {batch_id}", functools.partial(self._build.batch_events, batch_id), build.batch_event, timeout
        )

    def wait_batch(
        self,
        batch_id: JobId,
        *,
        timeout: float = 1800.0,
        poll_interval: float = 1.0,
        on_progress: Callable[[BatchProgressChange], None] | None = None,
    ) -> Batch:
        """Follow the batch's progress until every job is terminal; the batch with all its items."""
        deadline = time.monotonic() + timeout
        with contextlib.suppress(*_STREAM_FALLBACK):
            for change in self.batch_events(batch_id, timeout=timeout):
                if on_progress:
                    on_progress(change)
                if change.state.terminal and change.finished_at is not None:
                    break
        while True:
            batch = self.get_batch(batch_id, limit=500, all_items=True)
            if batch.state.terminal and batch.finished_at is not None:
                return batch
            build.check_deadline(deadline, f"batch {batch_id}")
            time.sleep(max(0.0, min(poll_interval, deadline - time.monotonic())))

    def webhook_secret(self) -> WebhookSecret:
        """The secret that signs this tenant's webhooks (give it to `verify_webhook`)."""
        return build.parse(WebhookSecret, self._send(self._build.webhook_secret(rotate=False)))

    def rotate_webhook_secret(self) -> WebhookSecret:
        """Issue a new webhook secret; the old one keeps signing too until `previous_valid_until`."""
        return build.parse(WebhookSecret, self._send(self._build.webhook_secret(rotate=True)))

    def cancel_batch(self, batch_id: JobId) -> None:
        """Cancel every unfinished job of a batch."""
        self._send(self._build.cancel_batch(batch_id))
