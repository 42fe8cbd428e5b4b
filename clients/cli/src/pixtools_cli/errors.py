"""Exit statuses and the errors the command line reports on one line, without a traceback."""

from enum import IntEnum


class Exit(IntEnum):
    """What the process exit status means."""

    OK = 0
    NOT_SUCCEEDED = 1  # a job or batch ended other than succeeded, or an item was refused
    USAGE = 2  # bad arguments: pipeline JSON, missing files (argparse uses 2 as well)
    REFUSED = 3  # the API refused the request (problem+json), e.g. 401, 404, 409, 422
    UNREACHABLE = 4  # the server could not be reached
    TIMEOUT = 5  # waiting ran out of time


class UsageError(Exception):
    """The command line itself is wrong; the message says how."""
