"""The AsyncAPI 3 document: every exchange, routing key and payload."""

from typing import Any, get_args

from pydantic.json_schema import models_json_schema

from pixtools_contracts._events import EVENT_TYPES
from pixtools_contracts._operations import ServiceName
from pixtools_contracts._topology import EVENTS_EXCHANGE

_SUMMARIES = {
    "job.submitted.v1": "A job was accepted; its original is stored.",
    "step.requested.v1": (
        "Command to the owning service to run one step of a job; batch items use the key with '.bulk' appended."
    ),
    "step.started.v1": "A service began a step.",
    "step.completed.v1": "A step finished and stored its outputs.",
    "step.failed.v1": "A step failed with a reason.",
    "job.completed.v1": "A job succeeded or partially failed; lists its outputs.",
    "job.failed.v1": "A job failed; lists the failed steps.",
    "job.cancelled.v1": "A job was cancelled.",
    "source.requested.v1": (
        "Command to ingest to fetch a job's original from a URL; batch items use the key with '.bulk' appended."
    ),
    "source.fetched.v1": "A job's original was fetched from its URL and stored.",
    "source.failed.v1": "A job's original could not be fetched; the job fails.",
    "objects.detected.v1": "A detect step's boxes, scores, classes and per-class counts for one image.",
}


def asyncapi_document(version: str = "0.1.0") -> dict[str, Any]:
    """Build the AsyncAPI document from the event registry."""
    _, top = models_json_schema(
        [(model, "validation") for model in EVENT_TYPES.values()],
        ref_template="#/components/schemas/{model}",
    )
    schemas: dict[str, Any] = top.get("$defs", {})
    exchange = {"name": EVENTS_EXCHANGE, "type": "topic", "durable": True, "autoDelete": False, "vhost": "/"}
    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    messages: dict[str, Any] = {}
    for event_type, model in EVENT_TYPES.items():
        name = model.__name__
        address = event_type if model.fanout else event_type + ".{service}"
        channel: dict[str, Any] = {
            "address": address,
            "description": _SUMMARIES[event_type],
            "messages": {name: {"$ref": f"#/components/messages/{name}"}},
            "bindings": {"amqp": {"is": "routingKey", "exchange": exchange, "bindingVersion": "0.3.0"}},
        }
        if not model.fanout:
            channel["parameters"] = {
                "service": {"enum": list(get_args(ServiceName)), "description": "The service that runs the step."}
            }
        channels[event_type] = channel
        messages[name] = {
            "name": name,
            "title": event_type,
            "summary": _SUMMARIES[event_type],
            "contentType": "application/json",
            "payload": {"$ref": f"#/components/schemas/{name}"},
            "bindings": {"amqp": {"deliveryMode": 2, "bindingVersion": "0.3.0"}},
        }
        operations[f"receive_{event_type}"] = {
            "action": "receive",
            "channel": {"$ref": f"#/channels/{event_type}"},
            "summary": f"Subscribe to {event_type} with a queue of your own bound to {EVENTS_EXCHANGE}.",
        }
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "PixTools events",
            "version": version,
            "description": (
                f"Every PixTools event is published persistent, with publisher confirms, to the durable topic "
                f"exchange '{EVENTS_EXCHANGE}' under a routing key equal to its versioned type. Declare your own "
                "durable queue and bind it to the keys you need; readers must ignore unknown fields."
            ),
        },
        "defaultContentType": "application/json",
        "servers": {"local": {"host": "localhost:5672", "protocol": "amqp", "description": "Local RabbitMQ."}},
        "channels": channels,
        "operations": operations,
        "components": {"messages": messages, "schemas": schemas},
    }
