"""Errors of the ingest service."""

from pixtools_platform.broker import PermanentError


class IngestError(Exception):
    """Base class of ingest errors."""


class UnknownOperation(IngestError, PermanentError):
    """A step names an op this service does not run (a routing mistake, never retried)."""
