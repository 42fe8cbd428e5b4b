"""The Python SDK against the real stack: submit, wait, download, cancel, retry, batches, errors, async."""

import contextlib
import hashlib
import io
import socket
import threading
import uuid

import httpx
import pytest
from PIL import Image

from pixtools_client import (
    NO_RETRIES,
    AsyncClient,
    Client,
    Conflict,
    InvalidRequest,
    JobState,
    JobStateChange,
    NotFound,
    RetryPolicy,
    Step,
    TransportError,
    Unauthorized,
    WebhookVerificationError,
    verify_webhook,
)
from pixtools_contracts import OPERATIONS

pytestmark = pytest.mark.e2e

PIPELINE = [
    {"op": "resize", "params": {"width": 64}},
    {"parallel": [[{"op": "convert", "params": {"format": "png"}}], [{"op": "metadata"}]]},
]
SMALL_PNG = [{"op": "resize", "params": {"width": 48}}, {"op": "convert", "params": {"format": "png"}}]


def jpeg(colour: tuple[int, int, int], size: tuple[int, int] = (160, 120)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, colour).save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def api(module_stack, module_tenant_key):
    with Client(module_stack.gateway_url, module_tenant_key, timeout=30) as client:
        yield client


def test_submit_wait_and_download_every_output_with_its_digest_checked(api, tmp_path):
    image = tmp_path / "red.jpg"
    image.write_bytes(jpeg((200, 30, 30)))
    events: list[object] = []
    accepted = api.submit(image, PIPELINE)
    job = api.wait(accepted.job_id, timeout=60, on_event=events.append)
    assert job.state == JobState.SUCCEEDED, job
    assert job.input is not None
    assert (job.input.width, job.input.height) == (160, 120)
    assert [step.op for step in job.steps] == ["resize", "convert", "metadata"]
    assert {output.content_type for output in job.outputs} == {"image/png", "application/json"}
    assert any(isinstance(event, Step) and event.state == "succeeded" for event in events)
    assert isinstance(events[-1], JobStateChange)
    assert events[-1].state == JobState.SUCCEEDED
    saved = [api.download(output, tmp_path) for output in job.outputs]
    for output, path in zip(job.outputs, saved, strict=True):
        assert path.name.startswith(f"{output.step}-{output.name}.")
        assert hashlib.sha256(path.read_bytes()).hexdigest() == output.sha256
    png = next(path for path in saved if path.suffix == ".png")
    assert Image.open(png).size == (64, 48)


def test_bytes_and_file_objects_are_accepted_and_an_idempotency_key_replays_the_job(api, tmp_path):
    data = jpeg((10, 120, 10))
    key = f"sdk-e2e-{uuid.uuid4()}"
    first = api.submit(data, SMALL_PNG, idempotency_key=key)
    again = api.submit(io.BytesIO(data), SMALL_PNG, idempotency_key=key)
    assert again.job_id == first.job_id
    with pytest.raises(Conflict) as caught:
        api.submit(data, PIPELINE, idempotency_key=key)
    assert caught.value.type.endswith("/idempotency-conflict")
    assert api.wait(first.job_id, timeout=60).state == JobState.SUCCEEDED


def test_refusals_raise_typed_exceptions_carrying_the_problem_document(api, module_stack):
    with pytest.raises(InvalidRequest) as caught:
        api.submit(jpeg((1, 2, 3)), [{"op": "no-such-op"}])
    assert caught.value.status == 422
    assert caught.value.type.endswith("/invalid-pipeline")
    assert caught.value.title
    assert caught.value.detail
    with pytest.raises(NotFound):
        api.get(uuid.uuid4())
    with Client(module_stack.gateway_url, "not-a-key") as stranger, pytest.raises(Unauthorized) as denied:
        stranger.operations()
    assert denied.value.status == 401


def test_cancel_stops_a_slow_job_and_cancelling_a_finished_job_is_a_conflict(api, image_server):
    image_server.delay_s = 3.0
    accepted = api.submit_url(image_server.url("/img/slow.jpg"), SMALL_PNG)
    cancelled = api.cancel(accepted.job_id)
    assert cancelled.state == JobState.CANCELLED
    assert cancelled.changed
    assert api.wait(accepted.job_id, timeout=30).state == JobState.CANCELLED
    assert api.cancel(accepted.job_id).changed is False
    image_server.delay_s = 0
    done = api.submit(jpeg((5, 5, 5)), SMALL_PNG)
    api.wait(done.job_id, timeout=60)
    with pytest.raises(Conflict):
        api.cancel(done.job_id)


def test_a_failed_url_job_is_retried_once_its_source_is_fixed(api, image_server):
    accepted = api.submit_url(image_server.url("/flaky/late.jpg"), SMALL_PNG)
    failed = api.wait(accepted.job_id, timeout=60)
    assert failed.state == JobState.FAILED
    assert failed.error is not None
    assert failed.error.code == "fetch.http_4xx"
    image_server.fixed.add("/flaky/late.jpg")
    assert api.retry(accepted.job_id).changed
    assert api.wait(accepted.job_id, timeout=60).state == JobState.SUCCEEDED


def test_a_url_batch_is_followed_to_the_end_on_its_event_stream(api, image_server, tmp_path):
    urls = [image_server.url(f"/img/{index}.jpg") for index in range(5)]
    accepted = api.submit_batch(SMALL_PNG, urls=[*urls[:4], {"url": urls[4], "id": "last"}, urls[0]])
    assert (accepted.items, accepted.jobs, len(accepted.duplicates)) == (6, 5, 1)
    seen: list[int] = []
    batch = api.wait_batch(
        accepted.batch_id, timeout=90, on_progress=lambda change: seen.append(change.progress.finished)
    )
    assert batch.state == JobState.SUCCEEDED
    assert batch.totals.succeeded == 5
    assert len(batch.items) == 5
    assert seen
    assert seen[-1] == 5
    assert seen == sorted(seen)
    assert batch.items[4].id == "last"
    path = api.download(batch.items[0].outputs[0], tmp_path / "first.png")
    assert Image.open(path).size[0] == 48


def test_a_batch_of_files_runs_one_job_per_file(api):
    accepted = api.submit_batch(SMALL_PNG, files=[jpeg((9, 9, 200)), jpeg((200, 9, 9))])
    batch = api.wait_batch(accepted.batch_id, timeout=90)
    assert batch.source == "files"
    assert [item.state for item in batch.items] == [JobState.SUCCEEDED] * 2


def test_the_catalogue_lists_every_registered_operation_with_its_schema(api):
    operations = {operation.op: operation for operation in api.operations()}
    assert set(operations) == set(OPERATIONS)
    assert "width" in operations["resize"].params_schema["properties"]
    assert operations["detect"].service == "detect"


async def test_the_async_client_has_the_same_calls(module_stack, module_tenant_key, tmp_path):
    async with AsyncClient(module_stack.gateway_url, module_tenant_key) as api:
        assert {operation.op for operation in await api.operations()} == set(OPERATIONS)
        accepted = await api.submit(jpeg((90, 90, 20)), PIPELINE, filename="async.jpg")
        changes: list[object] = []
        job = await api.wait(accepted.job_id, timeout=60, on_event=changes.append)
        assert job.state == JobState.SUCCEEDED
        assert any(isinstance(change, Step) for change in changes)
        paths = [await api.download(output, tmp_path) for output in job.outputs]
        assert sorted(path.suffix for path in paths) == [".json", ".png"]
        with pytest.raises(NotFound):
            await api.cancel(uuid.uuid4())
        batch = await api.submit_batch(SMALL_PNG, files=[jpeg((1, 100, 1))])
        assert (await api.wait_batch(batch.batch_id, timeout=90)).state == JobState.SUCCEEDED


def test_delivered_webhooks_verify_with_the_old_or_the_new_secret_during_a_rotation(
    module_stack, tenant_key, webhook_receiver
):
    url, received = webhook_receiver
    with Client(module_stack.gateway_url, tenant_key) as api:
        old = api.webhook_secret().secret
        rotated = api.rotate_webhook_secret()
        assert rotated.secret != old
        assert rotated.previous_valid_until is not None
        job = api.wait(api.submit(jpeg((3, 3, 3)), SMALL_PNG, webhook_url=url).job_id, timeout=60)
    assert received.event.wait(30)
    headers, body = received.calls[0]
    assert len(headers["webhook-signature"].split()) == 2
    for secret in (old, rotated.secret):
        assert verify_webhook(headers, body, secret)["data"]["job_id"] == str(job.job_id)
    with pytest.raises(WebhookVerificationError):
        verify_webhook(headers, body + b" ", rotated.secret)


class AnswerDroppingProxy:
    """A loopback TCP proxy to the gateway that lets the first `drops` requests through, then hangs up on the client
    as soon as the gateway answers: the request was handled, but the client never hears so."""

    def __init__(self, upstream_port: int, drops: int):
        self.upstream_port = upstream_port
        self.drops = drops
        self.dropped = 0
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}"
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.upstream_port))
            threading.Thread(target=_pipe, args=(client, upstream), daemon=True).start()
            if self.drops > 0:
                self.drops -= 1
                threading.Thread(target=self._hang_up, args=(client, upstream), daemon=True).start()
            else:
                threading.Thread(target=_pipe, args=(upstream, client), daemon=True).start()

    def _hang_up(self, client: socket.socket, upstream: socket.socket) -> None:
        with contextlib.suppress(OSError):
            upstream.recv(65536)  # the gateway's answer: the request was handled
        self.dropped += 1
        for end in (client, upstream):
            # shutdown, not only close: another thread is blocked reading this socket and would keep it open.
            with contextlib.suppress(OSError):
                end.shutdown(socket.SHUT_RDWR)
            end.close()

    def close(self) -> None:
        self.listener.close()


def _pipe(source: socket.socket, target: socket.socket) -> None:
    with contextlib.suppress(OSError):
        while data := source.recv(65536):
            target.sendall(data)
    for end in (source, target):
        with contextlib.suppress(OSError):
            end.shutdown(socket.SHUT_RDWR)


def test_a_submission_whose_answer_was_lost_is_sent_again_and_replays_the_same_job(module_stack, tenant_key):
    gateway = module_stack.ports["gateway"]
    unlucky = AnswerDroppingProxy(gateway, drops=1)
    with Client(unlucky.url, tenant_key, retry=NO_RETRIES) as api, pytest.raises(TransportError):
        api.submit(jpeg((7, 7, 7)), SMALL_PNG)
    unlucky.close()
    assert unlucky.dropped == 1

    proxy = AnswerDroppingProxy(gateway, drops=1)
    with Client(proxy.url, tenant_key, retry=RetryPolicy(base_delay_s=0.05)) as api:
        accepted = api.submit(jpeg((8, 8, 8)), SMALL_PNG)
        assert api.wait(accepted.job_id, timeout=60).state == JobState.SUCCEEDED
    proxy.close()
    assert proxy.dropped == 1
    headers = {"Authorization": f"Bearer {tenant_key}"}
    jobs = httpx.get(f"{module_stack.gateway_url}/v1/jobs", headers=headers, timeout=10).json()["items"]
    # Two jobs in all: the one whose answer was lost without retries, and one (not two) for the retried submission.
    assert len(jobs) == 2
    assert str(accepted.job_id) in {job["job_id"] for job in jobs}
