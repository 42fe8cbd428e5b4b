"""A server-sent events decoder fed line by line, shared by the sync and async clients."""

from dataclasses import dataclass, field


@dataclass(frozen=True)
class ServerSentEvent:
    """One dispatched event: its name, data and id (the id to resume from with `Last-Event-ID`)."""

    event: str
    data: str
    id: str | None


@dataclass
class EventDecoder:
    """Collects fields until a blank line dispatches the event, as the HTML living standard describes."""

    _event: str = ""
    _data: list[str] = field(default_factory=list)
    _id: str | None = None
    last_event_id: str | None = None

    def feed(self, line: str) -> ServerSentEvent | None:
        """Take one line (without its end of line); return the event a blank line completes."""
        if not line:
            return self._dispatch()
        if line.startswith(":"):
            return None
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "event":
            self._event = value
        elif name == "data":
            self._data.append(value)
        elif name == "id" and "\0" not in value:
            self._id = value
        return None

    def _dispatch(self) -> ServerSentEvent | None:
        if self._id is not None:
            self.last_event_id = self._id
        if not self._data:
            self._event, self._id = "", None
            return None
        event = ServerSentEvent(event=self._event or "message", data="\n".join(self._data), id=self.last_event_id)
        self._event, self._data, self._id = "", [], None
        return event
