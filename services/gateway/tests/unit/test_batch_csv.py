"""The URL items of a batch CSV."""

import pytest

from pixtools_gateway.api.batch_bodies import csv_items
from pixtools_gateway.errors import BatchTooLarge, InvalidRequest


def test_urls_and_ids_are_read_by_header_name_whatever_the_case_and_bom() -> None:
    text = "\ufeffID, URL \nfirst, https://a.example/1.jpg \n,https://a.example/2.jpg\n"
    items = csv_items(text.encode())
    assert [(item.item_id, item.url, item.upload) for item in items] == [
        ("first", "https://a.example/1.jpg", None),
        (None, "https://a.example/2.jpg", None),
    ]


def test_without_an_id_column_items_have_no_id() -> None:
    assert [item.item_id for item in csv_items(b"url\nhttps://a.example/1.jpg\n")] == [None]


def test_bad_rows_are_reported_by_row_number_counting_the_header() -> None:
    with pytest.raises(InvalidRequest) as caught:
        csv_items(b"url,id\nhttps://a.example/1.jpg,1\nfile:///etc/passwd,2\nhttps://a.example/3.jpg,a\x00b\n")
    assert caught.value.detail == "2 item(s) are invalid; nothing was created"
    assert caught.value.errors == [
        {"loc": ["file", "row 3", "url"], "msg": "'url' must use http or https, not 'file'"},
        {"loc": ["file", "row 4", "id"], "msg": "'id' must be printable text of at most 200 characters"},
    ]


@pytest.mark.parametrize(
    ("data", "fragment"),
    [
        (b"link\nhttps://a.example/1.jpg\n", "'url' column"),
        (b"", "'url' column"),
        (b"url\n\xff\xfe\n", "not UTF-8"),
        (b"url\n", "no items"),
    ],
)
def test_an_unusable_csv_is_an_invalid_request(data: bytes, fragment: str) -> None:
    with pytest.raises(InvalidRequest) as caught:
        csv_items(data)
    assert fragment in caught.value.detail


def test_more_than_1000_rows_is_too_large() -> None:
    with pytest.raises(BatchTooLarge):
        csv_items(b"url\n" + b"https://a.example/x.jpg\n" * 1001)
