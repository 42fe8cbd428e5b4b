"""The AsyncAPI 3 document: every exchange, routing key and payload of one deployment."""

from typing import Any, get_args
from urllib.parse import unquote, urlsplit

from pydantic.json_schema import models_json_schema

from pixtools_contracts._asyncapi_text import AMQP_PROPERTIES, SUMMARIES, description
from pixtools_contracts._examples import example_payloads
from pixtools_contracts._operations import ServiceName
from pixtools_contracts._registry import EVENT_TYPES
from pixtools_contracts._topology import DEFAULT_NAMESPACE, events_exchange, example_queue

DEFAULT_AMQP_URL = "amqp://localhost:5672/"
"""The broker the committed document names: a single-machine deployment's RabbitMQ."""
_AMQP = "0.3.0"
_SECURITY = {"$ref": "#/components/securitySchemes/userPassword"}


def asyncapi_document(
    version: str = "0.1.0", *, namespace: str = DEFAULT_NAMESPACE, amqp_url: str = DEFAULT_AMQP_URL
) -> dict[str, Any]:
    """Build the AsyncAPI document for a deployment's namespace and broker (its credentials are never included)."""
    exchange_name = events_exchange(namespace)
    server, vhost = _server(amqp_url)
    exchange = {"name": exchange_name, "type": "topic", "durable": True, "autoDelete": False, "vhost": vhost}
    examples = example_payloads()
    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    messages: dict[str, Any] = {}
    for event_type, model in EVENT_TYPES.items():
        name = model.__name__
        channel: dict[str, Any] = {
            "address": event_type if model.fanout else event_type + ".{service}",
            "description": SUMMARIES[event_type],
            "messages": {name: {"$ref": f"#/components/messages/{name}"}},
            "bindings": {"amqp": {"is": "routingKey", "exchange": exchange, "bindingVersion": _AMQP}},
        }
        if not model.fanout:
            channel["parameters"] = {
                "service": {"enum": list(get_args(ServiceName)), "description": "The service that runs the step."}
            }
        channels[event_type] = channel
        messages[name] = _message(event_type, name, examples[event_type])
        queue = example_queue(namespace, event_type)
        operations[f"receive_{event_type}"] = {
            "action": "receive",
            "channel": {"$ref": f"#/channels/{event_type}"},
            "summary": f"Subscribe to {event_type} with a queue of your own bound to {exchange_name}.",
            "description": (
                f"Declare a durable queue of your own, for example '{queue}', and bind it to the exchange "
                f"'{exchange_name}' with the routing key '{channel['address']}'"
                + ("" if model.fanout else " (or '#' in place of the service and lane)")
                + ". Ack each message once you have handled it; deliveries are at least once, so dedupe on event_id."
            ),
            "security": [_SECURITY],
            "bindings": {"amqp": {"deliveryMode": 2, "ack": True, "bindingVersion": _AMQP}},
            "x-example-queue": queue,
        }
    return {
        "asyncapi": "3.0.0",
        "info": {"title": "PixTools events", "version": version, "description": description(exchange_name)},
        "defaultContentType": "application/json",
        "servers": {"rabbitmq": server},
        "channels": channels,
        "operations": operations,
        "components": {
            "messages": messages,
            "schemas": _payload_schemas(),
            "securitySchemes": {
                "userPassword": {
                    "type": "userPassword",
                    "description": "A RabbitMQ user name and password (SASL PLAIN), issued by the PixTools operators.",
                }
            },
        },
    }


def _server(amqp_url: str) -> tuple[dict[str, Any], str]:
    """The AsyncAPI server of an AMQP URL, without its credentials, and its virtual host."""
    parts = urlsplit(amqp_url)
    secure = parts.scheme == "amqps"
    port = parts.port or (5671 if secure else 5672)
    vhost = unquote(parts.path[1:]) if len(parts.path) > 1 else "/"
    server = {
        "host": f"{parts.hostname or 'localhost'}:{port}",
        "protocol": "amqps" if secure else "amqp",
        "protocolVersion": "0.9.1",
        "description": f"The deployment's RabbitMQ (virtual host '{vhost}').",
        "security": [_SECURITY],
    }
    return server, vhost


def _message(event_type: str, name: str, example: dict[str, Any]) -> dict[str, Any]:
    headers = {key: example[key] for key in ("traceparent", "tracestate") if example.get(key)}
    return {
        "name": name,
        "title": event_type,
        "summary": SUMMARIES[event_type],
        "contentType": "application/json",
        "payload": {"$ref": f"#/components/schemas/{name}"},
        "headers": {
            "type": "object",
            "description": "AMQP application headers: the W3C trace context, when the producer had one.",
            "properties": {
                "traceparent": {"type": "string", "description": "W3C 'traceparent'; equals the payload's."},
                "tracestate": {"type": "string", "description": "W3C 'tracestate'; equals the payload's."},
            },
        },
        "correlationId": {
            "description": "The AMQP correlation_id property; equals the payload's correlation_id.",
            "location": "$message.payload#/correlation_id",
        },
        "bindings": {"amqp": {"messageType": event_type, "bindingVersion": _AMQP}},
        "examples": [
            {"name": f"{name}Example", "summary": f"A {event_type} event.", "headers": headers, "payload": example}
        ],
        "x-amqp-properties": AMQP_PROPERTIES | {"type": {"const": event_type, "description": "The event type."}},
    }


def _payload_schemas() -> dict[str, Any]:
    """Every event's JSON Schema, with Pydantic's object-style discriminators turned into AsyncAPI's string form."""
    _, top = models_json_schema(
        [(model, "validation") for model in EVENT_TYPES.values()],
        ref_template="#/components/schemas/{model}",
    )
    schemas: dict[str, Any] = top.get("$defs", {})
    return {name: _string_discriminators(schema) for name, schema in schemas.items()}


def _string_discriminators(schema: Any) -> Any:
    if isinstance(schema, list):
        return [_string_discriminators(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    converted = {key: _string_discriminators(value) for key, value in schema.items()}
    discriminator = converted.get("discriminator")
    if isinstance(discriminator, dict):
        converted["discriminator"] = discriminator["propertyName"]
    return converted
