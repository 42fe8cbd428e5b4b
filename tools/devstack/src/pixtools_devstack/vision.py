"""The demo's vision round: denoise then detect on a few photographs, and the PSNR that denoising gains."""

import io
import math
import random
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageChops, ImageStat

from pixtools_client import Client, Job, JobState

VISION_PIPELINE = [{"op": "denoise"}, {"op": "detect", "params": {"overlay": True}}]
# Denoising alone, kept lossless, to compare the result with the clean original.
DENOISE_ONLY = [{"op": "denoise"}, {"op": "convert", "params": {"format": "png"}}]
PHOTOS = ("000000000885.jpg", "000000001532.jpg", "000000002153.jpg")
CLEAN = "108005.png"
SIGMA = 25
MAX_EDGE = 480  # denoising runs on the CPU here: photographs are shrunk to keep the round to seconds


@dataclass
class VisionRow:
    """One image of the round: its job and what was detected in it."""

    image: str
    job: Job

    @property
    def counts(self) -> dict[str, int]:
        """Objects detected per class."""
        detect = next((step for step in self.job.steps if step.op == "detect"), None)
        counts = (detect.result or {}).get("counts", {}) if detect else {}
        return {str(name): int(count) for name, count in counts.items()}


def psnr(image: Image.Image, reference: Image.Image) -> float:
    """Peak signal-to-noise ratio in dB of an 8-bit RGB image against its reference."""
    difference = ImageChops.difference(image.convert("RGB"), reference.convert("RGB"))
    squares = ImageStat.Stat(difference).sum2
    mse = sum(squares) / (reference.width * reference.height * 3)
    return math.inf if mse == 0 else 10 * math.log10(255**2 / mse)


def add_noise(image: Image.Image, sigma: float, seed: int = 0) -> Image.Image:
    """The image with additive white Gaussian noise of `sigma` on every channel, rounded and clipped to 8 bits."""
    rng = random.Random(seed)
    noisy = bytes(min(255, max(0, round(value + rng.gauss(0, sigma)))) for value in image.convert("RGB").tobytes())
    return Image.frombytes("RGB", image.size, noisy)


def _encoded(image: Image.Image, kind: str) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, kind, **({"quality": 92} if kind == "JPEG" else {}))
    return buffer.getvalue()


def _photo(path: Path) -> bytes:
    picture = Image.open(path).convert("RGB")
    picture.thumbnail((MAX_EDGE, MAX_EDGE))
    return _encoded(picture, "JPEG")


def run_vision_round(client: Client, data_dir: Path, out_dir: Path) -> bool:
    """Submit the photographs and a noisy CBSD68 image, print counts and PSNR, save outputs; True if all succeeded."""
    clean = Image.open(data_dir / "cbsd68" / CLEAN).convert("RGB")
    noisy = add_noise(clean, SIGMA)
    uploads = [(name, _photo(data_dir / "coco-sample" / name)) for name in PHOTOS]
    uploads.append((f"noisy-{Path(CLEAN).stem}.png", _encoded(noisy, "PNG")))
    submitted = [(name, client.submit(data, VISION_PIPELINE, filename=name).job_id) for name, data in uploads]
    denoise_only = client.submit(uploads[-1][1], DENOISE_ONLY, filename=uploads[-1][0]).job_id
    rows = [VisionRow(name, client.wait(job_id, timeout=600)) for name, job_id in submitted]
    denoised_job = client.wait(denoise_only, timeout=600)

    print(f"\nvision round: {VISION_PIPELINE}")
    print(f"{'image':<22} {'state':<10} {'time':>7}  detected")
    for row in rows:
        counts = ", ".join(f"{name} {count}" for name, count in sorted(row.counts.items(), key=lambda kv: -kv[1]))
        seconds = f"{row.job.seconds:.1f}s" if row.job.seconds is not None else ""
        print(f"{row.image:<22} {row.job.state:<10} {seconds:>7}  {counts or 'nothing'}")
        folder = out_dir / Path(row.image).stem
        folder.mkdir(parents=True, exist_ok=True)
        for output in row.job.outputs:
            client.download(output, folder)
    ok = all(row.job.state == JobState.SUCCEEDED for row in rows) and denoised_job.state == JobState.SUCCEEDED
    if denoised_job.state == JobState.SUCCEEDED:
        path = client.download(denoised_job.outputs[0], out_dir / f"denoised-{Path(CLEAN).stem}.png")
        before, after = psnr(noisy, clean), psnr(Image.open(path), clean)
        print(
            f"\nCBSD68 {CLEAN} with Gaussian noise sigma {SIGMA}: PSNR {before:.2f} dB noisy, "
            f"{after:.2f} dB denoised ({after - before:+.2f} dB)"
        )
    return ok
