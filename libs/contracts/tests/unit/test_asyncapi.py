"""The AsyncAPI document passes the real parser, describes its deployment, and its examples match their schemas."""

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from pixtools_contracts import EVENT_TYPES, asyncapi_document, parse_event

ROOT = Path(__file__).resolve().parents[4]
CHECKER = ROOT / "tools" / "asyncapi-check"
INSTALL_HINT = "install it with `npm ci --prefix tools/asyncapi-check` (`make install` and `.ci/run` do)"
NAMESPACED = {"namespace": "team-b7", "amqp_url": "amqps://svc-reader-42:s3cr3t-pw@mq.example.net:5671/prod%2Fimages"}


def parser_diagnostics(document: dict[str, Any], tmp_path: Path) -> dict[str, Any]:
    """Run @asyncapi/parser (tools/asyncapi-check) on the document and return what it reported."""
    node = shutil.which("node")
    if node is None:
        pytest.fail(f"node is not on PATH: the AsyncAPI parser test needs Node.js 18+; {INSTALL_HINT}")
    if not (CHECKER / "node_modules" / "@asyncapi" / "parser").is_dir():
        pytest.fail(f"@asyncapi/parser is not installed in {CHECKER}: {INSTALL_HINT}")
    path = tmp_path / "asyncapi.json"
    path.write_text(json.dumps(document))
    run = subprocess.run([node, str(CHECKER / "check.mjs"), str(path)], capture_output=True, text=True, timeout=120)
    assert run.stdout, f"the parser printed nothing: {run.stderr}"
    report: dict[str, Any] = json.loads(run.stdout.splitlines()[-1])
    return report


@pytest.mark.parametrize("settings", [{}, NAMESPACED], ids=["committed", "namespaced"])
def test_document_passes_the_asyncapi_parser_with_no_errors(settings: dict[str, str], tmp_path: Path) -> None:
    report = parser_diagnostics(asyncapi_document(**settings), tmp_path)
    errors = [item for item in report["diagnostics"] if item["severity"] == "error"]
    assert report["parsed"], report
    assert errors == [], f"{len(errors)} parser errors, first: {errors[:5]}"


def test_the_parser_check_fails_on_an_invalid_document(tmp_path: Path) -> None:
    document = asyncapi_document()
    document["components"]["messages"]["JobCompleted"]["bindings"]["amqp"]["deliveryMode"] = 2
    report = parser_diagnostics(document, tmp_path)
    assert any(item["severity"] == "error" for item in report["diagnostics"])


def test_document_names_the_deployment_namespace_server_and_security_without_credentials() -> None:
    document = asyncapi_document(**NAMESPACED)
    server = document["servers"]["rabbitmq"]
    assert (server["host"], server["protocol"]) == ("mq.example.net:5671", "amqps")
    assert server["security"] == [{"$ref": "#/components/securitySchemes/userPassword"}]
    assert document["components"]["securitySchemes"]["userPassword"]["type"] == "userPassword"
    for event_type, channel in document["channels"].items():
        exchange = channel["bindings"]["amqp"]["exchange"]
        assert (exchange["name"], exchange["vhost"]) == ("team-b7.events", "prod/images")
        assert document["operations"][f"receive_{event_type}"]["x-example-queue"].startswith("team-b7.")
    text = json.dumps(document)
    assert "pixtools.events" not in text
    assert "s3cr3t-pw" not in text
    assert "svc-reader-42" not in text


def test_the_default_document_names_the_default_exchange_and_local_broker() -> None:
    document = asyncapi_document()
    assert document["channels"]["job.completed.v1"]["bindings"]["amqp"]["exchange"]["name"] == "pixtools.events"
    assert document["servers"]["rabbitmq"]["host"] == "localhost:5672"


@pytest.mark.parametrize("event_type", sorted(EVENT_TYPES))
def test_every_message_declares_the_amqp_properties_the_publisher_sets(event_type: str) -> None:
    document = asyncapi_document()
    message = document["components"]["messages"][EVENT_TYPES[event_type].__name__]
    properties = message["x-amqp-properties"]
    assert {"message_id", "correlation_id", "type", "app_id", "content_type", "delivery_mode"} <= set(properties)
    assert properties["message_id"]["location"] == "$message.payload#/event_id"
    assert properties["type"]["const"] == event_type
    assert set(properties["headers"]) == {"traceparent", "tracestate"}
    assert set(message["headers"]["properties"]) == {"traceparent", "tracestate"}
    assert message["correlationId"]["location"] == "$message.payload#/correlation_id"
    assert message["bindings"]["amqp"]["messageType"] == event_type


@pytest.mark.parametrize("event_type", sorted(EVENT_TYPES))
def test_every_message_example_validates_against_its_payload_schema(event_type: str) -> None:
    document = asyncapi_document()
    name = EVENT_TYPES[event_type].__name__
    message = document["components"]["messages"][name]
    # The payload's $refs point into the document, so the document is the root they resolve against.
    validator = Draft202012Validator({**document, "$ref": f"#/components/schemas/{name}"})
    assert message["examples"], f"{event_type} has no example"
    for example in message["examples"]:
        errors = [error.message for error in validator.iter_errors(example["payload"])]
        assert errors == [], f"{event_type} example does not match its schema: {errors}"
        assert parse_event(json.dumps(example["payload"])).type == event_type
        assert Draft202012Validator(message["headers"]).is_valid(example["headers"])


def test_a_wrong_example_is_caught_by_the_schema_check() -> None:
    document = asyncapi_document()
    validator = Draft202012Validator({**document, "$ref": "#/components/schemas/JobCompleted"})
    example = dict(document["components"]["messages"]["JobCompleted"]["examples"][0]["payload"])
    example["outputs"] = [{"key": 1}]
    assert not validator.is_valid(example)


def test_terminal_events_document_how_to_fetch_outputs() -> None:
    document = asyncapi_document()
    output = document["components"]["schemas"]["JobOutput"]
    fetching = {"output_id", "download_path", "url", "url_expires_at"}
    assert fetching <= set(output["properties"])
    assert not fetching & set(output["required"]), "optional, so the event keeps its version"
    assert "/v1/jobs/{job_id}/outputs/{output_id}" in document["info"]["description"]
