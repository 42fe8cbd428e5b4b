"""`pixtools-detect`: run the worker, fetch and check the model files, and run the mosaic benchmark."""

import argparse
import asyncio
import json
import sys
from pathlib import Path

from pixtools_detect.adapters.torch_model import TorchDetector
from pixtools_detect.errors import DetectError
from pixtools_detect.evaluation import evaluate_mosaics
from pixtools_detect.model_files import (
    DEFAULT_CLASSES_FILE,
    DEFAULT_MODEL_FILE,
    OFFICIAL_URLS,
    check_files,
    default_models_dir,
    download,
    sha256_of,
)
from pixtools_detect.network import load_network


def _add_model_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--models-dir", type=Path, default=default_models_dir(), help="default: $PIXTOOLS_MODELS_DIR")
    parser.add_argument("--model", default=DEFAULT_MODEL_FILE, help="ONNX file name in the models directory")
    parser.add_argument("--classes", default=DEFAULT_CLASSES_FILE, help="class list file name")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="pixtools-detect", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("serve", help="run the detect worker (settings from PIXTOOLS_* variables)")
    models = commands.add_parser("models", help="download or check the model files").add_subparsers(
        dest="action", required=True
    )
    fetch = models.add_parser("download", help=f"download official files ({', '.join(OFFICIAL_URLS)})")
    _add_model_options(fetch)
    fetch.add_argument("--force", action="store_true", help="download even when the file is there")
    check = models.add_parser("check", help="check the files are there, match SHA256SUMS and load")
    _add_model_options(check)
    evaluate = commands.add_parser("eval", help="mosaic benchmark: direct vs sliced recall and precision")
    _add_model_options(evaluate)
    evaluate.add_argument("--data", type=Path, default=Path("../shared/data/coco-sample"))
    evaluate.add_argument("--grid", type=int, default=4, help="pictures per mosaic side")
    evaluate.add_argument("--confidence", type=float, default=0.25)
    evaluate.add_argument("--device", default=None, help="cpu or cuda; default cuda when present")
    evaluate.add_argument("--batch-size", type=int, default=8)
    evaluate.add_argument("--json", type=Path, default=None, help="also write the report here")
    return parser


def _download(args: argparse.Namespace) -> int:
    for name in (args.model, args.classes):
        path = download(args.models_dir, name, force=args.force)
        print(f"{name}: {path} sha256 {sha256_of(path)}")
    return 0


def _check(args: argparse.Namespace) -> int:
    healthy = True
    for check in check_files(args.models_dir, [args.model, args.classes]):
        if check.sha256 is None:
            print(f"MISSING {check.path} (run: pixtools-detect models download --models-dir {args.models_dir})")
        elif not check.ok:
            print(f"MISMATCH {check.path} sha256 {check.sha256}, SHA256SUMS lists {check.expected_sha256}")
        else:
            print(f"ok {check.path} sha256 {check.sha256}")
        healthy = healthy and check.ok
    if healthy:
        network = load_network(args.models_dir, model_file=args.model, classes_file=args.classes)
        size = "x".join(map(str, network.input_size))
        print(f"loads: {network.model_id}, input {size}, {len(network.class_names)} classes")
    return 0 if healthy else 1


async def _evaluate(args: argparse.Namespace) -> int:
    detector = TorchDetector.from_models_dir(
        args.models_dir,
        model_file=args.model,
        classes_file=args.classes,
        device=args.device,
        batch_size=args.batch_size,
    )
    async with detector:
        report = await evaluate_mosaics(detector, args.data, grid=args.grid, confidence=args.confidence)
    summary = report.as_dict()
    print(
        f"{report.mosaics} mosaics of {args.grid}x{args.grid}, confidence {args.confidence}, model {detector.model_id}"
    )
    for name in ("direct", "sliced"):
        scores = getattr(report, name)
        print(
            f"{name:>6}: recall {scores.recall:.3f} precision {scores.precision:.3f} "
            f"({scores.matched} matched / {scores.references} references, {scores.predictions} predictions)"
        )
    ratio = report.sliced.recall / report.direct.recall if report.direct.recall else float("inf")
    print(f"sliced recall / direct recall = {ratio:.2f}")
    if args.json is not None:
        args.json.write_text(json.dumps({**summary, "recall_ratio": ratio}, indent=2))
    return 0


def run() -> None:
    """The console script: `main` on the command line, its result as the exit status."""
    sys.exit(main())


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `pixtools-detect` command."""
    args = _parser().parse_args(argv)
    try:
        if args.command == "serve":
            from pixtools_detect import app  # here, so models and eval do not load the broker stack

            app.main()
            return 0
        if args.command == "models":
            return _download(args) if args.action == "download" else _check(args)
        return asyncio.run(_evaluate(args))
    except DetectError as error:
        print(f"pixtools-detect: {error}", file=sys.stderr)
        return 2
