"""Pages for browsers: the landing page, offline Swagger UI and ReDoc, and the console with a strict CSP."""

import re

import pytest

pytestmark = pytest.mark.integration

_REFERENCES = re.compile(r"""(?:src|href|spec-url)\s*=\s*["']([^"']+)["']""")
_SCRIPT_URLS = re.compile(r"""\burl\s*:\s*["']([^"']+)["']""")


def references(page: str) -> set[str]:
    """Every URL a page loads or links to, including the OpenAPI URL its script passes on."""
    return set(_REFERENCES.findall(page)) | set(_SCRIPT_URLS.findall(page))


@pytest.mark.parametrize("path", ["/docs", "/redoc"])
async def test_docs_pages_reference_only_local_assets_that_load(api, path):
    page = await api.client.get(path)
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    for elsewhere in ("http:", "https:", "//"):
        assert elsewhere not in page.text, "no URL of another origin"
    found = references(page.text)
    assert found, "the page loads its assets"
    assert "/openapi.json" in found
    for url in found:
        assert url.startswith("/"), f"{url} is not served by the gateway"
        asset = await api.client.get(url)
        assert asset.status_code == 200, url
    assert any(url.endswith(".js") for url in found)


async def test_landing_page_links_to_console_and_documents(api):
    page = await api.client.get("/", headers={"Accept": "text/html"})
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert {"/console", "/docs", "/redoc", "/asyncapi"} <= references(page.text)
    as_json = await api.client.get("/", headers={"Accept": "application/json"})
    assert as_json.json()["console"] == "/console"
    assert as_json.json()["docs"] == "/docs"


async def test_console_page_has_a_strict_policy_and_no_inline_code(api):
    page = await api.client.get("/console")
    assert page.status_code == 200
    policy = page.headers["content-security-policy"]
    assert "script-src 'self';" in policy
    assert "default-src 'none'" in policy
    assert "unsafe-inline" not in policy
    assert "unsafe-eval" not in policy
    assert page.headers["referrer-policy"] == "no-referrer"
    assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", page.text), "every script is a file"
    assert not re.search(r"\son[a-z]+\s*=|\sstyle\s*=|<style", page.text), "no inline handlers or styles"
    for url in references(page.text):
        if url.startswith("/console/assets/"):
            asset = await api.client.get(url)
            assert asset.status_code == 200, url


async def test_documents_and_pages_stay_out_of_the_openapi_document(api):
    paths = (await api.client.get("/openapi.json")).json()["paths"]
    assert not {"/", "/console", "/docs", "/redoc"} & set(paths)
