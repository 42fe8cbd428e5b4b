"""The committed JSON Schemas guard every contract against breaking changes."""

import copy
import json

import pytest

from pixtools_contracts import EVENT_TYPES, JobCompleted, asyncapi_document, parse_event
from pixtools_contracts._schemas import breaking_changes, committed_schemas, current_schemas


def test_every_contract_has_a_committed_schema() -> None:
    assert set(current_schemas()) == set(committed_schemas())


@pytest.mark.parametrize("name", sorted(current_schemas()))
def test_contract_has_no_breaking_change_against_its_committed_schema(name: str) -> None:
    problems = breaking_changes(committed_schemas()[name], current_schemas()[name])
    assert problems == [], f"{name} breaks its readers: {problems}; publish a new version instead"


@pytest.mark.parametrize("name", sorted(current_schemas()))
def test_committed_schema_is_up_to_date(name: str) -> None:
    assert committed_schemas()[name] == current_schemas()[name], (
        "the contract changed compatibly: run `.venv/bin/pixtools-contracts write` and commit the schemas"
    )


def test_removing_a_field_is_detected_as_breaking() -> None:
    old = current_schemas()["job.completed.v1"]
    new = copy.deepcopy(old)
    del new["properties"]["outputs"]
    assert any("outputs" in problem for problem in breaking_changes(old, new))


def test_retyping_a_nested_field_is_detected_as_breaking() -> None:
    old = current_schemas()["job.completed.v1"]
    new = copy.deepcopy(old)
    new["$defs"]["JobOutput"]["properties"]["bytes"] = {"type": "string"}
    assert any("bytes" in problem for problem in breaking_changes(old, new))


def test_a_new_required_field_is_breaking_but_a_new_optional_one_is_not() -> None:
    old = current_schemas()["step.started.v1"]
    optional = copy.deepcopy(old)
    optional["properties"]["worker"] = {"type": "string"}
    assert breaking_changes(old, optional) == []
    required = copy.deepcopy(optional)
    required["required"] = [*required["required"], "worker"]
    assert breaking_changes(old, required) != []


def test_readers_ignore_unknown_fields() -> None:
    import uuid
    from datetime import UTC, datetime

    event = JobCompleted(
        job_id=uuid.uuid4(),
        tenant_id=uuid.uuid4(),
        correlation_id="c",
        producer="aggregator",
        state="succeeded",
        outputs=[],
        submitted_at=datetime.now(UTC),
    )
    body = json.loads(event.model_dump_json())
    body["added_in_a_later_release"] = {"anything": 1}
    assert parse_event(json.dumps(body)) == event


def test_asyncapi_lists_every_event_with_its_routing_key_and_payload() -> None:
    document = asyncapi_document()
    assert document["asyncapi"].startswith("3.")
    assert set(document["channels"]) == set(EVENT_TYPES)
    assert document["channels"]["step.requested.v1"]["address"] == "step.requested.v1.{service}"
    for channel in document["channels"].values():
        [message] = channel["messages"]
        assert message in document["components"]["schemas"]
        assert channel["bindings"]["amqp"]["exchange"]["type"] == "topic"


def test_committed_asyncapi_document_is_up_to_date() -> None:
    from pixtools_contracts._cli import ASYNCAPI_PATH

    assert json.loads(ASYNCAPI_PATH.read_text()) == asyncapi_document(), "run `.venv/bin/pixtools-contracts write`"
