"""Errors that decide what a consumer does with a message."""


class BrokerError(Exception):
    """Base class of broker delivery errors."""


class Unroutable(BrokerError):
    """A mandatory publish matched no queue."""


class TransientError(Exception):
    """The work may succeed later: the message is retried after a delay."""


class PermanentError(Exception):
    """The message can never succeed: it is dead-lettered with this reason."""
