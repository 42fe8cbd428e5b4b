"""Readiness follows the consumers: not ready before they take work, ready while they do, not ready as they drain."""

import httpx

from pixtools_platform.ops import ops_app
from pixtools_platform.service import Consuming


async def _ready(consuming: Consuming) -> tuple[int, str]:
    transport = httpx.ASGITransport(app=ops_app({"consumers": consuming.check}))
    async with httpx.AsyncClient(transport=transport, base_url="http://ops") as client:
        answer = await client.get("/readyz")
    return answer.status_code, answer.json()["checks"]["consumers"]


async def test_a_replica_is_ready_only_while_its_consumers_take_work():
    consuming = Consuming()
    assert await _ready(consuming) == (503, "failed: RuntimeError: not consuming yet, or draining")
    consuming.mark(running=True)
    assert await _ready(consuming) == (200, "ok")
    consuming.mark(running=False)
    assert (await _ready(consuming))[0] == 503
