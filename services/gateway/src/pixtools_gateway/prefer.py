"""The `wait` preference of RFC 7240 `Prefer` headers: how long a client would wait for a synchronous answer."""

import re
from collections.abc import Iterable

_DELTA_SECONDS = re.compile(r'"?([0-9]{1,10})"?')


def requested_wait(headers: Iterable[str], cap: int) -> int | None:
    """Seconds of the first `wait` preference, at most `cap`; None when there is none or its value is malformed.

    Preferences the server does not understand, and malformed ones, are ignored (RFC 7240, section 2), and only
    the first instance of a preference counts.
    """
    for header in headers:
        for preference in header.split(","):
            name, _, value = preference.split(";", 1)[0].partition("=")
            if name.strip().lower() != "wait":
                continue
            seconds = _DELTA_SECONDS.fullmatch(value.strip())
            return min(int(seconds.group(1)), cap) if seconds else None
    return None
