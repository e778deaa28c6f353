"""Searching in the browser: choosing, dropping or pasting a photo, the keyboard, results, errors."""

from __future__ import annotations

import base64
import io
import re
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from playwright.sync_api import Page, expect

from tests.conftest import WIDE_GAMUT_PHOTO, heic, near_duplicate
from tests.e2e.conftest import Console, check_accessibility, file_payload, library_server, photo_files, transfer
from tests.test_gunicorn import Server

LIBRARY = ("coffee", "chelsea", "rocket", "astronaut", "moon", "camera", "clock")
IMAGE_PAGE = re.compile(r"/images/[0-9a-f]{64}$")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, model_dir: Path, photos: dict[str, bytes]) -> Iterator[Server]:
    """Serve one library of LIBRARY to every test here."""
    with library_server(tmp_path_factory.mktemp("search"), model_dir, photo_files(photos, *LIBRARY)) as served:
        yield served


def scores(page: Page) -> list[float]:
    """Read the similarity percentages the result cards show, in page order."""
    texts = page.locator(".grid .card .score").all_inner_texts()
    return [float(re.search(r"([\d.]+)% similarity", text).group(1)) for text in texts]


def test_choose_a_file_and_see_the_ranked_results_beside_it(
    page: Page, server: Server, photos: dict[str, bytes], axe_source: str
) -> None:
    page.goto("/")
    expect(page.get_by_text("7 images in the library")).to_be_visible()
    page.get_by_label("Drop a photo here or choose a file").set_input_files(
        file_payload("my cat.jpg", near_duplicate(photos["chelsea"]))
    )
    expect(page.locator(".search-form .dropzone-file")).to_have_text("Selected: my cat.jpg")
    expect(page.locator(".search-form .dropzone-preview")).to_be_visible()
    page.get_by_label("Results").select_option("5")
    page.get_by_role("button", name="Search").click()

    expect(page).to_have_url(re.compile(r"/search$"))
    expect(page.get_by_role("heading", name=re.compile(r"^5 results in \d"))).to_be_visible()
    query = page.get_by_role("img", name="Your photo: my cat.jpg")
    expect(query).to_be_visible()
    cards = page.locator(".results .grid .card")
    expect(cards).to_have_count(5)
    # The query sits beside its results on a desktop screen, not above them.
    query_box, grid_box = query.bounding_box(), page.locator(".results .grid").bounding_box()
    assert query_box and grid_box and query_box["x"] + query_box["width"] <= grid_box["x"]
    assert query_box["y"] < grid_box["y"] + grid_box["height"] / 2

    expect(cards.first.locator(".filename")).to_have_text("chelsea.jpg")
    found = scores(page)
    assert found == sorted(found, reverse=True) and found[0] > 80 > found[-1], found
    expect(cards.first.locator(".score-verdict")).to_have_text("Very similar")
    expect(cards.last.locator(".score-verdict")).to_have_text("Not much alike")
    for card in cards.all():
        thumbnail = card.locator(".card-thumb img")
        expect(thumbnail).to_have_attribute("alt", re.compile(r"\.jpg$"))
        assert thumbnail.evaluate("img => img.decode().then(() => img.naturalWidth)") > 0
        expect(card.locator(".card-thumb")).to_have_attribute("href", IMAGE_PAGE)
    check_accessibility(page, axe_source)

    # The best hit's page, then "more like this" from there.
    cards.first.locator(".card-thumb").click()
    expect(page).to_have_url(IMAGE_PAGE)
    expect(page.get_by_role("heading", level=1)).to_have_text("chelsea.jpg")
    similar = page.locator(".similar .grid .card")
    expect(similar).to_have_count(len(LIBRARY) - 1)
    assert "chelsea.jpg" not in similar.locator(".filename").all_inner_texts()
    first_similar = similar.first.locator(".filename").inner_text()
    similar.first.locator(".card-thumb").click()
    expect(page.get_by_role("heading", level=1)).to_have_text(first_similar)
    expect(page.locator(".similar .grid .card .filename").filter(has_text="chelsea.jpg")).to_have_count(1)
    check_accessibility(page, axe_source)


def test_search_with_a_phone_photo_in_heic(page: Page, server: Server, photos: dict[str, bytes]) -> None:
    asked: list[str] = []  # the server's JPEG of the photo is for drawing a region: not asked for without one
    page.on("request", lambda request: asked.append(request.url) if request.url.endswith("/picture") else None)
    page.goto("/")
    photo = heic(Image.open(io.BytesIO(near_duplicate(photos["chelsea"]))))
    page.get_by_label("Drop a photo here or choose a file").set_input_files(
        file_payload("IMG_0042.HEIC", photo, "image/heic")
    )
    expect(page.locator(".search-form .dropzone-file")).to_have_text("Selected: IMG_0042.HEIC")
    expect(page.locator(".search-form .dropzone-preview")).to_have_count(0)  # Chromium shows no HEIC: no broken image
    page.get_by_role("button", name="Search").click()
    expect(page.get_by_role("heading", name=re.compile(r"^7 results in \d"))).to_be_visible()
    query = page.get_by_role("img", name="Your photo: IMG_0042.HEIC")
    assert query.evaluate("img => img.decode().then(() => img.naturalWidth)") > 0  # a JPEG the server made
    expect(page.locator(".results .grid .card").first.locator(".filename")).to_have_text("chelsea.jpg")
    assert asked == []


def test_a_wide_gamut_photo_shows_in_its_own_colours_beside_its_results(page: Page, server: Server) -> None:
    # The results page shows the query as the server's JPEG of it. Without the photo's colour
    # profile Chromium showed Adobe RGB's values as sRGB: 16 px blocks 19 levels off at p95.
    original = WIDE_GAMUT_PHOTO.read_bytes()
    page.goto("/")
    page.get_by_label("Drop a photo here or choose a file").set_input_files(file_payload("rocket.jpg", original))
    page.get_by_role("button", name="Search").click()
    query = page.get_by_role("img", name="Your photo: rocket.jpg")
    expect(query).to_be_visible()
    width, height = query.evaluate("img => img.decode().then(() => [img.naturalWidth, img.naturalHeight])")
    draw = """async ([src, width, height]) => {
        const img = new Image();
        img.src = src;
        await img.decode();
        const canvas = Object.assign(document.createElement("canvas"), {width, height});
        canvas.getContext("2d").drawImage(img, 0, 0, width, height);
        return canvas.toDataURL("image/png");
    }"""
    original_url = "data:image/jpeg;base64," + base64.b64encode(original).decode()
    blocks = []
    for src in (query.get_attribute("src"), original_url):  # each as Chromium shows it, at the same size
        drawn = base64.b64decode(page.evaluate(draw, [src, width, height]).partition(",")[2])
        pixels = np.asarray(Image.open(io.BytesIO(drawn)).convert("RGB"), dtype=np.float64)
        rows, cols = height // 16, width // 16
        blocks.append(pixels[: rows * 16, : cols * 16].reshape(rows, 16, cols, 16, 3).mean(axis=(1, 3)))
    off = np.abs(blocks[0] - blocks[1]).max(axis=2)
    assert np.percentile(off, 95) < 8, np.percentile(off, 95)


def test_drop_a_photo_on_the_search_box(page: Page, server: Server, photos: dict[str, bytes]) -> None:
    page.goto("/")
    zone = page.locator(".search-form .dropzone")
    dragged = transfer(page, {"rocket copy.jpg": near_duplicate(photos["rocket"])})
    zone.dispatch_event("dragenter", {"dataTransfer": dragged})
    expect(zone).to_have_class(re.compile(r"\bdragover\b"))  # the drop target lights up
    zone.dispatch_event("drop", {"dataTransfer": dragged})
    expect(zone).not_to_have_class(re.compile(r"\bdragover\b"))
    expect(zone.locator(".dropzone-file")).to_have_text("Selected: rocket copy.jpg")
    page.get_by_role("button", name="Search").click()
    expect(page.locator(".results .grid .card .filename").first).to_have_text("rocket.jpg")


def test_paste_a_photo_to_search_at_once(page: Page, server: Server, photos: dict[str, bytes]) -> None:
    page.goto("/")
    pasted = transfer(page, {"image.png": near_duplicate(photos["moon"])})
    with page.expect_navigation(url=re.compile(r"/search$")):
        page.evaluate(
            "data => document.body.dispatchEvent(new ClipboardEvent('paste', {clipboardData: data, bubbles: true}))",
            pasted,
        )
    expect(page.get_by_role("img", name="Your photo: image.png")).to_be_visible()
    expect(page.locator(".results .grid .card .filename").first).to_have_text("moon.jpg")


def test_search_with_the_keyboard_alone_shows_that_it_is_busy(
    page: Page, server: Server, photos: dict[str, bytes]
) -> None:
    # Listening from the start has Chromium hand file dialogs to Playwright before any key is pressed.
    page.on("filechooser", lambda chooser: None)
    page.goto("/")
    for _ in range(12):  # skip link, brand, the five menu links, then the search box
        page.keyboard.press("Tab")
        if page.evaluate("() => document.activeElement.id") == "search-image":
            break
    chooser = page.locator("#search-image")
    expect(chooser).to_be_focused()
    outline = chooser.evaluate("el => getComputedStyle(el).outlineStyle + ' ' + getComputedStyle(el).outlineWidth")
    assert outline.split()[0] != "none" and outline.split()[1] != "0px", f"no visible focus: {outline}"
    with page.expect_file_chooser() as picked:
        page.keyboard.press("Enter")
    picked.value.set_files(file_payload("clock.jpg", near_duplicate(photos["clock"])))
    page.keyboard.press("Tab")
    expect(page.get_by_label("Results")).to_be_focused()
    page.keyboard.press("Tab")
    button = page.get_by_role("button", name="Search")
    expect(button).to_be_focused()

    # Whatever the button shows while the search runs is noted where the next page can read it.
    page.evaluate(
        """() => {
            const button = document.querySelector(".search-form button[type=submit]");
            new MutationObserver(() => sessionStorage.setItem("busy", JSON.stringify(
                [button.getAttribute("aria-busy"), button.disabled, button.className]
            ))).observe(button, {attributes: true});
        }"""
    )
    page.keyboard.press("Enter")
    expect(page.locator(".results .grid .card .filename").first).to_have_text("clock.jpg")
    busy = page.evaluate("() => JSON.parse(sessionStorage.getItem('busy'))")
    assert busy == ["true", True, "button button-primary is-loading"]


def test_a_file_that_is_not_an_image_gets_a_readable_error(
    page: Page, server: Server, console: Console, axe_source: str
) -> None:
    console.expect_error_page("/search", 422)
    page.goto("/")
    page.get_by_label("Drop a photo here or choose a file").set_input_files(
        file_payload("holiday.jpg", b"these are my holiday notes, not a photo")
    )
    page.get_by_role("button", name="Search").click()
    heading = page.get_by_role("heading", level=1)
    expect(heading).to_contain_text("422")
    message = page.locator(".error-page p").first.inner_text()
    assert "image" in message.lower() and "Traceback" not in page.content(), message
    check_accessibility(page, axe_source)
    page.get_by_role("link", name="Back to search").click()
    expect(page.get_by_role("heading", name="Find similar images")).to_be_visible()
