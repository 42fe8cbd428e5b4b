"""FairShare: a credential has at most its share of requests in progress; the rest wait, others pass."""

import asyncio
import time

import pytest

from pixtools_gateway.early_refusals import HeldRefusals, RefusalMemory, credential_of
from pixtools_gateway.fair_share import FairShare


class Downstream:
    """An ASGI app whose requests stay in progress until released, counting how many are in progress at once."""

    def __init__(self) -> None:
        self.in_progress: dict[bytes, int] = {}
        self.most: dict[bytes, int] = {}
        self.release = asyncio.Event()
        self.served: list[bytes] = []

    async def __call__(self, scope, receive, send) -> None:
        key = dict(scope["headers"]).get(b"x-api-key", b"")
        self.in_progress[key] = self.in_progress.get(key, 0) + 1
        self.most[key] = max(self.most.get(key, 0), self.in_progress[key])
        try:
            if key != b"quick":
                await self.release.wait()
            self.served.append(key)
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b""})
        finally:
            self.in_progress[key] -= 1


def request(key: bytes, path: str = "/v1/jobs/1", method: str = "GET", headers=()) -> dict:
    return {"type": "http", "method": method, "path": path, "headers": [(b"x-api-key", key), *headers]}


async def call(app, scope) -> None:
    async def receive():
        return {"type": "http.request", "body": b""}

    async def send(message):
        return None

    await app(scope, receive, send)


async def test_a_flood_from_one_key_has_its_share_in_progress_and_another_key_passes_meanwhile() -> None:
    downstream = Downstream()
    app = FairShare(downstream, per_credential=4)
    flood = [asyncio.create_task(call(app, request(b"flood"))) for _ in range(50)]
    await asyncio.sleep(0.05)
    assert downstream.in_progress[b"flood"] == 4
    assert app.in_progress(credential_of(request(b"flood"))) == 50  # the rest are parked, none refused
    await asyncio.wait_for(call(app, request(b"quick")), 1)  # not queued behind the flood
    assert downstream.served == [b"quick"]
    downstream.release.set()
    await asyncio.wait_for(asyncio.gather(*flood), 5)
    assert downstream.most[b"flood"] == 4
    assert downstream.served.count(b"flood") == 50
    assert app.in_progress(credential_of(request(b"flood"))) == 0  # the table forgets idle credentials


@pytest.mark.parametrize(
    "scope",
    [
        request(b"flood", path="/v1/jobs/1/events"),
        request(b"flood", path="/v1/jobs", method="POST", headers=[(b"prefer", b"wait=30")]),
    ],
    ids=["event stream", "Prefer: wait"],
)
async def test_requests_that_stay_open_by_design_take_no_place(scope) -> None:
    downstream = Downstream()
    app = FairShare(downstream, per_credential=1)
    held = [asyncio.create_task(call(app, scope)) for _ in range(5)]
    await asyncio.sleep(0.05)
    assert downstream.in_progress[b"flood"] == 5
    downstream.release.set()
    await asyncio.wait_for(asyncio.gather(*held), 5)


async def test_a_failing_request_gives_its_place_back() -> None:
    async def failing(scope, receive, send) -> None:
        raise RuntimeError("boom")

    app = FairShare(failing, per_credential=1)
    for _ in range(3):
        with pytest.raises(RuntimeError):
            await asyncio.wait_for(call(app, request(b"k")), 1)
    assert app.in_progress(credential_of(request(b"k"))) == 0


async def test_a_parked_request_refused_meanwhile_gives_its_place_back_and_gets_the_refusal_instead() -> None:
    downstream = Downstream()
    memory = RefusalMemory()
    held = HeldRefusals(memory)  # no hold: the refusal is answered at once
    app = FairShare(downstream, per_credential=2, refusal=held.refusal)
    answers: list[int] = []

    async def submit(key: bytes) -> None:
        async def receive():
            return {"type": "http.request", "body": b""}

        async def send(message):
            if message["type"] == "http.response.start":
                answers.append(message["status"])

        await app(request(key, path="/v1/jobs", method="POST"), receive, send)

    flood = [asyncio.create_task(submit(b"flood")) for _ in range(10)]
    await asyncio.sleep(0.05)
    assert downstream.in_progress[b"flood"] == 2  # eight parked
    # The limiter refuses the key's submissions while those eight wait (as the route's spend does on a 429).
    memory.remember(request(b"flood", path="/v1/jobs", method="POST"), "submissions", 5, '"submissions";q=1', "spent")
    downstream.release.set()
    await asyncio.wait_for(asyncio.gather(*flood), 5)

    assert downstream.served.count(b"flood") == 2  # only the two in progress reached the route
    assert sorted(answers) == [200] * 2 + [429] * 8
    assert app.in_progress(credential_of(request(b"flood"))) == 0


async def test_a_request_that_was_not_parked_is_not_asked_again() -> None:
    downstream = Downstream()
    downstream.release.set()
    asked: list[dict] = []

    def refusal(scope):
        asked.append(scope)
        return None

    app = FairShare(downstream, per_credential=2, refusal=refusal)
    await asyncio.wait_for(call(app, request(b"k")), 1)
    assert downstream.served == [b"k"]
    assert asked == []  # the layer outside asked a moment ago; only a wait makes asking again worth it


async def test_holds_that_reach_the_deadline_end_spread_over_the_moments_after_it() -> None:
    memory = RefusalMemory()
    scope = request(b"flood", path="/v1/jobs", method="POST")
    memory.remember(scope, "submissions", 1, '"submissions";q=1', "spent")  # refused until 1 s from now
    held = HeldRefusals(memory, hold_s=5.0, spread_s=0.6, max_held=100)
    ended: list[float] = []

    async def refused() -> None:
        refusal = held.refusal(dict(scope))
        assert refusal is not None

        async def receive():
            return {"type": "http.request", "body": b""}

        async def send(message):
            if message["type"] == "http.response.start":
                assert message["status"] == 429
                ended.append(time.monotonic())

        await refusal(dict(scope), receive, send)

    started = time.monotonic()
    await asyncio.wait_for(asyncio.gather(*(refused() for _ in range(40))), 10)
    after = sorted(moment - started for moment in ended)
    assert after[0] >= 0.95  # none answered before the deadline: a hold still lasts until Retry-After passes
    assert after[-1] <= 1.6 + 0.5  # and none past the spread (with room for a slow machine)
    # Forty draws over 0.6 s: all within 50 ms of each other has a chance below 1e-40.
    assert after[-1] - after[0] > 0.05
    assert held.held == 0
