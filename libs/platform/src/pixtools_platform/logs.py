"""JSON logs that carry the job, correlation, event, step and trace ids of the work in hand."""

import contextlib
import logging
import sys
from collections.abc import Iterator
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

from pythonjsonlogger.json import JsonFormatter

_context: ContextVar[dict[str, str]] = ContextVar("pixtools_log_context", default={})  # noqa: B039


def rfc3339(created: float) -> str:
    """A record's creation time as RFC 3339 in UTC, with milliseconds and an explicit offset."""
    return datetime.fromtimestamp(created, UTC).isoformat(timespec="milliseconds")


class ContextJsonFormatter(JsonFormatter):
    """JSON lines with an RFC 3339 time, the service name and every id bound by `log_context`."""

    def __init__(self, service: str) -> None:
        super().__init__(
            "%(asctime)s %(levelname)s %(name)s %(message)s",
            rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
        )
        self._service = service

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        """RFC 3339 with a time zone, whatever the host's zone."""
        return rfc3339(record.created)

    def add_fields(self, log_data: dict[str, Any], record: logging.LogRecord, message_dict: dict[str, Any]) -> None:
        """The standard fields, then the service and the ids of the message in hand (explicit extras win)."""
        super().add_fields(log_data, record, message_dict)
        log_data.setdefault("service", self._service)
        for key, value in _context.get().items():
            log_data.setdefault(key, value)


class _PlainFormatter(logging.Formatter):
    """Human-readable lines for a terminal, with the same RFC 3339 time."""

    def __init__(self, service: str) -> None:
        super().__init__(f"%(asctime)s %(levelname)s [{service}] %(name)s: %(message)s")

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        """RFC 3339 with a time zone."""
        return rfc3339(record.created)


def configure_logging(service: str, level: str = "INFO", json: bool = True) -> None:
    """Send logs to stderr, as JSON lines unless `json` is false."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(ContextJsonFormatter(service) if json else _PlainFormatter(service))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for noisy in ("aiormq", "aio_pika", "botocore", "aiobotocore", "httpx", "uvicorn.access"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))


@contextlib.contextmanager
def log_context(**ids: str) -> Iterator[None]:
    """Bind ids (job_id, correlation_id, event_type, step_id, trace_id) to every log line written inside the block."""
    token = _context.set({**_context.get(), **ids})
    try:
        yield
    finally:
        _context.reset(token)
