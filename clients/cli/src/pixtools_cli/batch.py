"""`pixtools batch`: many URLs with one pipeline, followed on the batch's event stream."""

from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from pixtools_cli.errors import Exit
from pixtools_cli.inputs import batch_items, idempotency_key
from pixtools_cli.render import batch_table, err, out, print_json
from pixtools_client import Batch, BatchItem, BatchProgressChange, Client, JobState, output_filename


def run(
    api: Client,
    path: Path,
    pipeline: list[Any],
    *,
    webhook_url: str | None,
    wait: bool,
    out_dir: Path | None,
    timeout: float,
    as_json: bool,
) -> int:
    """Submit the batch file; with `wait`, show progress until every job is terminal and download if asked."""
    kind, items = batch_items(path)
    key = idempotency_key(path.read_bytes(), pipeline, webhook_url)
    if kind == "csv":
        accepted = api.submit_batch(pipeline, csv=items, webhook_url=webhook_url, idempotency_key=key)
    else:
        accepted = api.submit_batch(pipeline, urls=items, webhook_url=webhook_url, idempotency_key=key)
    if not wait:
        if as_json:
            print_json(accepted.model_dump(mode="json"))
        else:
            out.print(
                f"batch {accepted.batch_id}: {accepted.jobs} jobs ({len(accepted.duplicates)} duplicates dropped)"
            )
        return Exit.OK
    batch = _follow(api, str(accepted.batch_id), accepted.jobs, timeout=timeout, quiet=as_json)
    paths = _download(api, batch, out_dir) if out_dir is not None else {}
    if as_json:
        view = batch.model_dump(mode="json")
        for item in view["items"]:
            item["paths"] = paths.get(item["position"], [])
        print_json(view)
    else:
        out.print(batch_table(batch))
        if out_dir is not None:
            out.print(f"outputs in {out_dir}")
    return Exit.OK if batch.state == JobState.SUCCEEDED else Exit.NOT_SUCCEEDED


def _follow(api: Client, batch_id: str, jobs: int, *, timeout: float, quiet: bool) -> Batch:
    progress = Progress(
        TextColumn("batch"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=err, disable=quiet
    )
    task = progress.add_task("batch", total=jobs)

    def advanced(change: BatchProgressChange) -> None:
        progress.update(task, completed=change.progress.finished, total=change.progress.total)

    with progress:
        return api.wait_batch(batch_id, timeout=timeout, on_progress=advanced)


def _download(api: Client, batch: Batch, out_dir: Path) -> dict[int, list[str]]:
    """Every item's outputs under `DIR/<item id, or the URL's stem, or its position>/`."""
    saved: dict[int, list[str]] = {}
    for item in batch.items:
        folder = out_dir / _folder(item)
        folder.mkdir(parents=True, exist_ok=True)
        saved[item.position] = [
            str(api.download(output, folder / output_filename(output.step, output.name, output.content_type)))
            for output in item.outputs
        ]
    return saved


def _folder(item: BatchItem) -> str:
    if item.id:
        return "".join(char if char.isalnum() or char in "-_." else "_" for char in item.id)
    stem = Path(urlsplit(item.url or "").path).stem or Path(item.filename or "").stem
    return f"{item.position:04d}-{stem}" if stem else f"{item.position:04d}"
