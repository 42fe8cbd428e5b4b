"""Rows between the statements and the state machine: jobs and steps as loaded, outputs as arrays."""

from collections.abc import Sequence
from typing import Any, TypeVar

from sqlalchemy import inspect
from sqlalchemy.orm import class_mapper

from pixtools_db import Job, Output, Step

_Row = TypeVar("_Row", Job, Step)


# The write statement's output parameters, and the attribute of an output each takes.
_OUTPUT_ARRAYS = {
    "output_ids": "id",
    "output_jobs": "job_id",
    "output_steps": "step_id",
    "output_ops": "op",
    "output_names": "name",
    "output_roles": "role",
    "output_finals": "is_final",
    "output_keys": "key",
    "output_types": "content_type",
    "output_bytes": "bytes",
    "output_sha256s": "sha256",
    "output_widths": "width",
    "output_heights": "height",
}


def output_arrays(outputs: Sequence[Output]) -> dict[str, list[Any]]:
    """The outputs as the write statement's arrays, one per column."""
    return {parameter: [getattr(output, name) for output in outputs] for parameter, name in _OUTPUT_ARRAYS.items()}


def loaded(entity: type[_Row], values: dict[str, Any]) -> _Row:
    """A row as a query loads it: its attributes set with no history, so that only later changes count as changes.

    It belongs to no session (the write statement, not a flush, saves its changes), and it is built without its
    constructor, whose per-attribute events cost more than the rest of reading the row.
    """
    row: _Row = class_mapper(entity).class_manager.new_instance()
    inspect(row).dict.update(values)
    return row


def values_of(row: Job | Step, columns: tuple[str, ...]) -> tuple[Any, ...]:
    """The row's values of these columns, to tell whether it changed since they were written."""
    return tuple(getattr(row, column) for column in columns)
