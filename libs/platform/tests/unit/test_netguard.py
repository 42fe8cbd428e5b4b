"""Outbound address checks."""

import ipaddress

import pytest

from pixtools_platform.netguard import AddressPolicy, BlockedDestination, resolve_checked

BLOCKED = [
    "127.0.0.1",
    "10.1.2.3",
    "172.16.0.1",
    "192.168.1.1",
    "169.254.169.254",
    "100.64.0.1",
    "0.0.0.0",
    "224.0.0.1",
    "::1",
    "fe80::1",
    "fc00::1",
    "fd00:ec2::254",
    "::ffff:127.0.0.1",
    "64:ff9b::7f00:1",
    "2002:7f00:1::",
]


@pytest.mark.parametrize("address", BLOCKED)
def test_non_public_addresses_are_blocked_in_every_form(address: str) -> None:
    with pytest.raises(BlockedDestination):
        AddressPolicy().check_address(ipaddress.ip_address(address))


def test_public_address_passes() -> None:
    AddressPolicy().check_address(ipaddress.ip_address("93.184.216.34"))


def test_allowlisted_network_is_reachable_on_any_port() -> None:
    policy = AddressPolicy.parse(["127.0.0.0/8"], ports=[80, 443])
    policy.check_address(ipaddress.ip_address("127.0.0.1"))
    policy.check_port(ipaddress.ip_address("127.0.0.1"), 8080)
    with pytest.raises(BlockedDestination):
        policy.check_port(ipaddress.ip_address("93.184.216.34"), 8080)


@pytest.mark.parametrize("url", ["http://2130706433/", "http://0x7f.1/", "http://127.1/", "http://localhost:9/"])
async def test_odd_spellings_of_loopback_resolve_and_are_blocked(url: str) -> None:
    with pytest.raises(BlockedDestination):
        await resolve_checked(url, AddressPolicy())


@pytest.mark.parametrize("url", ["ftp://example.com/", "file:///etc/passwd", "http://user:pw@example.com/"])
async def test_only_plain_http_urls_are_allowed(url: str) -> None:
    with pytest.raises(BlockedDestination):
        await resolve_checked(url, AddressPolicy())
