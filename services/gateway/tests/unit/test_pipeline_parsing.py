"""Reading a submitted pipeline: text or parsed JSON, every problem reported as an invalid pipeline."""

import json

import pytest

from pixtools_gateway.errors import InvalidPipeline
from pixtools_gateway.pipelines import parse_pipeline

RESIZE_THEN_BRANCHES = [
    {"op": "resize", "params": {"width": 256}},
    {"parallel": [[{"op": "convert", "params": {"format": "png"}}], [{"op": "metadata"}]]},
]


def test_text_and_parsed_json_give_the_same_pipeline() -> None:
    from_text = parse_pipeline(json.dumps(RESIZE_THEN_BRANCHES))
    from_list = parse_pipeline(RESIZE_THEN_BRANCHES)
    assert from_text == from_list
    assert from_text.model_dump(mode="json") == from_list.model_dump(mode="json")


def test_text_that_is_not_json_is_an_invalid_pipeline_naming_the_json_error() -> None:
    with pytest.raises(InvalidPipeline) as caught:
        parse_pipeline("not json")
    assert caught.value.detail.startswith("the pipeline is not valid JSON: Expecting value")
    assert caught.value.errors is None


def test_an_unknown_operation_is_reported_with_its_location() -> None:
    with pytest.raises(InvalidPipeline) as caught:
        parse_pipeline([{"op": "metadata"}, {"op": "sharpen"}])
    assert caught.value.detail == "the pipeline does not validate"
    assert caught.value.errors
    assert all(problem["loc"][0] == 1 for problem in caught.value.errors)
    assert "sharpen" in json.dumps(caught.value.errors)


def test_a_pipeline_over_the_step_limit_is_refused_with_the_limit() -> None:
    with pytest.raises(InvalidPipeline) as caught:
        parse_pipeline([{"op": "metadata"}] * 40)
    assert "limit is 32" in caught.value.detail


def test_text_nested_beyond_the_parser_is_an_invalid_pipeline_not_a_crash() -> None:
    with pytest.raises(InvalidPipeline) as caught:
        parse_pipeline("[" * 100_000 + "]" * 100_000)
    assert caught.value.detail == "the pipeline is nested too deeply"


@pytest.mark.parametrize("value", [None, {}, 42, "{}"])
def test_anything_but_a_list_of_steps_does_not_validate(value: object) -> None:
    with pytest.raises(InvalidPipeline) as caught:
        parse_pipeline(value)
    assert caught.value.status == 422
    assert caught.value.slug == "invalid-pipeline"
