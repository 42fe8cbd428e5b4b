"""Syntax checks on source URLs and the printable test shared with batch item ids."""

import pytest

from pixtools_gateway.errors import InvalidRequest
from pixtools_gateway.source_urls import MAX_URL_LENGTH, check_source_url, printable


def test_a_good_url_comes_back_stripped() -> None:
    assert (
        check_source_url("  https://images.example.com/cat.jpg?size=2 \n")
        == "https://images.example.com/cat.jpg?size=2"
    )


@pytest.mark.parametrize(
    ("url", "fragment"),
    [
        (None, "'source_url' must be a non-empty URL"),
        (42, "'source_url' must be a non-empty URL"),
        ("   ", "'source_url' must be a non-empty URL"),
        ("https://a.example/\x00.jpg", "contains control characters"),
        ("https://a.example/" + "a" * MAX_URL_LENGTH, f"longer than {MAX_URL_LENGTH} characters"),
        ("https://a.example:port/x.jpg", "is not a valid URL"),
        ("ftp://example.com/a.jpg", "must use http or https, not 'ftp'"),
        ("example.com/a.jpg", "must use http or https, not 'no scheme'"),
        ("https:///a.jpg", "has no host"),
        ("https://bücher.example/x.jpg", "must name its host in ASCII"),
        ("https://user:pw@example.com/a.jpg", "must not carry credentials"),
    ],
)
def test_bad_source_urls_are_invalid_requests_saying_why(url: object, fragment: str) -> None:
    with pytest.raises(InvalidRequest) as caught:
        check_source_url(url)
    assert fragment in caught.value.detail


def test_the_error_names_the_field_it_was_given() -> None:
    with pytest.raises(InvalidRequest) as caught:
        check_source_url("ftp://example.com/a.jpg", "url")
    assert caught.value.detail == "'url' must use http or https, not 'ftp'"


@pytest.mark.parametrize(
    ("text", "expected"),
    [("order-17 ✓", True), ("tab\there", False), ("del\x7f", False), ("lone \ud800 surrogate", False)],
)
def test_printable_refuses_control_characters_and_lone_surrogates(text: str, expected: bool) -> None:
    assert printable(text) is expected
