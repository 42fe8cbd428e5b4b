"""The `pixtools` command line against the real stack, run as a user runs it: the installed script."""

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from pixtools_contracts import OPERATIONS

pytestmark = pytest.mark.e2e

PIXTOOLS = str(Path(sys.executable).parent / "pixtools")
PIPELINE = [
    {"op": "resize", "params": {"width": 40}},
    {"parallel": [[{"op": "convert", "params": {"format": "png"}}], [{"op": "metadata"}]]},
]
SMALL_PNG = json.dumps([{"op": "resize", "params": {"width": 32}}, {"op": "convert", "params": {"format": "png"}}])


def pixtools(stack, key: str | None, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    env = {name: value for name, value in os.environ.items() if not name.startswith("PIXTOOLS_")}
    env["PIXTOOLS_URL"] = stack.gateway_url
    if key is not None:
        env["PIXTOOLS_API_KEY"] = key
    return subprocess.run([PIXTOOLS, *args], env=env, capture_output=True, text=True, timeout=timeout)


def write_jpeg(path: Path, colour: tuple[int, int, int]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    Image.new("RGB", (120, 90), colour).save(buffer, "JPEG")
    path.write_bytes(buffer.getvalue())
    return path


def test_submit_a_folder_with_out_writes_the_layout_and_a_rerun_replays_the_same_jobs(
    module_stack, module_tenant_key, tmp_path
):
    photos = tmp_path / "photos"
    write_jpeg(photos / "cat.jpg", (200, 100, 50))
    write_jpeg(photos / "nested" / "dog.jpeg", (50, 100, 200))
    (photos / "notes.txt").write_text("not an image, not submitted")
    pipeline_file = tmp_path / "pipeline.json"
    pipeline_file.write_text(json.dumps(PIPELINE))
    out = tmp_path / "out"
    args = ("submit", str(photos), "--pipeline", f"@{pipeline_file}", "--out", str(out), "--json")

    first = pixtools(module_stack, module_tenant_key, *args)
    assert first.returncode == 0, first.stderr
    rows = json.loads(first.stdout)
    assert sorted(Path(row["source"]).name for row in rows) == ["cat.jpg", "dog.jpeg"]
    assert {row["state"] for row in rows} == {"succeeded"}
    written = sorted(str(path.relative_to(out)) for path in out.rglob("*") if path.is_file())
    assert written == [
        "cat/1.0.0-image.png",
        "cat/1.1.0-metadata.json",
        "dog/1.0.0-image.png",
        "dog/1.1.0-metadata.json",
    ], written
    assert Image.open(out / "cat" / "1.0.0-image.png").size == (40, 30)
    assert json.loads((out / "dog" / "1.1.0-metadata.json").read_text())

    second = pixtools(module_stack, module_tenant_key, *args)
    assert second.returncode == 0, second.stderr
    rerun = json.loads(second.stdout)
    assert {row["source"]: row["job_id"] for row in rerun} == {row["source"]: row["job_id"] for row in rows}


def test_submit_shows_a_summary_table_and_a_changed_pipeline_makes_new_jobs(module_stack, module_tenant_key, tmp_path):
    image = write_jpeg(tmp_path / "table.jpg", (1, 2, 3))
    shown = pixtools(module_stack, module_tenant_key, "submit", str(image), "--pipeline", SMALL_PNG, "--wait")
    assert shown.returncode == 0, shown.stderr
    assert "table.jpg" in shown.stdout
    assert "succeeded" in shown.stdout
    first = json.loads(
        pixtools(module_stack, module_tenant_key, "submit", str(image), "--pipeline", SMALL_PNG, "--json").stdout
    )
    other = SMALL_PNG.replace("32", "33")
    second = json.loads(
        pixtools(module_stack, module_tenant_key, "submit", str(image), "--pipeline", other, "--json").stdout
    )
    assert first[0]["job_id"] != second[0]["job_id"]


def test_a_failed_job_makes_the_exit_status_non_zero_and_retry_then_watch_finish_it(
    module_stack, module_tenant_key, image_server, tmp_path
):
    url = image_server.url("/flaky/cli.jpg")
    failed = pixtools(module_stack, module_tenant_key, "url", url, "--pipeline", SMALL_PNG, "--wait", "--json")
    assert failed.returncode == 1, failed.stderr
    [row] = json.loads(failed.stdout)
    assert row["state"] == "failed"
    assert "404" in row["error"]
    status = pixtools(module_stack, module_tenant_key, "status", row["job_id"], "--json")
    assert status.returncode == 1
    assert json.loads(status.stdout)["error"]["code"] == "fetch.http_4xx"

    image_server.fixed.add("/flaky/cli.jpg")
    retried = pixtools(module_stack, module_tenant_key, "retry", row["job_id"], "--json")
    assert retried.returncode == 0, retried.stderr
    assert json.loads(retried.stdout)["changed"] is True
    watched = pixtools(module_stack, module_tenant_key, "watch", row["job_id"], "--json")
    assert watched.returncode == 0, watched.stderr
    lines = watched.stdout.splitlines()
    assert json.loads(lines[0])["event"] in ("step", "job")
    assert '"state": "succeeded"' in watched.stdout
    downloaded = pixtools(module_stack, module_tenant_key, "download", row["job_id"], "--out", str(tmp_path / "d"))
    assert downloaded.returncode == 0, downloaded.stderr
    assert [path.name for path in (tmp_path / "d").iterdir()] == ["1-image.png"]


def test_cancel_from_the_command_line(module_stack, module_tenant_key, image_server):
    image_server.delay_s = 3.0
    submitted = pixtools(
        module_stack, module_tenant_key, "url", image_server.url("/img/slow-cli.jpg"), "--pipeline", SMALL_PNG, "--json"
    )
    assert submitted.returncode == 0, submitted.stderr
    job_id = json.loads(submitted.stdout)[0]["job_id"]
    cancelled = pixtools(module_stack, module_tenant_key, "cancel", job_id)
    assert cancelled.returncode == 0, cancelled.stderr
    assert "cancelled" in cancelled.stdout
    assert (
        json.loads(pixtools(module_stack, module_tenant_key, "status", job_id, "--json").stdout)["state"] == "cancelled"
    )


def test_a_csv_batch_is_followed_and_its_outputs_saved_per_item(
    module_stack, module_tenant_key, image_server, tmp_path
):
    items = tmp_path / "items.csv"
    rows = ["id,url", *(f"sku-{index},{image_server.url(f'/img/b{index}.jpg')}" for index in range(3))]
    items.write_text("\n".join(rows) + "\n")
    result = pixtools(
        module_stack,
        module_tenant_key,
        "batch",
        str(items),
        "--pipeline",
        SMALL_PNG,
        "--out",
        str(tmp_path / "o"),
        "--json",
    )
    assert result.returncode == 0, result.stderr
    batch = json.loads(result.stdout)
    assert batch["state"] == "succeeded"
    assert [item["id"] for item in batch["items"]] == ["sku-0", "sku-1", "sku-2"]
    assert sorted(str(path.relative_to(tmp_path / "o")) for path in (tmp_path / "o").rglob("*.png")) == [
        f"sku-{index}/1-image.png" for index in range(3)
    ]


def test_ops_lists_every_operation_from_the_catalogue(module_stack, module_tenant_key):
    listed = pixtools(module_stack, module_tenant_key, "ops", "--json")
    assert listed.returncode == 0, listed.stderr
    operations = {entry["op"]: entry for entry in json.loads(listed.stdout)}
    assert set(operations) == set(OPERATIONS)
    assert any(line.startswith("width: ") for line in operations["resize"]["params"])
    table = pixtools(module_stack, module_tenant_key, "ops")
    assert all(name in table.stdout for name in OPERATIONS)


@pytest.mark.parametrize(
    ("args", "key", "status", "message"),
    [
        (("ops",), "wrong-key", 3, "pixtools: Missing or invalid"),
        (("status", "00000000-0000-0000-0000-000000000000"), None, 3, "pixtools: Not found"),
        (("submit", "missing.jpg", "--pipeline", "[]"), None, 2, "pixtools: no such file or folder: missing.jpg"),
        (("url", "http://x/a.jpg", "--pipeline", "[{"), None, 2, "pixtools: pipeline is not valid JSON"),
    ],
)
def test_expected_failures_are_one_line_with_their_exit_status(
    module_stack, module_tenant_key, args, key, status, message
):
    result = pixtools(module_stack, key or module_tenant_key, *args)
    assert result.returncode == status, result.stderr
    assert result.stderr.startswith(message), result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert "Traceback" not in result.stderr


def test_an_unreachable_server_is_exit_status_4(module_stack, module_tenant_key):
    env = {name: value for name, value in os.environ.items() if not name.startswith("PIXTOOLS_")}
    result = subprocess.run(
        [PIXTOOLS, "--url", "http://127.0.0.1:9", "--api-key", "k", "ops"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 4
    assert result.stderr.startswith("pixtools: cannot reach http://127.0.0.1:9")
    assert "Traceback" not in result.stderr


def test_an_invalid_pipeline_is_refused_per_image_with_the_problem_and_a_non_zero_status(
    module_stack, module_tenant_key, tmp_path
):
    image = write_jpeg(tmp_path / "x.jpg", (9, 9, 9))
    result = pixtools(
        module_stack, module_tenant_key, "submit", str(image), "--pipeline", '[{"op": "sharpen"}]', "--json"
    )
    assert result.returncode == 1
    [row] = json.loads(result.stdout)
    assert row["state"] == "refused"
    assert row["error"].startswith("Invalid pipeline")
