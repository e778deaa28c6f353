"""Albums in the browser: narrowing search and the library grid to an album (from a menu, or past a
menu's worth of albums from a field that suggests them), and moving images between albums."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from playwright.sync_api import Browser, Page, expect

from tests.conftest import near_duplicate
from tests.e2e.conftest import browsing, check_accessibility, file_payload
from tests.test_gunicorn import Server


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
    page.get_by_label("Make it the cover of").select_option("animals")  # not coffee.jpg, the newest there
    page.get_by_role("button", name="Set cover").click()
    expect(page.get_by_text("chelsea.jpg is the cover of the album animals.")).to_be_visible()
    expect(page.get_by_role("button", name="Show its newest image instead (animals)")).to_be_visible()
    check_accessibility(page, axe_source)
    chelsea = page.url.rsplit("/", 1)[1]
    page.get_by_role("link", name="animals/cats", exact=True).click()  # the path's last level; "animals" leads above
    expect(page).to_have_url(re.compile(r"/library\?album=animals(%2F|/)cats$"))
    check_accessibility(page, axe_source)

    page.get_by_role("link", name="Albums", exact=True).click()  # the tree, a level at a time
    expect(page.locator(".album-grid .card .filename")).to_have_text(["animals", 'space "far" \\ away'])
    expect(page.get_by_text("4 images in the library · 2 albums")).to_be_visible()
    covers = page.locator(".album-grid .card-thumb img")
    expect(covers).to_have_count(2)
    expect(covers.first).to_have_attribute("src", f"/api/v1/images/{chelsea}/thumbnail")  # the chosen one
    page.wait_for_function("() => [...document.querySelectorAll('.album-grid img')].every(i => i.naturalWidth > 0)")
    check_accessibility(page, axe_source)
    page.get_by_role("link", name="1 sub-album of animals").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("animals")
    expect(page.locator(".album-grid .card .filename")).to_have_text(["cats"])
    check_accessibility(page, axe_source)
    page.get_by_role("link", name="cats").click()
    expect(page).to_have_url(re.compile(r"/library\?album=animals(%2F|/)cats$"))
    page.go_back()
    page.get_by_role("navigation", name="Album path").get_by_role("link", name="Albums").click()
    expect(page).to_have_url(re.compile(r"/albums$"))
    page.get_by_label("Find an album").fill("CAT")
    page.get_by_role("button", name="Find").click()
    expect(page.locator(".album-grid .card .filename")).to_have_text(["animals/cats"])
    expect(page.get_by_text("1 album whose name holds “CAT”")).to_be_visible()
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
    # The select submits itself once the page's deferred script is in: shown is not yet loaded.
    page.wait_for_load_state()
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


def test_delete_an_album_following_the_job_then_undo_the_deletion(
    page: Page, server: Server, photos: dict[str, bytes], axe_source: str
) -> None:
    add_to_album(server, "trips/2024", {"rocket.jpg": photos["rocket"], "moon.jpg": photos["moon"]})
    add_to_album(server, "kitchen", {"coffee.jpg": photos["coffee"]})

    page.goto("/library?album=trips")
    page.get_by_role("link", name="Delete the album trips…").click()
    expect(page.get_by_role("heading", name="Delete the album trips?")).to_be_visible()
    check_accessibility(page, axe_source)
    page.get_by_label("To confirm, type the number of images").fill("2")
    page.get_by_role("button", name="Delete the album").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Deletion")
    expect(page.locator("[data-job-status]")).to_have_text("done", timeout=30_000)  # followed live
    assert requests.get(f"{server.url}/api/v1/stats", timeout=10).json()["count"] == 1

    page.reload()  # a finished deletion offers its undo
    page.get_by_role("link", name="Undo this deletion…").click()
    page.get_by_label("To confirm, type the number of images").fill("2")
    page.get_by_role("button", name="Restore them").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Restore")
    expect(page.locator("[data-job-status]")).to_have_text("done", timeout=60_000)
    page.get_by_role("link", name="See the library").click()
    expect(page.get_by_text("3 images, newest first")).to_be_visible()


@pytest.fixture()
def few_choices(tmp_path: Path, model_dir: Path) -> Iterator[Server]:
    """The app with menus of at most two albums, so that three make its pages suggest names instead."""
    served = Server(tmp_path / "data", model_dir, WEBAPP_SEARCH_PROCESSES="0", WEBAPP_ALBUM_CHOICES="2")
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
