"""Near-duplicate groups through the API (real model, Milvus Lite): a scan groups copies of a photo
and leaves distinct photos alone, the list narrows to an album, and resolving keeps one image."""

from __future__ import annotations

import io
import re
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from PIL import ExifTags, Image
from skimage import data as skdata
from sqlalchemy import select, update

from tests.conftest import csrf_token, near_duplicate, wait_for_job
from tests.test_api import upload
from tests.test_jobs import import_folder
from webapp.errors import StoreUnavailable
from webapp.runtime import EXTENSION
from webapp.services import review
from webapp.services.database import distinct_pairs, images
from webapp.services.duplicates import KIND, Duplicates
from webapp.services.fingerprints import FLOOR, from_bytes
from webapp.services.grouping import join
from webapp.services.jobs import local_owner
from webapp.services.keepers import camera_metadata


def halved(data: bytes) -> bytes:
    """Return the photo at half its size, re-encoded (a smaller copy of the same picture)."""
    img = Image.open(io.BytesIO(data)).convert("RGB")
    out = io.BytesIO()
    img.resize((img.width // 2, img.height // 2)).save(out, "JPEG", quality=80)
    return out.getvalue()


def reencoded(data: bytes) -> bytes:
    """Return the photo re-encoded at JPEG quality 60 (a copy nearly the same)."""
    out = io.BytesIO()
    Image.open(io.BytesIO(data)).convert("RGB").save(out, "JPEG", quality=60)
    return out.getvalue()


def bits(a: bytes | None, b: bytes | None) -> int:
    """Return how many bits two kept fingerprints differ by."""
    assert a is not None and b is not None
    first, second = from_bytes(a), from_bytes(b)
    assert first is not None and second is not None
    return (first.bits ^ second.bits).bit_count()


def add(client: FlaskClient, name: str, data: bytes, album: str = "") -> str:
    response = upload(client, "/api/v1/images", data, name, album=album)
    assert response.status_code == 201, response.json
    return str(response.json["id"])


def scan(client: FlaskClient) -> dict[str, Any]:
    response = client.post("/api/v1/duplicates/scan")
    assert response.status_code == 202, response.json
    job = wait_for_job(client, response.json["url"])
    assert job["status"] == "done" and job["kind"] == KIND, job
    return job


@pytest.fixture()
def library(app: Flask, client: FlaskClient, photos: dict[str, bytes]) -> dict[str, str]:
    """Two photos each with two near-duplicates, and three distinct photos (grouped at 0.90)."""
    app.extensions[EXTENSION].duplicates.threshold = 0.90  # the halved copies are about 0.95 alike
    ids = {
        "chelsea": add(client, "chelsea.jpg", photos["chelsea"], "cats"),
        "chelsea-small": add(client, "chelsea-small.jpg", halved(photos["chelsea"]), "cats/copies"),
        "chelsea-crop": add(client, "chelsea-crop.jpg", near_duplicate(photos["chelsea"]), "other"),
        "rocket": add(client, "rocket.jpg", photos["rocket"]),
        "rocket-small": add(client, "rocket-small.jpg", halved(photos["rocket"])),
    }
    for name in ("coffee", "moon", "coins"):
        ids[name] = add(client, f"{name}.jpg", photos[name])
    return ids


def test_a_scan_groups_copies_and_leaves_distinct_photos_alone(client: FlaskClient, library: dict[str, str]) -> None:
    job = scan(client)
    assert (job["processed"], job["total"]) == (8, 8)
    response = client.get("/api/v1/duplicates")
    assert response.status_code == 200
    groups = response.json
    assert [g["size"] for g in groups] == [3, 2]  # the largest first
    names = [[m["filename"] for m in g["members"]] for g in groups]
    assert names[0][0] == "chelsea.jpg" and set(names[0]) == {"chelsea.jpg", "chelsea-small.jpg", "chelsea-crop.jpg"}
    assert names[1] == ["rocket.jpg", "rocket-small.jpg"]  # the keeper: most pixels
    for group in groups:
        keeper, *others = group["members"]
        assert keeper["keeper"] and keeper["similarity"] == 1.0 and not any(m["keeper"] for m in others)
        assert all(0.8 <= m["similarity"] < 1.0 for m in others), [(m["filename"], m["similarity"]) for m in others]
        assert group["best"] == max(m["similarity"] for m in others)
        assert all(m["bytes"] > 0 and m["width"] > 0 for m in group["members"])
    assert client.get(groups[0]["url"]).json["members"] == groups[0]["members"]


def camera_exif(make: str = "Canon", taken: bool = True, position: bool = True) -> Image.Exif:
    """Return the EXIF a camera writes: its maker and model, the date taken, and a GPS position."""
    exif = Image.Exif()
    exif[ExifTags.Base.Make], exif[ExifTags.Base.Model] = make, "EOS R6"
    if taken:
        exif.get_ifd(ExifTags.IFD.Exif)[ExifTags.Base.DateTimeOriginal] = "2024:06:01 12:00:00"
    if position:
        gps = exif.get_ifd(ExifTags.IFD.GPSInfo)
        gps[ExifTags.GPS.GPSLatitudeRef], gps[ExifTags.GPS.GPSLatitude] = "N", (48.0, 51.0, 30.0)
    return exif


def compare_url(group: dict[str, Any]) -> str:
    """Return the page comparing a group's images with its keeper (the image's id to add)."""
    return f"/duplicates/{group['id']}/compare"


def shown_facts(html: str) -> list[tuple[str, str]]:
    """Return the compare page's camera data and fill of each side, left then right."""
    return re.findall(r"<dt>Camera data</dt><dd>([^<]*)</dd>\s*<dt>Fill</dt><dd>([^<]*)</dd>", html)


def test_the_suggested_keeper_has_the_most_pixels_then_what_its_camera_wrote(
    client: FlaskClient, photos: dict[str, bytes]
) -> None:
    """A photo with its camera's EXIF, its pixels re-saved without it at a higher JPEG quality (a
    larger file: the suggestion until 2026-12-04), and half of it with the EXIF: the photo is kept."""
    img = Image.open(io.BytesIO(photos["chelsea"])).convert("RGB")
    files = {}
    for name, picture, quality, exif in [
        ("camera.jpg", img, 80, camera_exif()),
        ("resaved.jpg", img, 95, Image.Exif()),
        ("half.jpg", img.resize((img.width // 2, img.height // 2)), 80, camera_exif()),
    ]:
        out = io.BytesIO()
        picture.save(out, "JPEG", quality=quality, exif=exif)
        files[name] = out.getvalue()
        add(client, name, files[name])
    assert len(files["resaved.jpg"]) > len(files["camera.jpg"])
    scan(client)
    groups = client.get("/api/v1/duplicates").json
    assert [g["members"][0]["filename"] for g in groups] == ["camera.jpg"], groups  # one group, the photo first
    resaved = next(m for m in groups[0]["members"] if m["filename"] == "resaved.jpg")
    html = client.get(f"{compare_url(groups[0])}?image={resaved['id']}").get_data(as_text=True)
    assert shown_facts(html) == [("date taken, position, camera", "none"), ("none", "none")]


@pytest.mark.parametrize("kind", ["JPEG", "PNG", "WEBP"])
def test_camera_metadata_counts_the_date_the_position_and_the_camera(tmp_path: Path, kind: str) -> None:
    picture = Image.fromarray(skdata.chelsea())
    for expected, exif in [(3, camera_exif()), (1, camera_exif(taken=False, position=False)), (0, Image.Exif())]:
        path = tmp_path / f"{expected}.{kind.lower()}"
        picture.save(path, kind, exif=exif)
        assert camera_metadata(path) == expected, (kind, expected)
    (tmp_path / "broken").write_bytes(b"\xff\xd8\xff\xe1 not an EXIF block")
    assert camera_metadata(tmp_path / "broken") == 0 and camera_metadata(tmp_path / "gone.jpg") == 0


def test_copies_the_model_finds_less_alike_than_the_threshold_are_grouped_by_their_layout(
    app: Flask, client: FlaskClient, photos: dict[str, bytes]
) -> None:
    """At the default threshold: the model puts both copies below it (rocket at JPEG quality 30: 0.91, halved: 0.94)."""
    assert app.extensions[EXTENSION].duplicates.threshold == 0.96
    rocket = Image.open(io.BytesIO(photos["rocket"])).convert("RGB")
    poor = io.BytesIO()
    rocket.save(poor, "JPEG", quality=30)
    ids = {
        "rocket": add(client, "rocket.jpg", photos["rocket"]),
        "rocket-poor": add(client, "rocket-poor.jpg", poor.getvalue()),
        "rocket-small": add(client, "rocket-small.jpg", halved(photos["rocket"])),
    }
    for name in ("coffee", "chelsea", "astronaut"):
        ids[name] = add(client, f"{name}.jpg", photos[name])
    scan(client)
    groups = client.get("/api/v1/duplicates").json
    assert [sorted(m["filename"] for m in g["members"]) for g in groups] == [
        ["rocket-poor.jpg", "rocket-small.jpg", "rocket.jpg"]
    ]
    similarity = {m["filename"]: m["similarity"] for m in groups[0]["members"]}
    assert similarity["rocket-poor.jpg"] < 0.94, similarity  # the model alone would have left it out
    assert all(m["same_layout"] for m in groups[0]["members"])  # why they are in the group all the same
    page = client.get("/duplicates").get_data(as_text=True)
    assert page.count("alike · same&nbsp;layout") == 2, page  # both copies say so; the keeper is the keeper


def grouped_with_their_copies(
    client: FlaskClient,
    photos: dict[str, bytes],
    copies: dict[str, Any],
    copy: Callable[[Image.Image, Any], Image.Image],
    suffix: str,
) -> list[list[dict[str, Any]]]:
    """Add each photo named in ``copies`` and ``copy`` of it with the value given there
    (``name-suffix.jpg``), and a distinct photo, scan, and return the groups: one per photo, with
    its copy; the member that is not the keeper first."""
    for name, how in copies.items():
        add(client, f"{name}.jpg", photos[name])
        out = io.BytesIO()
        copy(Image.open(io.BytesIO(photos[name])).convert("RGB"), how).save(out, "JPEG", quality=90)
        add(client, f"{name}-{suffix}.jpg", out.getvalue())
    add(client, "coffee.jpg", photos["coffee"])
    scan(client)
    groups = client.get("/api/v1/duplicates").json
    expected = [sorted([f"{name}-{suffix}.jpg", f"{name}.jpg"]) for name in sorted(copies)]
    assert sorted(sorted(m["filename"] for m in g["members"]) for g in groups) == expected
    return [sorted(g["members"], key=lambda m: m["keeper"]) for g in groups]


def test_a_photo_saved_sideways_is_grouped_with_it(app: Flask, client: FlaskClient, photos: dict[str, bytes]) -> None:
    """At the default threshold: the model finds the cat and the coins turned a quarter 0.82 to 0.89
    alike, and the rocket less than FLOOR, too unlike to be asked for as a neighbour; each one's
    layout is its photo's turned (services/fingerprints.py)."""
    assert app.extensions[EXTENSION].duplicates.threshold == 0.96
    turns = {"chelsea": Image.Transpose.ROTATE_270, "coins": Image.Transpose.ROTATE_90}
    turns["rocket"] = Image.Transpose.ROTATE_90
    groups = grouped_with_their_copies(client, photos, turns, Image.Image.transpose, "sideways")
    for other, keeper in groups:
        assert other["height"] == keeper["width"] and other["same_layout"], (other, keeper)
        assert other["similarity"] < 0.9, other  # the model alone would have left it out
    rocket = next(other for other, _ in groups if other["filename"].startswith("rocket"))
    assert rocket["similarity"] < FLOOR, rocket  # found by the fingerprints' comparison alone


def test_a_photo_scanned_again_a_few_degrees_askew_is_grouped_with_it(
    app: Flask, client: FlaskClient, photos: dict[str, bytes]
) -> None:
    """At the default threshold: rotated 3 degrees with white corners, the clock and the rocket are
    0.87 to 0.90 alike to the model and 14 to 16 bits apart, but their centres are laid out the same;
    the cells are less than FLOOR alike, too unlike to be asked for as a neighbour, and their
    centres very nearly the same (services/fingerprints.py: VERY_CLOSE)."""
    assert app.extensions[EXTENSION].duplicates.threshold == 0.96
    degrees = {"clock": 3, "rocket": -3, "cell": -3}

    def askew(img: Image.Image, angle: int) -> Image.Image:
        return img.rotate(angle, Image.Resampling.BICUBIC, expand=True, fillcolor="white")

    groups = grouped_with_their_copies(client, photos, degrees, askew, "askew")
    for other, keeper in groups:
        assert other["same_layout"] and other["similarity"] < 0.92, other
        # the photo is the suggested keeper: the copy has more pixels, but its corners are fill
        assert other["filename"].endswith("-askew.jpg") and other["width"] > keeper["width"], (other, keeper)
    cell = next(other for other, _ in groups if other["filename"].startswith("cell"))
    assert cell["similarity"] < FLOOR, cell  # found by looking the fingerprints up alone
    group = next(g for g in client.get("/api/v1/duplicates").json if cell in g["members"])
    html = client.get(f"{compare_url(group)}?image={cell['id']}").get_data(as_text=True)
    keeper_facts, copy_facts = shown_facts(html)
    assert keeper_facts == ("none", "none") and copy_facts[0] == "none", (keeper_facts, copy_facts)
    assert re.fullmatch(r"\d+% of the pixels: corners or bars of one colour", copy_facts[1]), copy_facts


def test_images_added_before_fingerprints_get_theirs_from_the_first_scan(
    app: Flask, client: FlaskClient, library: dict[str, str]
) -> None:
    """Each added image's fingerprint is kept as it is added; a library of an earlier release has
    none, or 16 bytes without the turned layouts (9b4fc11 to 8747bcf), and its first scan makes them
    from the thumbnails (or originals), and keeps them: those of images with a look-alike for their
    pairs, the others to compare the pictures turned (landscapes with portraits)."""
    catalog = app.extensions[EXTENSION].library.catalog
    added = catalog.fingerprints(library.values())
    assert len(added) == 8 and all(data is not None and len(data) == 48 for data in added.values())
    with app.extensions[EXTENSION].database.connect() as conn:
        for i, (sha, data) in enumerate(sorted(added.items())):
            earlier = data[:16] if i % 2 and data else None  # the bits and the mirrored bits, as they were kept
            conn.execute(update(images).where(images.c.sha256 == sha).values(fingerprint=earlier))
    assert {len(data) if data else 0 for data in catalog.fingerprints(library.values()).values()} == {0, 16}
    job = scan(client)
    assert [g["size"] for g in client.get("/api/v1/duplicates").json] == [3, 2]
    assert job["processed"] == job["total"] > 8, job  # the 8 vectors, then the fingerprints the pairs did not make
    made = catalog.fingerprints(library.values())
    assert {len(data) if data else 0 for data in made.values()} == {48}
    grouped = {name: sha for name, sha in library.items() if name.startswith(("chelsea", "rocket"))}
    apart = {name: bits(added[sha], made[sha]) for name, sha in grouped.items()}
    assert max(apart.values()) <= 4, apart  # from the thumbnail or the original, as from the pixels added


def test_a_bulk_load_fingerprints_a_jpeg_from_its_draft_and_a_png_from_its_thumbnail(
    app: Flask, client: FlaskClient, photos: dict[str, bytes]
) -> None:
    """A folder job leaves a JPEG's thumbnail to its first view and makes another format's at once:
    each fingerprint comes from the pixels at hand, and they agree."""
    folder = import_folder(app, "bulk")
    photo = Image.open(io.BytesIO(photos["chelsea"])).convert("RGB")
    big = photo.resize((photo.width * 3, photo.height * 3))  # so the JPEG decodes as a reduced draft
    big.save(folder / "chelsea.jpg", quality=90)
    big.save(folder / "chelsea.png")
    (folder / "coffee.jpg").write_bytes(photos["coffee"])
    response = client.post("/api/v1/jobs", json={"folder": str(folder)})
    assert response.status_code == 202, response.json
    assert wait_for_job(client, response.json["url"])["added"] == 3
    catalog = app.extensions[EXTENSION].library.catalog
    with app.extensions[EXTENSION].database.connect() as conn:
        ids = dict(conn.execute(select(images.c.sha256, images.c.fingerprint)).all())
    assert len(ids) == 3 and None not in ids.values()
    assert catalog.fingerprints(ids) == ids
    scan(client)
    groups = client.get("/api/v1/duplicates").json
    assert [sorted(m["filename"] for m in g["members"]) for g in groups] == [["chelsea.jpg", "chelsea.png"]]
    jpeg_id, png_id = (m["id"] for m in sorted(groups[0]["members"], key=lambda m: m["filename"]))
    assert bits(ids[jpeg_id], ids[png_id]) <= 4


def test_close_ups_alike_to_the_model_but_laid_out_differently_are_not_grouped(app: Flask, client: FlaskClient) -> None:
    """Two corners of one lawn: about 0.96 alike to the model, 30 bits apart."""
    app.extensions[EXTENSION].duplicates.threshold = 0.90
    lawn = Image.fromarray(skdata.grass()).convert("RGB")
    side = round(lawn.width * 0.4)
    corners = {}
    for name, left in (("lawn-left.jpg", 0), ("lawn-right.jpg", lawn.width - side)):
        out = io.BytesIO()
        lawn.crop((left, lawn.height - side, left + side, lawn.height)).save(out, "JPEG", quality=92)
        corners[name] = add(client, name, out.getvalue())
    similar = client.get(f"/api/v1/images/{corners['lawn-left.jpg']}/similar", query_string={"top_k": 1}).json
    assert similar["results"][0]["id"] == corners["lawn-right.jpg"] and similar["results"][0]["score"] > 0.93
    scan(client)
    assert client.get("/api/v1/duplicates").json == []


def test_the_list_narrows_to_an_album_and_pages(client: FlaskClient, library: dict[str, str]) -> None:
    scan(client)
    in_cats = client.get("/api/v1/duplicates", query_string={"album": "cats"}).json
    assert [g["size"] for g in in_cats] == [3]
    assert client.get("/api/v1/duplicates", query_string={"album": "nope"}).json == []
    second = client.get("/api/v1/duplicates", query_string={"page": 2, "page_size": 1})
    assert [g["size"] for g in second.json] == [2] and '"total": 2' in second.headers["X-Pagination"]
    far = client.get("/api/v1/duplicates", query_string={"page": 99999999})
    assert far.status_code == 200 and far.json == []


def test_keeping_one_deletes_the_others_everywhere(app: Flask, client: FlaskClient, library: dict[str, str]) -> None:
    scan(client)
    group = client.get("/api/v1/duplicates").json[0]
    keep = library["chelsea-small"]
    response = client.post(f"{group['url']}/resolve", json={"keep": keep})
    assert response.status_code == 200, response.json
    assert sorted(response.json["deleted"]) == sorted([library["chelsea"], library["chelsea-crop"]])
    for gone in response.json["deleted"]:
        assert client.get(f"/api/v1/images/{gone}").status_code == 404
        assert client.get(f"/api/v1/images/{gone}/thumbnail").status_code == 404
    assert client.get(f"/api/v1/images/{keep}").status_code == 200
    assert [g["size"] for g in client.get("/api/v1/duplicates").json] == [2]  # the group went with them
    assert client.get(group["url"]).status_code == 404
    assert app.test_cli_runner().invoke(args=["check"]).output.endswith("consistent\n")


def distinct_rows(app: Flask) -> list[tuple[str, str]]:
    with app.extensions[EXTENSION].database.connect() as conn:
        return [(row.first, row.second) for row in conn.execute(select(distinct_pairs))]


def test_keeping_all_of_a_group_keeps_its_images_and_no_later_scan_groups_them(
    app: Flask, client: FlaskClient, library: dict[str, str]
) -> None:
    scan(client)
    cats = client.get("/api/v1/duplicates").json[0]
    shown = [m["id"] for m in cats["members"]]
    response = client.post(f"{cats['url']}/keep-all", json={"shown": shown})
    assert response.status_code == 200, response.json
    assert sorted(response.json["kept"]) == sorted(shown) == sorted(library[n] for n in library if "chelsea" in n)
    assert [g["size"] for g in client.get("/api/v1/duplicates").json] == [2] and len(distinct_rows(app)) == 3
    assert client.get("/api/v1/stats").json["count"] == 8
    job = scan(client)  # the cat and its copies stay apart; the rocket's group comes back
    assert [sorted(m["filename"] for m in g["members"]) for g in client.get("/api/v1/duplicates").json] == [
        ["rocket-small.jpg", "rocket.jpg"]
    ], job
    assert client.delete(f"/api/v1/images/{library['chelsea-crop']}").status_code == 204
    assert distinct_rows(app) == [tuple(sorted([library["chelsea"], library["chelsea-small"]]))]  # its pairs went
    rockets = client.get("/api/v1/duplicates").json[0]
    assert client.post(f"{rockets['url']}/keep-all").status_code == 200  # no body: as the group is
    assert client.get("/api/v1/duplicates").json == [] and len(distinct_rows(app)) == 2
    assert client.delete("/api/v1/images", query_string={"confirm": 7}).status_code == 200
    assert distinct_rows(app) == []  # an emptied library forgets them


@pytest.mark.parametrize(
    ("body", "status", "says"),
    [
        ({"shown": ["0" * 64]}, 409, "changed since it was shown"),
        ({"shown": ["xyz"]}, 422, "64 hex"),
        ({"shown": "0" * 64}, 422, "Not a valid list"),
        ({"also": 1}, 422, "Unknown field"),
    ],
)
def test_bad_keep_alls_are_4xx_and_mark_nothing(
    app: Flask, client: FlaskClient, library: dict[str, str], body: dict[str, Any], status: int, says: str
) -> None:
    scan(client)
    group = client.get("/api/v1/duplicates").json[0]
    response = client.post(f"{group['url']}/keep-all", json=body)
    assert response.status_code == status, response.json
    assert says in response.json["message"] + str(response.json.get("errors", "")), response.json
    assert distinct_rows(app) == [] and [g["size"] for g in client.get("/api/v1/duplicates").json] == [3, 2]
    assert client.post("/api/v1/duplicates/99/keep-all", json={}).status_code == 404


def sides(html: str) -> list[tuple[str, str]]:
    """Return the compare page's two sides, left then right: (label, file name)."""
    side = r'<figure class="compare-side">\s*<figcaption>\s*<strong>([^<]+)</strong>\s*<span[^>]*>([^<]+)<'
    return re.findall(side, html)


def test_the_compare_page_shows_each_image_beside_the_keeper_one_after_another(
    client: FlaskClient, library: dict[str, str]
) -> None:
    scan(client)
    group = client.get("/api/v1/duplicates").json[0]  # the cat's three
    keeper, first, second = group["members"]
    url = f"/duplicates/{group['id']}/compare"
    listed = client.get(f"/duplicates/{group['id']}").get_data(as_text=True)
    assert f"{url}?image={first['id']}" in listed and f"{url}?image={second['id']}" in listed
    assert f"{url}?image={keeper['id']}" not in listed  # the keeper is what the others are compared with

    html = client.get(url, query_string={"image": first["id"]}).get_data(as_text=True)
    assert sides(html) == [("Suggested keeper", "chelsea.jpg"), ("This image", first["filename"])]
    assert f"{first['similarity'] * 100:.1f}%</strong> alike to the suggested keeper" in html
    assert "Image 1 of the 2 beside chelsea.jpg" in html and "Previous image" not in html
    keeps = re.findall(r'href="/duplicates/\d+/resolve\?keep=([0-9a-f]+)"', html)  # the confirmation first
    assert keeps == [keeper["id"], first["id"]] and f"Keep {first['filename']}, delete the other 2…" in html
    following = re.search(r'href="([^"]+)"[^>]*>Next image', html)
    assert (
        following is not None and f"image={second['id']}" in following[1] and f"beside={keeper['id']}" in following[1]
    )
    html = client.get(following[1].replace("&amp;", "&")).get_data(as_text=True)
    assert "2 of 2" in html and "Next image" not in html and f"image={first['id']}" in html
    assert html.count('name="shown" value=') == 3  # take-out: refused if the group changed since

    html = client.get(url, query_string={"image": second["id"], "beside": first["id"]}).get_data(as_text=True)
    assert sides(html) == [("Beside", first["filename"]), ("This image", second["filename"])]
    html = client.get(url, query_string={"image": keeper["id"], "beside": keeper["id"]}).get_data(as_text=True)
    assert sides(html) == [("Beside", first["filename"]), ("Suggested keeper", "chelsea.jpg")]

    # Keeping another than the suggested keeper: the keeper's line says how alike it is to the one kept.
    html = client.get(f"/duplicates/{group['id']}/resolve", query_string={"keep": first["id"]}).get_data(as_text=True)
    assert f"chelsea.jpg · 451 × 300 px · the suggested keeper, {first['similarity'] * 100:.1f}% alike" in html
    assert f"· {second['similarity'] * 100:.1f}% alike to the suggested keeper" in html
    assert "100.0%" not in html

    for query in ({"image": library["rocket"]}, {}, {"image": "x" * 5000}):
        response = client.get(url, query_string=query)
        assert response.status_code == 404 and "not in this group" in response.get_data(as_text=True)
        assert response.mimetype == "text/html"
    assert client.get("/duplicates/99/compare", query_string={"image": first["id"]}).status_code == 404

    # Not a copy, from the compare page: on to the next image beside the keeper, then, with none
    # left to compare, to the list.
    page = f"{url}?image={first['id']}"
    form = dict(re.findall(r'<input type="hidden" name="(back|beside|next)" value="([^"]*)">', client.get(page).text))
    assert form == {"back": "compare", "beside": keeper["id"], "next": second["id"]}
    form |= {"csrf_token": csrf_token(client, page), "image": first["id"], "shown": [m["id"] for m in group["members"]]}
    response = client.post(f"/duplicates/{group['id']}/take-out", data=form)
    assert response.status_code == 303, response.text
    assert response.headers["Location"].endswith(f"{url}?image={second['id']}&beside={keeper['id']}")
    page = response.headers["Location"]
    html = client.get(page).text
    assert "1 of 1" in html and 'name="next"' not in html
    form = {"csrf_token": csrf_token(client, page), "image": second["id"], "back": "compare", "beside": keeper["id"]}
    form["shown"] = [keeper["id"], second["id"]]
    response = client.post(f"/duplicates/{group['id']}/take-out", data=form)
    assert response.status_code == 303 and response.headers["Location"].endswith("/duplicates")  # no group left


def test_keeping_all_from_the_page(app: Flask, client: FlaskClient, library: dict[str, str]) -> None:
    scan(client)
    page = client.get("/duplicates").get_data(as_text=True)
    assert page.count("Not copies: keep all") == 2
    group = client.get("/api/v1/duplicates").json[1]  # the rocket's
    form = {"csrf_token": csrf_token(client, "/duplicates"), "shown": [m["id"] for m in group["members"]]}
    response = client.post(f"/duplicates/{group['id']}/keep-all", data=form)
    assert response.status_code == 303 and response.headers["Location"].endswith("/duplicates")
    page = client.get("/duplicates").get_data(as_text=True)
    assert "Kept all 2 images of the group" in page and "rocket-small.jpg" not in page
    assert len(distinct_rows(app)) == 1
    again = client.post(f"/duplicates/{group['id']}/keep-all", data=form)
    assert again.status_code == 404 and "no duplicate group" in again.get_data(as_text=True)


def test_an_image_taken_out_of_its_group_is_grouped_with_none_of_the_others_again(
    app: Flask, client: FlaskClient, library: dict[str, str]
) -> None:
    scan(client)
    cats = client.get("/api/v1/duplicates").json[0]
    keeper, *others = [m["id"] for m in cats["members"]]
    assert keeper == library["chelsea"]
    response = client.post(f"{cats['url']}/take-out", json={"image": keeper, "shown": [keeper, *others]})
    assert response.status_code == 200, response.json
    left = response.json["group"]  # the keeper went: another is suggested, the similarities to it
    assert response.json["taken_out"] == keeper and sorted(m["id"] for m in left["members"]) == sorted(others)
    assert left["members"][0]["keeper"] and left["members"][0]["similarity"] == 1.0 and left["size"] == 2
    assert left["best"] == left["members"][1]["similarity"] < 1.0
    assert client.get(cats["url"]).json == left and len(distinct_rows(app)) == 2
    scan(client)  # the two copies stay one group, without the photo
    groups = {tuple(sorted(m["id"] for m in g["members"])): g for g in client.get("/api/v1/duplicates").json}
    assert len(groups) == 2 and tuple(sorted(others)) in groups, groups
    last = client.post(f"{groups[tuple(sorted(others))]['url']}/take-out", json={"image": others[0]})
    assert last.status_code == 200 and last.json["group"] is None  # one image left: no group
    assert [g["size"] for g in client.get("/api/v1/duplicates").json] == [2]  # the rockets'
    rockets = client.get("/api/v1/duplicates").json[0]
    stranger = client.post(f"{rockets['url']}/take-out", json={"image": keeper})
    assert stranger.status_code == 422 and "not in duplicate group" in stranger.json["message"]
    assert client.post(f"{rockets['url']}/take-out", json={}).status_code == 422
    page = client.get("/duplicates").get_data(as_text=True)
    form: dict[str, Any] = {"csrf_token": csrf_token(client, "/duplicates"), "back": "group"}
    form.update(image=library["rocket-small"], shown=[library["rocket"], library["rocket-small"]])
    assert page.count(">Not a copy</button>") == 2
    answer = client.post(f"/duplicates/{rockets['id']}/take-out", data=form)
    assert answer.status_code == 303 and answer.headers["Location"].endswith("/duplicates")  # no group left
    assert "Took rocket-small.jpg out of the group" in client.get("/duplicates").get_data(as_text=True)
    assert client.get("/api/v1/stats").json["count"] == 8  # nothing deleted


def test_groups_kept_whole_are_grouped_again_once_forgotten(
    app: Flask, client: FlaskClient, library: dict[str, str]
) -> None:
    scan(client)
    for group in client.get("/api/v1/duplicates").json:
        assert client.post(f"{group['url']}/keep-all").status_code == 200
    assert client.get("/api/v1/duplicates/kept-apart").json == {"pairs": 4}  # the cats' 3, the rockets' 1
    page = client.get("/duplicates").get_data(as_text=True)
    assert "4 pairs of images kept apart" in page and "Group them again at the next scan" in page
    scan(client)
    assert client.get("/api/v1/duplicates").json == []
    form = {"csrf_token": csrf_token(client, "/duplicates")}
    assert client.post("/duplicates/kept-apart/forget", data=form).status_code == 303
    assert "Forgot 4 pairs of images kept apart" in client.get("/duplicates").get_data(as_text=True)
    assert client.delete("/api/v1/duplicates/kept-apart").json == {"pairs": 0} and distinct_rows(app) == []
    scan(client)
    assert [g["size"] for g in client.get("/api/v1/duplicates").json] == [3, 2]


def test_deleting_an_image_takes_it_out_of_its_group(client: FlaskClient, library: dict[str, str]) -> None:
    scan(client)
    assert client.delete(f"/api/v1/images/{library['rocket-small']}").status_code == 204
    assert [g["size"] for g in client.get("/api/v1/duplicates").json] == [3]
    assert client.delete(f"/api/v1/images/{library['chelsea-crop']}").status_code == 204
    assert [g["size"] for g in client.get("/api/v1/duplicates").json] == [2]


@pytest.mark.parametrize(
    ("path", "body", "status", "says"),
    [
        ("/api/v1/duplicates/1/resolve", {"keep": "0" * 64}, 422, "not in duplicate group 1"),
        ("/api/v1/duplicates/1/resolve", {"keep": "xyz"}, 422, "64 hex"),
        ("/api/v1/duplicates/1/resolve", {}, 422, "keep"),
        ("/api/v1/duplicates/1/resolve", {"keep": "0" * 64, "also": 1}, 422, "Unknown field"),
        ("/api/v1/duplicates/99/resolve", {"keep": "0" * 64}, 404, "no duplicate group 99"),
        ("/api/v1/duplicates/99999999999999999999/resolve", {"keep": "0" * 64}, 404, "no duplicate group"),
    ],
)
def test_bad_resolves_are_4xx_and_delete_nothing(
    client: FlaskClient, library: dict[str, str], path: str, body: dict[str, Any], status: int, says: str
) -> None:
    scan(client)
    response = client.post(path, json=body)
    assert response.status_code == status, response.json
    assert says in response.json["message"] + str(response.json.get("errors", "")), response.json
    assert client.get("/api/v1/stats").json["count"] == 8


def test_bad_duplicate_queries_are_422_or_404(client: FlaskClient) -> None:
    assert client.get("/api/v1/duplicates", query_string={"album": "a/../b"}).status_code == 422
    assert client.get("/api/v1/duplicates", query_string={"page": "x"}).status_code == 422
    assert client.get("/api/v1/duplicates/99999999999999999999").status_code == 404
    assert client.get("/api/v1/duplicates").json == []  # never scanned: no groups, no error


def test_one_scan_at_a_time(app: Flask, client: FlaskClient) -> None:
    with app.app_context():
        app.extensions[EXTENSION].jobs.create(KIND, "a scan queued elsewhere", local_owner())
    response = client.post("/api/v1/duplicates/scan")
    assert response.status_code == 409 and "already" in response.json["message"]


def test_join_makes_connected_groups() -> None:
    groups = join([("a", "b"), ("c", "d"), ("b", "e"), ("e", "a"), ("f", "f")])
    assert sorted(sorted(g) for g in groups) == [["a", "b", "e"], ["c", "d"]]


def test_a_group_too_large_to_resolve_at_once_is_409(
    app: Flask, client: FlaskClient, library: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    scan(client)
    monkeypatch.setattr("webapp.services.duplicates.MAX_RESOLVED", 2)
    group = client.get("/api/v1/duplicates").json[0]
    response = client.post(f"{group['url']}/resolve", json={"keep": group["members"][0]["id"]})
    assert response.status_code == 409 and "chain of look-alikes" in response.json["message"]
    assert client.get("/api/v1/stats").json["count"] == 8


def test_two_people_keeping_different_images_of_a_group_at_once_lose_neither(
    app: Flask, client: FlaskClient, library: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Before, both requests answered 200: each deleted the image the other kept.
    scan(client)
    group = next(g for g in client.get("/api/v1/duplicates").json if g["size"] == 2)
    reviewer, real_take = app.extensions[EXTENSION].review, review.take
    other: list[Any] = []

    def take_after_another(db: Any, group_id: int) -> Any:
        if not other:  # both read the group; the other person's request takes it first
            other.append(None)
            other[0] = reviewer.resolve(group["id"], library["rocket"])
        return real_take(db, group_id)

    monkeypatch.setattr(review, "take", take_after_another)
    response = client.post(f"{group['url']}/resolve", json={"keep": library["rocket-small"]})
    assert response.status_code == 409 and "being resolved by another request" in response.json["message"]
    assert [r.sha256 for r in other[0]] == [library["rocket-small"]]
    assert client.get(f"/api/v1/images/{library['rocket']}").status_code == 200
    assert client.get("/api/v1/stats").json["count"] == 7
    again = client.post(f"{group['url']}/resolve", json={"keep": library["rocket-small"]})
    assert again.status_code == 404 and "resolved" in again.json["message"]


def test_a_confirmation_shown_before_a_newer_scan_deletes_nothing(
    app: Flask, client: FlaskClient, library: dict[str, str], photos: dict[str, bytes]
) -> None:
    scan(client)
    group = client.get("/api/v1/duplicates").json[0]
    assert group["size"] == 3, group
    keep, path = library["chelsea"], f"/duplicates/{group['id']}/resolve"
    html = client.get(path, query_string={"keep": keep}).get_data(as_text=True)
    shown = re.findall(r'name="delete" value="([0-9a-f]{64})"', html)
    assert sorted(shown) == sorted([library["chelsea-small"], library["chelsea-crop"]])
    add(client, "chelsea-again.jpg", reencoded(photos["chelsea"]))  # a newer scan gives the group a fourth image
    scan(client)
    assert client.get(group["url"]).json["size"] == 4
    form = {"csrf_token": csrf_token(client, f"{path}?keep={keep}"), "keep": keep, "delete": shown}
    response = client.post(path, data=form)
    assert response.status_code == 409 and "changed since it was shown" in response.get_data(as_text=True)
    response = client.post(f"{group['url']}/resolve", json={"keep": keep, "delete": shown})
    assert response.status_code == 409 and "review it again" in response.json["message"], response.json
    assert client.get("/api/v1/stats").json["count"] == 9
    everyone = client.post(f"{group['url']}/resolve", json={"keep": keep, "delete": shown + [library["rocket"]]})
    assert everyone.status_code == 409  # ids beyond the group do not stand for the unseen image
    response = client.post(path, data={**form, "delete": [m["id"] for m in client.get(group["url"]).json["members"]]})
    assert response.status_code == 303 and client.get("/api/v1/stats").json["count"] == 6


def test_a_resolution_that_fails_part_way_puts_the_group_back(
    app: Flask, client: FlaskClient, library: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    scan(client)
    group = client.get("/api/v1/duplicates").json[0]
    members = sorted(m["id"] for m in group["members"])
    store = app.extensions[EXTENSION].library.vectors

    def unavailable(shas: list[str]) -> None:
        raise StoreUnavailable("the vector store is unavailable")

    monkeypatch.setattr(store, "delete", unavailable)  # after the others were taken out of the list
    response = client.post(f"{group['url']}/resolve", json={"keep": library["chelsea"]})
    assert response.status_code == 503, response.json
    back = client.get(group["url"]).json
    assert sorted(m["id"] for m in back["members"]) == members and len(members) == 3
    assert client.get("/api/v1/stats").json["count"] == 8
    listed = {image["id"] for image in client.get("/api/v1/images", query_string={"page_size": 50}).json}
    assert set(members) <= listed  # listed again, as they were


def test_emptying_the_library_as_a_scan_finishes_leaves_no_empty_groups(
    app: Flask, client: FlaskClient, library: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    real_rank = Duplicates.rank

    def rank_then_empty(self: Duplicates, groups: list[set[str]], store: Any) -> Any:
        ranked = real_rank(self, groups, store)
        assert ranked and app.extensions[EXTENSION].ingestion.empty_library() == 8  # it cancels the scan
        return ranked

    monkeypatch.setattr(Duplicates, "rank", rank_then_empty)
    response = client.post("/api/v1/duplicates/scan")
    assert wait_for_job(client, response.json["url"])["status"] == "cancelled"
    assert client.get("/api/v1/duplicates").json == []  # before, two groups with no images left


def test_a_resolution_begun_as_its_keeper_is_being_deleted_deletes_nothing(
    app: Flask, client: FlaskClient, library: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Before, the resolution found the keeper still there and deleted the rest: neither was left.
    scan(client)
    group = next(g for g in client.get("/api/v1/duplicates").json if g["size"] == 2)
    keep, other = library["rocket"], library["rocket-small"]
    store = app.extensions[EXTENSION].library.vectors
    real_delete, started, resolved = store.delete, threading.Event(), threading.Event()

    def slow_delete(shas: list[str]) -> None:
        if shas == [keep]:  # the keeper's deletion, stopped part way until the resolution is over
            started.set()
            resolved.wait(1)
        real_delete(shas)

    monkeypatch.setattr(store, "delete", slow_delete)
    deleting = threading.Thread(target=app.extensions[EXTENSION].library.delete, args=(keep,))
    deleting.start()
    assert started.wait(10)
    response = client.post(f"{group['url']}/resolve", json={"keep": keep})
    resolved.set()
    deleting.join(10)
    assert response.status_code == 404 and keep in response.json["message"], response.json
    assert client.get(f"/api/v1/images/{other}").status_code == 200
