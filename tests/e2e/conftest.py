"""Browser fixtures: Debian's Chromium, driven by Playwright, against the app under Gunicorn.

Every page a test opens fails the test on a console error or an uncaught exception. Screenshots go
to artifacts/screenshots/ (git-ignored); axe-core comes from the npm registry (`make install-e2e`).
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import requests
from playwright.sync_api import (
    Browser,
    ConsoleMessage,
    FilePayload,
    JSHandle,
    Page,
    Playwright,
    ViewportSize,
    expect,
    sync_playwright,
)

from tests.test_gunicorn import Server, wait_until
from webapp.config import ROOT

CHROMIUM = Path("/usr/bin/chromium")  # Debian's package: Playwright cannot download browsers here
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
AXE = Path(__file__).parent / "node_modules" / "axe-core" / "axe.min.js"
SCREENSHOTS = ROOT / "artifacts" / "screenshots"
VIEWPORTS: dict[str, ViewportSize] = {"desktop": {"width": 1280, "height": 800}, "phone": {"width": 390, "height": 844}}
SERIOUS = ("serious", "critical")

expect.set_options(timeout=15_000)  # a busy CI machine may need more than Playwright's 5 s


@pytest.fixture(scope="session")
def playwright() -> Iterator[Playwright]:
    """Start Playwright's driver once."""
    with sync_playwright() as p:
        yield p


@pytest.fixture(scope="session")
def browser(playwright: Playwright) -> Iterator[Browser]:
    """Launch headless Chromium once for the session."""
    if not CHROMIUM.is_file():
        pytest.fail(f"{CHROMIUM} is missing: `make install-e2e` installs Debian's chromium")
    chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
    yield chromium
    chromium.close()


@pytest.fixture(scope="session")
def axe_source() -> str:
    """Return axe-core's script, installed from the npm registry by `make install-e2e`."""
    if not AXE.is_file():
        pytest.fail(f"{AXE} is missing: run `make install-e2e` (npm ci in tests/e2e)")
    return AXE.read_text()


@pytest.fixture()
def server(tmp_path: Path, model_dir: Path) -> Iterator[Server]:
    """Serve the app under Gunicorn on a free loopback port, on an empty data folder.

    With no query helper, not the three of two cores: a page's searches come one at a time, and a
    query alone is embedded in the web worker, so a helper would only be started and stopped, at
    1.5-2 s of a core each time (tests/test_gunicorn.py and tests/test_query_helpers.py run them).
    """
    served = Server(tmp_path / "data", model_dir, WEBAPP_SEARCH_PROCESSES="0")
    yield served
    if served.proc.poll() is None:
        served.stop()


class Console:
    """The errors a browser context logged; a test may expect an error page's own status."""

    def __init__(self) -> None:
        self.errors: list[str] = []
        self.expected: set[tuple[str, int]] = set()

    def expect_error_page(self, path: str, status: int) -> None:
        """Allow the console line Chromium logs for a page at ``path`` answered with ``status``."""
        self.expected.add((path, status))

    def on_console(self, message: ConsoleMessage) -> None:
        """Record an error message unless the test said that page's status was expected."""
        if message.type != "error":
            return
        path = urlsplit(message.location.get("url", "")).path
        if any(path == p and f"status of {s} " in message.text for p, s in self.expected):
            return
        self.errors.append(f"console error ({message.location.get('url')}): {message.text}")


@contextmanager
def browsing(
    browser: Browser,
    server: Server,
    viewport: str = "desktop",
    console: Console | None = None,
    timezone_id: str | None = None,
) -> Iterator[Page]:
    """Open a fresh browser context on the app; fail if any page logs an error or throws."""
    console = console or Console()
    phone = viewport == "phone"
    context = browser.new_context(
        base_url=server.url,
        viewport=VIEWPORTS[viewport],
        is_mobile=phone,
        has_touch=phone,
        device_scale_factor=1,
        timezone_id=timezone_id,
    )
    context.set_default_timeout(30_000)
    context.on("console", console.on_console)
    context.on("weberror", lambda error: console.errors.append(f"uncaught error: {error.error}"))
    page = context.new_page()
    try:
        yield page
    finally:
        context.close()
    assert not console.errors, "\n".join(console.errors)


@pytest.fixture()
def console() -> Console:
    """Return the console of the ``page`` fixture's browser context."""
    return Console()


@pytest.fixture()
def page(browser: Browser, server: Server, console: Console) -> Iterator[Page]:
    """Return a desktop-sized page on the app (no console errors allowed)."""
    with browsing(browser, server, console=console) as opened:
        yield opened


def check_accessibility(page: Page, axe_source: str) -> None:
    """Run axe-core on the page as it is; fail on any serious or critical violation."""
    if not page.evaluate("() => typeof window.axe === 'object'"):
        page.evaluate(axe_source)  # through the DevTools protocol: the app's CSP stays as it is
    result = page.evaluate("() => axe.run(document, {resultTypes: ['violations']})")
    serious = [v for v in result["violations"] if v["impact"] in SERIOUS]
    report = [f"{v['id']} ({v['impact']}): {v['help']} at {[n['target'] for n in v['nodes']][:5]}" for v in serious]
    assert not serious, f"axe on {page.url}:\n" + "\n".join(report)


def load_all_images(page: Page) -> list[str]:
    """Load the lazy images too; return the sources of those that failed to load."""
    return list(
        page.evaluate(
            """() => Promise.all([...document.images].map(img => {
                img.loading = "eager";
                return img.decode().then(() => null, () => img.currentSrc || img.src);
            })).then(failed => failed.filter(Boolean))"""
        )
    )


def screenshot(page: Page, name: str) -> Path:
    """Save a full-page screenshot as artifacts/screenshots/<name>-<desktop|phone>.png."""
    assert not load_all_images(page), f"images that did not load on {page.url}"
    size = page.viewport_size or VIEWPORTS["desktop"]
    viewport = "phone" if size["width"] < 600 else "desktop"
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}-{viewport}.png"
    page.screenshot(path=str(path), full_page=True, animations="disabled")
    return path


@contextmanager
def library_server(folder: Path, model_dir: Path, images: dict[str, bytes]) -> Iterator[Server]:
    """Serve a library of ``images`` for a module's tests to share (no query helper, as ``server``).

    For tests that only search: a search stores nothing, so each finds the library as it was, and
    the module pays one server's start and stop (5-10 s on a busy machine), not one a test.
    """
    served = Server(folder / "data", model_dir, WEBAPP_SEARCH_PROCESSES="0")
    try:
        add_images(served, images)
        yield served
    finally:
        if served.proc.poll() is None:
            served.stop()


def add_images(server: Server, images: dict[str, bytes]) -> dict[str, str]:
    """Add images through the API; return their ids by file name."""
    ids = {}
    for name, data in images.items():
        response = requests.post(f"{server.url}/api/v1/images", files={"image": (name, data)}, timeout=60)
        assert response.status_code == 201, response.text
        ids[name] = response.json()["id"]
    return ids


def run_job(server: Server, images: dict[str, bytes]) -> dict[str, Any]:
    """Add images as one background job through the API; wait for it and return its final state."""
    files = [("files", (name, data)) for name, data in images.items()]
    job = requests.post(f"{server.url}/api/v1/jobs", files=files, timeout=60).json()
    url = f"{server.url}{job['url']}"
    wait_until(lambda: requests.get(url, timeout=10).json()["status"] not in ("queued", "running"))
    return dict(requests.get(url, timeout=10).json())


def file_payload(name: str, data: bytes, mime: str = "image/jpeg") -> FilePayload:
    """Describe a file for Playwright's set_input_files, as if picked from the disk."""
    return {"name": name, "mimeType": mime, "buffer": data}


def transfer(page: Page, files: dict[str, bytes], mime: str = "image/jpeg") -> JSHandle:
    """Build a DataTransfer holding files in the page, as a drag from the desktop or a copy would."""
    payload = [{"name": n, "data": base64.b64encode(d).decode(), "type": mime} for n, d in files.items()]
    return page.evaluate_handle(
        """files => {
            const transfer = new DataTransfer();
            for (const f of files) {
                const bytes = Uint8Array.from(atob(f.data), c => c.charCodeAt(0));
                transfer.items.add(new File([bytes], f.name, {type: f.type}));
            }
            return transfer;
        }""",
        payload,
    )


def photo_files(photos: dict[str, bytes], *names: str) -> dict[str, bytes]:
    """Return some of the bundled photos as {file name: JPEG bytes}."""
    return {f"{name}.jpg": photos[name] for name in names}
