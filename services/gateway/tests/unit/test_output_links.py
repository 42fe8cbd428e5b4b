"""Signed output links: valid until they expire, for one output only, and only as the gateway signed them."""

import uuid
from urllib.parse import parse_qs, urlsplit

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from pixtools_gateway.errors import InvalidLink
from pixtools_gateway.output_links import OutputLinks
from pixtools_gateway.settings import GatewaySettings

JOB, OUTPUT, OTHER = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
NOW = 1_800_000_000.0


def parts(link: str) -> tuple[str, int, str]:
    split = urlsplit(link)
    query = parse_qs(split.query)
    return split.path, int(query["expires"][0]), query["signature"][0]


def test_a_signed_link_opens_until_it_expires() -> None:
    links = OutputLinks(b"k" * 32, lifetime_s=3600)
    path, expires, signature = parts(links.sign(JOB, OUTPUT, now=NOW))
    assert path == f"/v1/output-links/{JOB}/{OUTPUT}"
    assert NOW + 3600 <= expires < NOW + 3600 + 60, "the lifetime, rounded up to the minute"
    links.check(path, expires, signature, now=NOW)
    links.check(path, expires, signature, now=expires - 1)
    with pytest.raises(InvalidLink, match="expired"):
        links.check(path, expires, signature, now=expires)


def test_links_signed_within_a_minute_are_the_same_so_browsers_can_cache() -> None:
    links = OutputLinks(b"k" * 32, lifetime_s=3600)
    start = 1_800_000_040.0
    assert links.sign(JOB, OUTPUT, now=start) == links.sign(JOB, OUTPUT, now=start + 10)


@pytest.mark.parametrize("change", ["expiry", "signature", "non-ascii signature", "output", "key"])
def test_a_changed_link_is_refused(change) -> None:
    links = OutputLinks(b"k" * 32, lifetime_s=3600)
    path, expires, signature = parts(links.sign(JOB, OUTPUT, now=NOW))
    checker = links
    if change == "expiry":
        expires += 3600
    elif change == "signature":
        signature = signature[:-1] + ("A" if signature[-1] != "A" else "B")
    elif change == "non-ascii signature":
        signature = "X\u00f1\u00e4" + signature[3:]
    elif change == "output":
        path = f"/v1/output-links/{JOB}/{OTHER}"
    else:
        checker = OutputLinks(b"j" * 32, lifetime_s=3600)
    with pytest.raises(InvalidLink, match="signature"):
        checker.check(path, expires, signature, now=NOW)


def test_without_a_configured_key_each_process_signs_with_its_own() -> None:
    first = OutputLinks.from_settings(GatewaySettings())
    second = OutputLinks.from_settings(GatewaySettings())
    path, expires, signature = parts(first.sign(JOB, OUTPUT, now=NOW))
    with pytest.raises(InvalidLink):
        second.check(path, expires, signature, now=NOW)


def test_replicas_with_the_same_configured_key_accept_each_others_links() -> None:
    settings = GatewaySettings(output_link_secret="s" * 32)
    path, expires, signature = parts(OutputLinks.from_settings(settings).sign(JOB, OUTPUT, now=NOW))
    OutputLinks.from_settings(settings).check(path, expires, signature, now=NOW)


def test_production_with_local_storage_needs_an_explicit_long_key() -> None:
    signing_key = (
        Ed25519PrivateKey.generate()
        .private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
        .decode()
    )
    # Production but for the link key: brokers with real credentials and a token signing key.
    production = {"env": "production", "amqp_url": "amqp://user:pass@broker:5672/", "token_signing_key": signing_key}
    with pytest.raises(ValueError, match="PIXTOOLS_OUTPUT_LINK_SECRET"):
        GatewaySettings(**production)
    with pytest.raises(ValueError, match="at least 32"):
        GatewaySettings(**production, output_link_secret="short")
    GatewaySettings(**production, output_link_secret="x" * 32)
    GatewaySettings(**production, blob_backend="s3")  # S3 presigns its own links
