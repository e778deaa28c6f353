"""Browsing, "more like this", deleting and emptying the library through the API."""

from __future__ import annotations

import io
import json
import time
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from PIL import Image

from tests.conftest import files_under, heic
from tests.test_api import BOTH_STORES, add_all, upload
from tests.test_hostile import encoded

pytestmark = BOTH_STORES


def test_images_are_listed_newest_first_and_paginated(client: FlaskClient, photos: dict[str, bytes]) -> None:
    names = ["coffee", "rocket", "moon", "coins", "brick"]
    for name in names:
        assert upload(client, "/api/v1/images", photos[name], f"{name}.jpg").status_code == 201
    first = client.get("/api/v1/images?page_size=2")
    assert [image["filename"] for image in first.json] == ["brick.jpg", "coins.jpg"]
    meta = json.loads(first.headers["X-Pagination"])
    assert (meta["total"], meta["total_pages"], meta["next_page"]) == (5, 3, 2)
    last = client.get("/api/v1/images?page_size=2&page=3")
    assert [image["filename"] for image in last.json] == ["coffee.jpg"]
    assert client.get("/api/v1/images?page_size=2&page=9").json == []
    assert client.get("/api/v1/images?page_size=0").status_code == 422


def test_more_like_this_excludes_the_image_itself(client: FlaskClient, photos: dict[str, bytes]) -> None:
    ids = add_all(client, photos)
    response = client.get(f"/api/v1/images/{ids['chelsea']}/similar?top_k=4")
    assert response.status_code == 200
    results = response.json["results"]
    assert len(results) == 4 and ids["chelsea"] not in [r["id"] for r in results]
    assert [r["score"] for r in results] == sorted((r["score"] for r in results), reverse=True)
    assert client.get(f"/api/v1/images/{ids['chelsea']}/similar?top_k=0").status_code == 422
    assert client.get("/api/v1/images/" + "0" * 64 + "/similar").status_code == 404


def test_delete_removes_every_trace(app: Flask, client: FlaskClient, photos: dict[str, bytes]) -> None:
    added = upload(client, "/api/v1/images", photos["retina"], "retina.jpg").json
    upload(client, "/api/v1/images", photos["camera"], "camera.jpg")
    image_id = added["id"]
    originals = Path(app.config["DATA_DIR"]) / "images" / "originals" / image_id[:2]
    assert list(originals.glob(f"{image_id}.*"))
    assert client.delete(f"/api/v1/images/{image_id}").status_code == 204
    for url in (added["url"], added["thumbnail_url"], f"/api/v1/images/{image_id}"):
        assert client.get(url).status_code == 404
    assert not list(originals.glob(f"{image_id}.*"))
    assert not list((Path(app.config["DATA_DIR"]) / "images" / "thumbnails").rglob(f"{image_id}*"))
    found = upload(client, "/api/v1/search", photos["retina"]).json["results"]
    assert image_id not in [hit["id"] for hit in found]
    assert [image["id"] for image in client.get("/api/v1/images").json] != [] and image_id not in [
        image["id"] for image in client.get("/api/v1/images").json
    ]
    assert client.get("/api/v1/stats").json["count"] == 1
    assert client.delete(f"/api/v1/images/{image_id}").status_code == 404
    # and it can be added again
    assert upload(client, "/api/v1/images", photos["retina"]).status_code == 201


@pytest.mark.parametrize("query", ["", "?confirm=", "?confirm=3", "?confirm=yes"])
def test_emptying_the_library_needs_the_exact_count(client: FlaskClient, photos: dict[str, bytes], query: str) -> None:
    add_all(client, {name: photos[name] for name in ("coffee", "rocket")})
    response = client.delete(f"/api/v1/images{query}")
    assert response.status_code in (409, 422)
    assert client.get("/api/v1/stats").json["count"] == 2


def test_emptying_the_library(app: Flask, client: FlaskClient, photos: dict[str, bytes]) -> None:
    add_all(client, {name: photos[name] for name in ("coffee", "rocket", "moon")})
    response = client.delete("/api/v1/images?confirm=3")
    assert response.status_code == 200 and response.json == {"deleted": 3}
    assert client.get("/api/v1/stats").json["count"] == 0
    assert client.get("/api/v1/images").json == []
    images = Path(app.config["DATA_DIR"]) / "images"
    assert not list((images / "originals").rglob("*.jpg"))  # at once; what was moved aside goes in the background
    deadline = time.monotonic() + 30
    while files_under(images, ".jpg") and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not files_under(images, ".jpg")
    assert upload(client, "/api/v1/images", photos["moon"]).status_code == 201


@pytest.mark.parametrize("kind", ["tiff", "heic"])
def test_an_image_browsers_cannot_show_gets_a_jpeg_preview_on_its_page(
    app: Flask, client: FlaskClient, photos: dict[str, bytes], kind: str
) -> None:
    big = Image.open(io.BytesIO(photos["coffee"])).resize((2000, 1330))
    data = heic(big) if kind == "heic" else encoded(big, "TIFF")
    tiff = upload(client, "/api/v1/images", data, f"scan.{kind}").json
    assert tiff["mime"] == f"image/{kind}"
    jpeg = upload(client, "/api/v1/images", photos["rocket"], "rocket.jpg").json

    page = client.get(tiff["page_url"]).get_data(as_text=True)
    preview = f"/api/v1/images/{tiff['id']}/preview"
    assert f'<img src="{preview}"' in page and "Download the original" in page
    assert f'<img src="{tiff["url"]}"' not in page
    page = client.get(jpeg["page_url"]).get_data(as_text=True)
    assert f'<img src="{jpeg["url"]}"' in page and "/preview" not in page

    made = client.get(preview)
    assert made.status_code == 200 and made.mimetype == "image/jpeg"
    assert Image.open(io.BytesIO(made.data)).size == (1600, 1064)  # at most 1600 a side
    original = client.get(tiff["url"])
    assert original.mimetype == f"image/{kind}" and original.data == data  # the original as it came
    assert client.get(f"/api/v1/images/{'0' * 64}/preview").status_code == 404

    previews = Path(app.config["DATA_DIR"]) / "images" / "previews"
    assert files_under(previews) == [f"{tiff['id'][:2]}/{tiff['id']}.jpg"]
    assert client.delete(f"/api/v1/images/{tiff['id']}").status_code == 204
    assert files_under(previews) == [] and client.get(preview).status_code == 404
    client.get(f"/api/v1/images/{jpeg['id']}/preview")  # any image has one, if asked for
    assert client.delete("/api/v1/images?confirm=1").status_code == 200
    assert not previews.exists()  # moved aside with the rest
