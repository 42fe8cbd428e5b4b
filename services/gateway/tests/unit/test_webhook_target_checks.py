"""Webhook targets are refused at submission when they could never be called."""

import pytest

from pixtools_gateway.errors import BlockedWebhook
from pixtools_gateway.webhook_targets import check_webhook_url

# Literal addresses only: resolving them needs no DNS.


@pytest.mark.parametrize(
    ("url", "fragment"),
    [
        ("http://10.0.0.5/hook", "not public"),
        ("http://169.254.169.254/latest/meta-data", "not public"),
        ("ftp://203.0.113.9/hook", "only http and https"),
        ("http://user:pw@203.0.113.9/hook", "credentials"),
        ("http://203.0.113.9/" + "h" * 2000, "longer than 2000 characters"),
    ],
)
async def test_unreachable_or_private_targets_are_blocked(url: str, fragment: str) -> None:
    with pytest.raises(BlockedWebhook) as caught:
        await check_webhook_url(url, [])
    assert fragment in caught.value.detail
    assert (caught.value.status, caught.value.slug) == (422, "blocked-webhook-url")


async def test_an_allowlisted_private_network_is_accepted() -> None:
    await check_webhook_url("http://127.0.0.1:8080/hook", ["127.0.0.0/8"])
    with pytest.raises(BlockedWebhook):
        await check_webhook_url("http://127.0.0.1:8080/hook", ["10.0.0.0/8"])
