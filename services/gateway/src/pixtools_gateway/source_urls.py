"""Syntax checks on a submitted source URL; whether its address may be fetched is ingest's decision, at fetch time."""

from urllib.parse import urlsplit

from pixtools_gateway.errors import InvalidRequest

MAX_URL_LENGTH = 2048


def printable(text: str) -> bool:
    """False for control characters and lone surrogates, which no URL or id needs and Postgres cannot store."""
    return not any(ord(char) < 0x20 or ord(char) == 0x7F or 0xD800 <= ord(char) <= 0xDFFF for char in text)


def check_source_url(url: object, where: str = "source_url") -> str:
    """The URL stripped, when it is an absolute http(s) URL with a host; otherwise a 422 naming `where`."""
    if not isinstance(url, str) or not url.strip():
        raise InvalidRequest(f"'{where}' must be a non-empty URL")
    url = url.strip()
    if not printable(url):
        raise InvalidRequest(f"'{where}' contains control characters")
    if len(url) > MAX_URL_LENGTH:
        raise InvalidRequest(f"'{where}' is longer than {MAX_URL_LENGTH} characters")
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError on a malformed port
    except ValueError as error:
        raise InvalidRequest(f"'{where}' is not a valid URL: {error}") from error
    if parts.scheme.lower() not in ("http", "https"):
        raise InvalidRequest(f"'{where}' must use http or https, not {parts.scheme or 'no scheme'!r}")
    if not parts.hostname:
        raise InvalidRequest(f"'{where}' has no host")
    if not parts.hostname.isascii():
        raise InvalidRequest(f"'{where}' must name its host in ASCII (IDNA 'xn--' form)")
    if parts.username or parts.password:
        raise InvalidRequest(f"'{where}' must not carry credentials")
    return url
