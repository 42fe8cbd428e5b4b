"""Work that waits for a transaction to commit: publishing the events it staged, waking a delivery loop.

A writer defers items on its session under a topic; whoever owns the session factory registers a hook per
topic. Right after the outermost transaction commits, each hook gets the items of its topic, once. A rollback
drops them. So nothing a writer staged can wait for a sweep because the writer forgot to hand it over, and
nothing is handed over that did not commit.
"""

from collections.abc import Callable, Iterable
from typing import Any

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import Session, SessionTransaction

CommitHook = Callable[[list[Any]], None]
"""Called with a committed transaction's items of one topic; it runs on the event loop and must not block."""

_HOOKS = "pixtools.commit_hooks"
_PENDING = "pixtools.commit_pending"


def defer(session: AsyncSession | Session, topic: str, items: Iterable[object]) -> None:
    """Hand these items to the session factory's hook for `topic` once this transaction commits."""
    session.info.setdefault(_PENDING, {}).setdefault(topic, []).extend(items)


def on_commit(sessions: async_sessionmaker[AsyncSession], topic: str, hook: CommitHook | None) -> None:
    """Call `hook` after every commit of a session from `sessions` that deferred items under `topic`.

    None removes the topic's hook. Sessions already open keep the hooks they were opened with.
    """
    info = dict(sessions.kw.get("info") or {})
    hooks = {**info.get(_HOOKS, {}), topic: hook}
    info[_HOOKS] = {name: callback for name, callback in hooks.items() if callback is not None}
    sessions.configure(info=info)


def committed(sessions: async_sessionmaker[AsyncSession], topic: str, items: list[Any]) -> None:
    """Hand items straight to the factory's hook for `topic`, for a writer whose own statement has committed.

    For a single statement run in autocommit on a connection of the factory's engine: it committed when it
    returned, so there is no session transaction to wait for. A writer that fails before calling this hands
    nothing over, as a rollback would.
    """
    hooks: dict[str, CommitHook] = (sessions.kw.get("info") or {}).get(_HOOKS, {})
    hook = hooks.get(topic)
    if hook is not None and items:
        hook(items)


@event.listens_for(Session, "after_commit")
def _run_hooks(session: Session) -> None:
    pending: dict[str, list[Any]] | None = session.info.pop(_PENDING, None)
    if not pending:
        return
    hooks: dict[str, CommitHook] = session.info.get(_HOOKS, {})
    for topic, items in pending.items():
        hook = hooks.get(topic)
        if hook is not None and items:
            hook(items)


@event.listens_for(Session, "after_rollback")
def _drop_on_rollback(session: Session) -> None:
    # A savepoint's rollback lands here too, and drops what the whole transaction deferred: its committed
    # events then wait for the sweep, which is slow but never publishes a row that was rolled back.
    session.info.pop(_PENDING, None)


@event.listens_for(Session, "after_transaction_end")
def _drop_unfinished(session: Session, transaction: SessionTransaction) -> None:
    # A session closed without commit or rollback ends its transaction here; what it deferred never committed.
    # After a commit, `_run_hooks` has already taken the items.
    if transaction.parent is None:
        session.info.pop(_PENDING, None)
