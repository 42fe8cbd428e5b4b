"""Errors of the ingest service."""

from pixtools_platform.broker import PermanentError


class IngestError(Exception):
    """Base class of ingest errors."""


class UnknownOperation(IngestError, PermanentError):
    """A step names an op this service does not run (a routing mistake, never retried)."""


class SourceUnreachable(IngestError):
    """A source URL could not be fetched: permanently, or still failing after the last attempt."""

    def __init__(self, code: str, message: str, attempts: int) -> None:
        super().__init__(message)
        self.code = code
        self.attempts = attempts
