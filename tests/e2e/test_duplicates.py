"""Reviewing near-duplicates in the browser: scan, see each group side by side, keep one and delete the
rest, take one out (not a copy), or keep them all."""

from __future__ import annotations

import io
import re

import requests
from PIL import Image
from playwright.sync_api import Page, expect

from tests.e2e.conftest import add_images, check_accessibility
from tests.test_gunicorn import Server, wait_until


def smaller(data: bytes) -> bytes:
    """Return the photo at 90% of its size, re-encoded: a copy about 0.98 alike."""
    img = Image.open(io.BytesIO(data)).convert("RGB")
    out = io.BytesIO()
    img.resize((int(img.width * 0.9), int(img.height * 0.9))).save(out, "JPEG", quality=85)
    return out.getvalue()


def test_review_groups_keep_one_take_one_out_keep_all(
    page: Page, server: Server, photos: dict[str, bytes], axe_source: str
) -> None:
    ids = add_images(
        server,
        {
            "chelsea.jpg": photos["chelsea"],
            "chelsea-copy.jpg": smaller(photos["chelsea"]),
            "rocket.jpg": photos["rocket"],
            "rocket-copy.jpg": smaller(photos["rocket"]),
            "coffee.jpg": photos["coffee"],
            "coffee-copy.jpg": smaller(photos["coffee"]),
        },
    )
    page.goto("/duplicates")
    expect(page.get_by_text("The library has not been scanned yet.")).to_be_visible()
    page.get_by_role("button", name="Scan the library").click()
    expect(page).to_have_url(re.compile(r"/jobs/[0-9a-f]{32}$"))
    expect(page.locator('[data-job-field="status"]').first).to_have_text("done", timeout=60_000)

    page.get_by_role("link", name="Duplicates").click()
    groups = page.locator(".duplicate-group")
    expect(groups).to_have_count(3)
    expect(page.locator(".results-toolbar .muted")).to_contain_text(
        re.compile(r"^3 groups of images at least\s+96% alike, or 80% with the same layout, or 50% with very nearly")
    )
    first = groups.filter(has_text="chelsea.jpg")
    cards = first.locator(".card")
    expect(cards).to_have_count(2)
    left, right = (card.bounding_box() for card in cards.all())
    assert left and right and left["y"] == right["y"] and left["x"] < right["x"]  # side by side
    expect(cards.first).to_contain_text("Suggested keeper")
    expect(cards.first).to_contain_text("451 × 300 px")  # the full-size photo, first
    expect(cards.nth(1)).to_contain_text(re.compile(r"405 × 270 px · [\d.]+ KiB"))
    expect(cards.nth(1)).to_contain_text(re.compile(r"9\d\.\d% alike"))
    expect(first.get_by_label("Keep this one").first).to_be_checked()
    check_accessibility(page, axe_source)

    # The copy beside the keeper, large, then both in one frame: each flip shows the other.
    first.get_by_role("link", name="Compare with the keeper: chelsea-copy.jpg").click()
    expect(page.get_by_role("heading", name="Compare near-duplicates")).to_be_visible()
    captions = page.locator(".compare-side figcaption")
    expect(captions).to_have_text([re.compile(r"Suggested keeper\s*chelsea\.jpg"), re.compile(r"This image\s*chel")])
    frame = page.locator(".blink-frame img")
    expect(frame.first).to_be_visible()
    expect(frame.nth(1)).to_be_hidden()
    page.get_by_role("button", name="Flip to chelsea-copy.jpg").click()
    expect(frame.first).to_be_hidden()
    expect(frame.nth(1)).to_be_visible()
    expect(page.get_by_role("button", name="Flip to chelsea.jpg")).to_have_attribute("aria-pressed", "true")
    page.keyboard.press("f")  # and back, by its key
    expect(frame.first).to_be_visible()
    expect(frame.nth(1)).to_be_hidden()
    check_accessibility(page, axe_source)
    page.set_viewport_size({"width": 390, "height": 844})
    width = page.evaluate("() => [document.documentElement.scrollWidth, window.innerWidth]")
    assert width[0] <= width[1], f"the compare page is wider than a phone's screen: {width}"
    page.set_viewport_size({"width": 1280, "height": 800})
    page.get_by_role("link", name="The whole group").click()
    expect(page.get_by_role("heading", name="2 near-duplicates")).to_be_visible()
    page.goto("/duplicates")

    first.get_by_label("Keep this one").nth(1).check()  # keep the copy instead
    first.get_by_role("button", name=re.compile("Keep the selected image")).click()
    expect(page.get_by_role("heading", name="Keep chelsea-copy.jpg and delete 1 other image?")).to_be_visible()
    expect(page.locator(".doomed li")).to_have_text([re.compile(r"^chelsea\.jpg · 451 × 300 px")])
    check_accessibility(page, axe_source)
    page.get_by_role("button", name="Delete 1 image").click()

    expect(page).to_have_url(re.compile(r"/duplicates$"))
    resolved = "Kept one image and deleted 1 other of the group; it waits in the trash 30 days."
    expect(page.get_by_text(resolved)).to_be_visible()
    expect(page.locator(".duplicate-group")).to_have_count(2)
    expect(page.locator(".duplicate-group").filter(has_text="rocket.jpg")).to_have_count(1)
    assert requests.get(f"{server.url}/api/v1/images/{ids['chelsea.jpg']}", timeout=10).status_code == 404
    assert requests.get(f"{server.url}/api/v1/images/{ids['chelsea-copy.jpg']}", timeout=10).status_code == 200
    assert requests.get(f"{server.url}/api/v1/stats", timeout=10).json()["count"] == 5
    check_accessibility(page, axe_source)  # the message with its Undo button
    page.get_by_role("button", name="Undo: restore it").click()  # changed one's mind: back in the library
    expect(page.get_by_text("Restored 1 image to the library.")).to_be_visible()
    expect(page).to_have_url(re.compile(r"/duplicates$"))
    assert requests.get(f"{server.url}/api/v1/images/{ids['chelsea.jpg']}", timeout=10).status_code == 200
    assert requests.delete(f"{server.url}/api/v1/images/{ids['chelsea.jpg']}", timeout=10).status_code == 204
    page.reload()
    expect(page.locator(".duplicate-group")).to_have_count(2)

    # The coffee's copy is not one (say): taken out, it leaves its group with one image, so no group.
    coffee = page.locator(".duplicate-group").filter(has_text="coffee.jpg")
    coffee.get_by_role("button", name="Not a copy: take coffee-copy.jpg out of the group").click()
    expect(page.get_by_text("Took coffee-copy.jpg out of the group")).to_be_visible()
    expect(page.locator(".duplicate-group")).to_have_count(1)

    # The rocket and its copy are kept both: the group goes, and the next scan leaves them apart.
    page.get_by_role("button", name="Not copies: keep all 2").click()
    expect(page).to_have_url(re.compile(r"/duplicates$"))
    expect(page.get_by_text("Kept all 2 images of the group")).to_be_visible()
    expect(page.locator(".duplicate-group")).to_have_count(0)
    page.get_by_role("button", name="Scan the library").click()
    expect(page.locator('[data-job-field="status"]').first).to_have_text("done", timeout=60_000)
    page.get_by_role("link", name="Duplicates").click()
    expect(page.get_by_text("No near-duplicates.")).to_be_visible()
    expect(page.get_by_text("2 pairs of images kept apart (not copies)")).to_be_visible()
    assert requests.get(f"{server.url}/api/v1/stats", timeout=10).json()["count"] == 5


def test_compare_each_image_with_the_keeper_by_keys_and_take_the_ones_that_are_not_copies_out(
    page: Page, server: Server, photos: dict[str, bytes]
) -> None:
    ids = add_images(
        server,
        {
            "chelsea.jpg": photos["chelsea"],
            "chelsea-copy.jpg": smaller(photos["chelsea"]),
            "chelsea-copy-2.jpg": smaller(smaller(photos["chelsea"])),
        },
    )
    job = requests.post(f"{server.url}/api/v1/duplicates/scan", timeout=10).json()
    wait_until(lambda: requests.get(f"{server.url}{job['url']}", timeout=10).json()["status"] == "done")
    (group,) = requests.get(f"{server.url}/api/v1/duplicates", timeout=10).json()
    keeper, first, second = (m["id"] for m in group["members"])
    assert keeper == ids["chelsea.jpg"]

    # The keys work once app.js has run: it shows the Flip button. A key pressed before is lost.
    flip = page.get_by_role("button", name=re.compile("^Flip to "))
    page.goto(f"/duplicates/{group['id']}/compare?image={first}")
    expect(page.locator(".pagination-status")).to_have_text("1 of 2")
    expect(flip).to_be_visible()
    page.keyboard.press("ArrowRight")
    expect(page).to_have_url(re.compile(f"image={second}&beside={keeper}$"))
    expect(page.locator(".pagination-status")).to_have_text("2 of 2")
    expect(flip).to_be_visible()
    page.keyboard.press("ArrowLeft")
    expect(page).to_have_url(re.compile(f"image={first}&beside={keeper}$"))

    # Not a copy: out of the group, and on to the next image beside the keeper.
    page.get_by_role("button", name=re.compile("^Not a copy: take chelsea-copy")).click()
    expect(page).to_have_url(re.compile(f"image={second}&beside={keeper}$"))
    expect(page.get_by_text(re.compile(r"Took chelsea-copy(-2)?\.jpg out of the group"))).to_be_visible()
    expect(page.locator(".pagination-status")).to_have_text("1 of 1")
    page.get_by_role("button", name=re.compile("^Not a copy: take chelsea-copy")).click()
    expect(page).to_have_url(re.compile(r"/duplicates$"))  # no group left
    expect(page.get_by_text("No near-duplicates.")).to_be_visible()
