"""Running the library in the browser: adding files and archives with live progress, paging, deleting."""

from __future__ import annotations

import io
import re
import zipfile
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import requests
from PIL import Image
from playwright.sync_api import Browser, Page, expect

from tests.conftest import noise_images
from tests.e2e.conftest import (
    Console,
    add_images,
    browsing,
    check_accessibility,
    file_payload,
    load_all_images,
    photo_files,
    run_job,
)
from tests.test_gunicorn import Server

# Notes every value the job page's progress bar takes, from the server's rendering on.
RECORD_PROGRESS = """
addEventListener("DOMContentLoaded", () => {
    const bar = document.querySelector("[data-job-progress]");
    const badge = document.querySelector("[data-job-status]");
    if (!bar || !badge) return;
    window.progressSeen = [[badge.textContent, bar.getAttribute("value"), bar.getAttribute("max")]];
    new MutationObserver(() => window.progressSeen.push([badge.textContent, bar.getAttribute("value"), bar.max]))
        .observe(bar, {attributes: true});
});
"""


def test_add_files_follow_the_progress_to_done_then_page_through_the_library(
    page: Page, server: Server, photos: dict[str, bytes], axe_source: str
) -> None:
    # 152 files, taken 64 at a time. The page's clock is Playwright's: each tick of it runs the page's
    # next poll of the job at once, so the page is seen many times while the job runs.
    files = [file_payload(f"noise-{i:03d}.jpg", data) for i, data in enumerate(noise_images(150, seed=3))]
    files += [file_payload(name, data) for name, data in photo_files(photos, "coffee", "rocket").items()]
    page.clock.install()
    page.add_init_script(RECORD_PROGRESS)
    page.goto("/add")
    page.get_by_label("Drop photos here or choose files").set_input_files(files)
    expect(page.locator("#add-files").locator("..").locator(".dropzone-file")).to_have_text("Selected: 152 files")
    page.get_by_role("button", name="Add files").click()

    expect(page).to_have_url(re.compile(r"/jobs/[0-9a-f]{32}$"))
    expect(page.get_by_text("The job has started")).to_be_visible()
    status = page.locator(".job-status .status")
    page.wait_for_function("() => Array.isArray(window.progressSeen)")  # set once the DOM is loaded
    for _ in range(3000):  # the page is never reloaded: it updates itself
        if status.inner_text() == "done":
            break
        renders = page.evaluate("() => window.progressSeen.length")
        page.clock.run_for(1000)
        page.wait_for_function(f"() => window.progressSeen.length > {renders}")
    expect(status).to_have_text("done")
    bar = page.get_by_role("progressbar", name="Progress")
    expect(bar).to_have_attribute("value", "152")
    expect(bar).to_have_attribute("max", "152")
    expect(page.locator('[data-job-field="processed"]')).to_have_text("152")
    expect(page.locator('[data-job-field="added"]')).to_have_text("152")
    expect(page.locator('[data-job-field="failed"]')).to_have_text("0")
    seen = page.evaluate("() => window.progressSeen")
    assert seen[0][0] in ("queued", "running"), f"the job had ended before its page showed: {seen}"
    values = [int(float(value)) for _, value, _ in seen if value is not None]
    assert values == sorted(values) and values[-1] == 152, seen
    assert any(0 < value < 152 for value in values), f"the bar never showed the job half way: {seen}"
    check_accessibility(page, axe_source)

    page.get_by_role("link", name="See the library").click()
    expect(page.get_by_text("152 images, newest first")).to_be_visible()
    cards = page.locator(".grid .card")
    expect(cards).to_have_count(48)
    pages = page.get_by_role("navigation", name="Library pages")
    expect(pages.get_by_text("Page 1 of 4")).to_be_visible()
    first_page = set(cards.locator(".filename").all_inner_texts())
    pages.get_by_role("link", name="Next →").click()
    expect(pages.get_by_text("Page 2 of 4")).to_be_visible()
    expect(cards).to_have_count(48)
    assert not first_page & set(cards.locator(".filename").all_inner_texts())
    page.goto("/library?page=4")
    expect(pages.get_by_text("Page 4 of 4")).to_be_visible()
    expect(cards).to_have_count(8)
    expect(pages.get_by_role("link", name="Next →")).to_have_count(0)  # shown, but not a link
    pages.get_by_role("link", name="← Previous").click()
    expect(pages.get_by_text("Page 3 of 4")).to_be_visible()


def test_add_an_archive_and_see_which_files_failed(page: Page, server: Server, photos: dict[str, bytes]) -> None:
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as zipped:
        zipped.writestr("holiday/coffee.jpg", photos["coffee"])
        zipped.writestr("holiday/more/chelsea.jpg", photos["chelsea"])
        zipped.writestr("broken.jpg", b"half a photo")
        zipped.writestr("notes.txt", b"not an image, so skipped")
    page.goto("/add")
    page.get_by_label("Drop a .zip file here or choose one").set_input_files(
        file_payload("holiday.zip", archive.getvalue(), "application/zip")
    )
    page.get_by_role("button", name="Add archive").click()

    expect(page.get_by_role("heading", level=1)).to_have_text("Zip archive")
    expect(page.locator(".job-status .status")).to_have_text("done", timeout=60_000)
    expect(page.locator('[data-job-field="added"]')).to_have_text("2")
    expect(page.locator('[data-job-field="failed"]')).to_have_text("1")
    failure = page.locator("[data-job-failures] tr")
    expect(failure).to_have_count(1)
    expect(failure.locator("td").first).to_have_text("broken.jpg")
    expect(failure.locator("td").last).not_to_be_empty()
    page.get_by_role("link", name="Jobs", exact=True).click()
    row = page.locator("tbody tr").first
    expect(row.get_by_role("link", name="Zip archive")).to_be_visible()
    expect(row.locator(".status")).to_have_text("done")


def test_delete_an_image_only_after_confirming(
    page: Page, server: Server, photos: dict[str, bytes], axe_source: str
) -> None:
    ids = add_images(server, photo_files(photos, "coffee", "chelsea", "rocket"))
    page.goto(f"/images/{ids['coffee.jpg']}")
    page.get_by_role("link", name="Delete…").click()
    expect(page.get_by_role("heading", name="Delete this image?")).to_be_visible()
    expect(page.get_by_role("img", name="coffee.jpg")).to_be_visible()
    check_accessibility(page, axe_source)
    page.get_by_role("link", name="Keep it").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("coffee.jpg")
    assert requests.get(f"{server.url}/api/v1/stats", timeout=10).json()["count"] == 3

    page.get_by_role("link", name="Delete…").click()
    page.get_by_role("button", name="Delete image").click()
    expect(page).to_have_url(re.compile(r"/library$"))
    expect(page.get_by_text("Moved coffee.jpg to the trash, where it stays 30 days.")).to_be_visible()
    expect(page.get_by_role("button", name="Undo: restore it")).to_be_visible()  # or, later, from the trash:
    expect(page.get_by_text("2 images, newest first")).to_be_visible()
    assert sorted(page.locator(".grid .filename").all_inner_texts()) == ["chelsea.jpg", "rocket.jpg"]
    assert requests.get(f"{server.url}/images/{ids['coffee.jpg']}", timeout=10).status_code == 404

    # Changed one's mind: the trash has it, with its thumbnail, and brings it back.
    page.get_by_role("link", name="Trash", exact=True).click()
    expect(page.get_by_text("1 deleted image, the latest deleted first.")).to_be_visible()
    thumb = page.get_by_role("img", name="coffee.jpg")
    expect(thumb).to_be_visible()
    assert thumb.evaluate("img => img.naturalWidth") > 0
    check_accessibility(page, axe_source)
    page.get_by_role("button", name="Restore coffee.jpg").click()
    expect(page.get_by_text("Restored coffee.jpg to the library.")).to_be_visible()
    expect(page.get_by_text("The trash is empty.")).to_be_visible()
    page.get_by_role("link", name="Library", exact=True).first.click()
    expect(page.get_by_text("3 images, newest first")).to_be_visible()
    assert requests.get(f"{server.url}/images/{ids['coffee.jpg']}", timeout=10).status_code == 200


def test_delete_the_images_selected_on_the_grid_then_undo(
    page: Page, server: Server, photos: dict[str, bytes], axe_source: str
) -> None:
    add_images(server, photo_files(photos, "coffee", "chelsea", "rocket"))
    page.goto("/library")
    page.get_by_role("checkbox", name="Select coffee.jpg").check()
    page.get_by_role("checkbox", name="Select rocket.jpg").check()
    page.get_by_role("button", name="Delete selected").click()
    expect(page.get_by_text("Moved 2 images to the trash, where they stay 30 days.")).to_be_visible()
    expect(page.get_by_text("1 image, newest first")).to_be_visible()
    assert page.locator(".grid .filename").all_inner_texts() == ["chelsea.jpg"]
    check_accessibility(page, axe_source)
    page.get_by_role("button", name="Undo: restore them").click()
    expect(page.get_by_text("3 images, newest first")).to_be_visible()
    assert requests.get(f"{server.url}/api/v1/stats", timeout=10).json()["count"] == 3


def test_download_the_library_then_the_images_selected_on_the_grid_as_zips(
    page: Page, server: Server, photos: dict[str, bytes]
) -> None:
    add_images(server, photo_files(photos, "coffee", "chelsea", "rocket"))
    page.goto("/library")
    with page.expect_download() as download:
        page.get_by_role("link", name="Download all (zip)").click()
    assert download.value.suggested_filename == "library.zip"
    with zipfile.ZipFile(download.value.path()) as archive:
        assert sorted(archive.namelist()) == ["chelsea.jpg", "coffee.jpg", "rocket.jpg"]
        assert archive.read("coffee.jpg") == photos["coffee"]
    page.get_by_role("checkbox", name="Select rocket.jpg").check()
    with page.expect_download() as download:
        page.get_by_role("button", name="Download selected").click()
    assert download.value.suggested_filename == "images.zip"
    with zipfile.ZipFile(download.value.path()) as archive:
        assert archive.namelist() == ["rocket.jpg"] and archive.read("rocket.jpg") == photos["rocket"]
    expect(page.get_by_text("3 images, newest first")).to_be_visible()  # the page stays as it was


def test_empty_the_library_after_typing_its_size_then_see_what_to_do(
    page: Page, server: Server, console: Console, photos: dict[str, bytes], axe_source: str
) -> None:
    add_images(server, photo_files(photos, "coffee", "chelsea", "rocket"))
    console.expect_error_page("/library/clear", 409)
    page.goto("/library")
    page.get_by_role("link", name="Delete all images…").click()
    confirm = page.get_by_label("To confirm, type the number of images")
    confirm.fill("2")
    page.get_by_role("button", name="Delete all images").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("409")
    expect(page.get_by_text("You typed 2, but the library has 3 images. Nothing was deleted.")).to_be_visible()
    page.go_back()
    confirm.fill("3")
    page.get_by_role("button", name="Delete all images").click()
    expect(page.get_by_text("Deleted all 3 images from the library.")).to_be_visible()

    # Every empty page says what to do next, with the link to do it.
    empty = page.locator(".empty-state")
    expect(empty).to_contain_text("The library is empty.")
    expect(empty.get_by_role("link", name="Add images")).to_have_attribute("href", "/add")
    check_accessibility(page, axe_source)
    page.get_by_role("link", name="Search", exact=True).click()
    expect(page.get_by_text("0 images in the library")).to_be_visible()
    expect(empty.get_by_role("link", name="Add images")).to_be_visible()
    page.get_by_label("Drop a photo here or choose a file").set_input_files(file_payload("cat.jpg", photos["chelsea"]))
    page.get_by_role("button", name="Search").click()
    expect(page.get_by_role("heading", name=re.compile("^0 results"))).to_be_visible()
    expect(empty).to_contain_text("No results: the library is empty.")
    page.get_by_role("link", name="Jobs", exact=True).click()
    expect(empty).to_contain_text("No jobs yet.")


def test_a_tiff_shows_on_its_page_as_a_jpeg_copy_and_downloads_as_it_came(
    page: Page, server: Server, photos: dict[str, bytes], axe_source: str
) -> None:
    scan, coffee = io.BytesIO(), Image.open(io.BytesIO(photos["coffee"]))
    coffee.save(scan, "TIFF")
    ids = add_images(server, {"scan.tiff": scan.getvalue(), **photo_files(photos, "rocket")})
    page.goto(f"/images/{ids['scan.tiff']}")
    expect(page.get_by_role("img", name="scan.tiff")).to_be_visible()
    assert load_all_images(page) == []  # Chromium shows no TIFF: the original was a broken image here
    assert page.get_by_role("img", name="scan.tiff").evaluate("img => img.naturalWidth") == coffee.width
    expect(page.get_by_text("Most browsers cannot show image/tiff files: this is a JPEG copy.")).to_be_visible()
    check_accessibility(page, axe_source)
    with page.expect_download() as download:
        page.get_by_role("link", name="Download the original").click()
    saved = download.value.path()
    assert download.value.suggested_filename == "scan.tiff" and saved.read_bytes() == scan.getvalue()


def test_times_show_in_the_readers_time_zone_with_utc_in_the_tooltip(
    browser: Browser, server: Server, photos: dict[str, bytes]
) -> None:
    """The server writes UTC ("2026-12-03 11:52 UTC"); a reader in India sees 17:22 there, UTC+5:30."""
    ids = add_images(server, photo_files(photos, "rocket"))
    run_job(server, photo_files(photos, "coffee"))
    with browsing(browser, server, timezone_id="Asia/Kolkata") as page:
        for path in (f"/images/{ids['rocket.jpg']}", "/jobs"):
            page.goto(path)
            shown = page.locator("time").first
            moment = datetime.fromisoformat(str(shown.get_attribute("datetime")))
            local = moment.astimezone(ZoneInfo("Asia/Kolkata")).strftime("%Y-%m-%d %H:%M")
            expect(shown).to_have_text(f"{local} UTC+5:30")
            assert shown.get_attribute("title") == moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC"), path
