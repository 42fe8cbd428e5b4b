"""Submit bodies validate against their models with the API's own problem details, and document themselves."""

import io
import json

import pytest
from starlette.datastructures import FormData, Headers, UploadFile

from pixtools_gateway.body_validation import form_fields, request_body, validated
from pixtools_gateway.errors import InvalidRequest
from pixtools_gateway.request_bodies import BatchUpload, JobFromUrl, JobUpload, UrlBatch

PIPELINE = [{"op": "metadata"}]
URL = "https://e.example/a.jpg"


def _file(name: str = "a.jpg") -> UploadFile:
    return UploadFile(io.BytesIO(b"bytes"), filename=name, headers=Headers({"content-type": "image/jpeg"}))


def _refusal(model: type, data: object) -> InvalidRequest:
    with pytest.raises(InvalidRequest) as caught:
        validated(model, data)
    return caught.value


def test_a_url_job_keeps_its_fields_with_the_url_stripped() -> None:
    body = validated(JobFromUrl, {"source_url": " https://i.example/a.jpg ", "pipeline": PIPELINE, "extra": 1})
    assert (body.source_url, body.pipeline, body.webhook_url) == ("https://i.example/a.jpg", PIPELINE, None)


def test_a_pipeline_sent_as_text_is_kept_for_the_pipeline_parser() -> None:
    body = validated(JobFromUrl, {"source_url": "https://i.example/a.jpg", "pipeline": json.dumps(PIPELINE)})
    assert body.pipeline == json.dumps(PIPELINE)


@pytest.mark.parametrize(
    ("data", "detail"),
    [
        ({"pipeline": PIPELINE}, "'source_url' must be a non-empty URL"),
        ({"source_url": 42, "pipeline": PIPELINE}, "'source_url' must be a non-empty URL"),
        ({"source_url": "ftp://e.example/a.jpg"}, "'source_url' must use http or https, not 'ftp'"),
        ({"source_url": "https://e.example/a.jpg"}, "the 'pipeline' field is missing"),
        ({"source_url": "https://e.example/a.jpg", "pipeline": None}, "the 'pipeline' field is missing"),
        ({"source_url": URL, "pipeline": PIPELINE, "webhook_url": 7}, "'webhook_url' must be text"),
    ],
)
def test_the_first_bad_field_of_a_url_job_is_the_problem_detail(data: dict[str, object], detail: str) -> None:
    refusal = _refusal(JobFromUrl, data)
    assert refusal.detail == detail
    assert refusal.errors is None


def test_every_invalid_batch_item_is_reported_once_by_position() -> None:
    items = [
        {"url": "https://a.example/1.jpg", "id": 7},
        "https://a.example/2.jpg",
        {"url": "file:///etc/passwd"},
        {"url": "ftp://x", "id": "x" * 201},
        {},
    ]
    refusal = _refusal(UrlBatch, {"items": items, "pipeline": PIPELINE})
    assert refusal.detail == "4 item(s) are invalid; nothing was created"
    assert refusal.errors == [
        {"loc": ["items", 1], "msg": "each item must be an object with a 'url'"},
        {"loc": ["items", 2, "url"], "msg": "'url' must use http or https, not 'file'"},
        {"loc": ["items", 3, "id"], "msg": "'id' must be printable text of at most 200 characters"},
        {"loc": ["items", 4, "url"], "msg": "'url' must be a non-empty URL"},
    ]


def test_batch_item_ids_may_be_numbers_and_come_back_as_text() -> None:
    batch = validated(UrlBatch, {"items": [{"url": "https://a.example/1.jpg", "id": 7}], "pipeline": PIPELINE})
    assert [(item.id, item.url) for item in batch.items] == [("7", "https://a.example/1.jpg")]


def test_batch_items_that_are_not_a_list_are_refused_before_the_pipeline() -> None:
    assert _refusal(UrlBatch, {"items": {"url": "x"}}).detail == '\'items\' must be a list of {"url": ..., "id": ...}'


def test_form_fields_take_files_where_files_belong_and_every_value_of_a_list() -> None:
    first, second = _file("1.jpg"), _file("2.jpg")
    form = FormData([("files", first), ("files", "text"), ("files", second), ("pipeline", "[]"), ("other", "x")])
    fields = form_fields(form, BatchUpload)
    assert fields == {"pipeline": "[]", "file": None, "files": [first, "text", second], "webhook_url": None}
    assert validated(BatchUpload, fields).files == [first, second]


@pytest.mark.parametrize(
    ("form", "detail"),
    [
        ([("file", "not a file"), ("pipeline", "[]")], "the 'file' field is missing"),
        ([("file", _file())], "the 'pipeline' field is missing"),
    ],
)
def test_an_upload_without_its_file_or_pipeline_is_refused(form: list[tuple[str, object]], detail: str) -> None:
    with pytest.raises(InvalidRequest) as caught:
        validated(JobUpload, form_fields(FormData(form), JobUpload))  # type: ignore[arg-type]
    assert caught.value.detail == detail


@pytest.mark.parametrize(
    ("fields", "detail"),
    [
        ({"pipeline": "[]"}, "send a CSV 'file' with a 'url' column, or one or more image 'files'"),
        ({"pipeline": "[]", "file": _file("urls.csv"), "files": [_file()]}, "not both"),
        ({"file": _file("urls.csv")}, "the 'pipeline' field is missing"),
    ],
)
def test_a_batch_form_needs_a_pipeline_and_either_a_csv_or_files(fields: dict[str, object], detail: str) -> None:
    assert detail in _refusal(BatchUpload, fields).detail


def test_the_openapi_request_body_offers_both_media_types_from_the_models() -> None:
    body = request_body(json=UrlBatch, multipart=BatchUpload)["requestBody"]
    assert body["required"] is True
    as_json, as_form = body["content"]["application/json"]["schema"], body["content"]["multipart/form-data"]["schema"]
    assert as_json["required"] == ["items", "pipeline"]
    assert as_json["properties"]["items"]["maxItems"] == 1000
    assert as_json["properties"]["items"]["items"]["required"] == ["url"]  # inlined, not a dangling $ref
    assert "$ref" not in json.dumps(body)
    assert "$defs" not in json.dumps(body)
    assert as_form["required"] == ["pipeline"]
    assert set(as_form["properties"]) == {"pipeline", "file", "files", "webhook_url"}
    jobs = request_body(json=JobFromUrl, multipart=JobUpload)["requestBody"]["content"]
    assert jobs["multipart/form-data"]["schema"]["required"] == ["file", "pipeline"]
    assert jobs["application/json"]["schema"]["required"] == ["source_url", "pipeline"]
