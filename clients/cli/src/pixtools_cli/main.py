"""`pixtools`: the command line of the PixTools API (see `pixtools --help`)."""

import argparse
import asyncio
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from pixtools_cli import batch, jobs, submit
from pixtools_cli.errors import Exit, UsageError
from pixtools_cli.inputs import find_images, load_pipeline
from pixtools_cli.render import operations_table, out, param_lines, print_json
from pixtools_client import DEFAULT_URL, ApiError, AsyncClient, Client, TransportError, WaitTimeout

EPILOG = """exit status: 0 done (every job succeeded, when waited for); 1 a job or batch did not succeed, or an item
was refused; 2 bad arguments; 3 the API refused the request; 4 the server could not be reached; 5 waiting timed out."""


def _common() -> argparse.ArgumentParser:
    """Options every command takes, before or after its name."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--url", default=argparse.SUPPRESS, help=f"gateway URL (env PIXTOOLS_URL; default {DEFAULT_URL})"
    )
    common.add_argument("--api-key", default=argparse.SUPPRESS, help="API key (env PIXTOOLS_API_KEY)")
    common.add_argument(
        "--json", action="store_true", default=argparse.SUPPRESS, help="print JSON instead of tables and bars"
    )
    return common


def build_parser() -> argparse.ArgumentParser:
    """The whole command line."""
    common = _common()
    parser = argparse.ArgumentParser(
        prog="pixtools", description="Run PixTools pipelines on images.", epilog=EPILOG, parents=[common]
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, help_text: str) -> argparse.ArgumentParser:
        return commands.add_parser(name, help=help_text, description=help_text, parents=[common], epilog=EPILOG)

    command("ops", "list the operations a pipeline may use, with their parameters")

    def submission(sub: argparse.ArgumentParser) -> None:
        sub.add_argument("--pipeline", required=True, help="pipeline as JSON, or @FILE holding it")
        sub.add_argument("--out", type=Path, help="download every output to DIR/<image stem>/<step>-<name>.<ext>")
        sub.add_argument("--wait", action="store_true", help="wait until every job is terminal (implied by --out)")
        sub.add_argument("--webhook", help="URL called when each job (or the batch) is terminal")
        sub.add_argument("--timeout", type=float, default=1800, help="seconds to wait at most (default 1800)")

    files = command("submit", "submit image files and folders (recursively), one job per image")
    files.add_argument("paths", nargs="+", metavar="PATH")
    submission(files)
    files.add_argument("--concurrency", type=int, default=4, help="uploads and waits at once (default 4)")

    urls = command("url", "submit image URLs, one job per URL")
    urls.add_argument("urls", nargs="+", metavar="URL")
    submission(urls)
    urls.add_argument("--concurrency", type=int, default=4, help="submissions and waits at once (default 4)")

    many = command("batch", "submit a batch: a CSV with a 'url' column, or a JSON list of URLs or {url, id}")
    many.add_argument("file", type=Path, metavar="FILE.csv|FILE.json")
    submission(many)

    for name, help_text in (
        ("status", "show a job's state, steps and outputs"),
        ("watch", "follow a job's steps live until it is terminal"),
        ("cancel", "cancel a job"),
        ("retry", "run a job's failed steps again"),
        ("download", "download a job's outputs"),
    ):
        one = command(name, help_text)
        one.add_argument("job", metavar="JOB")
        if name == "download":
            one.add_argument("--out", type=Path, required=True, help="folder for <step>-<name>.<ext> files")
        if name == "watch":
            one.add_argument("--timeout", type=float, default=1800, help="seconds to watch at most (default 1800)")
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    """Run one command and exit with its status."""
    sys.exit(run(argv))


def run(argv: Sequence[str] | None = None) -> int:
    """Run one command; its exit status. Expected failures are one line on stderr, never a traceback."""
    args = build_parser().parse_args(argv)
    base_url = getattr(args, "url", None) or os.environ.get("PIXTOOLS_URL") or DEFAULT_URL
    api_key = getattr(args, "api_key", None) or os.environ.get("PIXTOOLS_API_KEY") or None
    as_json = bool(getattr(args, "json", False))
    try:
        return _dispatch(args, base_url, api_key, as_json)
    except UsageError as error:
        _fail(str(error))
        return Exit.USAGE
    except ApiError as error:
        _fail(f"{error.summary} (HTTP {error.status})")
        return Exit.REFUSED
    except TransportError as error:
        _fail(f"cannot reach {base_url}: {error.__cause__ or error}")
        return Exit.UNREACHABLE
    except WaitTimeout as error:
        _fail(str(error))
        return Exit.TIMEOUT
    except KeyboardInterrupt:
        _fail("interrupted; run the same command again to pick up the same jobs")
        return 130


def _fail(message: str) -> None:
    """One line on stderr: what went wrong, never a traceback."""
    print(f"pixtools: {' '.join(message.split())}", file=sys.stderr)


def _dispatch(args: argparse.Namespace, base_url: str, api_key: str | None, as_json: bool) -> int:
    if args.command in ("submit", "url"):
        pipeline = load_pipeline(args.pipeline)
        if args.concurrency < 1:
            raise UsageError("--concurrency must be at least 1")
        options = submit.Options(
            pipeline=pipeline,
            webhook_url=args.webhook,
            wait=bool(args.wait or args.out),
            out_dir=args.out,
            concurrency=args.concurrency,
            timeout=args.timeout,
            quiet=as_json,
        )
        if args.command == "submit":
            rows, calls = submit.file_submitter(find_images(args.paths), options)
        else:
            rows, calls = submit.url_submitter(list(dict.fromkeys(args.urls)), options)
        return asyncio.run(_submit(base_url, api_key, rows, calls, options))
    with Client(base_url, api_key) as api:
        if args.command == "ops":
            operations = api.operations()
            if as_json:
                print_json([{**op.model_dump(mode="json"), "params": param_lines(op)} for op in operations])
            else:
                out.print(operations_table(operations))
            return Exit.OK
        if args.command == "batch":
            return batch.run(
                api,
                args.file,
                load_pipeline(args.pipeline),
                webhook_url=args.webhook,
                wait=bool(args.wait or args.out),
                out_dir=args.out,
                timeout=args.timeout,
                as_json=as_json,
            )
        if args.command == "status":
            return jobs.status(api, args.job, as_json=as_json)
        if args.command == "watch":
            return jobs.watch(api, args.job, as_json=as_json, timeout=args.timeout)
        if args.command == "cancel":
            return jobs.cancel(api, args.job, as_json=as_json)
        if args.command == "retry":
            return jobs.retry(api, args.job, as_json=as_json)
        return jobs.download(api, args.job, args.out, as_json=as_json)


async def _submit(
    base_url: str, api_key: str | None, rows: list[submit.Row], calls: dict[str, submit.Submit], options: submit.Options
) -> int:
    async with AsyncClient(base_url, api_key) as api:
        return await submit.run(api, rows, calls, options)
