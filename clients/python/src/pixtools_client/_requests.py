"""Request building and answer parsing shared by `Client` and `AsyncClient`, so the two cannot drift apart.

Each client only sends what these functions build and sleeps its own way between retries.
"""

import hashlib
import json
import os
import time
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

import httpx
from pydantic import BaseModel, TypeAdapter

from pixtools_client._errors import WaitTimeout
from pixtools_client._inputs import ImageInput, output_filename, read_image
from pixtools_client._models import (
    BatchOutput,
    BatchProgressChange,
    JobStateChange,
    Operation,
    Output,
    Step,
)
from pixtools_client._sse import ServerSentEvent

Pipeline = Sequence[Any] | str
"""A pipeline: a list of steps (`{"op": ..., "params": {...}}`, or `{"parallel": [...]}`), or the same as JSON."""
UrlItem = str | Mapping[str, str | None]
"""A batch URL: the URL itself, or `{"url": ..., "id": ...}` with the caller's id for it."""
JobEvent = Step | JobStateChange
"""What a job's event stream reports: a step that changed state, or the job that did."""
Downloadable = Output | BatchOutput | str

M = TypeVar("M", bound=BaseModel)
_OPERATIONS = TypeAdapter(list[Operation])


def pipeline_text(pipeline: Pipeline) -> str:
    """The pipeline as compact JSON (a string is taken to be JSON already)."""
    return pipeline if isinstance(pipeline, str) else json.dumps(list(pipeline), separators=(",", ":"))


def pipeline_value(pipeline: Pipeline) -> Any:
    """The pipeline as JSON values, for JSON bodies."""
    return json.loads(pipeline) if isinstance(pipeline, str) else list(pipeline)


class Requests:
    """Builds the HTTP requests of every API call for one base URL and API key."""

    def __init__(self, http: httpx.Client | httpx.AsyncClient, base_url: str, api_key: str | None):
        self._http = http
        self.base_url = base_url.rstrip("/")
        origin = urlsplit(self.base_url)
        self._origin = (origin.scheme, origin.netloc)
        self._api_key = api_key

    def url(self, path: str) -> str:
        """An absolute URL for an API path."""
        return self.base_url + path

    def auth_headers(self, url: str) -> dict[str, str]:
        """The API key, but only for the gateway's own origin: never for a presigned link elsewhere."""
        target = urlsplit(url)
        if self._api_key is None or (target.scheme, target.netloc) != self._origin:
            return {}
        return {"Authorization": f"Bearer {self._api_key}"}

    def build(
        self, method: str, url: str, *, headers: Mapping[str, str] | None = None, **options: Any
    ) -> httpx.Request:
        """A request to `url` (absolute, or an API path) with the right credentials."""
        absolute = url if "://" in url else self.url(url)
        return self._http.build_request(
            method, absolute, headers={**self.auth_headers(absolute), **(headers or {})}, **options
        )

    def operations(self) -> httpx.Request:
        """GET the operation catalogue."""
        return self.build("GET", "/v1/operations")

    def submit(
        self,
        image: ImageInput,
        pipeline: Pipeline,
        *,
        webhook_url: str | None,
        idempotency_key: str | None,
        filename: str | None = None,
    ) -> httpx.Request:
        """POST an image upload; every submission carries an idempotency key, so a retry never makes two jobs."""
        name, data = read_image(image, filename)
        fields = {"pipeline": pipeline_text(pipeline)}
        if webhook_url:
            fields["webhook_url"] = webhook_url
        return self.build(
            "POST", "/v1/jobs", headers=_idempotency(idempotency_key), files={"file": (name, data)}, data=fields
        )

    def submit_url(
        self, url: str, pipeline: Pipeline, *, webhook_url: str | None, idempotency_key: str | None
    ) -> httpx.Request:
        """POST a job whose original ingest fetches from `url`."""
        body: dict[str, Any] = {"source_url": url, "pipeline": pipeline_value(pipeline)}
        if webhook_url:
            body["webhook_url"] = webhook_url
        return self.build("POST", "/v1/jobs", headers=_idempotency(idempotency_key), json=body)

    def get(self, job_id: uuid.UUID | str) -> httpx.Request:
        """GET a job."""
        return self.build("GET", f"/v1/jobs/{job_id}")

    def job_events(self, job_id: uuid.UUID | str, last_event_id: str | None, read_timeout: float) -> httpx.Request:
        """GET a job's event stream, resuming after `last_event_id`."""
        return self.build(
            "GET", f"/v1/jobs/{job_id}/events", headers=_stream_headers(last_event_id), timeout=_stream(read_timeout)
        )

    def cancel(self, job_id: uuid.UUID | str) -> httpx.Request:
        """DELETE a job: cancel it."""
        return self.build("DELETE", f"/v1/jobs/{job_id}")

    def retry(self, job_id: uuid.UUID | str) -> httpx.Request:
        """POST a retry of a job's failed steps."""
        return self.build("POST", f"/v1/jobs/{job_id}/retry")

    def submit_batch(
        self,
        pipeline: Pipeline,
        *,
        urls: Sequence[UrlItem] | None,
        files: Sequence[ImageInput] | None,
        csv: str | os.PathLike[str] | bytes | None,
        webhook_url: str | None,
        idempotency_key: str | None,
    ) -> httpx.Request:
        """POST a batch of URLs (JSON), a CSV of URLs, or image files; exactly one of the three."""
        if sum(source is not None for source in (urls, files, csv)) != 1:
            raise ValueError("give exactly one of urls, files or csv")
        headers = _idempotency(idempotency_key)
        if urls is not None:
            items = [{"url": item} if isinstance(item, str) else dict(item) for item in urls]
            body: dict[str, Any] = {"items": items, "pipeline": pipeline_value(pipeline)}
            if webhook_url:
                body["webhook_url"] = webhook_url
            return self.build("POST", "/v1/batches", headers=headers, json=body)
        fields = {"pipeline": pipeline_text(pipeline)}
        if webhook_url:
            fields["webhook_url"] = webhook_url
        if csv is not None:
            data = csv if isinstance(csv, bytes) else Path(csv).read_bytes()
            upload: list[tuple[str, tuple[str, bytes]]] = [("file", ("items.csv", data))]
        else:
            upload = [("files", read_image(image)) for image in files or []]
        return self.build("POST", "/v1/batches", headers=headers, files=upload, data=fields)

    def get_batch(self, batch_id: uuid.UUID | str, offset: int, limit: int) -> httpx.Request:
        """GET a batch with one page of its items."""
        return self.build("GET", f"/v1/batches/{batch_id}", params={"offset": offset, "limit": limit})

    def batch_events(self, batch_id: uuid.UUID | str, last_event_id: str | None, read_timeout: float) -> httpx.Request:
        """GET a batch's event stream."""
        return self.build(
            "GET",
            f"/v1/batches/{batch_id}/events",
            headers=_stream_headers(last_event_id),
            timeout=_stream(read_timeout),
        )

    def cancel_batch(self, batch_id: uuid.UUID | str) -> httpx.Request:
        """DELETE a batch: cancel its unfinished jobs."""
        return self.build("DELETE", f"/v1/batches/{batch_id}")

    def webhook_secret(self, *, rotate: bool) -> httpx.Request:
        """GET the webhook signing secret, or POST a rotation of it."""
        return self.build("POST", "/v1/webhooks/secret/rotate") if rotate else self.build("GET", "/v1/webhooks/secret")

    def download(self, output: Downloadable) -> httpx.Request:
        """GET an output's bytes from its URL (the API key goes only to the gateway itself)."""
        return self.build("GET", output if isinstance(output, str) else output.url)


def _idempotency(key: str | None) -> dict[str, str]:
    return {"Idempotency-Key": key or f"sdk-{uuid.uuid4()}"}


def _stream_headers(last_event_id: str | None) -> dict[str, str]:
    headers = {"Accept": "text/event-stream"}
    if last_event_id:
        headers["Last-Event-ID"] = last_event_id
    return headers


def _stream(read_timeout: float) -> httpx.Timeout:
    # The server sends a keep-alive comment every 15 s, so a longer silence means the stream is gone.
    return httpx.Timeout(10.0, read=read_timeout)


def parse(model: type[M], response: httpx.Response) -> M:
    """The answer as a model."""
    return model.model_validate_json(response.content)


def parse_operations(response: httpx.Response) -> list[Operation]:
    """The catalogue's operations."""
    return _OPERATIONS.validate_python(response.json()["operations"])


def job_event(event: ServerSentEvent) -> JobEvent | None:
    """A job stream event as a model; None for events this client does not know."""
    if event.event == "step":
        return Step.model_validate_json(event.data)
    if event.event == "job":
        return JobStateChange.model_validate_json(event.data)
    return None


def batch_event(event: ServerSentEvent) -> BatchProgressChange | None:
    """A batch stream event as a model; None for events this client does not know."""
    if event.event in ("progress", "batch"):
        return BatchProgressChange.model_validate_json(event.data)
    return None


def download_target(output: Downloadable, dest: str | os.PathLike[str]) -> Path:
    """Where to write an output: `dest` itself, or `<step>-<name>.<ext>` inside `dest` when it is a directory."""
    path = Path(dest)
    if path.is_dir():
        if isinstance(output, str):
            return path / (urlsplit(output).path.rsplit("/", 1)[-1] or "output")
        return path / output_filename(output.step, output.name, output.content_type)
    return path


def expected_sha256(output: Downloadable) -> str | None:
    """The digest the server listed for an output, when it did."""
    return output.sha256 if isinstance(output, Output) else None


class Digest:
    """A running SHA-256 of downloaded chunks, checked against the listed one at the end."""

    def __init__(self, expected: str | None):
        self._hash = hashlib.sha256()
        self._expected = expected

    def update(self, chunk: bytes) -> None:
        """Add a chunk."""
        self._hash.update(chunk)

    def matches(self) -> bool:
        """True when nothing was listed or the bytes match it."""
        return self._expected is None or self._hash.hexdigest() == self._expected


def read_timeout(deadline: float | None) -> float:
    """How long an event stream may stay silent: 30 s (two keep-alives), or less when the deadline is closer."""
    return 30.0 if deadline is None else max(1.0, min(30.0, deadline - time.monotonic()))


def check_deadline(deadline: float | None, what: str) -> None:
    """Raise `WaitTimeout` once the deadline has passed."""
    if deadline is not None and time.monotonic() > deadline:
        raise WaitTimeout(f"{what} was not terminal in time")
