"""The real aggregator, run as its own process, that SIGKILLs itself at one point of its first group of events.

    python crashing_aggregator.py <point> <marker file>

`before_commit`: every statement of the group has run, the COMMIT has not been sent (a crash mid-transaction).
`after_commit`: the group has committed, none of its messages is acked yet.
`before_hand_over`: the group's COMMIT has returned, its staged events are not yet handed to the relay.
Before dying it writes the event ids of the group to the marker file, one a line.
Settings come from PIXTOOLS_* as in production.
"""

import os
import signal
import sys
import uuid
from collections.abc import Iterable, Sequence
from pathlib import Path

from pixtools_aggregator import app, routing
from pixtools_aggregator.adapters.jobs import SqlJobRepository
from pixtools_aggregator.adapters.transactions import DriverTransaction
from pixtools_contracts import Event
from pixtools_platform.broker import GroupHandler


def die(marker: Path, event_ids: Iterable[uuid.UUID]) -> None:
    marker.write_text("".join(f"{event_id}\n" for event_id in event_ids))
    os.kill(os.getpid(), signal.SIGKILL)


def crash_before_commit(marker: Path) -> None:
    flush_pending = SqlJobRepository.flush_pending

    async def flush_then_die(self: SqlJobRepository) -> None:
        await flush_pending(self)
        if len(self._prepared_events) > 1:
            die(marker, self._prepared_events)

    SqlJobRepository.flush_pending = flush_then_die  # type: ignore[method-assign]


def crash_after_commit(marker: Path) -> None:
    step_event_group = routing.step_event_group

    def dying_group(*args: object, **kwargs: object) -> GroupHandler:
        handle = step_event_group(*args, **kwargs)  # type: ignore[arg-type]

        async def handle_then_die(events: Sequence[Event]) -> Sequence[Event]:
            published = await handle(events)
            if len(events) > 1:
                die(marker, (event.event_id for event in events))
            return published

        return handle_then_die

    routing.step_event_group = dying_group  # type: ignore[assignment]


def crash_before_hand_over(marker: Path) -> None:
    flush_pending, hand_over = SqlJobRepository.flush_pending, DriverTransaction.hand_over
    groups: dict[int, set[uuid.UUID]] = {}

    async def flush_and_remember(self: SqlJobRepository) -> None:
        # The transaction object is the group's own: what it is told here cannot mix with a concurrent group.
        await flush_pending(self)
        groups[id(self._transaction)] = set(self._prepared_events)

    def die_instead(self: DriverTransaction) -> None:
        group = groups.pop(id(self), set())
        if len(group) > 1:
            die(marker, group)
        hand_over(self)

    SqlJobRepository.flush_pending = flush_and_remember  # type: ignore[method-assign]
    DriverTransaction.hand_over = die_instead  # type: ignore[method-assign]


if __name__ == "__main__":
    point, marker = sys.argv[1], Path(sys.argv[2])
    points = {
        "before_commit": crash_before_commit,
        "after_commit": crash_after_commit,
        "before_hand_over": crash_before_hand_over,
    }
    points[point](marker)
    app.main()
