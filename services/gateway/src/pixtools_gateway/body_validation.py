"""Validating hand-read request bodies against pydantic models, with the API's own problem details.

A submit body is read by hand (under a byte cap, as JSON or as a form), then validated against a model so that
FastAPI can document it. Field checks raise `InvalidRequest`; inside a model they travel as pydantic errors, and
`validated` turns them back into the same problem the client has always received.
"""

import typing
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from pydantic import BaseModel, BeforeValidator, ValidationError
from pydantic_core import PydanticCustomError
from starlette.datastructures import FormData, UploadFile

from pixtools_gateway.errors import InvalidRequest

Body = TypeVar("Body", bound=BaseModel)


def refusal(detail: str) -> PydanticCustomError:
    """A validation error whose message is an InvalidRequest detail, passed on to the client unchanged."""
    return PydanticCustomError("invalid_request", "{detail}", {"detail": detail})


def checked_by(*checks: Callable[[Any], Any]) -> BeforeValidator:
    """A validator running `checks` in turn; an InvalidRequest becomes a pydantic error carrying the same detail."""

    def validate(value: object) -> object:
        try:
            for check in checks:
                value = check(value)
            return value
        except InvalidRequest as error:
            raise refusal(error.detail) from error

    return BeforeValidator(validate)


def required(name: str) -> Callable[[object], object]:
    """A check that refuses an absent (or null) field."""

    def check(value: object) -> object:
        if value is None:
            raise InvalidRequest(f"the '{name}' field is missing")
        return value

    return check


def required_text(name: str) -> Callable[[object], str]:
    """A check that a form field was sent as text, not absent and not a file."""

    def check(value: object) -> str:
        if not isinstance(value, str):
            raise InvalidRequest(f"the '{name}' field is missing")
        return value

    return check


def optional_text(name: str) -> Callable[[object], str | None]:
    """A check that an optional field, when present, is text."""

    def check(value: object) -> str | None:
        if value is not None and not isinstance(value, str):
            raise InvalidRequest(f"'{name}' must be text")
        return value

    return check


def uploaded_file(value: object) -> UploadFile | None:
    """A form value if it is a file; a text value where a file belongs counts as absent."""
    return value if isinstance(value, UploadFile) else None


def uploaded_files(value: object) -> list[UploadFile]:
    """The files among a repeated form field's values."""
    return [file for file in value if isinstance(file, UploadFile)] if isinstance(value, list) else []


def form_fields(form: FormData, model: type[BaseModel]) -> dict[str, object]:
    """The form's values for `model`'s fields: every value sent under a list field's name, else the last one."""
    return {
        name: form.getlist(name) if typing.get_origin(field.annotation) is list else form.get(name)
        for name, field in model.model_fields.items()
    }


def validated(model: type[Body], data: object) -> Body:
    """`data` as `model`, or the 422 problem of its first invalid field (of every invalid item, for a list)."""
    try:
        return model.model_validate(data)
    except ValidationError as error:
        errors = error.errors()
        location = errors[0]["loc"]  # empty for a check of the whole body
        if len(location) > 1 and isinstance(location[1], int):
            field = location[0]
            inside = [{**item, "loc": item["loc"][1:]} for item in errors if item["loc"][:1] == (field,)]
            raise invalid_items(inside, lambda index: [field, index]) from error
        raise InvalidRequest(describe(errors[0])) from error


def invalid_items(errors: list[Any], locate: Callable[[int], list[Any]]) -> InvalidRequest:
    """One problem for a list of items: the first problem of each invalid item, where `locate` says it is."""
    problems: dict[int, dict[str, Any]] = {}
    for item in errors:
        index, *rest = item["loc"]
        problems.setdefault(index, {"loc": [*locate(index), *rest], "msg": describe(item)})
    detail = f"{len(problems)} item(s) are invalid; nothing was created"
    return InvalidRequest(detail, errors=list(problems.values())[:100])


def describe(error: Mapping[str, Any]) -> str:
    """A pydantic error in the API's words: the check's own detail, or the field and what was wrong."""
    context = error.get("ctx") or {}
    if error["type"] == "invalid_request":
        return str(context["detail"])
    field = ".".join(str(part) for part in error["loc"])
    if error["type"] == "missing":
        return f"the '{field}' field is missing"
    return f"'{field}': {error['msg']}"


def request_body(**content: type[BaseModel]) -> dict[str, Any]:
    """An OpenAPI requestBody offering each model under its media type (`json`, `multipart`)."""
    media_types = {"json": "application/json", "multipart": "multipart/form-data"}
    return {"requestBody": {"required": True, "content": {media_types[k]: _media(m) for k, m in content.items()}}}


def _media(model: type[BaseModel]) -> dict[str, Any]:
    """A media type object: the model's schema, and its first example as the media type's example."""
    schema = inlined(model.model_json_schema())
    examples = schema.pop("examples", [])
    return {"schema": schema, "example": examples[0]} if examples else {"schema": schema}


def inlined(schema: dict[str, Any]) -> dict[str, Any]:
    """A JSON schema with its local `$defs` references replaced by the definitions (none of ours is recursive)."""
    definitions = schema.pop("$defs", {})

    def resolve(node: Any) -> Any:
        if isinstance(node, dict):
            reference = node.get("$ref", "")
            if reference.startswith("#/$defs/"):
                siblings = {key: value for key, value in node.items() if key != "$ref"}
                return resolve({**definitions[reference.removeprefix("#/$defs/")], **siblings})
            return {key: resolve(value) for key, value in node.items()}
        if isinstance(node, list):
            return [resolve(value) for value in node]
        return node

    resolved: dict[str, Any] = resolve(schema)
    return resolved
