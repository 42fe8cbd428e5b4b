"""`pixtools submit` and `pixtools url`: one job per image or URL, submitted concurrently, optionally awaited."""

import asyncio
import functools
import hashlib
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table

from pixtools_cli.errors import Exit
from pixtools_cli.inputs import idempotency_key, url_key
from pixtools_cli.render import err, out, print_json, seconds_text, state_text
from pixtools_client import ApiError, AsyncClient, Job, JobAccepted, JobState, WaitTimeout, output_filename


@dataclass
class Row:
    """One image or URL: its job, how it ended, and where its outputs went."""

    source: str
    folder: str
    job_id: str | None = None
    state: str = "pending"
    error: str | None = None
    outputs: list[dict[str, Any]] = field(default_factory=list)
    started: float = field(default_factory=time.monotonic)
    seconds: float | None = None

    def as_json(self) -> dict[str, Any]:
        """The row for `--json`."""
        return {
            "source": self.source,
            "job_id": self.job_id,
            "state": self.state,
            "error": self.error,
            "seconds": None if self.seconds is None else round(self.seconds, 3),
            "outputs": self.outputs,
        }


@dataclass(frozen=True)
class Options:
    """What every submitted item shares."""

    pipeline: list[Any]
    webhook_url: str | None
    wait: bool
    out_dir: Path | None
    concurrency: int
    timeout: float
    quiet: bool


Submit = Callable[[AsyncClient], Awaitable[JobAccepted]]


async def _submit_file(api: AsyncClient, path: Path, options: Options) -> JobAccepted:
    data = await asyncio.to_thread(path.read_bytes)
    key = idempotency_key(data, options.pipeline, options.webhook_url)
    return await api.submit(
        data, options.pipeline, webhook_url=options.webhook_url, idempotency_key=key, filename=path.name
    )


async def _submit_url(api: AsyncClient, url: str, options: Options) -> JobAccepted:
    key = url_key(url, options.pipeline, options.webhook_url)
    return await api.submit_url(url, options.pipeline, webhook_url=options.webhook_url, idempotency_key=key)


def file_submitter(paths: list[Path], options: Options) -> tuple[list[Row], dict[str, Submit]]:
    """Rows and submit calls for image files; each file's key hashes its content and the pipeline."""
    folders = _unique_folders([path.stem for path in paths])
    rows = [Row(source=str(path), folder=folder) for path, folder in zip(paths, folders, strict=True)]
    calls: dict[str, Submit] = {
        str(path): functools.partial(_submit_file, path=path, options=options) for path in paths
    }
    return rows, calls


def url_submitter(urls: list[str], options: Options) -> tuple[list[Row], dict[str, Submit]]:
    """Rows and submit calls for URLs; each URL's key hashes the URL and the pipeline."""
    folders = _unique_folders([Path(urlsplit(url).path).stem or "image" for url in urls])
    rows = [Row(source=url, folder=folder) for url, folder in zip(urls, folders, strict=True)]
    calls: dict[str, Submit] = {url: functools.partial(_submit_url, url=url, options=options) for url in urls}
    return rows, calls


def _unique_folders(stems: list[str]) -> list[str]:
    """Output folder names: the stem, with a short digest added where two sources share one."""
    counts: dict[str, int] = {}
    for stem in stems:
        counts[stem] = counts.get(stem, 0) + 1
    return [
        stem if counts[stem] == 1 else f"{stem}-{hashlib.sha256(f'{index}{stem}'.encode()).hexdigest()[:6]}"
        for index, stem in enumerate(stems)
    ]


async def run(api: AsyncClient, rows: list[Row], calls: dict[str, Submit], options: Options) -> int:
    """Submit every row (at most `concurrency` at once), wait and download if asked, then report."""
    gate = asyncio.Semaphore(options.concurrency)
    # Waits are gated too: each one holds an event stream open, and a tenant may have only so many.
    waits = asyncio.Semaphore(options.concurrency)
    progress = Progress(
        TextColumn("{task.description:<10}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err,
        disable=options.quiet,
        transient=False,
    )
    uploading = progress.add_task("uploading", total=len(rows))
    running = progress.add_task("running", total=len(rows), visible=options.wait)

    async def one(row: Row) -> None:
        async with gate:
            try:
                accepted = await calls[row.source](api)
                row.job_id, row.state = str(accepted.job_id), accepted.state
            except ApiError as error:
                row.state, row.error = "refused", error.summary
            finally:
                progress.advance(uploading)
        if options.wait and row.job_id:
            await _finish(api, row, options, waits, progress, running)
        elif options.wait:
            progress.advance(running)

    with progress:
        await asyncio.gather(*(one(row) for row in rows))
    if options.quiet:
        print_json([row.as_json() for row in rows])
    else:
        out.print(summary_table(rows, options))
    if any(row.state == "refused" for row in rows):
        return Exit.NOT_SUCCEEDED
    if options.wait and any(row.state != JobState.SUCCEEDED for row in rows):
        return Exit.NOT_SUCCEEDED
    return Exit.OK


async def _finish(
    api: AsyncClient, row: Row, options: Options, waits: asyncio.Semaphore, progress: Progress, task: TaskID
) -> None:
    """Wait for the row's job (at most `concurrency` streams at once) and download its outputs."""
    assert row.job_id is not None
    try:
        async with waits:
            job = await api.wait(row.job_id, timeout=options.timeout)
    except (ApiError, WaitTimeout) as error:
        row.state = "timed out" if isinstance(error, WaitTimeout) else "unknown"
        row.error = str(error)
        progress.advance(task)
        return
    row.state = job.state
    row.seconds = job.seconds
    row.error = job.error.message if job.error else _step_errors(job)
    for output in job.outputs:
        entry: dict[str, Any] = {"step": output.step, "name": output.name, "content_type": output.content_type}
        entry["url"] = output.url
        if options.out_dir is not None:
            folder = options.out_dir / row.folder
            folder.mkdir(parents=True, exist_ok=True)
            path = await api.download(output, folder / output_filename(output.step, output.name, output.content_type))
            entry["path"] = str(path)
        row.outputs.append(entry)
    progress.advance(task)


def _step_errors(job: Job) -> str | None:
    failed = [f"{step.id} {step.op}: {step.error.message}" for step in job.steps if step.error]
    return "; ".join(failed) or None


def summary_table(rows: list[Row], options: Options) -> Table:
    """Image (or URL), job, state, outputs and time of every row."""
    table = Table(title="jobs")
    for column in ("image" if rows and "://" not in rows[0].source else "url", "job", "state", "outputs", "time"):
        table.add_column(column, overflow="fold")
    for row in rows:
        if row.outputs:
            shown = [entry.get("path") or f"{entry['step']}-{entry['name']}" for entry in row.outputs]
            outputs = "\n".join(str(item) for item in shown)
        else:
            outputs = row.error or ("" if options.wait else "(not awaited)")
        table.add_row(row.source, (row.job_id or "")[:8], state_text(row.state), outputs, seconds_text(row.seconds))
    return table
