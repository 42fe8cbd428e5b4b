"""The pages people open in a browser: the landing page at `/` and the web console at `/console`.

The console is static HTML, CSS and JavaScript shipped in this package (`console/`) and talks to the same API
as every other client. Its page carries a strict Content-Security-Policy: scripts and styles from this origin
only, no inline code, and network calls to this origin only.
"""

import html
from functools import cache
from importlib import resources
from urllib.parse import urlsplit

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from starlette.staticfiles import StaticFiles

from pixtools_gateway.api.deps import Shared
from pixtools_gateway.settings import GatewaySettings

router = APIRouter(include_in_schema=False)

ASSETS = "/console/assets"
_LINKS = {
    "console": ("/console", "Web console: run pipelines on your images and see the results"),
    "docs": ("/docs", "API reference (Swagger UI), with requests you can try"),
    "redoc": ("/redoc", "API reference (ReDoc)"),
    "openapi": ("/openapi.json", "OpenAPI document"),
    "asyncapi": ("/asyncapi", "Events on the message broker (AsyncAPI)"),
}


def assets() -> StaticFiles:
    """The console's scripts and styles."""
    return StaticFiles(packages=[("pixtools_gateway", "console/assets")])


@router.get("/")
async def landing(request: Request) -> Response:
    """Where to go next: a small page for browsers, the same links as JSON for clients that ask for JSON."""
    accept = request.headers.get("accept", "")
    if "application/json" in accept and "text/html" not in accept:
        return JSONResponse({name: path for name, (path, _) in _LINKS.items()})
    items = "".join(
        f'<li><a href="{path}">{html.escape(path)}</a>: {html.escape(text)}</li>' for path, text in _LINKS.values()
    )
    page = (
        "<!doctype html><html lang='en'><head><meta charset='utf-8'><title>PixTools</title></head><body>"
        "<h1>PixTools</h1><p>Image processing and vision pipelines as a service.</p>"
        f"<ul>{items}</ul></body></html>"
    )
    return HTMLResponse(page, headers={"Content-Security-Policy": "default-src 'none'; frame-ancestors 'none'"})


@router.get("/console")
async def console(shared: Shared) -> HTMLResponse:
    """The web console's page."""
    return HTMLResponse(_console_page(), headers=console_headers(shared.settings))


@cache
def _console_page() -> str:
    return resources.files("pixtools_gateway").joinpath("console/index.html").read_text(encoding="utf-8")


def console_headers(settings: GatewaySettings) -> dict[str, str]:
    """The console page's security headers; images may also come from the S3 endpoint that presigns outputs."""
    images = "'self' blob:"
    if settings.blob_backend == "s3":
        endpoint = urlsplit(settings.s3_endpoint_url) if settings.s3_endpoint_url else None
        images += f" {endpoint.scheme}://{endpoint.netloc}" if endpoint else " https://*.amazonaws.com"
    policy = (
        "default-src 'none'; script-src 'self'; style-src 'self'; "
        f"img-src {images}; connect-src 'self'; form-action 'none'; base-uri 'none'; frame-ancestors 'none'"
    )
    return {
        "Content-Security-Policy": policy,
        "Referrer-Policy": "no-referrer",
        "X-Content-Type-Options": "nosniff",
        "Cache-Control": "no-cache",
    }
