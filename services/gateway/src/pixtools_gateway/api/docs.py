"""The API's documents as pages: Swagger UI and ReDoc from local assets, and the AsyncAPI document of this
deployment (its namespace and broker) as JSON and as a readable page.

The Swagger UI and ReDoc scripts come from the installed `fastapi-offline` package, served under ASSETS, so the
pages work without internet and name no CDN.
"""

import html
import json
from functools import cache
from typing import Any

from fastapi import APIRouter
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse
from starlette.staticfiles import StaticFiles

from pixtools_contracts import asyncapi_document
from pixtools_gateway.api.deps import Shared

router = APIRouter(tags=["documentation"])

ASSETS = "/docs-assets"
_OPENAPI_URL = "/openapi.json"
# Both pages load only from this origin. Swagger UI's page starts it with an inline script, and both inject
# styles; ReDoc's bundle also shows a badge image from its vendor's CDN, which this policy keeps it from fetching.
_DOCS_POLICY = (
    "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; font-src 'self' data:; worker-src 'self' blob:; connect-src 'self'; "
    "frame-ancestors 'none'"
)


def assets() -> StaticFiles:
    """The Swagger UI and ReDoc scripts, styles and icon, from the installed package that ships them."""
    return StaticFiles(packages=[("fastapi_offline", "static")])


@router.get("/docs", include_in_schema=False)
async def swagger_ui() -> HTMLResponse:
    """Swagger UI over this deployment's OpenAPI document."""
    page = get_swagger_ui_html(
        openapi_url=_OPENAPI_URL,
        title="PixTools API",
        swagger_js_url=f"{ASSETS}/swagger-ui-bundle.js",
        swagger_css_url=f"{ASSETS}/swagger-ui.css",
        swagger_favicon_url=f"{ASSETS}/favicon.png",
        # The public validator badge would send the document's URL to a third party.
        swagger_ui_parameters={"validatorUrl": None},
    )
    page.headers["Content-Security-Policy"] = _DOCS_POLICY
    return page


@router.get("/redoc", include_in_schema=False)
async def redoc() -> HTMLResponse:
    """ReDoc over this deployment's OpenAPI document."""
    page = get_redoc_html(
        openapi_url=_OPENAPI_URL,
        title="PixTools API",
        redoc_js_url=f"{ASSETS}/redoc.standalone.js",
        redoc_favicon_url=f"{ASSETS}/favicon.png",
        with_google_fonts=False,
    )
    page.headers["Content-Security-Policy"] = _DOCS_POLICY
    return page


@cache
def _document(namespace: str, amqp_url: str) -> dict[str, Any]:
    # The URL's credentials never reach the document: only its host, port and virtual host are read.
    return asyncapi_document(namespace=namespace, amqp_url=amqp_url)


@router.get("/asyncapi.json", summary="AsyncAPI document of every exchange, routing key and payload")
async def asyncapi_json(shared: Shared) -> dict[str, Any]:
    """The AsyncAPI 3 document of this deployment: its exchange, queues, server and security scheme."""
    return _document(shared.settings.namespace, shared.settings.amqp_url)


@router.get("/asyncapi", summary="AsyncAPI document as a page", response_class=HTMLResponse)
async def asyncapi_page(shared: Shared) -> HTMLResponse:
    """A self-contained page listing channels and payload schemas."""
    document = _document(shared.settings.namespace, shared.settings.amqp_url)
    sections = []
    for _address, channel in document["channels"].items():
        message = next(iter(channel["messages"]))
        schema = document["components"]["schemas"][message]
        sections.append(
            f"<section><h2><code>{html.escape(channel['address'])}</code></h2>"
            f"<p>{html.escape(channel['description'])}</p>"
            f"<details><summary>{html.escape(message)} payload schema</summary>"
            f"<pre>{html.escape(json.dumps(schema, indent=2))}</pre></details></section>"
        )
    info = document["info"]
    page = (
        "<!doctype html><html><head><meta charset='utf-8'><title>PixTools events</title>"
        "<style>body{font-family:system-ui;max-width:60rem;margin:2rem auto}"
        "pre{background:#f4f4f4;padding:1rem}</style>"
        f"</head><body><h1>{html.escape(info['title'])} {html.escape(info['version'])}</h1>"
        f"<p>{html.escape(info['description'])}</p><p><a href='/asyncapi.json'>asyncapi.json</a></p>"
        + "".join(sections)
        + "</body></html>"
    )
    return HTMLResponse(page)
