"""The webhook dispatcher: claims due deliveries, sends them signed, and records each attempt."""

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from time import perf_counter
from urllib.parse import urlsplit

from pixtools_aggregator import metrics
from pixtools_aggregator.errors import InvalidWebhookSecret
from pixtools_aggregator.ports import Attempt, DeliveryStore, DueDelivery, EndpointState, SendResult, WebhookSender
from pixtools_aggregator.webhooks import RetrySchedule, signed_headers
from pixtools_platform.logs import log_context
from pixtools_platform.telemetry import current_trace_context, span

log = logging.getLogger(__name__)

USER_AGENT = "PixTools-Webhooks/1"


def _utcnow() -> datetime:
    return datetime.now(UTC)


def decide(result: SendResult, *, attempts: int, now: datetime, schedule: RetrySchedule, rng: random.Random) -> Attempt:
    """What one sent attempt means: delivered, gone, blocked, retried later, or failed for good."""
    if result.blocked:
        return Attempt(outcome="blocked", state="blocked", counted=True, error=result.error)
    if result.status is not None and 200 <= result.status < 300:
        return Attempt(
            outcome="delivered", state="delivered", counted=True, status=result.status, endpoint_effect="success"
        )
    if result.status == 410:
        error = "HTTP 410: the endpoint is gone and is now disabled"
        return Attempt(outcome="gone", state="disabled", counted=True, status=410, error=error, endpoint_effect="gone")
    error = result.error or f"HTTP {result.status}"
    delay = schedule.delay_after(attempts + 1, rng)
    if delay is None:
        return Attempt(
            outcome="exhausted",
            state="failed",
            counted=True,
            status=result.status,
            error=error,
            endpoint_effect="failure",
        )
    return Attempt(
        outcome="retry",
        state="pending",
        counted=True,
        next_attempt_at=now + delay,
        status=result.status,
        error=error,
        endpoint_effect="failure",
    )


def endpoint_host(url: str) -> str:
    """The host a webhook URL names: the one part of it bounded enough for a metric label and safe to log."""
    return urlsplit(url).hostname or "unknown"


def delivery_log_ids(delivery: DueDelivery) -> dict[str, str]:
    """What every log line about a delivery carries: the delivery, its job (if any) and the endpoint's host."""
    ids = {"delivery_id": str(delivery.id), "endpoint_host": endpoint_host(delivery.url)}
    if delivery.job_id is not None:
        ids["job_id"] = str(delivery.job_id)
    return ids


class WebhookDispatcher:
    """A background loop delivering webhooks; deliveries to one endpoint go one at a time, endpoints in parallel."""

    def __init__(
        self,
        *,
        store: DeliveryStore,
        sender: WebhookSender,
        schedule: RetrySchedule,
        lease: timedelta,
        batch: int = 50,
        poll_s: float = 1.0,
        clock: Callable[[], datetime] = _utcnow,
        rng: random.Random | None = None,
    ) -> None:
        self._store = store
        self._sender = sender
        self._schedule = schedule
        self._lease = lease
        self._batch = batch
        self._poll_s = poll_s
        self._clock = clock
        self._rng = rng or random.Random()
        self._wake = asyncio.Event()
        self._stopping = False
        self._task: asyncio.Task[None] | None = None

    def wake(self) -> None:
        """Look for due deliveries now: one was just committed."""
        self._wake.set()

    def start(self) -> None:
        """Run the loop in the background."""
        self._stopping = False
        self._task = asyncio.create_task(self._run(), name="webhook-dispatcher")

    async def stop(self, grace_s: float) -> None:
        """Finish the batch in hand for up to `grace_s`; unfinished deliveries become due again after their lease."""
        if self._task is None:
            return
        self._stopping = True
        self._wake.set()
        try:
            await asyncio.wait_for(asyncio.shield(self._task), timeout=grace_s)
        except TimeoutError:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def dispatch_once(self) -> int:
        """Claim and handle one batch of due deliveries; returns how many were claimed."""
        due = await self._store.claim_due(now=self._clock(), limit=self._batch, lease=self._lease)
        by_endpoint: dict[str, list[DueDelivery]] = {}
        for delivery in due:
            by_endpoint.setdefault(delivery.url, []).append(delivery)
        await asyncio.gather(*(self._deliver_in_turn(group) for group in by_endpoint.values()))
        return len(due)

    async def _run(self) -> None:
        while not self._stopping:
            # Clear before claiming, so a wake that arrives while a batch is in hand is not lost.
            self._wake.clear()
            try:
                claimed = await self.dispatch_once()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("webhook dispatch batch failed")
                claimed = 0
            if claimed >= self._batch or self._stopping:
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=self._poll_s)

    async def _deliver_in_turn(self, deliveries: Sequence[DueDelivery]) -> None:
        # One at a time per endpoint, so the breaker sees each failure before the next request goes out.
        endpoint = deliveries[0].endpoint
        for delivery in deliveries:
            with log_context(**delivery_log_ids(delivery)):
                try:
                    endpoint = await self._deliver(delivery, endpoint)
                except Exception:
                    log.exception("webhook delivery failed unexpectedly")

    async def _deliver(self, delivery: DueDelivery, endpoint: EndpointState) -> EndpointState:
        now = self._clock()
        if endpoint.disabled_at is not None:
            error = f"endpoint disabled at {endpoint.disabled_at.isoformat()} after answering 410"
            attempt = Attempt(outcome="disabled", state="disabled", counted=False, error=error)
        elif endpoint.open_until is not None and endpoint.open_until > now:
            # An open circuit postpones without spending one of the delivery's attempts.
            attempt = Attempt(outcome="postponed", state="pending", counted=False, next_attempt_at=endpoint.open_until)
        else:
            result = await self._send(delivery)
            attempt = decide(
                result, attempts=delivery.attempts, now=self._clock(), schedule=self._schedule, rng=self._rng
            )
        host = endpoint_host(delivery.url)
        metrics.WEBHOOK_ATTEMPTS.labels(attempt.outcome, host).inc()
        recorded_at = self._clock()
        if attempt.state == "delivered":
            metrics.WEBHOOK_DELIVERY_SECONDS.observe((recorded_at - delivery.created_at).total_seconds())
        log.info(
            "webhook attempt",
            extra={"outcome": attempt.outcome, "status": attempt.status},
        )
        updated = await self._store.record(delivery, attempt, now=recorded_at)
        return endpoint if updated is None else updated

    async def _send(self, delivery: DueDelivery) -> SendResult:
        with span("webhook POST", delivery.traceparent):
            try:
                headers = signed_headers(
                    message_id=str(delivery.id),
                    timestamp=int(time.time()),
                    body=delivery.payload,
                    secrets=delivery.secrets,
                )
            except InvalidWebhookSecret as error:
                return SendResult(error=str(error))
            headers |= {"content-type": "application/json", "user-agent": USER_AGENT, **current_trace_context()}
            started = perf_counter()
            result = await self._sender.send(delivery.url, delivery.payload, headers)
            metrics.WEBHOOK_REQUEST_SECONDS.observe(perf_counter() - started)
            return result
