"""The `pixtools-denoise` command: `serve`, `models download`, `models check` and `eval`; one function each."""

import argparse
import asyncio
import sys
from collections.abc import Sequence
from pathlib import Path

from pixtools_denoise.adapters.torch_model import TorchDenoiser
from pixtools_denoise.allocator import reuse_freed_memory
from pixtools_denoise.errors import DenoiseError
from pixtools_denoise.evaluation import evaluate, list_images
from pixtools_denoise.model_files import (
    MODELS_DIR_ENV,
    RELEASE_URL,
    Weights,
    default_models_dir,
    download_weights,
    load_weights,
)
from pixtools_denoise.runner import InferenceConfig


def run() -> None:
    """The console script: tune the allocator before anything else allocates (see allocator.py), then `main`."""
    reuse_freed_memory()
    sys.exit(main())


def main(argv: Sequence[str] | None = None) -> int:
    """Parse the command line, run the chosen subcommand and return the process exit status."""
    arguments = build_parser().parse_args(argv)
    try:
        code: int = arguments.run(arguments)
    except (DenoiseError, FileNotFoundError, ValueError) as error:
        print(f"pixtools-denoise: {error}", file=sys.stderr)
        return 1
    return code


def build_parser() -> argparse.ArgumentParser:
    """The argument parser; a new subcommand is a `subcommands.add_parser` call with its own `run` default."""
    parser = argparse.ArgumentParser(prog="pixtools-denoise", description="PixTools DnCNN denoising.")
    subcommands = parser.add_subparsers(required=True, metavar="COMMAND")

    models = subcommands.add_parser("models", help="fetch or check the DnCNN weights")
    model_commands = models.add_subparsers(required=True, metavar="ACTION")
    download = model_commands.add_parser("download", help=f"download {RELEASE_URL} and check it loads strictly")
    _add_models_dir(download, "--dir")
    download.set_defaults(run=run_download)
    check = model_commands.add_parser("check", help="check the weights in the models directory load strictly")
    _add_models_dir(check, "--dir")
    check.set_defaults(run=run_check)

    serve = subcommands.add_parser("serve", help="run the denoise worker (settings from PIXTOOLS_* variables)")
    serve.set_defaults(run=run_serve)

    quality = subcommands.add_parser("eval", help="mean PSNR on clean images with seeded Gaussian noise added")
    quality.add_argument("--data", type=Path, required=True, help="folder of clean images, e.g. ../shared/data/cbsd68")
    quality.add_argument(
        "--sigma", type=float, nargs="+", action="extend", help="noise levels on the 0-255 scale (default 25)"
    )
    quality.add_argument("--limit", type=int, default=None, help="evaluate only the first N images by name")
    quality.add_argument("--dtype", choices=["fp32", "bf16", "fp16"], default="fp32", help="inference precision")
    quality.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    quality.add_argument("--tile-size", type=int, default=InferenceConfig.tile_size, help="tile edge in pixels")
    _add_models_dir(quality, "--models-dir")
    quality.set_defaults(run=run_eval)
    return parser


def run_serve(arguments: argparse.Namespace) -> int:
    """Run the worker until SIGTERM; it refuses to start when the weights are missing or wrong."""
    from pixtools_denoise import app  # here, so models and eval do not load the broker stack

    app.main()
    return 0


def run_download(arguments: argparse.Namespace) -> int:
    """Download the official weights into the models directory."""
    print(f"downloading {RELEASE_URL} into {arguments.dir}", file=sys.stderr)
    _report(download_weights(arguments.dir))
    return 0


def run_check(arguments: argparse.Namespace) -> int:
    """Load the weights in the models directory strictly and print their identity."""
    _report(load_weights(arguments.dir))
    return 0


def run_eval(arguments: argparse.Namespace) -> int:
    """Print mean noisy and denoised PSNR at each sigma."""
    config = InferenceConfig(device=arguments.device, precision=arguments.dtype, tile_size=arguments.tile_size)
    paths = list_images(arguments.data, arguments.limit)
    sigmas = arguments.sigma or [25.0]
    denoiser = TorchDenoiser.from_models_dir(arguments.models_dir, config)

    async def run() -> None:
        async with denoiser:
            for result in await evaluate(denoiser, paths, sigmas):
                print(
                    f"sigma {result.sigma:g}: {result.images} images, noisy {result.noisy_psnr:.3f} dB, "
                    f"denoised {result.denoised_psnr:.3f} dB ({config.resolved_precision}, {config.device})"
                )

    asyncio.run(run())
    print(f"model {denoiser.model_id}, weights sha256 {denoiser.weights_sha256}")
    return 0


def _add_models_dir(parser: argparse.ArgumentParser, flag: str) -> None:
    parser.add_argument(
        flag,
        dest="dir" if flag == "--dir" else "models_dir",
        type=Path,
        default=default_models_dir(),
        help=f"models directory (default: ${MODELS_DIR_ENV} or ../shared/models)",
    )


def _report(weights: Weights) -> None:
    print(f"ok: {weights.path} loads strictly as {weights.model_id}, sha256 {weights.sha256}")
