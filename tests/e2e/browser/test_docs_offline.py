"""Swagger UI and ReDoc render this deployment's operations with nothing but loopback reachable.

ReDoc's bundle shows a badge image from its vendor's CDN; the page's Content-Security-Policy keeps the browser
from requesting it, so no request leaves loopback (checked, along with the page rendering without it).
"""

import pytest
from playwright.sync_api import expect

pytestmark = pytest.mark.e2e

SUBMIT = "Submit an image, or an image URL, and a pipeline"


def test_swagger_ui_renders_the_operations_offline(gateway_only, page, offsite):
    page.goto(f"{gateway_only.gateway_url}/docs")
    expect(page.get_by_text(SUBMIT).first).to_be_visible()
    operations = page.locator(".opblock-summary-path")
    expect(operations.first).to_be_visible()
    paths = set(operations.all_inner_texts())
    assert {"/v1/jobs", "/v1/jobs/{job_id}", "/v1/operations"} <= {path.replace("\u200b", "") for path in paths}
    page.get_by_text(SUBMIT).first.click()  # opens the operation: its parameters include the Prefer header
    expect(page.get_by_role("row", name="Prefer string").first).to_be_visible()
    assert offsite == [], f"the page tried to reach other hosts: {offsite}"


def test_redoc_renders_the_operations_offline(gateway_only, page, offsite):
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(f"{gateway_only.gateway_url}/redoc")
    expect(page.get_by_role("heading", name=SUBMIT).first).to_be_visible()
    expect(page.get_by_role("heading", name="Open an output through a signed link").first).to_be_visible()
    assert offsite == [], f"the page tried to reach other hosts: {offsite}"
    assert errors == [], "the page's scripts run under its policy"
