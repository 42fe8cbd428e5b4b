"""The webhook sender over httpx: checked, pinned addresses only, no redirects, one deadline per attempt."""

import asyncio
from collections.abc import Mapping

import httpx

from pixtools_aggregator.ports import SendResult
from pixtools_platform.netguard import AddressPolicy, BlockedDestination, resolve_checked


class HttpxWebhookSender:
    """POSTs webhooks to the address the target check approved, so a second DNS answer cannot redirect them."""

    def __init__(self, *, policy: AddressPolicy, timeout_s: float) -> None:
        self._policy = policy
        self._timeout_s = timeout_s
        self._client = httpx.AsyncClient(
            follow_redirects=False,
            # Proxies from the environment would connect on our behalf to an unchecked address.
            trust_env=False,
            timeout=timeout_s,
            # Each connection is pinned to one checked address and TLS name; reusing it for another host is unsafe.
            limits=httpx.Limits(max_keepalive_connections=0),
        )

    async def send(self, url: str, body: bytes, headers: Mapping[str, str]) -> SendResult:
        """POST `body` once; a blocked target, a transport error or any status is reported, never raised."""
        try:
            async with asyncio.timeout(self._timeout_s):
                target = await resolve_checked(url, self._policy)
                request = self._client.build_request(
                    "POST",
                    target.pinned_url(),
                    content=body,
                    headers={**headers, "Host": target.host_header()},
                    extensions={"sni_hostname": target.host} if target.url.scheme == "https" else None,
                )
                # The body is never read: a receiver cannot make us download anything.
                response = await self._client.send(request, stream=True)
                await response.aclose()
        except BlockedDestination as error:
            return SendResult(blocked=True, error=str(error))
        except (httpx.HTTPError, TimeoutError, OSError) as error:
            return SendResult(error=f"{type(error).__name__}: {error}" if str(error) else type(error).__name__)
        return SendResult(status=response.status_code, error=_describe(response))

    async def close(self) -> None:
        """Close the HTTP client."""
        await self._client.aclose()


def _describe(response: httpx.Response) -> str | None:
    if response.is_success:
        return None
    if response.is_redirect:
        return f"HTTP {response.status_code}: redirect to {response.headers.get('location', '?')!r} not followed"
    return f"HTTP {response.status_code}"
