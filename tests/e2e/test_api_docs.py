"""The interactive API docs: Swagger UI served by the app itself, usable with no internet."""

from __future__ import annotations

import json
from urllib.parse import urlsplit

from playwright.sync_api import Page, Route, expect

from tests.conftest import near_duplicate
from tests.e2e.conftest import add_images, check_accessibility, file_payload, photo_files
from tests.test_gunicorn import Server


def test_swagger_ui_loads_offline_and_try_it_out_searches(
    page: Page, server: Server, photos: dict[str, bytes], axe_source: str
) -> None:
    add_images(server, photo_files(photos, "coffee", "chelsea", "rocket", "moon"))
    elsewhere: list[str] = []

    def offline(route: Route) -> None:
        # Anything not served by the app itself would fail without internet: refuse and note it.
        if route.request.url.startswith(server.url) or urlsplit(route.request.url).scheme in ("data", "blob"):
            route.continue_()
        else:
            elsewhere.append(route.request.url)
            route.abort()

    page.context.route("**/*", offline)
    page.goto("/api/docs")
    expect(page.get_by_role("heading", name="Reverse image search", level=2)).to_be_visible()
    operation = page.locator("#operations-search-post_api_v1_search")
    operation.locator(".opblock-summary-control").click()
    operation.get_by_role("button", name="Try it out").click()
    operation.locator('input[type="file"]').set_input_files(file_payload("moon.jpg", near_duplicate(photos["moon"])))
    operation.get_by_role("button", name="Execute").click()

    live = operation.locator(".live-responses-table .response")
    expect(live.locator(".response-col_status")).to_have_text("200", timeout=30_000)
    body = json.loads(live.locator(".response-col_description pre.microlight").first.inner_text())
    assert body["results"][0]["filename"] == "moon.jpg"
    assert elsewhere == []
    check_accessibility(page, axe_source)
    page.get_by_role("link", name="← Reverse image search").click()
    expect(page.get_by_role("heading", name="Find similar images")).to_be_visible()
