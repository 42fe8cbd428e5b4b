"""Browser fixtures: Debian's Chromium driven by Playwright, cut off from everything but loopback.

No browser is downloaded: Playwright launches the system's `chromium` (`.ci/run` installs it). Every request to
another host is refused and recorded, so a test can assert that a page needed nothing from the internet. A test
that fails leaves a screenshot of its page and prints where. Tests name `page` after their stack fixtures.
"""

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import Browser, Page, Playwright, Route, sync_playwright

CHROMIUM = os.environ.get("PIXTOOLS_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
LOOPBACK = {"127.0.0.1", "localhost", "::1", "[::1]"}


class OffsiteRequests(list[str]):
    """URLs the page tried to load from hosts other than loopback (each refused)."""


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()  # type: ignore[attr-defined]
    if report.when == "call":
        item.stash[_FAILED] = report.failed


_FAILED = pytest.StashKey[bool]()


# Function-scoped and requested last: Playwright's sync API keeps an event loop running in this thread, so the
# stack, tenant and database fixtures (some of them async) must be set up before it starts and torn down after.
@pytest.fixture
def playwright() -> Iterator[Playwright]:
    assert Path(CHROMIUM).exists(), f"no Chromium at {CHROMIUM}: apt-get install chromium (as .ci/run does)"
    with sync_playwright() as running:
        yield running


@pytest.fixture
def browser(playwright: Playwright) -> Iterator[Browser]:
    launched = playwright.chromium.launch(executable_path=CHROMIUM, headless=True)
    try:
        yield launched
    finally:
        launched.close()


@pytest.fixture
def offsite() -> OffsiteRequests:
    return OffsiteRequests()


@pytest.fixture
def page(browser: Browser, offsite: OffsiteRequests, request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1280, "height": 1000})

    def only_loopback(route: Route) -> None:
        url = route.request.url
        if urlsplit(url).hostname in LOOPBACK:
            route.continue_()
        else:
            offsite.append(url)
            route.abort("blockedbyclient")

    context.route("**/*", only_loopback)
    opened = context.new_page()
    opened.set_default_timeout(30_000)
    try:
        yield opened
    finally:
        if request.node.stash.get(_FAILED, False):
            shot = tmp_path / "failure.png"
            opened.screenshot(path=str(shot), full_page=True)
            print(f"\nscreenshot of the failed page: {shot}")
        context.close()
