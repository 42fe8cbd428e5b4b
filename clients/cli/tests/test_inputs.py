"""What the command line reads: pipelines, image folders, batch files, and the keys that make reruns idempotent."""

import json

import pytest

from pixtools_cli.errors import UsageError
from pixtools_cli.inputs import batch_items, find_images, idempotency_key, load_pipeline, url_key
from pixtools_cli.render import param_lines, param_type
from pixtools_cli.submit import _unique_folders
from pixtools_client import Operation

PIPELINE = [{"op": "resize", "params": {"width": 64, "fit": "cover"}}]


def test_a_pipeline_is_read_from_json_or_from_a_file(tmp_path):
    assert load_pipeline(json.dumps(PIPELINE)) == PIPELINE
    saved = tmp_path / "p.json"
    saved.write_text(json.dumps(PIPELINE))
    assert load_pipeline(f"@{saved}") == PIPELINE
    assert load_pipeline('{"op": "metadata"}') == [{"op": "metadata"}]


@pytest.mark.parametrize(
    ("text", "message"), [("[{", "not valid JSON"), ('"resize"', "JSON list"), ("@/no/such", "cannot read")]
)
def test_a_bad_pipeline_is_a_usage_error_that_says_why(text, message):
    with pytest.raises(UsageError, match=message):
        load_pipeline(text)


def test_folders_are_searched_recursively_for_images_only(tmp_path):
    (tmp_path / "a" / "b").mkdir(parents=True)
    for name in ("a/one.JPG", "a/b/two.png", "a/notes.txt", "a/b/three.webp"):
        (tmp_path / name).write_bytes(b"x")
    found = find_images([str(tmp_path / "a"), str(tmp_path / "a" / "one.JPG")])
    assert [path.name for path in found] == ["three.webp", "two.png", "one.JPG"]  # path order, each once
    (tmp_path / "empty").mkdir()
    with pytest.raises(UsageError, match="no images"):
        find_images([str(tmp_path / "empty")])
    with pytest.raises(UsageError, match="no such file"):
        find_images([str(tmp_path / "missing.jpg")])


def test_the_idempotency_key_follows_the_content_and_the_pipeline_not_the_file_name():
    reordered = [{"params": {"fit": "cover", "width": 64}, "op": "resize"}]
    assert idempotency_key(b"image", PIPELINE, None) == idempotency_key(b"image", reordered, None)
    assert idempotency_key(b"image", PIPELINE, None) != idempotency_key(b"other", PIPELINE, None)
    assert idempotency_key(b"image", PIPELINE, None) != idempotency_key(b"image", [{"op": "metadata"}], None)
    assert idempotency_key(b"image", PIPELINE, None) != idempotency_key(b"image", PIPELINE, "http://hook")
    assert url_key("https://x/a.jpg", PIPELINE, None) != url_key("https://x/b.jpg", PIPELINE, None)
    assert len(idempotency_key(b"image", PIPELINE, None)) <= 200


def test_batch_files_are_a_csv_with_a_url_column_or_a_json_list(tmp_path):
    csv_file = tmp_path / "items.csv"
    csv_file.write_text("id,url\na,https://x/a.jpg\n")
    assert batch_items(csv_file) == ("csv", csv_file.read_bytes())
    json_file = tmp_path / "items.json"
    json_file.write_text(json.dumps(["https://x/a.jpg", {"url": "https://x/b.jpg", "id": "b"}]))
    assert batch_items(json_file)[1][1] == {"url": "https://x/b.jpg", "id": "b"}
    csv_file.write_text("link\nhttps://x/a.jpg\n")
    with pytest.raises(UsageError, match="'url' column"):
        batch_items(csv_file)


def test_output_folders_keep_the_stem_and_tell_apart_images_that_share_one():
    folders = _unique_folders(["cat", "dog", "cat"])
    assert folders[1] == "dog"
    assert folders[0].startswith("cat-")
    assert folders[2].startswith("cat-")
    assert folders[0] != folders[2]


def test_parameters_are_described_from_their_json_schema():
    operation = Operation(
        op="resize",
        service="ingest",
        description="Resize.",
        params_schema={
            "properties": {
                "width": {
                    "anyOf": [{"type": "integer", "minimum": 1, "maximum": 10}, {"type": "null"}],
                    "default": None,
                },
                "fit": {"enum": ["inside", "cover"], "default": "inside"},
                "format": {"type": "string"},
            },
            "required": ["format"],
        },
    )
    assert param_lines(operation) == [
        "width: integer 1..10 | null = null",
        'fit: inside|cover = "inside"',
        "format: string (required)",
    ]
    assert param_type({"$ref": "#/$defs/SahiParams"}) == "object SahiParams"
