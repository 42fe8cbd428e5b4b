"""Queue figures from the RabbitMQ management HTTP API, which (unlike AMQP) also counts unacked messages."""

from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import quote, unquote, urlsplit, urlunsplit

import httpx

_COLUMNS = "name,messages_ready,messages_unacknowledged,consumers"


@dataclass(frozen=True)
class QueueFigures:
    """One queue as the management API reports it; a figure is None until the broker has sampled the queue."""

    ready: int | None
    unacked: int | None
    consumers: int | None


def vhost_of(amqp_url: str) -> str:
    """The virtual host an AMQP URL names ('/' when it names none)."""
    path = urlsplit(amqp_url).path
    return unquote(path[1:]) if len(path) > 1 else "/"


class RabbitManagement:
    """A client of the management API at `url` (credentials in the URL, e.g. http://guest:guest@host:15672)."""

    def __init__(self, url: str, vhost: str, timeout_s: float = 5.0) -> None:
        parts = urlsplit(url)
        self._auth = (unquote(parts.username or ""), unquote(parts.password or "")) if parts.username else None
        host = parts.netloc.rpartition("@")[2]
        self._base = urlunsplit((parts.scheme, host, parts.path.rstrip("/"), "", ""))
        self._vhost = vhost
        self._timeout_s = timeout_s

    async def queue_figures(self, names: Sequence[str]) -> dict[str, QueueFigures]:
        """Figures of those of `names` that exist, read in one request."""
        url = f"{self._base}/api/queues/{quote(self._vhost, safe='')}"
        async with httpx.AsyncClient(auth=self._auth, timeout=self._timeout_s) as client:
            response = await client.get(url, params={"columns": _COLUMNS})
            response.raise_for_status()
        wanted = set(names)
        return {
            row["name"]: QueueFigures(
                ready=_count(row.get("messages_ready")),
                unacked=_count(row.get("messages_unacknowledged")),
                consumers=_count(row.get("consumers")),
            )
            for row in response.json()
            if isinstance(row, dict) and row.get("name") in wanted
        }


def _count(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None
