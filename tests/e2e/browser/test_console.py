"""The web console in Chromium: a key, an image and a pipeline in; live progress, previews and counts out.

Controls are found by their accessible names (label, role), so these tests also hold the console to them.
"""

import io
import re

import httpx
import pytest
from PIL import Image
from playwright.sync_api import Page, expect

from ..harness import SHARED

pytestmark = pytest.mark.e2e

# A COCO val2017 photograph with several people in it.
PEOPLE = SHARED / "data" / "coco-sample" / "000000000885.jpg"


def photo(width: int = 640, height: int = 480) -> bytes:
    image = Image.new("RGB", (width, height), (30, 120, 200))
    image.paste((240, 200, 40), (width // 4, height // 4, width // 2, height // 2))
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


def open_console(page: Page, base_url: str, key: str) -> list[str]:
    """Open the console and enter the key; returns the URLs of every request the page makes from then on."""
    requested: list[str] = []
    page.on("request", lambda request: requested.append(request.url))
    page.goto(f"{base_url}/console")
    page.get_by_label("API key", exact=True).fill(key)
    page.get_by_label("API key", exact=True).press("Tab")
    # The editor is prefilled from the operation catalog once the key is entered.
    expect(page.get_by_label("Operation", exact=True)).to_contain_text("resize")
    expect(page.get_by_label("Pipeline", exact=True)).not_to_have_value("")
    return requested


def run(page: Page, preset: str, name: str, data: bytes) -> None:
    page.get_by_label("Preset", exact=True).select_option(preset)
    page.get_by_label("Image", exact=True).set_input_files(
        files=[{"name": name, "mimeType": "image/jpeg", "buffer": data}]
    )
    page.get_by_role("button", name="Run").click()


def loaded_width(page: Page, image_name: str | re.Pattern[str]) -> int:
    """The natural width of an image once the browser has loaded it (0 if it could not)."""
    image = page.get_by_role("img", name=image_name).first
    expect(image).to_be_visible()
    page.wait_for_function("image => image.complete", arg=image.element_handle())
    return int(image.evaluate("image => image.naturalWidth"))


def test_console_runs_a_pipeline_and_shows_its_previews(stack, tenant_key, page):
    requested = open_console(page, stack.gateway_url, tenant_key)
    run(page, "Thumbnail + WebP", "photo.jpg", photo())
    expect(page.get_by_role("status")).to_have_text("succeeded", timeout=60_000)
    steps = page.get_by_role("table", name="Steps")
    expect(steps.get_by_role("row", name=re.compile(r"^0 resize succeeded"))).to_be_visible()
    expect(steps.get_by_role("row", name=re.compile(r"^1 convert succeeded"))).to_be_visible()
    assert loaded_width(page, re.compile(r"^Output image of step 1 \(convert\)")) == 256
    download = page.get_by_role("link", name="Download 1 image")
    expect(download).to_have_attribute("href", re.compile(r"/v1/output-links/.+signature="))
    job_id = page.get_by_role("heading", name=re.compile(r"^Job ")).inner_text().removeprefix("Job ").strip()
    recent = page.get_by_role("table", name="Your most recent jobs")
    expect(recent.get_by_role("row", name=re.compile(rf"^{job_id} succeeded"))).to_be_visible()
    assert page.evaluate("sessionStorage.getItem('pixtools-api-key')") == tenant_key
    assert page.evaluate("localStorage.length") == 0
    assert not [url for url in requested if tenant_key in url], "the key never travels in a URL"


def test_console_shows_detections_counts_and_boxes(vision_stack, tenant_key, page):
    assert PEOPLE.exists(), f"the COCO sample is expected at {PEOPLE}"
    open_console(page, vision_stack.gateway_url, tenant_key)
    run(page, "Detect with overlay", PEOPLE.name, PEOPLE.read_bytes())
    expect(page.get_by_role("status")).to_have_text("succeeded", timeout=180_000)
    counts = page.get_by_role("table", name="Objects per class")
    person = counts.get_by_role("row", name=re.compile(r"^person \d+$"))
    expect(person).to_be_visible()
    assert int(person.get_by_role("cell").nth(1).inner_text()) >= 2
    assert loaded_width(page, re.compile(r"^Output overlay of step 0")) == Image.open(PEOPLE).width
    boxes = page.get_by_role("img", name=re.compile(r"^\d+ detected boxes$"))
    expect(boxes).to_be_visible()
    drawn = boxes.locator("rect").count()
    total = sum(int(cell) for cell in counts.locator("tbody tr td:nth-child(2)").all_inner_texts())
    assert drawn == total >= 2


def test_console_compares_before_and_after_denoise(vision_stack, tenant_key, page):
    noisy = Image.effect_noise((240, 160), 40).convert("RGB")
    buffer = io.BytesIO()
    noisy.save(buffer, "JPEG", quality=95)
    open_console(page, vision_stack.gateway_url, tenant_key)
    run(page, "Denoise", "noisy.jpg", buffer.getvalue())
    expect(page.get_by_role("status")).to_have_text("succeeded", timeout=180_000)
    assert loaded_width(page, "Before denoising") == 240
    assert loaded_width(page, "After denoising") == 240
    before = page.get_by_role("img", name="Before denoising")
    page.get_by_label("Before/after split", exact=True).fill("20")
    expect(before).to_have_css("clip-path", "inset(0px 80% 0px 0px)")


def test_console_follows_a_batch_to_its_totals(stack, tenant_key, page):
    files = [("files", (f"p{index}.jpg", photo(320 + index * 16, 240))) for index in range(3)]
    with httpx.Client(base_url=stack.gateway_url, headers={"X-API-Key": tenant_key}, timeout=30) as client:
        accepted = client.post("/v1/batches", files=files, data={"pipeline": '[{"op": "metadata"}]'})
    assert accepted.status_code == 202, accepted.text
    open_console(page, stack.gateway_url, tenant_key)
    page.get_by_label("Batch id", exact=True).fill(accepted.json()["batch_id"])
    page.get_by_role("button", name="Show batch").click()
    expect(page.get_by_text("3 of 3 jobs finished")).to_be_visible(timeout=60_000)
    expect(page.get_by_role("status")).to_have_text("succeeded")
    expect(page.get_by_label("Batch progress", exact=True)).to_have_attribute("value", "3")
    totals = page.get_by_role("table", name="Jobs by state")
    expect(totals.get_by_role("row", name="succeeded 3")).to_be_visible()
