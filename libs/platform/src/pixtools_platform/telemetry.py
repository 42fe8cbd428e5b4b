"""OpenTelemetry: one trace follows a job across HTTP, message hops and the webhook."""

import contextlib
from collections.abc import Iterator, Mapping
from typing import Any

from opentelemetry import context, propagate, trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

_tracer = trace.get_tracer("pixtools")


def configure_tracing(service: str, endpoint: str | None) -> None:
    """Install a tracer provider; spans are exported over OTLP/HTTP only when an endpoint is set."""
    provider = TracerProvider(resource=Resource.create({"service.name": f"pixtools-{service}"}))
    if endpoint:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=f"{endpoint.rstrip('/')}/v1/traces")))
    trace.set_tracer_provider(provider)


def current_trace_context() -> dict[str, str]:
    """The W3C headers (traceparent, tracestate) of the current span."""
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return carrier


@contextlib.contextmanager
def consumer_span(name: str, headers: Mapping[str, Any] | None) -> Iterator[None]:
    """Run the block in a span that continues the trace carried by message headers."""
    carrier = {key: str(value) for key, value in (headers or {}).items() if key in ("traceparent", "tracestate")}
    token = context.attach(propagate.extract(carrier))
    try:
        with _tracer.start_as_current_span(name, kind=trace.SpanKind.CONSUMER):
            yield
    finally:
        context.detach(token)


@contextlib.contextmanager
def span(name: str, traceparent: str | None = None) -> Iterator[None]:
    """Run the block in a span, continuing `traceparent` when given."""
    carrier = {"traceparent": traceparent} if traceparent else {}
    token = context.attach(propagate.extract(carrier))
    try:
        with _tracer.start_as_current_span(name):
            yield
    finally:
        context.detach(token)


def current_trace_id() -> str | None:
    """The 32-hex-digit id of the current trace, or None outside a recorded span."""
    span_context = trace.get_current_span().get_span_context()
    return format(span_context.trace_id, "032x") if span_context.is_valid else None
