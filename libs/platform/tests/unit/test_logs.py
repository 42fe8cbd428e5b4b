"""JSON log lines: an RFC 3339 time with its offset, the service, and the ids bound around the work in hand."""

import io
import json
import logging
import re

from pixtools_platform.logs import ContextJsonFormatter, log_context

RFC3339_WITH_OFFSET = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$")


def _lines(write) -> list[dict[str, object]]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(ContextJsonFormatter("ingest"))
    logger = logging.getLogger("pixtools.test.logs")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        write(logger)
    finally:
        logger.removeHandler(handler)
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_time_is_rfc3339_with_a_time_zone():
    (line,) = _lines(lambda logger: logger.info("hello"))

    assert RFC3339_WITH_OFFSET.match(str(line["time"])), line["time"]
    assert (line["level"], line["service"], line["message"]) == ("INFO", "ingest", "hello")


def test_ids_bound_by_log_context_are_on_every_line_inside_the_block_and_gone_after_it():
    def write(logger: logging.Logger) -> None:
        with log_context(job_id="j1", correlation_id="c1", event_type="step.requested.v1", step_id="0", trace_id="t"):
            logger.info("inside")
            logger.info("explicit", extra={"step_id": "1"})
        logger.info("after")

    inside, explicit, after = _lines(write)

    assert {key: inside[key] for key in ("job_id", "correlation_id", "event_type", "step_id", "trace_id")} == {
        "job_id": "j1",
        "correlation_id": "c1",
        "event_type": "step.requested.v1",
        "step_id": "0",
        "trace_id": "t",
    }
    assert explicit["step_id"] == "1"
    assert "job_id" not in after
