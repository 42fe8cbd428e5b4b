"""Outbound address checks: only public addresses are reached, unless a CIDR allowlist says otherwise.

Used for webhook targets (and URL import): every resolved address is checked, and the caller connects
to the checked address so a second DNS answer cannot swap it (DNS rebinding).
"""

import asyncio
import ipaddress
import socket
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from urllib.parse import SplitResult, urlsplit

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_NAT64_LOCAL = ipaddress.ip_network("64:ff9b:1::/48")
_SIX_TO_FOUR = ipaddress.ip_network("2002::/16")
_METADATA = {ipaddress.ip_address("169.254.169.254"), ipaddress.ip_address("fd00:ec2::254")}


class BlockedDestination(Exception):
    """The URL or one of its addresses may not be reached."""


@dataclass(frozen=True)
class AddressPolicy:
    """Which destinations are reachable: public addresses on allowed ports, plus allowlisted networks."""

    allow_cidrs: Sequence[IPNetwork] = ()
    allowed_ports: frozenset[int] | None = field(default=None)

    @classmethod
    def parse(cls, cidrs: Iterable[str], ports: Iterable[int] | None = None) -> "AddressPolicy":
        """Build a policy from CIDR strings and an optional port allowlist."""
        networks = tuple(ipaddress.ip_network(cidr.strip(), strict=False) for cidr in cidrs if cidr.strip())
        return cls(networks, frozenset(ports) if ports is not None else None)

    def allowlisted(self, address: IPAddress) -> bool:
        """True when an allowlisted network contains the address (in any embedded form)."""
        return any(candidate in network for candidate in _embedded(address) for network in self.allow_cidrs)

    def check_address(self, address: IPAddress) -> None:
        """Raise BlockedDestination unless the address is public or allowlisted."""
        if self.allowlisted(address):
            return
        for candidate in _embedded(address):
            if candidate in _METADATA or not candidate.is_global or candidate.is_multicast:
                raise BlockedDestination(f"address {address} is not public")

    def check_port(self, address: IPAddress, port: int) -> None:
        """Raise unless the port is allowed; allowlisted networks may use any port."""
        if self.allowed_ports is not None and port not in self.allowed_ports and not self.allowlisted(address):
            raise BlockedDestination(f"port {port} is not allowed")


def _embedded(address: IPAddress) -> list[IPAddress]:
    """The address and every IPv4 address hidden inside it (mapped, NAT64, 6to4)."""
    found: list[IPAddress] = [address]
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            found.append(address.ipv4_mapped)
        if address in _NAT64 or address in _NAT64_LOCAL:
            found.append(ipaddress.IPv4Address(int(address) & 0xFFFFFFFF))
        if address in _SIX_TO_FOUR:
            found.append(ipaddress.IPv4Address((int(address) >> 80) & 0xFFFFFFFF))
        if address.teredo is not None:
            found.append(address.teredo[1])
    return found


@dataclass(frozen=True)
class CheckedTarget:
    """A URL with the address it must be reached at."""

    url: SplitResult
    host: str
    port: int
    address: IPAddress

    def host_header(self) -> str:
        """The Host header the original URL implies (the port only when it is not the scheme's default)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        default = 443 if self.url.scheme == "https" else 80
        return host if self.port == default else f"{host}:{self.port}"

    def pinned_url(self) -> str:
        """The URL with its host replaced by the checked address."""
        host = f"[{self.address}]" if self.address.version == 6 else str(self.address)
        return self.url._replace(netloc=f"{host}:{self.port}").geturl()


async def resolve_checked(url: str, policy: AddressPolicy) -> CheckedTarget:
    """Resolve a URL's host and check every address it has; return the first, to connect to."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise BlockedDestination("only http and https URLs with a host are allowed")
    if parts.username or parts.password:
        raise BlockedDestination("URLs with credentials are not allowed")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError as error:
        raise BlockedDestination(f"invalid port: {error}") from error
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(parts.hostname, port, type=socket.SOCK_STREAM)
    except socket.gaierror as error:
        raise BlockedDestination(f"cannot resolve {parts.hostname}: {error.strerror}") from error
    addresses = [ipaddress.ip_address(info[4][0]) for info in infos]
    if not addresses:
        raise BlockedDestination(f"{parts.hostname} has no address")
    for address in addresses:
        policy.check_address(address)
        policy.check_port(address, port)
    return CheckedTarget(parts, parts.hostname, port, addresses[0])
