"""Jobs and steps built as loaded rows: only what the state machine changes afterwards counts as a change."""

import uuid
from datetime import UTC, datetime

import pytest
from sqlalchemy import inspect

from pixtools_aggregator.adapters import job_statements as sql
from pixtools_aggregator.adapters.jobs import SqlJobRepository
from pixtools_aggregator.adapters.rows import loaded
from pixtools_aggregator.adapters.transactions import DriverTransaction
from pixtools_db import Job


def a_loaded_job() -> Job:
    now = datetime.now(UTC)
    values = {attribute: None for attribute in sql.JOB_ATTRIBUTES}
    values |= {"id": uuid.uuid4(), "state": "accepted", "created_at": now, "updated_at": now}
    return loaded(Job, values)


def a_repository() -> SqlJobRepository:
    # Never begun: these tests reach no database.
    return SqlJobRepository(DriverTransaction(engine=None, sessions=None))  # type: ignore[arg-type]


def test_a_loaded_row_has_its_values_and_no_changes() -> None:
    job = a_loaded_job()

    state = inspect(job)
    assert job.state == "accepted"
    assert not state.modified
    assert state.session is None


def test_a_change_to_a_loaded_row_is_the_only_change_it_has() -> None:
    job = a_loaded_job()

    job.state = "running"

    assert set(inspect(job).committed_state) == {"state"}
    assert a_repository()._changed([job], sql.JOB_STATE_COLUMNS) == [job]


def test_a_change_no_statement_writes_is_refused_rather_than_lost() -> None:
    job = a_loaded_job()

    job.webhook_url = "https://example.com/hook"

    with pytest.raises(RuntimeError, match="no statement writes that"):
        a_repository()._changed([job], sql.JOB_STATE_COLUMNS)
