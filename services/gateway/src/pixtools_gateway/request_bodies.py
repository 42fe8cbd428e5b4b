"""Request bodies of the submit routes, as FastAPI documents them and as the readers validate them."""

import functools
import json
from collections.abc import Mapping
from typing import Annotated, Any, ClassVar

from fastapi import UploadFile
from pydantic import BaseModel, ConfigDict, Field, JsonValue, WithJsonSchema, model_validator

from pixtools_gateway.body_validation import (
    checked_by,
    optional_text,
    refusal,
    required,
    required_text,
    uploaded_file,
    uploaded_files,
)
from pixtools_gateway.errors import InvalidRequest
from pixtools_gateway.handlers.batches import MAX_ITEMS
from pixtools_gateway.source_urls import check_source_url, printable

MAX_ITEM_ID_LENGTH = 200


def check_item_id(value: object) -> str | None:
    """A client's item id as text: printable, at most MAX_ITEM_ID_LENGTH characters; numbers are taken as text."""
    if value is None:
        return None
    if not isinstance(value, str | int) or len(str(value)) > MAX_ITEM_ID_LENGTH or not printable(str(value)):
        raise InvalidRequest(f"'id' must be printable text of at most {MAX_ITEM_ID_LENGTH} characters")
    return str(value)


_PIPELINE_SCHEMA = WithJsonSchema(
    {"type": "array", "items": {"type": "object"}, "description": "The pipeline: steps from the operation catalogue."}
)
_PIPELINE_TEXT_DOC = "The pipeline as JSON."
_WEBHOOK_DOC = "Called when the job is terminal."
# The examples use the local stack's webhook listener (README); loopback targets are refused unless allowlisted.
_EXAMPLE_PIPELINE: list[JsonValue] = [
    {"op": "resize", "params": {"width": 256}},
    {"op": "convert", "params": {"format": "webp"}},
]
_EXAMPLE_WEBHOOK = "http://127.0.0.1:8765/hooks"


MAX_FORM_FIELDS = 8  # text fields a submission form may have; the parser refuses more with a 400


def _example(**fields: JsonValue) -> ConfigDict:
    return ConfigDict(json_schema_extra={"examples": [fields]})


def _form(**fields: JsonValue) -> ConfigDict:
    """A form's example; other text fields are ignored, up to MAX_FORM_FIELDS fields in all."""
    extra: dict[str, JsonValue] = {
        "examples": [fields],
        "additionalProperties": {"type": "string"},
        "maxProperties": MAX_FORM_FIELDS,
    }
    return ConfigDict(json_schema_extra=extra)


# Any JSON: text is parsed as JSON, and parse_pipeline reports every problem as an invalid pipeline.
PipelineValue = Annotated[Any, checked_by(required("pipeline")), _PIPELINE_SCHEMA]
PipelineText = Annotated[str, checked_by(required_text("pipeline"))]
WebhookUrl = Annotated[str | None, checked_by(optional_text("webhook_url"))]


class _JsonBody(BaseModel):
    """A JSON body: an absent field is validated as null, so the field's own check says what it needs."""

    not_an_object: ClassVar[str] = "the body must be a JSON object"

    @model_validator(mode="before")
    @classmethod
    def _absent_as_null(cls, data: object) -> object:
        if not isinstance(data, Mapping):
            raise refusal(cls.not_an_object)
        return {name: None for name in cls.model_fields} | dict(data)


class JobFromUrl(_JsonBody):
    """`application/json` body of POST /v1/jobs: ingest fetches the original from `source_url`."""

    model_config = _example(
        source_url="https://images.example.com/cat.jpg", pipeline=_EXAMPLE_PIPELINE, webhook_url=_EXAMPLE_WEBHOOK
    )

    source_url: Annotated[str, checked_by(check_source_url)] = Field(
        description="http(s) URL ingest fetches the image from."
    )
    pipeline: PipelineValue = Field(description="The pipeline.")
    webhook_url: WebhookUrl = Field(default=None, description=_WEBHOOK_DOC)


class JobUpload(BaseModel):
    """`multipart/form-data` body of POST /v1/jobs: the image itself and its pipeline."""

    model_config = _form(file="photo.jpg (the image bytes)", pipeline=json.dumps(_EXAMPLE_PIPELINE))

    file: Annotated[UploadFile, checked_by(uploaded_file, required("file"))] = Field(description="The image.")
    pipeline: PipelineText = Field(description=_PIPELINE_TEXT_DOC)
    webhook_url: WebhookUrl = Field(default=None, description=_WEBHOOK_DOC)


class BatchUrlItem(_JsonBody):
    """One URL of a batch, with the client's optional id for it."""

    not_an_object: ClassVar[str] = "each item must be an object with a 'url'"

    id: Annotated[str | None, checked_by(check_item_id)] = Field(
        default=None, description=f"The client's id for the item: printable, at most {MAX_ITEM_ID_LENGTH} characters."
    )
    url: Annotated[str, checked_by(functools.partial(check_source_url, where="url"))] = Field(
        description="http(s) URL ingest fetches the image from."
    )


def _item_list(value: object) -> object:
    if not isinstance(value, list):
        raise InvalidRequest('\'items\' must be a list of {"url": ..., "id": ...}')
    return value


class UrlBatch(_JsonBody):
    """`application/json` body of POST /v1/batches: up to 1000 URLs with one pipeline."""

    model_config = _example(
        items=[{"url": "https://images.example.com/1.jpg", "id": "sku-1"}, {"url": "https://images.example.com/2.jpg"}],
        pipeline=[{"op": "metadata"}],
        webhook_url=_EXAMPLE_WEBHOOK,
    )

    items: Annotated[list[BatchUrlItem], checked_by(_item_list)] = Field(
        max_length=MAX_ITEMS, description="The URLs; a repeated URL is kept once and reported."
    )
    pipeline: PipelineValue = Field(description="The pipeline, run on every item.")
    webhook_url: WebhookUrl = Field(default=None, description="Called once, when the batch is terminal.")


class BatchUpload(BaseModel):
    """`multipart/form-data` body of POST /v1/batches: a CSV of URLs, or up to 1000 image files."""

    model_config = _form(file="urls.csv (a 'url' column, optionally an 'id' column)", pipeline='[{"op":"metadata"}]')

    pipeline: PipelineText = Field(description=_PIPELINE_TEXT_DOC)
    file: Annotated[UploadFile | None, checked_by(uploaded_file)] = Field(
        default=None, description="CSV with a 'url' column and optionally an 'id' column."
    )
    files: Annotated[list[UploadFile], checked_by(uploaded_files)] = Field(
        default_factory=list, description="Image files, one job each."
    )
    webhook_url: WebhookUrl = Field(default=None, description="Called once, when the batch is terminal.")

    @model_validator(mode="after")
    def _urls_or_files(self) -> "BatchUpload":
        if self.file is not None and self.files:
            raise refusal("send either a CSV 'file' or image 'files', not both")
        if self.file is None and not self.files:
            raise refusal("send a CSV 'file' with a 'url' column, or one or more image 'files'")
        return self
