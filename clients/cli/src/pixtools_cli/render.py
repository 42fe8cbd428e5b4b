"""How results are shown: rich tables for people, JSON for programs."""

import json
import sys
from typing import Any

from rich.console import Console
from rich.table import Table

from pixtools_client import Batch, Job, JobState, Operation

out = Console(highlight=False)
err = Console(stderr=True, highlight=False)

_STATE_STYLES = {
    JobState.SUCCEEDED: "green",
    JobState.PARTIALLY_FAILED: "yellow",
    JobState.FAILED: "red",
    JobState.CANCELLED: "magenta",
    "refused": "red",
    "pending": "cyan",
    "running": "cyan",
    "skipped": "dim",
}


def print_json(value: Any) -> None:
    """Machine-readable output on stdout."""
    sys.stdout.write(json.dumps(value, indent=2, default=str) + "\n")
    sys.stdout.flush()


def state_text(state: str) -> str:
    """A state, coloured by how it ended."""
    style = _STATE_STYLES.get(state)
    return f"[{style}]{state}[/]" if style else state


def seconds_text(seconds: float | None) -> str:
    """A duration for a table cell."""
    return "" if seconds is None else f"{seconds:.1f}s"


def size_text(count: int) -> str:
    """A byte count in KiB or MiB."""
    return f"{count / 1024:.1f} KiB" if count < 1024 * 1024 else f"{count / 1024 / 1024:.1f} MiB"


def param_type(schema: dict[str, Any]) -> str:
    """A parameter's JSON Schema in a few words: its type, enum, bounds, or the object it refers to."""
    if "enum" in schema:
        return "|".join(str(value) for value in schema["enum"])
    if "$ref" in schema:
        return "object " + str(schema["$ref"]).rsplit("/", 1)[-1]
    if "anyOf" in schema:
        return " | ".join(param_type(option) for option in schema["anyOf"])
    kind = str(schema.get("type", "any"))
    if kind == "array" and isinstance(schema.get("items"), dict):
        return f"list of {param_type(schema['items'])}"
    low, high = (
        schema.get("minimum", schema.get("exclusiveMinimum")),
        schema.get("maximum", schema.get("exclusiveMaximum")),
    )
    if low is not None or high is not None:
        kind += f" {'' if low is None else low}..{'' if high is None else high}"
    return kind


def param_lines(operation: Operation) -> list[str]:
    """`name: type = default` for every parameter of an operation, from its JSON Schema."""
    properties: dict[str, Any] = operation.params_schema.get("properties", {})
    required = set(operation.params_schema.get("required", []))
    lines = []
    for name, schema in properties.items():
        line = f"{name}: {param_type(schema)}"
        if name in required:
            line += " (required)"
        elif "default" in schema:
            line += f" = {json.dumps(schema['default'])}"
        lines.append(line)
    return lines


def operations_table(operations: list[Operation]) -> Table:
    """Every operation, the service that runs it, what it does, and its parameters."""
    table = Table(title="Operations", show_lines=True)
    for column in ("op", "service", "description", "params"):
        table.add_column(column, overflow="fold")
    for operation in operations:
        params = "\n".join(param_lines(operation)) or "[dim](none)[/]"
        table.add_row(f"[bold]{operation.op}[/]", operation.service, operation.description, params)
    return table


def job_tables(job: Job) -> list[Table]:
    """A job's steps, then its outputs."""
    steps = Table(title=f"job {job.job_id}: {state_text(job.state)}")
    for column in ("step", "op", "state", "time", "result / error"):
        steps.add_column(column, overflow="fold")
    for step in job.steps:
        took = (step.finished_at - step.started_at).total_seconds() if step.finished_at and step.started_at else None
        detail = f"{step.error.code}: {step.error.message}" if step.error else _result_summary(step.result)
        steps.add_row(step.id, step.op, state_text(step.state), seconds_text(took), detail)
    outputs = Table(title="outputs")
    for column in ("step", "name", "type", "size", "url"):
        outputs.add_column(column, overflow="fold")
    for output in job.outputs:
        dims = f" {output.width}x{output.height}" if output.width else ""
        outputs.add_row(output.step, output.name, output.content_type + dims, size_text(output.bytes), output.url)
    return [steps, outputs] if job.outputs else [steps]


def _result_summary(result: dict[str, Any] | None) -> str:
    if not result:
        return ""
    counts = result.get("counts")
    if isinstance(counts, dict):
        return ", ".join(f"{name} {count}" for name, count in counts.items()) or "nothing detected"
    return ", ".join(f"{key}={value}" for key, value in result.items() if not isinstance(value, dict | list))[:120]


def batch_table(batch: Batch) -> Table:
    """A batch's items with their jobs and states."""
    table = Table(
        title=f"batch {batch.batch_id}: {state_text(batch.state)} ({batch.progress.finished}/{batch.progress.total})"
    )
    for column in ("#", "item", "job", "state", "outputs"):
        table.add_column(column, overflow="fold")
    for item in batch.items:
        name = item.id or item.url or item.filename or ""
        detail = f"{item.error.code}: {item.error.message}" if item.error else str(len(item.outputs))
        table.add_row(str(item.position), name, str(item.job_id)[:8], state_text(item.state), detail)
    return table
