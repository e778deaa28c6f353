"""Searching with a region of the photo in the browser: drawn with the mouse, placed with the
keyboard, on a photo the browser cannot show, outside the photo; and the photo put back on the
results page however soon it was searched."""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image
from playwright.sync_api import Page, expect

from tests.conftest import heic
from tests.e2e.conftest import Console, file_payload, library_server, photo_files
from tests.test_gunicorn import Server
from tests.test_region import side_by_side

LIBRARY = ("chelsea", "rocket", "coffee", "moon")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, model_dir: Path, photos: dict[str, bytes]) -> Iterator[Server]:
    """Serve one library of LIBRARY to every test here."""
    with library_server(tmp_path_factory.mktemp("regions"), model_dir, photo_files(photos, *LIBRARY)) as served:
        yield served


def result_names(page: Page) -> list[str]:
    return page.locator(".results .grid .card .filename").all_inner_texts()


# IndexedDB as on a slow disk: each open answers 300 ms late (the events forwarded as they come).
SLOW_INDEXED_DB = """
(() => {
    const open = IDBFactory.prototype.open;
    IDBFactory.prototype.open = function (...args) {
        const factory = this, late = {result: null, onsuccess: null, onupgradeneeded: null, onerror: null};
        setTimeout(() => {
            const real = open.apply(factory, args);
            for (const name of ["onupgradeneeded", "onsuccess", "onerror"]) {
                real[name] = (event) => { late.result = real.result; if (late[name]) late[name](event); };
            }
        }, 300);
        return late;
    };
})();
"""


def test_the_photo_searched_a_moment_after_it_was_chosen_is_put_back_on_the_results_page(
    page: Page, server: Server, photos: dict[str, bytes]
) -> None:
    """The photo is kept as soon as it is chosen, and a search sent at once waits for it to be kept:
    kept at submit, it was lost whenever the results arrived before IndexedDB had written it."""
    page.add_init_script(SLOW_INDEXED_DB)
    page.goto("/")
    page.get_by_label("Drop a photo here or choose a file").set_input_files(file_payload("cat.jpg", photos["chelsea"]))
    page.get_by_role("button", name="Search").click()
    expect(page.get_by_role("heading", name="Your photo")).to_be_visible()
    page.wait_for_function("() => document.querySelector('#search-image').files.length === 1", timeout=5000)
    assert page.evaluate("() => document.querySelector('#search-image').files[0].name") == "cat.jpg"


def test_search_with_a_region_drawn_by_mouse_then_placed_by_keyboard(
    page: Page, server: Server, photos: dict[str, bytes], console: Console
) -> None:
    query = side_by_side(photos["chelsea"], photos["rocket"])  # 640 x 320: the cat left, the rocket right

    page.goto("/")
    page.get_by_label("Drop a photo here or choose a file").set_input_files(file_payload("both.jpg", query))
    page.get_by_text("Search with a region of the photo").click()
    editor = page.locator(".search-form .region-editor")
    expect(editor).to_be_visible()
    box = page.locator(".search-form .region-image").bounding_box()
    assert box is not None
    # Drag from the middle of the top edge to the bottom right corner: the rocket's half.
    page.mouse.move(box["x"] + box["width"] / 2 + 1, box["y"] + 1)
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] * 0.75, box["y"] + box["height"] / 2, steps=5)
    page.mouse.move(box["x"] + box["width"] - 1, box["y"] + box["height"] - 1, steps=5)
    page.mouse.up()
    expect(page.locator(".search-form .region-box")).to_be_visible()
    x, y, width, height = (int(page.get_by_label(label).input_value()) for label in ("Left", "Top", "Width", "Height"))
    assert 318 <= x <= 324 and y <= 3 and 314 <= width <= 322 and height >= 314, (x, y, width, height)
    page.get_by_role("button", name="Search").click()
    expect(page.get_by_text(re.compile(r"Searched the region at \(3\d\d, \d\)"))).to_be_visible()
    expect(page.locator(".query-figure .region-searched rect")).to_have_count(1)
    assert result_names(page)[0] == "rocket.jpg"

    # On the results page the photo is back in the form; the keyboard places a box on the cat.
    editor = page.locator(".search-form .region-editor")
    expect(editor).to_be_visible()
    editor.focus()
    editor.press("Delete")  # the rocket's box, kept from the last search, goes
    expect(page.get_by_label("Left")).to_have_value("")
    editor.press("ArrowDown")  # a box of half the photo in its middle: 160, 80, 320 x 160
    expect(page.get_by_label("Left")).to_have_value("160")
    for _ in range(13):
        editor.press("ArrowLeft")  # 13 px a step, stopping at the edge
    for _ in range(7):
        editor.press("ArrowUp")
    for _ in range(13):
        editor.press("Shift+ArrowDown")  # taller, up to the bottom edge
    assert [page.get_by_label(label).input_value() for label in ("Left", "Top", "Width", "Height")] == [
        "0",
        "0",
        "320",
        "320",
    ]
    page.get_by_role("button", name="Search").press("Enter")
    expect(page.get_by_text("Searched the region at (0, 0), 320 × 320 px.")).to_be_visible()
    assert result_names(page)[0] == "chelsea.jpg"


def test_a_region_drawn_on_a_phone_photo_this_browser_cannot_show(
    page: Page, server: Server, photos: dict[str, bytes], console: Console
) -> None:
    query = heic(Image.open(io.BytesIO(side_by_side(photos["chelsea"], photos["rocket"]))))  # 640 x 320

    page.goto("/")
    page.get_by_label("Drop a photo here or choose a file").set_input_files(
        file_payload("IMG_0042.HEIC", query, "image/heic")
    )
    page.get_by_text("Search with a region of the photo").click()
    editor = page.locator(".search-form .region-editor")
    expect(editor).to_be_visible()  # Chromium shows no HEIC: the server's JPEG of it
    picture = page.locator(".search-form .region-image")
    assert picture.evaluate("img => img.src.startsWith('blob:') && img.naturalWidth") == 640
    box = picture.bounding_box()
    assert box is not None
    page.mouse.move(box["x"] + box["width"] / 2 + 1, box["y"] + 1)  # the rocket's half
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] - 1, box["y"] + box["height"] - 1, steps=5)
    page.mouse.up()
    x, y, width, height = (int(page.get_by_label(label).input_value()) for label in ("Left", "Top", "Width", "Height"))
    assert 318 <= x <= 324 and y <= 3 and 314 <= width <= 322 and height >= 314, (x, y, width, height)
    page.get_by_role("button", name="Search").click()
    expect(page.get_by_text(re.compile(r"Searched the region at \(3\d\d, \d\)"))).to_be_visible()
    assert result_names(page)[0] == "rocket.jpg"
    expect(page.locator(".search-form .region-editor")).to_be_visible()  # put back, drawn by the server again


def test_a_region_outside_the_photo_is_a_clear_error_page(page: Page, server: Server, console: Console) -> None:
    page.goto("/")
    page.get_by_label("Drop a photo here or choose a file").set_input_files(file_payload("small.jpg", _small_jpeg()))
    page.get_by_text("Search with a region of the photo").click()
    for label, value in (("Left", "50"), ("Top", "0"), ("Width", "100"), ("Height", "10")):
        page.get_by_label(label).fill(value)
    console.expect_error_page("/search", 422)
    page.get_by_role("button", name="Search").click()
    expect(page.get_by_text(re.compile(r"is not inside the image \(64x64 pixels\)"))).to_be_visible()


def _small_jpeg() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (64, 64), (200, 30, 30)).save(out, "JPEG")
    return out.getvalue()
