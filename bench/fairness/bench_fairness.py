"""Fairness benchmark: a single job's latency behind another tenant's 1000-URL batch, against its unloaded latency.

Runs on the local stack, in one go on the same cores:
  1. unloaded: single upload jobs (resize 320 -> webp) from tenant B, one at a time;
  2. behind a batch: the same, while tenant A's 1000-URL batch runs (bulk lane);
  3. baseline, behind a flood: the same, while tenant A's 1000 single URL jobs run (interactive lane: what
     the batch would be without its lane).
Images for the URLs come from a loopback HTTP server. Latency is submit until GET reports a terminal state,
polled every 5 ms. Figures are ratios against scenario 1 measured in the same run.

    .venv/bin/python bench/fairness/bench_fairness.py [--samples 15]
"""

import argparse
import asyncio
import io
import json
import statistics
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
from PIL import Image

from pixtools_db import create_engine, session_factory
from pixtools_devstack.stack import running_stack
from pixtools_gateway.handlers.tenants import create_tenant

ROOT = Path(__file__).resolve().parents[2]
NAMESPACE = "bench-fairness"
DATABASE_URL = "postgresql+asyncpg://postgres@localhost:5432/pixtools_bench"
PORTS = {"gateway": 8110, "ingest": 9211, "aggregator": 9212, "denoise": 9213, "detect": 9214}
SINGLE_PIPELINE = '[{"op": "resize", "params": {"width": 320}}, {"op": "convert", "params": {"format": "webp"}}]'
BULK_PIPELINE = [{"op": "resize", "params": {"width": 160}}, {"op": "convert", "params": {"format": "png"}}]
TERMINAL = {"succeeded", "partially_failed", "failed", "cancelled"}
LOAD_ITEMS = 1000


def jpeg(width: int, height: int, seed: int = 0) -> bytes:
    image = Image.effect_noise((width, height), 40 + seed % 20).convert("RGB")
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=85)
    return buffer.getvalue()


class ImageServer:
    """Serves the same small JPEG under any /img/ path and counts requests."""

    def __init__(self) -> None:
        body = jpeg(320, 240)
        self.hits = 0
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                server.hits += 1
                self.send_response(200)
                self.send_header("Content-Type", "image/jpeg")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self._http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._http.daemon_threads = True
        self.base_url = f"http://127.0.0.1:{self._http.server_port}"
        threading.Thread(target=self._http.serve_forever, daemon=True).start()

    def wait_for(self, hits: int, seconds: float = 120) -> None:
        deadline = time.monotonic() + seconds
        while self.hits < hits:
            if time.monotonic() > deadline:
                raise TimeoutError(f"only {self.hits} image requests after {seconds}s")
            time.sleep(0.02)


def new_tenant_key(name: str) -> str:
    async def make() -> str:
        engine = create_engine(DATABASE_URL, pool_size=1)
        try:
            async with session_factory(engine).begin() as session:
                _, key = await create_tenant(session, name=f"{name}-{time.time_ns()}")
            return key
        finally:
            await engine.dispose()

    return asyncio.run(make())


def single_latency(client: httpx.Client, image: bytes) -> float:
    started = time.perf_counter()
    response = client.post("/v1/jobs", files={"file": ("p.jpg", image)}, data={"pipeline": SINGLE_PIPELINE})
    job_id = response.json()["job_id"]
    while client.get(f"/v1/jobs/{job_id}").json()["state"] not in TERMINAL:
        time.sleep(0.005)
    return time.perf_counter() - started


def sample(client: httpx.Client, image: bytes, count: int) -> list[float]:
    return [single_latency(client, image) for _ in range(count)]


def sample_while_loaded(
    client: httpx.Client, image: bytes, count: int, images: ImageServer, load_done_at: int
) -> tuple[list[float], int]:
    """Latencies, and how many samples ended while the load's fetches were still outstanding."""
    latencies, while_loaded = [], 0
    for _ in range(count):
        latencies.append(single_latency(client, image))
        while_loaded += images.hits < load_done_at
    return latencies, while_loaded


def summary(values: list[float]) -> dict[str, float]:
    return {"p50_ms": statistics.median(values) * 1000, "max_ms": max(values) * 1000}


def behind_batch(bulk: httpx.Client, single: httpx.Client, images: ImageServer, image: bytes, count: int) -> dict:
    start_hits = images.hits
    items = [{"url": f"{images.base_url}/img/batch-{time.time_ns()}-{index}.jpg"} for index in range(LOAD_ITEMS)]
    batch_id = bulk.post("/v1/batches", json={"items": items, "pipeline": BULK_PIPELINE}).json()["batch_id"]
    images.wait_for(start_hits + 50)
    latencies, while_loaded = sample_while_loaded(single, image, count, images, start_hits + LOAD_ITEMS)
    totals = bulk.get(f"/v1/batches/{batch_id}").json()["totals"]
    bulk.delete(f"/v1/batches/{batch_id}")
    return {
        "latencies": latencies,
        "samples_while_loaded": while_loaded,
        "load_unfinished_at_end": totals["queued"] + totals["running"],
    }


def behind_flood(bulk: httpx.Client, single: httpx.Client, images: ImageServer, image: bytes, count: int) -> dict:
    start_hits = images.hits
    urls = [f"{images.base_url}/img/flood-{time.time_ns()}-{index}.jpg" for index in range(LOAD_ITEMS)]
    with ThreadPoolExecutor(16) as pool:
        submit = lambda url: bulk.post("/v1/jobs", json={"source_url": url, "pipeline": BULK_PIPELINE})  # noqa: E731
        job_ids = [response.json()["job_id"] for response in pool.map(submit, urls)]
        images.wait_for(start_hits + 50)
        latencies, while_loaded = sample_while_loaded(single, image, count, images, start_hits + LOAD_ITEMS)
        states = list(pool.map(lambda job_id: bulk.get(f"/v1/jobs/{job_id}").json()["state"], job_ids))
        list(pool.map(lambda job_id: bulk.delete(f"/v1/jobs/{job_id}"), job_ids))
    return {
        "latencies": latencies,
        "samples_while_loaded": while_loaded,
        "load_unfinished_at_end": sum(state not in TERMINAL for state in states),
    }


def run(args: argparse.Namespace, gateway_url: str) -> dict[str, object]:
    images = ImageServer()
    image = jpeg(640, 480)
    key_a, key_b = new_tenant_key("bench-bulk"), new_tenant_key("bench-single")
    bulk = httpx.Client(base_url=gateway_url, headers={"X-API-Key": key_a}, timeout=120)
    single = httpx.Client(base_url=gateway_url, headers={"X-API-Key": key_b}, timeout=60)
    with bulk, single:
        sample(single, image, 3)  # warm up
        unloaded = sample(single, image, args.samples)
        batch = behind_batch(bulk, single, images, image, args.samples)
        time.sleep(args.settle_seconds)  # let the cancelled batch drain
        flood = behind_flood(bulk, single, images, image, args.samples)
    base = statistics.median(unloaded)
    figures: dict[str, object] = {"unloaded": summary(unloaded)}
    for name, measured in (("behind_batch", batch), ("behind_flood_baseline", flood)):
        latencies = measured["latencies"]
        figures[name] = {
            **summary(latencies),
            "p50_vs_unloaded_p50": statistics.median(latencies) / base,
            "max_vs_unloaded_p50": max(latencies) / base,
            "samples_while_loaded": measured["samples_while_loaded"],
            "load_jobs_unfinished_at_end": measured["load_unfinished_at_end"],
        }
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--samples", type=int, default=15)
    parser.add_argument("--settle-seconds", type=float, default=10.0)
    args = parser.parse_args()
    env = {
        "PIXTOOLS_NAMESPACE": NAMESPACE,
        "PIXTOOLS_DATABASE_URL": DATABASE_URL,
        "PIXTOOLS_BLOB_DIR": str(ROOT / "var" / "bench-blobs"),
        "PIXTOOLS_LOG_LEVEL": "WARNING",
    }
    with running_stack(ROOT, env=env, ports=PORTS, gpu_stages=False) as stack:
        figures = run(args, stack.gateway_url)
    print(json.dumps(figures, indent=2, default=lambda value: round(value, 3)))


if __name__ == "__main__":
    main()
