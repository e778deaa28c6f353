"""The server-rendered pages, through the test client (no JavaScript needed)."""

from __future__ import annotations

import io
import re

import pytest
from flask import Flask
from flask.testing import FlaskClient
from PIL import Image

from bench.harness import server_timing  # the benchmarks read the header with it too
from tests.conftest import csrf_token, jpeg, near_duplicate
from webapp.runtime import EXTENSION
from webapp.services import distinct_pairs


def post_file(client: FlaskClient, url: str, data: bytes, name: str = "photo.jpg", **fields: str):  # type: ignore[no-untyped-def]
    """Submit a page form with a file and a valid CSRF token."""
    form = {"csrf_token": csrf_token(client), "image": (io.BytesIO(data), name), **fields}
    return client.post(url, data=form, content_type="multipart/form-data")


def test_home_shows_forms_and_library_size(client: FlaskClient, photos: dict[str, bytes]) -> None:
    html = client.get("/").get_data(as_text=True)
    assert 'name="image"' in html and 'name="top_k"' in html
    assert 'action="/search"' in html and 'action="/images"' in html
    assert "0 images" in html and "empty" in html.lower()
    post_file(client, "/images", photos["coffee"], "coffee.jpg")
    assert "1 image " in client.get("/").get_data(as_text=True)


def test_add_from_the_page_then_search_from_the_page(client: FlaskClient, photos: dict[str, bytes]) -> None:
    for name in ("coffee", "chelsea", "rocket", "astronaut"):
        added = post_file(client, "/images", photos[name], f"{name}.jpg")
        assert added.status_code == 302 and re.search(r"/images/[0-9a-f]{64}$", added.location)
    page = client.get(added.location)
    assert page.status_code == 200 and "astronaut.jpg" in page.get_data(as_text=True)

    response = post_file(client, "/search", near_duplicate(photos["chelsea"]), "cat.jpg", top_k="3")
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert 'src="data:image/jpeg;base64,' in html  # the query image is shown
    names = re.findall(r'<img loading="lazy" src="[^"]+" alt="([^"]+)"', html)
    assert names[:1] == ["chelsea.jpg"] and len(names) == 3
    assert re.search(r"\d+\.\d%", html)  # scores shown as percentages
    assert "/api/v1/images/" in html and "/file" in html  # links to the full image
    assert set(server_timing(response.headers["Server-Timing"])) == {"embed", "search", "total"}


def test_results_mark_the_same_picture_as_a_duplicate_scan_would_group_it(
    client: FlaskClient, photos: dict[str, bytes]
) -> None:
    for name in ("coffee", "chelsea", "rocket", "astronaut"):
        post_file(client, "/images", photos[name], f"{name}.jpg")

    def verdicts(data: bytes, **fields: str) -> list[tuple[str, str]]:
        html = post_file(client, "/search", data, "q.jpg", top_k="4", **fields).get_data(as_text=True)
        names = re.findall(r'<img loading="lazy" src="[^"]+" alt="([^"]+)"', html)
        shown = [
            re.sub(r"<[^>]+>|\s+", " ", v).strip() for v in re.findall(r'class="score-verdict">(.*?)</p>', html, re.S)
        ]
        return list(zip(names, shown, strict=True))

    rocket = Image.open(io.BytesIO(photos["rocket"]))
    sideways = jpeg(rocket.transpose(Image.Transpose.ROTATE_90), quality=60)  # 0.56 alike to the model
    assert verdicts(sideways)[0] == ("rocket.jpg", "The same picture")
    assert all(v != "The same picture" for _, v in verdicts(sideways)[1:])
    halved = jpeg(rocket.resize((rocket.width // 2, rocket.height // 2)), quality=30)
    assert verdicts(halved)[0] == ("rocket.jpg", "The same picture")
    cropped = verdicts(near_duplicate(photos["chelsea"]))  # a tenth off each side: another picture
    assert cropped[0] == ("chelsea.jpg", "Very similar")
    # A region searched is judged: the rocket pasted into a larger picture, and that part searched.
    canvas = Image.new("RGB", (rocket.width * 2, rocket.height), "white")
    canvas.paste(rocket, (rocket.width, 0))
    region = {"x": str(rocket.width), "y": "0", "width": str(rocket.width), "height": str(rocket.height)}
    assert verdicts(jpeg(canvas), **region)[0] == ("rocket.jpg", "The same picture")
    assert verdicts(jpeg(canvas))[0][1] != "The same picture"


def test_more_like_this_marks_the_images_copies_unless_a_person_kept_them_apart(
    app: Flask, client: FlaskClient, photos: dict[str, bytes]
) -> None:
    rocket = Image.open(io.BytesIO(photos["rocket"]))
    ids = {}
    for name, data in (("rocket", photos["rocket"]), ("coffee", photos["coffee"])):
        ids[name] = post_file(client, "/images", data, f"{name}.jpg").location.rsplit("/", 1)[1]
    halved = jpeg(rocket.resize((rocket.width // 2, rocket.height // 2)), quality=30)
    ids["copy"] = post_file(client, "/images", halved, "copy.jpg").location.rsplit("/", 1)[1]

    def marked(image_id: str) -> dict[str, str]:
        html = client.get(f"/images/{image_id}").get_data(as_text=True)
        names = re.findall(r'<img loading="lazy" src="[^"]+" alt="([^"]+)"', html)
        shown = [
            re.sub(r"<[^>]+>|\s+", " ", v).strip() for v in re.findall(r'class="score-verdict">(.*?)</p>', html, re.S)
        ]
        return dict(zip(names, shown, strict=True))

    def api(image_id: str, **asked: str) -> dict[str, bool | None]:
        answer = client.get(f"/api/v1/images/{image_id}/similar", query_string=asked)
        assert answer.status_code == 200, answer.json
        return {hit["filename"]: hit.get("same_picture") for hit in answer.json["results"]}

    assert marked(ids["rocket"])["copy.jpg"] == "The same picture"
    assert marked(ids["copy"])["rocket.jpg"] == "The same picture"
    assert marked(ids["rocket"])["coffee.jpg"] != "The same picture"
    assert "1 of these is a copy of this picture" in client.get(f"/images/{ids['rocket']}").get_data(as_text=True)
    assert "of these is a copy" not in client.get(f"/images/{ids['coffee']}").get_data(as_text=True)
    assert api(ids["rocket"], same_picture="true") == {"copy.jpg": True, "coffee.jpg": False}
    assert api(ids["rocket"]) == {"copy.jpg": None, "coffee.jpg": None}  # not asked: not told
    with app.app_context():
        distinct_pairs.mark(app.extensions[EXTENSION].database, [(ids["rocket"], ids["copy"])])
    assert marked(ids["rocket"])["copy.jpg"] != "The same picture"
    assert api(ids["rocket"], same_picture="1") == {"copy.jpg": False, "coffee.jpg": False}


def test_adding_the_same_image_twice_says_so(client: FlaskClient, photos: dict[str, bytes]) -> None:
    post_file(client, "/images", photos["moon"])
    again = post_file(client, "/images", photos["moon"])
    html = client.get(again.location).get_data(as_text=True)
    assert "already in the library" in html


@pytest.mark.parametrize(
    ("url", "data", "fields", "status", "text"),
    [
        ("/search", b"not an image", {}, 422, "not an image"),
        ("/images", b"", {}, 400, "Choose an image"),
        ("/search", None, {"top_k": "500"}, 400, "between 1 and 100"),
    ],
)
def test_bad_input_gets_an_html_error_page(
    client: FlaskClient,
    photos: dict[str, bytes],
    url: str,
    data: bytes | None,
    fields: dict[str, str],
    status: int,
    text: str,
) -> None:
    name = "" if data == b"" else "x.jpg"
    response = post_file(client, url, photos["moon"] if data is None else data, name, **fields)
    assert response.status_code == status
    assert response.mimetype == "text/html"
    assert text in response.get_data(as_text=True)
    assert "0 images" in client.get("/").get_data(as_text=True)


def test_forms_without_csrf_token_are_refused(client: FlaskClient, photos: dict[str, bytes]) -> None:
    form = {"image": (io.BytesIO(photos["moon"]), "m.jpg")}
    response = client.post("/images", data=form, content_type="multipart/form-data")
    assert response.status_code == 400 and "CSRF" in response.get_data(as_text=True)


def test_unknown_pages_are_html_404(client: FlaskClient) -> None:
    for path in ("/nowhere", "/images/" + "0" * 64):
        response = client.get(path)
        assert response.status_code == 404 and response.mimetype == "text/html"
        assert "404" in response.get_data(as_text=True)


def test_filenames_are_escaped(client: FlaskClient, photos: dict[str, bytes]) -> None:
    added = post_file(client, "/images", photos["coins"], "<img src=x onerror=alert(1)>.jpg")
    html = client.get(added.location).get_data(as_text=True)
    assert "<img src=x" not in html and "&lt;img src=x onerror=alert(1)&gt;.jpg" in html


def test_reloading_the_results_url_goes_back_to_the_form(client: FlaskClient) -> None:
    response = client.get("/search")
    assert response.status_code == 302 and response.location.endswith("/")


def test_static_assets_are_local(client: FlaskClient) -> None:
    html = client.get("/").get_data(as_text=True)
    assert "https://" not in html and "http://" not in html
    for asset in re.findall(r'(?:href|src)="(/static/[^"]+)"', html):
        assert client.get(asset).status_code == 200


@pytest.mark.parametrize("path", ["/", "/library", "/jobs", "/duplicates", "/add", "/api/docs"])
def test_behind_a_path_prefix_every_link_keeps_it(client: FlaskClient, path: str) -> None:
    # Served under /ris (a proxy's SCRIPT_NAME), the nav's and footer's API docs link and Swagger
    # UI's own files pointed at /api/docs, outside the app.
    page = client.get(path, base_url="http://localhost/ris/")
    assert page.status_code == 200
    links = re.findall(r'(?:href|src|action)="([^"]*)"', page.get_data(as_text=True))
    assert links and [link for link in links if not link.startswith(("/ris/", "#"))] == []
