"""`pixtools-demo`: push sample images through the example pipeline and print what came out."""

import base64
import hashlib
import hmac
import io
import json
import sys
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
from PIL import Image, ImageDraw

from pixtools_contracts import JOB_TERMINAL, JobState
from pixtools_devstack.infra import InfraUnavailable
from pixtools_devstack.stack import GATEWAY_URL, project_root, running_stack

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
        """Recompute the signature over id.timestamp.body and compare in constant time."""
        key = base64.b64decode(self.secret.removeprefix("whsec_"))
        signed = f"{headers.get('webhook-id')}.{headers.get('webhook-timestamp')}.".encode() + body
        expected = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
        offered = [item.partition(",")[2] for item in headers.get("webhook-signature", "").split()]
        return any(hmac.compare_digest(expected, candidate) for candidate in offered)


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


def run_demo(client: httpx.Client, images: list[tuple[str, bytes]], webhook_url: str) -> list[dict[str, object]]:
    """Submit every image, wait for every job, and return one row per job."""
    submitted: dict[str, tuple[str, float]] = {}
    for name, data in images:
        response = client.post(
            "/v1/jobs",
            files={"file": (name, data)},
            data={"pipeline": json.dumps(EXAMPLE_PIPELINE), "webhook_url": webhook_url},
        )
        response.raise_for_status()
        submitted[response.json()["job_id"]] = (name, time.perf_counter())
    rows: dict[str, dict[str, object]] = {}
    deadline = time.monotonic() + 300
    while len(rows) < len(submitted) and time.monotonic() < deadline:
        for job_id, (name, started) in submitted.items():
            if job_id in rows:
                continue
            job = client.get(f"/v1/jobs/{job_id}").json()
            if job["state"] in JOB_TERMINAL:
                rows[job_id] = {
                    "job": job_id[:8],
                    "image": name,
                    "state": job["state"],
                    "job_json": job,
                    "seconds": time.perf_counter() - started,
                }
        time.sleep(0.1)
    return list(rows.values())


def print_table(rows: list[dict[str, object]]) -> None:
    """Print job, state, outputs with sizes, and time from submit to terminal."""
    print(f"\n{'job':<9} {'image':<18} {'state':<17} {'time':>7}  outputs")
    for row in rows:
        job = row["job_json"]
        assert isinstance(job, dict)
        outputs = ", ".join(
            f"{output['content_type'].split('/')[-1]} {output['width'] or ''}x{output['height'] or ''} "
            f"{output['bytes'] / 1024:.1f}KiB".replace(" x ", " ")
            for output in job["outputs"]
        )
        print(f"{row['job']:<9} {str(row['image'])[:18]:<18} {row['state']:<17} {row['seconds']:>6.2f}s  {outputs}")


def main() -> None:
    """Start the stack, run the demo, print results, stop everything."""
    root = project_root()
    images = sample_images(root)
    inbox = WebhookInbox()
    server = _serve_webhooks(inbox)
    try:
        with (
            running_stack(root),
            httpx.Client(base_url=GATEWAY_URL, headers={"X-API-Key": "pixtools-dev-key"}, timeout=30) as client,
        ):
            inbox.secret = client.get("/v1/webhooks/secret").json()["secret"]
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
    except InfraUnavailable as error:
        sys.exit(str(error))
    finally:
        server.shutdown()
    if succeeded != len(images) or inbox.verified != len(images):
        sys.exit("demo finished with failures; see var/logs")
