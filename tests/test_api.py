"""The REST API under /api/v1, with the real model and a real Milvus Lite file."""

from __future__ import annotations

import io
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from PIL import Image

from bench.harness import server_timing  # the benchmarks read the header with it too
from tests.conftest import jpeg, near_duplicate, png
from webapp.models import DEFAULT
from webapp.runtime import EXTENSION

UNKNOWN = "0" * 64
BOTH_STORES = pytest.mark.parametrize("backend", ["lite", "server"], indirect=True)
pytestmark = BOTH_STORES


def upload(client: FlaskClient, url: str, data: bytes, name: str = "photo.jpg", **fields: Any) -> Any:
    """POST one file as multipart ``image`` with extra form fields."""
    return client.post(url, data={"image": (io.BytesIO(data), name), **fields}, content_type="multipart/form-data")


def add_all(client: FlaskClient, photos: dict[str, bytes]) -> dict[str, str]:
    """Add every photo; return their ids by name."""
    ids = {}
    for name, data in photos.items():
        response = upload(client, "/api/v1/images", data, f"{name}.jpg")
        assert response.status_code == 201, response.json
        ids[name] = response.json["id"]
    return ids


def test_add_then_read_record_file_and_thumbnail(client: FlaskClient, photos: dict[str, bytes]) -> None:
    response = upload(client, "/api/v1/images", photos["coffee"], "../../etc/coffee\x00.jpg")
    assert response.status_code == 201
    record = response.json
    assert record["duplicate"] is False
    assert record["filename"] == "coffee.jpg"
    assert (record["width"], record["height"], record["mime"]) == (600, 400, "image/jpeg")
    assert len(record["id"]) == 64
    got = client.get(f"/api/v1/images/{record['id']}")
    assert got.status_code == 200
    # with who added it: nobody while access control is off
    assert got.json == {k: v for k, v in record.items() if k != "duplicate"} | {"added_by": ""}
    original = client.get(record["url"])
    assert original.status_code == 200 and original.mimetype == "image/jpeg"
    assert original.data == photos["coffee"]
    thumb = client.get(record["thumbnail_url"])
    assert thumb.mimetype == "image/jpeg"
    assert max(Image.open(io.BytesIO(thumb.data)).size) == 320


def test_same_bytes_are_never_indexed_twice(client: FlaskClient, photos: dict[str, bytes]) -> None:
    first = upload(client, "/api/v1/images", photos["rocket"], "a.jpg")
    second = upload(client, "/api/v1/images", photos["rocket"], "b.jpg")
    assert (first.status_code, second.status_code) == (201, 200)
    assert second.json["duplicate"] is True
    assert second.json["id"] == first.json["id"] and second.json["filename"] == "a.jpg"
    assert client.get("/api/v1/stats").json["count"] == 1


def test_search_ranks_the_original_of_a_near_duplicate_first(client: FlaskClient, photos: dict[str, bytes]) -> None:
    ids = add_all(client, photos)
    for name in ("chelsea", "astronaut", "hubble_deep_field"):
        response = upload(client, "/api/v1/search", near_duplicate(photos[name]), "query.jpg", top_k="5")
        assert response.status_code == 200
        body = response.json
        assert body["top_k"] == 5 and len(body["results"]) == 5
        assert body["results"][0]["id"] == ids[name]
        assert body["results"][0]["filename"] == f"{name}.jpg"
        scores = [hit["score"] for hit in body["results"]]
        assert scores == sorted(scores, reverse=True)
        assert body["took_ms"] > 0
        assert set(body["results"][0]) >= {
            "id",
            "score",
            "filename",
            "width",
            "height",
            "url",
            "thumbnail_url",
        }


def test_a_search_says_how_long_its_steps_took_in_a_server_timing_header(
    client: FlaskClient, photos: dict[str, bytes]
) -> None:
    add_all(client, photos)
    response = upload(client, "/api/v1/search", photos["chelsea"])
    steps = server_timing(response.headers["Server-Timing"])
    assert set(steps) == {"embed", "search", "total"}
    assert steps["embed"] > 0 and steps["search"] > 0
    assert steps["embed"] + steps["search"] <= steps["total"] + 0.02  # each rounded to 0.01 ms
    assert steps["total"] == pytest.approx(response.json["took_ms"], abs=0.01)


def test_search_tells_the_same_picture_when_asked(client: FlaskClient, photos: dict[str, bytes]) -> None:
    ids = add_all(client, photos)
    rocket = Image.open(io.BytesIO(photos["rocket"]))
    sideways = jpeg(rocket.transpose(Image.Transpose.ROTATE_90), quality=60)
    judged = upload(client, "/api/v1/search", sideways, top_k="3", same_picture="true")
    assert judged.status_code == 200, judged.json
    results = judged.json["results"]
    assert results[0]["id"] == ids["rocket"] and results[0]["same_picture"] is True
    assert [r["same_picture"] for r in results[1:]] == [False, False]
    plain = upload(client, "/api/v1/search", sideways, top_k="3").json["results"]
    assert [r["id"] for r in plain] == [r["id"] for r in results] and all("same_picture" not in r for r in plain)
    bad = upload(client, "/api/v1/search", sideways, same_picture="maybe")
    assert bad.status_code == 422 and "same_picture" in str(bad.json["errors"])


def test_search_defaults_to_ten_and_an_exact_copy_scores_one(client: FlaskClient, photos: dict[str, bytes]) -> None:
    add_all(client, photos)
    response = upload(client, "/api/v1/search", photos["moon"])
    assert len(response.json["results"]) == 10
    assert response.json["results"][0]["score"] == pytest.approx(1.0, abs=1e-3)


def test_search_on_an_empty_library_returns_no_results(client: FlaskClient, photos: dict[str, bytes]) -> None:
    response = upload(client, "/api/v1/search", photos["moon"])
    assert response.status_code == 200 and response.json["results"] == []


def test_stats(client: FlaskClient, photos: dict[str, bytes], backend: tuple[str, str]) -> None:
    upload(client, "/api/v1/images", photos["coins"])
    assert client.get("/api/v1/stats").json == {
        "count": 1,
        "model": DEFAULT,
        "dimension": 1280,
        "metric": "COSINE",
        "index_type": "HNSW",
        "store": "milvus-server" if backend[0].startswith("http") else "milvus-lite",
        "collection": backend[1],
    }


@pytest.mark.parametrize("url", ["/api/v1/search", "/api/v1/images"])
@pytest.mark.parametrize(
    ("form", "status", "where"),
    [
        ({}, 422, "image"),
        ({"image": "not a file"}, 422, "image"),
        ({"image": (b"plain text", "x.jpg")}, 422, "not an image"),
        ({"image": (b"", "empty.png")}, 422, "empty"),
        ({"image": (b"\xff\xd8\xff\xe0 truncated", "t.jpg")}, 422, "image"),
        ({"image": (b"GIF89a", "x.gif"), "unknown": "1"}, 422, "unknown"),
    ],
)
def test_bad_uploads_get_a_clear_4xx_and_store_nothing(
    client: FlaskClient, url: str, form: dict[str, Any], status: int, where: str
) -> None:
    data = {k: (io.BytesIO(v[0]), v[1]) if isinstance(v, tuple) else v for k, v in form.items()}
    response = client.post(url, data=data, content_type="multipart/form-data")
    assert response.status_code == status
    body = response.json
    assert body["code"] == status and body["status"] == "Unprocessable Entity"
    assert where in (body.get("message", "") + str(body.get("errors", ""))).lower()
    assert client.get("/api/v1/stats").json["count"] == 0


@pytest.mark.parametrize("top_k", ["0", "101", "ten", "-3", "2.5"])
def test_top_k_out_of_range_is_422(client: FlaskClient, photos: dict[str, bytes], top_k: str) -> None:
    response = upload(client, "/api/v1/search", photos["moon"], top_k=top_k)
    assert response.status_code == 422
    assert "top_k" in response.json["errors"]["multipart"]


def test_json_body_instead_of_multipart_is_422(client: FlaskClient) -> None:
    response = client.post("/api/v1/search", json={"image": "x"})
    assert response.status_code == 422


def test_over_large_upload_is_413_json(app: Flask, client: FlaskClient) -> None:
    app.config["MAX_CONTENT_LENGTH"] = 1000
    response = upload(client, "/api/v1/images", b"x" * 5000)
    assert response.status_code == 413
    assert response.json["code"] == 413 and response.json["message"]
    assert client.get("/api/v1/stats").json["count"] == 0


def test_too_many_pixels_is_413_json(app: Flask, client: FlaskClient) -> None:
    app.extensions[EXTENSION].settings["MAX_IMAGE_PIXELS"] = 10_000
    response = upload(client, "/api/v1/images", png(Image.new("RGB", (200, 200))))
    assert response.status_code == 413
    assert "200x200" in response.json["message"]


@pytest.mark.parametrize(
    "path",
    [
        f"/api/v1/images/{UNKNOWN}",
        f"/api/v1/images/{UNKNOWN}/file",
        f"/api/v1/images/{UNKNOWN}/thumbnail",
        "/api/v1/images/not-a-sha",
        "/api/v1/images/" + "A" * 64,
        "/api/v1/nothing-here",
    ],
)
def test_unknown_ids_and_paths_are_404_json(client: FlaskClient, path: str) -> None:
    response = client.get(path)
    assert response.status_code == 404
    assert response.json["code"] == 404 and response.json["status"] == "Not Found"
    assert response.json["message"]


def test_wrong_method_is_405_json(client: FlaskClient) -> None:
    response = client.get("/api/v1/search")
    assert response.status_code == 405 and response.json["code"] == 405
    assert "POST" in response.headers["Allow"]


def test_openapi_describes_every_field(client: FlaskClient) -> None:
    spec = client.get("/api/v1/openapi.json").json
    assert {"/api/v1/search", "/api/v1/images", "/api/v1/images/{image_id}", "/api/v1/stats"} <= set(spec["paths"])
    search = spec["paths"]["/api/v1/search"]["post"]["requestBody"]["content"]["multipart/form-data"]
    assert search["schema"]["$ref"].endswith("/SearchArgs")
    for name, schema in spec["components"]["schemas"].items():
        for field, prop in schema.get("properties", {}).items():
            assert prop.get("description"), f"{name}.{field} has no description"
    assert spec["components"]["schemas"]["SearchArgs"]["properties"]["image"]["format"] == "binary"
    answer = spec["paths"]["/api/v1/search"]["post"]["responses"]["200"]
    assert answer["headers"]["Server-Timing"]["description"]


def test_swagger_ui_is_served_offline(client: FlaskClient) -> None:
    page = client.get("/api/docs")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert "/api/v1/openapi.json" in html
    assert "http://" not in html and "https://" not in html
    for asset in ("swagger-ui-bundle.js", "swagger-ui.css", "swagger-ui-standalone-preset.js"):
        assert f"/api/docs/assets/{asset}" in html
        assert client.get(f"/api/docs/assets/{asset}").status_code == 200
