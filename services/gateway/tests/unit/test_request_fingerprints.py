"""Idempotency fingerprints of job and batch requests, and how batch items are deduplicated."""

import uuid

import pytest

from pixtools_contracts import Pipeline
from pixtools_gateway.errors import BatchTooLarge, InvalidRequest
from pixtools_gateway.handlers import batches, submit
from pixtools_gateway.handlers.batches import MAX_ITEMS, BatchItem, BatchRequest, check_size, dedupe
from pixtools_gateway.handlers.submit import Submission, Upload

TENANT = uuid.UUID(int=1)
RESIZE = Pipeline.model_validate([{"op": "resize", "params": {"width": 64}}])
CONVERT = Pipeline.model_validate([{"op": "convert", "params": {"format": "png"}}])


def _upload(data: bytes = b"image bytes", name: str | None = None) -> Upload:
    return Upload(data=data, content_type="image/png", width=2, height=2, name=name)


def _submission(**changes: object) -> Submission:
    fields: dict[str, object] = {
        "tenant_id": TENANT,
        "pipeline": RESIZE,
        "webhook_url": None,
        "idempotency_key": "key-1",
        "correlation_id": "corr-1",
        "traceparent": None,
        "upload": _upload(),
    }
    return Submission(**{**fields, **changes})  # type: ignore[arg-type]


def test_the_same_request_has_the_same_fingerprint_whatever_its_correlation_and_trace() -> None:
    first = submit.request_fingerprint(_submission())
    again = submit.request_fingerprint(_submission(correlation_id="corr-2", traceparent="00-abc-def-01"))
    assert first == again
    assert len(first) == 64


@pytest.mark.parametrize(
    "change",
    [
        {"upload": _upload(b"other bytes")},
        {"pipeline": CONVERT},
        {"webhook_url": "https://hooks.example/done"},
        {"upload": None, "source_url": "https://images.example/a.jpg"},
    ],
)
def test_a_different_source_pipeline_or_webhook_changes_the_fingerprint(change: dict[str, object]) -> None:
    assert submit.request_fingerprint(_submission(**change)) != submit.request_fingerprint(_submission())


def test_an_uploads_file_name_does_not_change_its_fingerprint() -> None:
    named = _submission(upload=_upload(name="cat.png"))
    assert submit.request_fingerprint(named) == submit.request_fingerprint(_submission())


def _batch(items: list[BatchItem], **changes: object) -> BatchRequest:
    fields: dict[str, object] = {
        "tenant_id": TENANT,
        "source": "urls",
        "items": items,
        "pipeline": RESIZE,
        "webhook_url": None,
        "idempotency_key": "batch-1",
        "correlation_id": "corr-1",
        "traceparent": None,
    }
    return BatchRequest(**{**fields, **changes})  # type: ignore[arg-type]


URL_A = BatchItem(item_id="a", url="https://i.example/a.jpg")
URL_B = BatchItem(item_id="b", url="https://i.example/b.jpg")


def test_batch_fingerprints_depend_on_item_order_ids_and_pipeline() -> None:
    original = batches.request_fingerprint(_batch([URL_A, URL_B]))
    assert batches.request_fingerprint(_batch([URL_A, URL_B], correlation_id="other")) == original
    assert batches.request_fingerprint(_batch([URL_B, URL_A])) != original
    assert batches.request_fingerprint(_batch([URL_A, BatchItem(item_id="x", url=URL_B.url)])) != original
    assert batches.request_fingerprint(_batch([URL_A, URL_B], pipeline=CONVERT)) != original


def test_duplicates_keep_the_first_item_and_point_back_to_it() -> None:
    same_file_twice = [BatchItem(None, upload=_upload(name="one.png")), BatchItem(None, upload=_upload(name="two.png"))]
    kept, duplicates = dedupe([URL_A, URL_B, BatchItem(item_id="c", url=URL_A.url), *same_file_twice])
    assert [index for index, _ in kept] == [0, 1, 3]
    assert [(d.index, d.item_id, d.url, d.filename, d.duplicate_of) for d in duplicates] == [
        (2, "c", URL_A.url, None, 0),
        (4, None, None, "two.png", 3),
    ]


def test_a_url_and_a_file_are_never_duplicates_of_each_other() -> None:
    assert URL_A.identity() == "url:https://i.example/a.jpg"
    assert BatchItem(None, upload=_upload(b"x")).identity().startswith("sha256:2d711642")


def test_batch_size_is_checked_at_both_ends() -> None:
    check_size(1)
    check_size(MAX_ITEMS)
    with pytest.raises(BatchTooLarge, match="at most 1000 items; this one has 1001"):
        check_size(MAX_ITEMS + 1)
    with pytest.raises(InvalidRequest, match="no items"):
        check_size(0)
