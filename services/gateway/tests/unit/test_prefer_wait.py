"""Reading RFC 7240 `Prefer: wait=N`: the first wait counts, capped; what is malformed is ignored."""

import pytest

from pixtools_gateway.prefer import requested_wait


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        (["wait=5"], 5),
        (["WAIT = 7"], 7),
        (['wait="9"'], 9),
        (["respond-async, wait=3"], 3),
        (["handling=lenient; foo=bar, wait=4; extra"], 4),
        (["return=minimal", "wait=2"], 2),
        (["wait=0"], 0),
    ],
)
def test_wait_preference_is_read_from_any_position(headers, expected) -> None:
    assert requested_wait(headers, cap=60) == expected


def test_wait_longer_than_the_cap_is_cut_to_it() -> None:
    assert requested_wait(["wait=3600"], cap=60) == 60
    assert requested_wait(["wait=99999999999999999999"], cap=60) is None  # not a delta-seconds we take


@pytest.mark.parametrize(
    "headers",
    [[], [""], ["return=minimal"], ["wait"], ["wait="], ["wait=-1"], ["wait=1.5"], ["wait=soon"], ["waiting=5"]],
)
def test_absent_or_malformed_wait_is_ignored(headers) -> None:
    assert requested_wait(headers, cap=60) is None


def test_only_the_first_wait_counts() -> None:
    assert requested_wait(["wait=2, wait=30"], cap=60) == 2
    assert requested_wait(["wait=x", "wait=30"], cap=60) is None
