"""Fetching user-given URLs safely: checked and pinned addresses, re-checked redirects, one deadline, a byte cap.

The caller sniffs the bytes; this module only reports the type the server declared.
"""

import asyncio
import dataclasses
from dataclasses import dataclass
from urllib.parse import urljoin

import httpx

from pixtools_platform.netguard import AddressPolicy, BlockedDestination, CheckedTarget, resolve_checked

__all__ = [
    "BlockedUrl",
    "ClientErrorStatus",
    "ConnectionFailed",
    "FetchError",
    "FetchLimits",
    "FetchTimeout",
    "FetchTooLarge",
    "Fetched",
    "ServerErrorStatus",
    "TooManyRedirects",
    "UnexpectedStatus",
    "fetch_url",
]

_DEFAULT_PORTS = frozenset({80, 443})


@dataclass(frozen=True)
class FetchLimits:
    """How much a single fetch may cost: bytes, time and redirects."""

    max_bytes: int = 25 * 1024 * 1024
    connect_timeout_s: float = 5.0
    total_timeout_s: float = 30.0
    max_redirects: int = 3


@dataclass(frozen=True)
class Fetched:
    """A fetched body, the URL it finally came from, and the content type the server declared."""

    url: str
    data: bytes
    declared_type: str | None


class FetchError(Exception):
    """A URL could not be fetched; `code` is stable and `retryable` says whether a later attempt may succeed."""

    code: str = "fetch.failed"
    retryable: bool = False


class BlockedUrl(FetchError):
    """The URL, a redirect target or one of their addresses or ports may not be reached."""

    code = "fetch.blocked"


class FetchTooLarge(FetchError):
    """The body is larger than the byte cap."""

    code = "fetch.too_large"


class ClientErrorStatus(FetchError):
    """The server answered with a 4xx status."""

    code = "fetch.http_4xx"


class ServerErrorStatus(FetchError):
    """The server answered with a 5xx status."""

    code = "fetch.http_5xx"
    retryable = True


class UnexpectedStatus(FetchError):
    """The server answered with a status that is neither success, error nor a followable redirect."""

    code = "fetch.http_status"


class FetchTimeout(FetchError):
    """Connecting took too long, or the whole fetch ran past its deadline."""

    code = "fetch.timeout"
    retryable = True


class ConnectionFailed(FetchError):
    """The connection could not be made or broke before the body was complete."""

    code = "fetch.connection"
    retryable = True


class TooManyRedirects(FetchError):
    """The URL redirected more often than allowed."""

    code = "fetch.redirects"


_DEFAULT_LIMITS = FetchLimits()


async def fetch_url(
    url: str, policy: AddressPolicy, limits: FetchLimits = _DEFAULT_LIMITS, *, client: httpx.AsyncClient | None = None
) -> Fetched:
    """Fetch `url` within `limits`, reaching only addresses `policy` allows; raise a FetchError otherwise.

    A supplied client must not trust the environment and should not keep connections alive: each connection is
    pinned to one checked address and TLS name.
    """
    if client is not None and client.trust_env:
        raise ValueError("the client must be built with trust_env=False: environment proxies bypass the checks")
    if policy.allowed_ports is None:
        policy = dataclasses.replace(policy, allowed_ports=_DEFAULT_PORTS)
    http = client or _new_client()
    try:
        async with asyncio.timeout(limits.total_timeout_s):
            return await _follow(http, url, policy, limits)
    except (TimeoutError, httpx.TimeoutException) as error:
        raise FetchTimeout(f"no complete answer within the time limit: {type(error).__name__}") from error
    except (httpx.TransportError, OSError) as error:
        raise ConnectionFailed(f"{type(error).__name__}: {error}") from error
    except httpx.DecodingError as error:
        raise ConnectionFailed(f"the body could not be decoded: {error}") from error
    finally:
        if client is None:
            await http.aclose()


def _new_client() -> httpx.AsyncClient:
    # Environment proxies would connect on our behalf to an unchecked address; pinned connections are not shared.
    return httpx.AsyncClient(follow_redirects=False, trust_env=False, limits=httpx.Limits(max_keepalive_connections=0))


async def _follow(http: httpx.AsyncClient, url: str, policy: AddressPolicy, limits: FetchLimits) -> Fetched:
    for _ in range(limits.max_redirects + 1):
        target = await _checked(url, policy)
        response = await http.send(_pinned_request(http, target, limits), stream=True, follow_redirects=False)
        try:
            if response.is_redirect:
                url = urljoin(url, response.headers["location"])
                continue
            _raise_for_status(response)
            data = await _read_capped(response, limits.max_bytes)
            return Fetched(url=url, data=data, declared_type=response.headers.get("content-type"))
        finally:
            await response.aclose()
    raise TooManyRedirects(f"more than {limits.max_redirects} redirects")


async def _checked(url: str, policy: AddressPolicy) -> CheckedTarget:
    try:
        return await resolve_checked(url, policy)
    except BlockedDestination as error:
        raise BlockedUrl(str(error)) from error
    except ValueError as error:  # malformed URL, port or host name
        raise BlockedUrl(f"invalid URL: {error}") from error


def _pinned_request(http: httpx.AsyncClient, target: CheckedTarget, limits: FetchLimits) -> httpx.Request:
    # The connection goes to the checked address; the name travels only in Host and TLS SNI.
    try:
        return http.build_request(
            "GET",
            target.pinned_url(),
            headers={"Host": target.host_header(), "Accept": "image/*", "Accept-Encoding": "identity"},
            extensions={"sni_hostname": target.host} if target.url.scheme == "https" else None,
            timeout=httpx.Timeout(limits.total_timeout_s, connect=limits.connect_timeout_s),
        )
    except (httpx.InvalidURL, UnicodeError) as error:  # UnicodeError: a non-ASCII host cannot go in Host
        raise BlockedUrl(f"invalid URL: {error}") from error


def _raise_for_status(response: httpx.Response) -> None:
    status = response.status_code
    if 400 <= status < 500:
        raise ClientErrorStatus(f"HTTP {status}")
    if status >= 500:
        raise ServerErrorStatus(f"HTTP {status}")
    if not response.is_success:
        raise UnexpectedStatus(f"HTTP {status}")


async def _read_capped(response: httpx.Response, max_bytes: int) -> bytes:
    declared = response.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > max_bytes:
        raise FetchTooLarge(f"declared length {declared} is over the {max_bytes}-byte cap")
    body = bytearray()
    async for chunk in response.aiter_bytes():
        body += chunk
        if len(body) > max_bytes:
            raise FetchTooLarge(f"body is over the {max_bytes}-byte cap")
    return bytes(body)
