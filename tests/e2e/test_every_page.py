"""Every page at desktop and phone size: accessible (axe-core), fits the screen, saved as a screenshot."""

from __future__ import annotations

import re

import pytest
import requests
from playwright.sync_api import Browser, Page, expect

from tests.conftest import noise_images
from tests.e2e.conftest import (
    VIEWPORTS,
    Console,
    add_images,
    browsing,
    check_accessibility,
    file_payload,
    photo_files,
    run_job,
    screenshot,
)
from tests.test_gunicorn import Server

LIBRARY = ("coffee", "chelsea", "rocket", "astronaut", "moon", "camera", "clock", "motorcycle")


def check(page: Page, name: str, axe_source: str) -> None:
    """Check the page as it is now (axe-core, no sideways scrolling), then save its screenshot."""
    check_accessibility(page, axe_source)
    width = page.evaluate("() => [document.documentElement.scrollWidth, window.innerWidth]")
    assert width[0] <= width[1], f"{page.url} is wider than the screen: {width}"
    screenshot(page, name)


@pytest.mark.parametrize("viewport", list(VIEWPORTS))
def test_every_page(viewport: str, browser: Browser, server: Server, photos: dict[str, bytes], axe_source: str) -> None:
    console = Console()
    console.expect_error_page("/jobs/no-such-job", 404)
    with browsing(browser, server, viewport, console) as page:
        page.goto("/")
        check(page, "home-empty", axe_source)
        page.goto("/library")
        check(page, "library-empty", axe_source)
        page.goto("/jobs")
        check(page, "jobs-empty", axe_source)
        page.goto("/albums")
        check(page, "albums-empty", axe_source)

        add_images(server, photo_files(photos, *LIBRARY))
        job = run_job(server, {**camera_files(6), "broken.jpg": b"not a photo", "again.jpg": photos["coffee"]})
        assert (job["added"], job["failed"], job["duplicates"]) == (6, 1, 1), job

        page.goto("/")
        check(page, "home", axe_source)
        page.get_by_label("Drop a photo here or choose a file").set_input_files(
            file_payload("street.jpg", photos["motorcycle"])
        )
        page.get_by_role("button", name="Search").click()
        expect(page.locator(".results .grid .card")).to_have_count(10)
        check(page, "results", axe_source)
        page.locator(".results .card-thumb").first.click()
        expect(page.get_by_role("heading", level=1)).to_have_text("motorcycle.jpg")
        check(page, "image", axe_source)
        page.get_by_role("link", name="Delete…").click()
        check(page, "image-delete", axe_source)

        page.goto("/add")
        check(page, "add", axe_source)
        page.get_by_role("link", name="check them").click()  # compare with the library, adding nothing
        check(page, "check", axe_source)
        files = [file_payload("mine.jpg", photos["coffee"]), file_payload("new.jpg", photos["coins"])]
        page.get_by_label("Drop photos here or choose files").set_input_files(files)
        page.get_by_role("button", name="Check files").click()
        expect(page.locator("[data-job-status]")).to_have_text("done")
        page.reload()  # the files found are listed as the page is made
        expect(page.get_by_role("row", name=re.compile(r"^mine\.jpg The same file"))).to_be_visible()
        expect(page.locator('[data-job-field="compared-new"]')).to_have_text("1")
        expect(page.get_by_role("button", name="Add the 1 new file")).to_be_visible()  # kept: no upload again
        check(page, "check-job", axe_source)
        page.goto(job["page_url"])
        expect(page.get_by_role("cell", name="broken.jpg")).to_be_visible()
        expect(page.get_by_role("row", name="again.jpg coffee.jpg")).to_be_visible()  # in the library as
        check(page, "job", axe_source)
        page.get_by_role("link", name="Undo this load…").click()
        expect(page.get_by_role("heading", name="Undo this load?")).to_be_visible()
        check(page, "job-undo", axe_source)
        page.goto("/jobs")
        check(page, "jobs", axe_source)
        page.goto("/library")
        check(page, "library", axe_source)
        page.get_by_role("link", name="Delete all images…").click()
        check(page, "library-clear", axe_source)
        page.get_by_role("link", name="Activity").click()  # the uploads and the job above
        expect(page.get_by_role("cell", name="POST /api/v1/jobs 202").first).to_be_visible()
        expect(page.locator("td time").first).to_have_text(re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC"))
        check(page, "activity", axe_source)
        page.goto("/trash")
        check(page, "trash-empty", axe_source)
        first = requests.get(f"{server.url}/api/v1/images", timeout=10).json()[0]
        assert requests.delete(f"{server.url}/api/v1/images/{first['id']}", timeout=10).status_code == 204
        page.goto("/library")
        page.get_by_role("link", name="Trash", exact=True).click()
        expect(page.get_by_role("button", name=f"Restore {first['filename']}")).to_be_visible()
        check(page, "trash", axe_source)
        page.get_by_role("link", name="Empty the trash…").click()
        check(page, "trash-empty-confirm", axe_source)
        page.goto("/jobs/no-such-job")
        expect(page.get_by_role("heading", level=1)).to_contain_text("404")
        check(page, "error", axe_source)
        page.goto("/api/docs")
        expect(page.locator(".opblock").first).to_be_visible()
        check(page, "api-docs", axe_source)
        icon = page.goto("/favicon.ico")  # asked for by browsers on their own, e.g. on image tabs
        assert icon and icon.ok and icon.headers["content-type"].startswith("image/svg+xml")


def camera_files(count: int) -> dict[str, bytes]:
    """Return small distinct images named as a camera names its files."""
    return {f"IMG_{i:04d}.jpg": data for i, data in enumerate(noise_images(count, seed=11, size=160))}
