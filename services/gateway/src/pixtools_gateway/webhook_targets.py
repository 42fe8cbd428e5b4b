"""Early checks on a submitted webhook URL, so a blocked target fails at submission, not hours later."""

from pixtools_gateway.errors import BlockedWebhook
from pixtools_platform.netguard import AddressPolicy, BlockedDestination, resolve_checked


async def check_webhook_url(url: str, allow_cidrs: list[str]) -> None:
    """Reject URLs that are not http(s) or that resolve to non-public addresses outside the allowlist."""
    if len(url) > 2000:
        raise BlockedWebhook("the webhook URL is longer than 2000 characters")
    try:
        await resolve_checked(url, AddressPolicy.parse(allow_cidrs))
    except BlockedDestination as error:
        raise BlockedWebhook(str(error)) from error
