"""Albums and regions in the browser: narrowing search and the library grid to an album (from a
menu, or past a menu's worth of albums from a field that suggests them), and searching with a
region of the photo drawn with the mouse or placed with the keyboard."""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from PIL import Image
from playwright.sync_api import Browser, Page, expect

from tests.conftest import heic, near_duplicate
from tests.e2e.conftest import Console, browsing, check_accessibility, file_payload
from tests.test_gunicorn import Server
from tests.test_region import side_by_side


def add_to_album(server: Server, album: str, images: dict[str, bytes]) -> None:
    for name, data in images.items():
        response = requests.post(
            f"{server.url}/api/v1/images", files={"image": (name, data)}, data={"album": album}, timeout=60
        )
        assert response.status_code == 201, response.text


def result_names(page: Page) -> list[str]:
    return page.locator(".results .grid .card .filename").all_inner_texts()


def test_an_album_narrows_the_search_and_the_library_grid(
    page: Page, server: Server, photos: dict[str, bytes], axe_source: str
) -> None:
    add_to_album(server, "animals/cats", {"chelsea.jpg": photos["chelsea"]})
    add_to_album(server, "animals", {"coffee.jpg": photos["coffee"]})
    add_to_album(server, 'space "far" \\ away', {"rocket.jpg": photos["rocket"], "moon.jpg": photos["moon"]})

    page.goto("/")
    page.get_by_label("Drop a photo here or choose a file").set_input_files(
        file_payload("cat.jpg", near_duplicate(photos["chelsea"]))
    )
    page.get_by_label("Album", exact=True).select_option(label='space "far" \\ away (2)')
    page.get_by_role("button", name="Search").click()
    expect(page.get_by_text('Searched the album space "far" \\ away.')).to_be_visible()
    assert sorted(result_names(page)) == ["moon.jpg", "rocket.jpg"]
    expect(page.get_by_label("Album", exact=True)).to_have_value('space "far" \\ away')  # kept for the next search
    page.get_by_label("Album", exact=True).select_option("animals")
    page.wait_for_function("() => document.querySelector('#search-image').files.length === 1")  # put back
    page.get_by_role("button", name="Search").click()
    expect(page.get_by_text("Searched the album animals.")).to_be_visible()
    assert result_names(page) == ["chelsea.jpg", "coffee.jpg"]  # the sub-album animals/cats too
    check_accessibility(page, axe_source)

    page.goto("/library")
    expect(page.locator(".grid .card")).to_have_count(4)
    page.get_by_label("Album", exact=True).select_option("animals/cats")  # submits on its own
    expect(page).to_have_url(re.compile(r"/library\?album=animals(%2F|/)cats$"))
    expect(page.get_by_text("1 image in the album animals/cats, newest first")).to_be_visible()
    expect(page.locator(".grid .card .filename")).to_have_text(["chelsea.jpg"])
    page.locator(".grid .card .card-thumb").first.click()
    expect(page.locator(".image-album")).to_have_text("animals/cats")
    page.locator(".image-album a").click()
    expect(page).to_have_url(re.compile(r"/library\?album=animals(%2F|/)cats$"))
    check_accessibility(page, axe_source)


def test_move_an_image_rename_its_album_following_the_job_then_move_images_selected_on_the_grid(
    page: Page, server: Server, photos: dict[str, bytes], axe_source: str
) -> None:
    add_to_album(server, "trips/2024", {"rocket.jpg": photos["rocket"], "moon.jpg": photos["moon"]})
    add_to_album(server, "kitchen", {"coffee.jpg": photos["coffee"]})

    page.goto("/library?album=kitchen")
    page.locator(".grid .card .card-thumb").first.click()
    page.get_by_label("Move to album").fill("trips/2024/snacks")
    page.get_by_role("button", name="Move", exact=True).click()
    expect(page.get_by_text("coffee.jpg is in the album trips/2024/snacks.")).to_be_visible()
    expect(page.locator(".image-album")).to_have_text("trips/2024/snacks")
    check_accessibility(page, axe_source)

    page.goto("/library?album=trips")
    expect(page.get_by_text("3 images in the album trips, newest first")).to_be_visible()
    page.get_by_label("New name").fill("travel")
    page.get_by_role("button", name="Move", exact=True).click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Album move")
    expect(page.get_by_text("trips to travel")).to_be_visible()
    expect(page.locator("[data-job-status]")).to_have_text("done", timeout=30_000)  # followed live
    check_accessibility(page, axe_source)
    page.get_by_role("link", name="See the library").click()
    expect(page.get_by_text("3 images in the album travel, newest first")).to_be_visible()
    page.get_by_label("Album", exact=True).select_option("travel/2024/snacks")
    expect(page.locator(".grid .card .filename")).to_have_text(["coffee.jpg"])
    listed = requests.get(f"{server.url}/api/v1/images/albums", timeout=10).json()
    assert {a["name"] for a in listed} == {"travel", "travel/2024", "travel/2024/snacks"}

    page.goto("/library?album=travel/2024")
    page.get_by_label("Select rocket.jpg").check()
    page.get_by_label("Select moon.jpg").check()
    page.get_by_label("Move the selected images to album").fill("space")
    page.get_by_role("button", name="Move selected").click()
    expect(page.get_by_text("Moved 2 images to the album space.")).to_be_visible()
    expect(page).to_have_url(re.compile(r"/library\?page=1&album=travel(%2F|/)2024$"))  # the page they were chosen on
    expect(page.locator(".grid .card .filename")).to_have_text(["coffee.jpg"])
    check_accessibility(page, axe_source)


@pytest.fixture()
def few_choices(tmp_path: Path, model_dir: Path) -> Iterator[Server]:
    """The app with menus of at most two albums, so that three make its pages suggest names instead."""
    served = Server(tmp_path / "data", model_dir, WEBAPP_SEARCH_PROCESSES="1", WEBAPP_ALBUM_CHOICES="2")
    yield served
    if served.proc.poll() is None:
        served.stop()


def test_past_a_menu_of_albums_a_field_suggests_them_as_you_type(
    browser: Browser, few_choices: Server, photos: dict[str, bytes], axe_source: str
) -> None:
    add_to_album(few_choices, "animals/cats", {"chelsea.jpg": photos["chelsea"]})
    add_to_album(few_choices, "animals/birds", {"coffee.jpg": photos["coffee"]})
    add_to_album(few_choices, "space", {"rocket.jpg": photos["rocket"], "moon.jpg": photos["moon"]})

    with browsing(browser, few_choices) as page:
        page.goto("/library")
        field = page.get_by_label("Album", exact=True)
        suggestions = page.locator("#library-album-names option")
        expect(suggestions).to_have_count(2)  # before typing: the top levels
        field.press_sequentially("CAT")
        expect(suggestions).to_have_count(1)
        expect(suggestions).to_have_attribute("value", "animals/cats")  # asked of the API as you type
        field.fill("animals")
        expect(suggestions).to_have_count(3)
        field.press("Enter")
        expect(page).to_have_url(re.compile(r"/library\?album=animals$"))
        expect(page.get_by_text("2 images in the album animals, newest first")).to_be_visible()
        expect(field).to_have_value("animals")
        check_accessibility(page, axe_source)

        page.goto("/")
        page.get_by_label("Drop a photo here or choose a file").set_input_files(
            file_payload("cat.jpg", near_duplicate(photos["chelsea"]))
        )
        page.get_by_label("Album", exact=True).fill("space")
        page.get_by_role("button", name="Search").click()
        expect(page.get_by_text("Searched the album space.")).to_be_visible()
        assert sorted(result_names(page)) == ["moon.jpg", "rocket.jpg"]
        expect(page.get_by_label("Album", exact=True)).to_have_value("space")  # kept for the next search
        check_accessibility(page, axe_source)


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
    add_to_album(server, "", {"rocket.jpg": photos["rocket"]})
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
    for name in ("chelsea", "rocket", "coffee", "moon"):
        add_to_album(server, "", {f"{name}.jpg": photos[name]})
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
    for name in ("chelsea", "rocket", "coffee"):
        add_to_album(server, "", {f"{name}.jpg": photos[name]})
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
