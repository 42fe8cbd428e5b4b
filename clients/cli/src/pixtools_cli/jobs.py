"""`pixtools status`, `watch`, `cancel`, `retry` and `download`: one job at a time."""

import json
import sys
from pathlib import Path

from rich.live import Live
from rich.table import Table

from pixtools_cli.errors import Exit
from pixtools_cli.render import job_tables, out, print_json, state_text
from pixtools_client import Client, Job, JobState, JobStateChange, Step, output_filename


def show_job(job: Job, *, as_json: bool) -> int:
    """Print a job; the exit status says whether it succeeded (0), is still going (0) or ended otherwise (1)."""
    if as_json:
        print_json(job.model_dump(mode="json"))
    else:
        for table in job_tables(job):
            out.print(table)
    return Exit.NOT_SUCCEEDED if job.state.terminal and job.state != JobState.SUCCEEDED else Exit.OK


def status(api: Client, job_id: str, *, as_json: bool) -> int:
    """Print a job's state, steps and outputs."""
    return show_job(api.get(job_id), as_json=as_json)


def watch(api: Client, job_id: str, *, as_json: bool, timeout: float) -> int:
    """Follow a job's steps live until it is terminal, then print it."""
    if as_json:
        # One JSON object per line as events arrive, then the final job.
        job = api.wait(job_id, timeout=timeout, on_event=_print_event_line)
        return show_job(job, as_json=True)
    job = api.get(job_id)
    steps = {step.id: step for step in job.steps}
    state: str = job.state
    with Live(_live_table(job_id, state, steps), console=out, refresh_per_second=8, transient=True) as live:

        def changed(event: Step | JobStateChange) -> None:
            nonlocal state
            if isinstance(event, Step):
                steps[event.id] = event
            else:
                state = event.state
            live.update(_live_table(job_id, state, steps))

        job = api.wait(job_id, timeout=timeout, on_event=changed)
    return show_job(job, as_json=False)


def _print_event_line(event: Step | JobStateChange) -> None:
    kind = "step" if isinstance(event, Step) else "job"
    sys.stdout.write(json.dumps({"event": kind, "data": event.model_dump(mode="json")}) + "\n")
    sys.stdout.flush()


def _live_table(job_id: str, state: str, steps: dict[str, Step]) -> Table:
    table = Table(title=f"job {job_id}: {state_text(state)}")
    for column in ("step", "op", "state"):
        table.add_column(column)
    for step in steps.values():
        table.add_row(step.id, step.op, state_text(step.state))
    return table


def cancel(api: Client, job_id: str, *, as_json: bool) -> int:
    """Cancel a job."""
    done = api.cancel(job_id)
    if as_json:
        print_json(done.model_dump(mode="json"))
    else:
        out.print(f"job {done.job_id}: {state_text(done.state)}" + ("" if done.changed else " (already)"))
    return Exit.OK


def retry(api: Client, job_id: str, *, as_json: bool) -> int:
    """Retry a job's failed steps."""
    done = api.retry(job_id)
    if as_json:
        print_json(done.model_dump(mode="json"))
    else:
        out.print(f"job {done.job_id}: {state_text(done.state)} (failed steps queued again)")
    return Exit.OK


def download(api: Client, job_id: str, out_dir: Path, *, as_json: bool) -> int:
    """Save every output of a job to `DIR/<step>-<name>.<ext>`."""
    job = api.get(job_id)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = [
        api.download(output, out_dir / output_filename(output.step, output.name, output.content_type))
        for output in job.outputs
    ]
    if as_json:
        print_json({"job_id": str(job.job_id), "state": job.state, "paths": [str(path) for path in paths]})
    else:
        for path in paths:
            out.print(str(path))
        if not paths:
            out.print(f"job {job.job_id} has no outputs ({state_text(job.state)})")
    return Exit.OK if paths else Exit.NOT_SUCCEEDED
