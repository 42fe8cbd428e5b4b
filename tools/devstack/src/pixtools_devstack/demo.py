"""`pixtools-demo`: push sample images through the example pipeline and print what came out."""

import io
import sys
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from PIL import Image, ImageDraw

from pixtools_client import Client, Job, JobState, WebhookVerificationError, verify_webhook
from pixtools_devstack.infra import InfraUnavailable
from pixtools_devstack.stack import GATEWAY_URL, GPU_STAGES, project_root, running_stack
from pixtools_devstack.vision import run_vision_round

EXAMPLE_PIPELINE = [
    {"op": "resize", "params": {"width": 256}},
    {
        "parallel": [
            [{"op": "convert", "params": {"format": "webp", "quality": 80}}],
            [{"op": "convert", "params": {"format": "avif"}}],
            [{"op": "metadata"}],
        ]
    },
]


@dataclass
class WebhookInbox:
    """Receives webhooks on loopback and checks their Standard Webhooks signatures."""

    secret: str = ""
    received: int = 0
    verified: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def verify(self, headers: dict[str, str], body: bytes) -> bool:
        """Whether the Standard Webhooks signature and timestamp check out, as the SDK verifies them."""
        try:
            verify_webhook(headers, body, self.secret)
        except WebhookVerificationError:
            return False
        return True


def _serve_webhooks(inbox: WebhookInbox) -> ThreadingHTTPServer:
    class Receiver(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length", 0)))
            with inbox.lock:
                inbox.received += 1
                inbox.verified += inbox.verify({key.lower(): value for key, value in self.headers.items()}, body)
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def sample_images(root: Path) -> list[tuple[str, bytes]]:
    """The shared COCO sample, or generated pictures where ../shared is absent."""
    shared = root.parent / "shared" / "data" / "coco-sample"
    if shared.is_dir():
        return [(path.name, path.read_bytes()) for path in sorted(shared.glob("*.jpg"))]
    print(f"{shared} not found; using generated images")
    images = []
    for index in range(8):
        picture = Image.new("RGB", (640, 480), (40 * index % 255, 90, 160))
        ImageDraw.Draw(picture).ellipse((100 + index * 20, 80, 400, 380), fill=(230, 200, 60))
        buffer = io.BytesIO()
        picture.save(buffer, "JPEG", quality=90)
        images.append((f"generated-{index}.jpg", buffer.getvalue()))
    return images


def run_demo(client: Client, images: list[tuple[str, bytes]], webhook_url: str) -> list[dict[str, object]]:
    """Submit every image, wait for every job, and return one row per job."""
    submitted = [
        (name, client.submit(data, EXAMPLE_PIPELINE, webhook_url=webhook_url, filename=name).job_id)
        for name, data in images
    ]
    rows = []
    for name, job_id in submitted:
        job = client.wait(job_id, timeout=300)
        rows.append({"job": str(job_id)[:8], "image": name, "state": job.state, "job_view": job})
    return rows


def print_table(rows: list[dict[str, object]]) -> None:
    """Print job, state, outputs with sizes, and time from acceptance to the end."""
    print(f"\n{'job':<9} {'image':<18} {'state':<17} {'time':>7}  outputs")
    for row in rows:
        job = row["job_view"]
        assert isinstance(job, Job)
        outputs = ", ".join(
            f"{output.content_type.split('/')[-1]} {output.width or ''}x{output.height or ''} "
            f"{output.bytes / 1024:.1f}KiB".replace(" x ", " ")
            for output in job.outputs
        )
        seconds = job.seconds or 0.0
        print(f"{row['job']:<9} {str(row['image'])[:18]:<18} {row['state']:<17} {seconds:>6.2f}s  {outputs}")


def main() -> None:
    """Start the stack, run the demo, print results, stop everything."""
    root = project_root()
    images = sample_images(root)
    inbox = WebhookInbox()
    server = _serve_webhooks(inbox)
    vision_ok = True
    try:
        with running_stack(root) as stack, Client(GATEWAY_URL, "pixtools-dev-key", timeout=30) as client:
            inbox.secret = client.webhook_secret().secret
            started = time.perf_counter()
            rows = run_demo(client, images, f"http://127.0.0.1:{server.server_port}/hooks")
            elapsed = time.perf_counter() - started
            print_table(rows)
            deadline = time.monotonic() + 30
            while inbox.received < len(rows) and time.monotonic() < deadline:
                time.sleep(0.2)
            succeeded = sum(row["state"] == JobState.SUCCEEDED for row in rows)
            print(
                f"\n{succeeded}/{len(images)} jobs succeeded in {elapsed:.1f}s; "
                f"webhooks received {inbox.received}, signatures verified {inbox.verified}"
            )
            vision_ok = _vision(client, root, {service.name for service in stack.services})
            print(f"\nweb console: {GATEWAY_URL}/console, while `make run` serves the stack (the demo stops it now)")
    except InfraUnavailable as error:
        sys.exit(str(error))
    finally:
        server.shutdown()
    if succeeded != len(images) or inbox.verified != len(images) or not vision_ok:
        sys.exit("demo finished with failures; see var/logs")


def _vision(client: Client, root: Path, running: set[str]) -> bool:
    """The vision round when denoise and detect are running and the shared data is there; True unless it failed."""
    data_dir = root.parent / "shared" / "data"
    missing = [name for name in GPU_STAGES if name not in running]
    if missing or not (data_dir / "cbsd68").is_dir():
        reason = f"{', '.join(missing)} not running" if missing else f"{data_dir} not found"
        print(f"\nvision round skipped: {reason}")
        return True
    out_dir = root / "var" / "demo"
    started = time.perf_counter()
    ok = run_vision_round(client, data_dir, out_dir)
    print(f"vision round took {time.perf_counter() - started:.1f}s")
    print(f"outputs: {out_dir}/<image>/ (overlays, denoised image); every stored object under {root / 'var' / 'blobs'}")
    return ok
