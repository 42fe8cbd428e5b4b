"""Reading a submitted pipeline: JSON text or parsed JSON, validated against the contracts and their limits."""

import json
from typing import Any

from pydantic import ValidationError

from pixtools_contracts import Pipeline, PipelineTooLarge, check_limits
from pixtools_gateway.errors import InvalidPipeline


def parse_pipeline(value: object) -> Pipeline:
    """Validate a pipeline (JSON text, or already parsed), reporting every problem with its location."""
    raw: Any = value
    if isinstance(value, str):
        try:
            raw = json.loads(value)
        except json.JSONDecodeError as error:
            raise InvalidPipeline(f"the pipeline is not valid JSON: {error}") from error
        except RecursionError as error:
            raise InvalidPipeline("the pipeline is nested too deeply") from error
    try:
        pipeline = Pipeline.model_validate(raw)
        check_limits(pipeline)
    except ValidationError as error:
        problems = [{"loc": list(item["loc"]), "msg": item["msg"]} for item in error.errors()]
        raise InvalidPipeline("the pipeline does not validate", errors=problems) from error
    except PipelineTooLarge as error:
        raise InvalidPipeline(str(error)) from error
    return pipeline
