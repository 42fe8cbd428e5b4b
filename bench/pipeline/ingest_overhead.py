"""Ingest's CPU per one-step convert(webp) command, in process, against the bare convert() of the same image.

Each round runs the real ingest service (its consumer, CPU pool, local blob store) on a fresh namespace of the
real broker, queues N commands at once from a second channel (their encoding is not counted), waits for N step
outcomes, and reports this process's CPU per command, the bare loop's CPU per image, and the step.started
events per command (a saturated pool is where slow-start announcements come from). LOOP is the event loop the
round runs on: uvloop, as `pixtools-ingest` runs (`pixtools_platform.runtime`), or asyncio's own, to compare:

    .venv/bin/python bench/pipeline/ingest_overhead.py [N=200] [ROUNDS=3] [LOOP=uvloop|asyncio] [stub] [one-job]

With `stub`, ingest's convert() returns one image encoded beforehand, so the figure is the service's own CPU per
message (delivery, input read, pool hand-off, output write and fsync, publish and confirm, ack), with no image work
beside it to subtract. Its rounds still drift on a shared machine (1.2-2.9 ms per message within 12 minutes, load
1-2): interleave the builds and compare pairs. "system" is the kernel's part of the process's CPU per message, the
round's own publishing included (the ingest figure has that publishing subtracted); "context switches" are the
process's, voluntary and not, per message (every thread woken or left waiting for the GIL is one), publishing
included too: a count, so it drifts far less than the CPU figures.

With `one-job`, every command belongs to one job, so every output overwrites one key and the local store creates no
directory after the first: where each `mkdir` costs up to ~0.3 ms of kernel CPU (this host), the rounds measure
the rest of the service's own CPU with a fraction of the noise (see benchmarks.md, "Ingest thread hand-offs").
"""

import asyncio
import contextlib
import io
import os
import resource
import shutil
import sys
import tempfile
import time
import uuid
from pathlib import Path

os.environ.update({"PIXTOOLS_LOG_LEVEL": "WARNING", "PIXTOOLS_OPS_PORT": "0"})
import aio_pika
import uvloop
from PIL import Image

from pixtools_contracts import ObjectRef, Pipeline, StepRequested, first_steps, plan
from pixtools_imaging import convert
from pixtools_platform.broker.retry import RetryPolicy
from pixtools_platform.broker.topology import Topology

N = int(sys.argv[1]) if len(sys.argv) > 1 else 200
ROUNDS = int(sys.argv[2]) if len(sys.argv) > 2 else 3
LOOP = sys.argv[3] if len(sys.argv) > 3 else "uvloop"
STUB = "stub" in sys.argv[4:]
ONE_JOB = "one-job" in sys.argv[4:]


def jpeg():
    img = Image.effect_mandelbrot((640, 480), (-2, -1.2, 1, 1.2), 60).convert("RGB")
    b = io.BytesIO()
    img.save(b, "JPEG", quality=85)
    return b.getvalue()


async def one_round(data):
    ns = f"mqh{uuid.uuid4().hex[:8]}"
    blobdir = tempfile.mkdtemp(prefix="mqh-")
    os.environ["PIXTOOLS_NAMESPACE"] = ns
    os.environ["PIXTOOLS_BLOB_DIR"] = blobdir
    from pixtools_ingest import handlers
    from pixtools_ingest.app import create_app
    from pixtools_ingest.settings import IngestSettings

    if STUB:
        [(step0, _)] = first_steps(plan(Pipeline.model_validate([{"op": "convert", "params": {"format": "webp"}}])))
        made = convert(data, step0.spec.params, max_pixels=50_000_000)
        handlers.convert = lambda *_args, **_kwargs: made

    settings = IngestSettings()
    topo = Topology(ns)
    conn = await aio_pika.connect("amqp://guest:guest@localhost:5672/")
    ch = await conn.channel()
    await topo.declare_service(ch, "sinkagg", ["step.completed.v1", "step.failed.v1"], RetryPolicy())
    await topo.declare_service(ch, "sinkstart", ["step.started.v1"], RetryPolicy())
    os.makedirs(os.path.join(blobdir, "t/j"), exist_ok=True)
    await asyncio.to_thread(Path(blobdir, "t/j/original").write_bytes, data)
    [(step, rest)] = first_steps(plan(Pipeline.model_validate([{"op": "convert", "params": {"format": "webp"}}])))
    service = create_app(settings)
    await service.start()
    await asyncio.sleep(1.0)  # let the consumers settle
    pch = await conn.channel(publisher_confirms=True)
    ex = await pch.get_exchange(topo.events)
    cpu0 = time.process_time()
    rusage0 = resource.getrusage(resource.RUSAGE_SELF)
    t0 = time.perf_counter()
    # publishing from this process costs CPU too: measured separately below and subtracted
    pub0 = time.process_time()
    msgs = []
    job_id, tenant_id = uuid.uuid4(), uuid.uuid4()
    for _ in range(N):
        if not ONE_JOB:
            job_id, tenant_id = uuid.uuid4(), uuid.uuid4()
        req = StepRequested(
            job_id=job_id,
            tenant_id=tenant_id,
            correlation_id="c",
            producer="gateway",
            service="ingest",
            input=ObjectRef(key="t/j/original", content_type="image/jpeg", bytes=len(data), sha256="0" * 64),
            step=step,
            remaining=rest,
        )
        msgs.append(
            aio_pika.Message(
                req.model_dump_json().encode(),
                delivery_mode=2,
                message_id=str(req.event_id),
                type=req.type,
                content_type="application/json",
            )
        )
    await asyncio.gather(*(ex.publish(m, routing_key="step.requested.v1.ingest", mandatory=True) for m in msgs))
    pub = time.process_time() - pub0
    while True:
        q = await ch.declare_queue(topo.queue("sinkagg"), passive=True)
        if q.declaration_result.message_count >= N:
            break
        await asyncio.sleep(0.05)
    cpu = time.process_time() - cpu0 - pub
    rusage1 = resource.getrusage(resource.RUSAGE_SELF)
    system_ms = (rusage1.ru_stime - rusage0.ru_stime) / N * 1000
    # Every thread hand-off (a wake-up, a wait for the GIL, a blocking call off the loop) is a context switch.
    switches = (rusage1.ru_nvcsw + rusage1.ru_nivcsw - rusage0.ru_nvcsw - rusage0.ru_nivcsw) / N
    started = (await ch.declare_queue(topo.queue("sinkstart"), passive=True)).declaration_result.message_count
    wall = time.perf_counter() - t0
    await service.stop()
    # Leave nothing behind on the shared broker: every queue and exchange of the round's namespace.
    names = [topo.journal, topo.cancellations]
    for service in ("ingest", "ingest.bulk", "sinkagg", "sinkstart"):
        names += [topo.queue(service), topo.dead_letter_queue(service)]
        names += [topo.delay_queue(service, tier) for tier in {*settings.retry.tiers_ms(), *RetryPolicy().tiers_ms()}]
    for name in names:
        with contextlib.suppress(Exception):
            await ch.queue_delete(name)
    for exchange in (topo.events, topo.dead_letters, topo.redeliver):
        with contextlib.suppress(Exception):
            await ch.exchange_delete(exchange)
    await conn.close()
    return cpu / N * 1000, system_ms, switches, wall, started, blobdir


def bare(data):

    [(step, _rest)] = first_steps(plan(Pipeline.model_validate([{"op": "convert", "params": {"format": "webp"}}])))
    p = step.spec.params
    c0 = time.process_time()
    for _ in range(N // 2):
        convert(data, p, max_pixels=50_000_000)
    return (time.process_time() - c0) / (N // 2) * 1000


async def main():
    data = jpeg()
    # The rounds' blob folders go only after the last round: on a file system without a journal, ext4 skips inodes
    # freed in the last minutes when it creates one, so a deleted round would make the next round's writes dearer.
    blobdirs = []
    for r in range(ROUNDS):
        b = 0.0 if STUB else bare(data)
        ms, system_ms, switches, wall, started, blobdir = await one_round(data)
        blobdirs.append(blobdir)
        print(
            f"round {r}: ingest {ms:.2f} ms/msg (system {system_ms:.2f}, context switches {switches:.1f})"
            f"  bare {b:.2f} ms/img  overhead {ms - b:.2f} ms"
            f"  (wall {wall:.1f}s) step.started/msg {started / N:.2f} loop {type(asyncio.get_running_loop()).__name__}",
            flush=True,
        )
    for blobdir in blobdirs:
        shutil.rmtree(blobdir, ignore_errors=True)


{"uvloop": uvloop.run, "asyncio": asyncio.run}[LOOP](main())
