"""The Milvus bootcamp compatible endpoints, as its React client and scripts call them (real model, Milvus Lite)."""

from __future__ import annotations

import hashlib
import io
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from PIL import Image

from tests.conftest import heic, noise_images, wait_for_job
from tests.test_jobs import import_folder
from webapp import create_app
from webapp.runtime import EXTENSION

CLIENT_ORIGIN = "http://client.example:8001"


def post_image(client: FlaskClient, url: str, data: bytes, **fields: Any) -> Any:
    """POST one file as multipart ``image`` with extra form fields, like the bootcamp client."""
    return client.post(url, data={"image": (io.BytesIO(data), "q.jpg"), **fields}, content_type="multipart/form-data")


def progress(client: FlaskClient) -> tuple[int, int]:
    """Read /progress exactly as the bootcamp client parses it."""
    response = client.get("/progress")
    assert response.status_code == 200 and response.mimetype == "application/json"
    text = response.json
    assert isinstance(text, str)
    current, total = (int(item.split(":")[1]) for item in text.split(","))
    assert text == f"current: {current}, total: {total}"
    return current, total


def count(client: FlaskClient) -> int:
    response = client.post("/img/count")
    assert response.status_code == 200 and isinstance(response.json, int)
    return int(response.json)


def assert_json_error(response: Any, status: int, says: str = "") -> None:
    """Never the demo's HTTP 200 with an error: a 4xx, in the API's JSON error shape."""
    assert response.status_code == status, response.get_data(as_text=True)
    body = response.json
    assert body["code"] == status and body["status"] and body["message"]
    assert says in body["message"] + str(body.get("errors", "")), body


def load(client: FlaskClient, folder: Path) -> str:
    """Start loading a folder as the client does; return the job's URL."""
    response = client.post("/img/load", json={"File": str(folder)})
    assert response.status_code == 200 and response.json == "Successfully loaded data!"
    return str(response.headers["Location"])


def test_the_bootcamp_client_flow(app: Flask, client: FlaskClient, photos: dict[str, bytes]) -> None:
    assert progress(client) == (0, 0) and count(client) == 0
    folder = import_folder(app, "bootcamp")
    names = ["chelsea", "coffee", "rocket", "astronaut", "moon", "coins"]
    for name in names:
        (folder / f"{name}.jpg").write_bytes(photos[name])
    job = wait_for_job(client, load(client, folder))
    assert job["status"] == "done" and job["added"] == len(names)
    assert progress(client) == (len(names), len(names))
    assert count(client) == len(names)

    found = post_image(client, "/img/search", photos["chelsea"], topk="3")
    assert found.status_code == 200
    pairs = found.json
    assert len(pairs) == 3 and all(isinstance(p, list) and len(p) == 2 for p in pairs)
    assert pairs[0] == [hashlib.sha256(photos["chelsea"]).hexdigest(), pytest.approx(0.0, abs=2e-3)]
    distances = [distance for _, distance in pairs]
    assert distances == sorted(distances) and all(0 <= d <= 4 for d in distances)
    image = client.get(f"/data?image_path={pairs[0][0]}")  # the client puts the path in unencoded
    assert image.status_code == 200 and image.mimetype == "image/jpeg" and image.data == photos["chelsea"]

    again = wait_for_job(client, load(client, folder))  # the demo appended duplicates on every load
    assert (again["added"], again["duplicates"]) == (0, len(names))
    assert count(client) == len(names)


def test_a_relative_folder_is_taken_under_the_first_import_root(app: Flask, client: FlaskClient) -> None:
    folder = import_folder(app, "relative")
    for i, data in enumerate(noise_images(3, seed=41)):
        (folder / f"{i}.jpg").write_bytes(data)
    response = client.post("/img/load", json={"File": "relative"})
    assert response.status_code == 200, response.json
    assert wait_for_job(client, response.headers["Location"])["added"] == 3
    assert_json_error(client.post("/img/load", json={"File": "relative/../.."}), 403, "not under")


def test_dropping_the_library_during_a_load_cancels_it_first(app: Flask, client: FlaskClient) -> None:
    folder = import_folder(app, "dropped")
    for i, data in enumerate(noise_images(150, seed=42)):
        (folder / f"{i:04d}.jpg").write_bytes(data)
    url = load(client, folder)
    deadline = time.monotonic() + 60
    while client.get(url).json["processed"] == 0:
        assert time.monotonic() < deadline
        time.sleep(0.02)
    assert client.post("/img/drop").json == "ok"
    job = wait_for_job(client, url)
    assert job["status"] == "cancelled" and job["processed"] < 150, job
    time.sleep(0.5)  # a batch embedded when the drop came is not written afterwards
    assert count(client) == 0
    current, total = progress(client)  # ended: the demo's client stops polling
    # (a batch being written as the drop came is still counted: read the job once it settled)
    assert current == total == client.get(url).json["processed"]
    assert client.get("/progress").headers["X-Job-Status"] == "cancelled"


def test_load_answers_at_once_and_progress_counts_up(app: Flask, client: FlaskClient) -> None:
    folder = import_folder(app, "many")
    for i, data in enumerate(noise_images(150)):
        (folder / f"{i:04d}.jpg").write_bytes(data)
    url = load(client, folder)
    seen = []
    while client.get(url).json["status"] in ("queued", "running"):
        seen.append(progress(client))
        time.sleep(0.02)
    assert any(0 < current < total for current, total in seen), seen
    assert all(total in (-1, 150) for _, total in seen), seen  # -1 only while the folder is listed
    assert progress(client) == (150, 150) and count(client) == 150


def test_upload_is_content_addressed(client: FlaskClient, photos: dict[str, bytes]) -> None:
    image_id = hashlib.sha256(photos["rocket"]).hexdigest()
    first = post_image(client, "/img/upload", photos["rocket"])
    second = post_image(client, "/img/upload", photos["rocket"])
    assert (first.status_code, second.status_code) == (200, 200)
    assert first.json == f"Successfully loaded data: {image_id}"
    assert second.json == f"Image already loaded: {image_id}"
    assert count(client) == 1
    assert client.get(f"/data?image_path={image_id}").data == photos["rocket"]


def test_a_phone_photo_in_heic_is_uploaded_and_found_by_the_bootcamp_client(
    client: FlaskClient, photos: dict[str, bytes]
) -> None:
    phone = heic(Image.open(io.BytesIO(photos["chelsea"])))
    image_id = hashlib.sha256(phone).hexdigest()
    assert post_image(client, "/img/upload", phone).json == f"Successfully loaded data: {image_id}"
    found = post_image(client, "/img/search", photos["chelsea"], topk="1")
    assert found.status_code == 200 and found.json[0][0] == image_id, found.json  # distance, not similarity
    served = client.get(f"/data?image_path={image_id}")
    assert served.data == phone and served.mimetype == "image/heic"


def test_search_honours_topk_from_the_form_or_the_query(client: FlaskClient, photos: dict[str, bytes]) -> None:
    for data in noise_images(12):
        assert post_image(client, "/img/upload", data).status_code == 200
    query = photos["coffee"]
    assert len(post_image(client, "/img/search", query).json) == 10  # the bootcamp's default
    assert len(post_image(client, "/img/search", query, topk="3").json) == 3
    assert len(post_image(client, "/img/search?topk=4", query).json) == 4
    assert len(post_image(client, "/img/search?topk=5", query, topk="5").json) == 5
    assert_json_error(post_image(client, "/img/search?topk=4", query, topk="5"), 422, "given twice")
    assert len(post_image(client, "/img/search", query, topk="100").json) == 12


@pytest.mark.parametrize("topk", ["0", "101", "ten", "-3", "2.5", ""])
@pytest.mark.parametrize("where", ["form", "query"])
def test_bad_topk_is_422(client: FlaskClient, photos: dict[str, bytes], topk: str, where: str) -> None:
    if where == "form":
        response = post_image(client, "/img/search", photos["moon"], topk=topk)
    else:
        response = post_image(client, f"/img/search?topk={topk}", photos["moon"])
    assert_json_error(response, 422, "topk")


@pytest.mark.parametrize(
    "image_path",
    ["/etc/passwd", "../../../../etc/passwd", "webapp/config.py", "*", "0" * 64, "A" * 64, "%2Fetc%2Fpasswd"],
)
def test_data_never_reads_a_path(client: FlaskClient, image_path: str) -> None:
    assert_json_error(client.get(f"/data?image_path={image_path}"), 404, "no such image")


def test_data_refuses_even_the_stored_files_own_path(app: Flask, client: FlaskClient, photos: dict[str, bytes]) -> None:
    post_image(client, "/img/upload", photos["moon"])
    stored = next((Path(app.config["DATA_DIR"]) / "images" / "originals").rglob("*.jpg"))
    assert_json_error(client.get("/data", query_string={"image_path": str(stored)}), 404)
    assert_json_error(client.get("/data"), 422, "image_path")


@pytest.mark.parametrize(
    ("body", "status", "says"),
    [
        ({"json": {"File": "/etc"}}, 403, "not under an allowed import folder"),
        ({"json": {"File": "../outside"}}, 403, "not under an allowed import folder"),
        ({"json": {"File": "relative/missing"}}, 422, "not a folder"),
        ({"json": {"File": "/tmp/x\x00y"}}, 422, "NUL"),
        ({"json": {"File": "/tmp/\ud800"}}, 422, "no path can hold"),
        ({"json": {"File": ""}}, 422, "File"),
        ({"json": {"Table": "milvus_img_search"}}, 422, "File"),
        ({"json": {"File": "/tmp", "Extra": 1}}, 422, "Unknown field"),
        ({"data": {"File": "/tmp"}}, 415, "application/json"),  # a form never reaches a JSON endpoint
        ({"json": {"File": "/tmp", "Table": "other"}}, 404, "no table named"),
    ],
)
def test_bad_loads_are_4xx_json(client: FlaskClient, body: dict[str, Any], status: int, says: str) -> None:
    assert_json_error(client.post("/img/load", **body), status, says)
    assert progress(client) == (0, 0)


def test_a_missing_folder_under_a_root_is_422(app: Flask, client: FlaskClient) -> None:
    missing = Path(app.config["IMPORT_ROOTS"][0]) / "nope"
    assert_json_error(client.post("/img/load", json={"File": str(missing)}), 422, "not a folder")


def test_bad_uploads_are_4xx_json_and_store_nothing(client: FlaskClient, photos: dict[str, bytes]) -> None:
    assert_json_error(client.post("/img/upload", data={}, content_type="multipart/form-data"), 422, "image")
    assert_json_error(post_image(client, "/img/upload?url=http://169.254.169.254/x.jpg", photos["moon"]), 422, "URL")
    assert_json_error(post_image(client, "/img/upload", b"plain text"), 422, "not an image")
    assert_json_error(post_image(client, "/img/search", b""), 422, "empty")
    assert count(client) == 0


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [("get", "/img/search", 405), ("get", "/img/count", 405), ("post", "/progress", 405), ("get", "/img/nope", 404)],
)
def test_unknown_paths_and_methods_are_json(client: FlaskClient, method: str, path: str, status: int) -> None:
    assert_json_error(getattr(client, method)(path), status)


def test_table_names(app: Flask, client: FlaskClient) -> None:
    assert client.post("/img/count?table_name=milvus_img_search").json == 0
    assert client.post(f"/img/count?table_name={app.config['COLLECTION']}").json == 0
    assert_json_error(client.post("/img/count?table_name=other"), 404, "no table named 'other'")
    assert_json_error(client.post("/img/drop?confirm=0&table_name=x;DROP"), 404, "no table named")


def test_drop_checks_a_given_count(client: FlaskClient, photos: dict[str, bytes]) -> None:
    image_id = post_image(client, "/img/upload", photos["coins"]).json.rsplit(" ", 1)[1]
    post_image(client, "/img/upload", photos["brick"])
    assert_json_error(client.post("/img/drop?confirm=5"), 409, "confirm=2")
    assert_json_error(client.post("/img/drop?confirm=two"), 422, "confirm")
    assert count(client) == 2
    dropped = client.post("/img/drop?confirm=2")
    assert dropped.status_code == 200 and dropped.json == "ok"
    assert count(client) == 0
    assert_json_error(client.get(f"/data?image_path={image_id}"), 404)


def test_drop_as_the_bootcamp_client_sends_it(client: FlaskClient, photos: dict[str, bytes]) -> None:
    post_image(client, "/img/upload", photos["coins"])
    dropped = client.post("/img/drop")
    assert dropped.status_code == 200 and dropped.json == "ok"
    assert count(client) == 0


def test_only_configured_pages_may_call(app: Flask, client: FlaskClient) -> None:
    app.config["BOOTCAMP_CLIENT_ORIGINS"] = [CLIENT_ORIGIN]
    preflight = client.options(
        "/img/load",
        headers={"Origin": CLIENT_ORIGIN, "Access-Control-Request-Method": "POST"},
    )
    assert preflight.status_code == 200
    assert preflight.headers["Access-Control-Allow-Origin"] == CLIENT_ORIGIN
    assert "POST" in preflight.headers["Access-Control-Allow-Methods"]
    assert "Content-Type" in preflight.headers["Access-Control-Allow-Headers"]
    allowed = client.post("/img/count", headers={"Origin": CLIENT_ORIGIN})
    assert allowed.status_code == 200 and allowed.headers["Access-Control-Allow-Origin"] == CLIENT_ORIGIN
    assert client.post("/img/count", headers={"Origin": "http://localhost"}).status_code == 200  # this app's own
    foreign = client.post("/img/drop?confirm=0", headers={"Origin": "http://evil.example"})
    assert_json_error(foreign, 403, "WEBAPP_BOOTCAMP_CLIENT_ORIGINS")
    assert "Access-Control-Allow-Origin" not in foreign.headers
    read = client.get("/progress", headers={"Origin": "http://evil.example"})
    assert read.status_code == 200 and "Access-Control-Allow-Origin" not in read.headers


def test_client_origins_setting_accepts_a_list_in_one_string(tmp_path: Path) -> None:
    app = create_app({"DATA_DIR": str(tmp_path), "BOOTCAMP_CLIENT_ORIGINS": f"{CLIENT_ORIGIN}, http://b:1"})
    assert app.config["BOOTCAMP_CLIENT_ORIGINS"] == [CLIENT_ORIGIN, "http://b:1"]
    assert create_app({"DATA_DIR": str(tmp_path)}).config["BOOTCAMP_CLIENT_ORIGINS"] == []


@pytest.fixture()
def limited(tmp_path: Path, model_dir: Path) -> Iterator[Flask]:
    settings = {"DATA_DIR": str(tmp_path), "MODEL_DIR": str(model_dir), "SECRET_KEY": "t", "RATE_LIMIT": "2/minute"}
    app = create_app(settings)
    yield app
    app.extensions[EXTENSION].close()


def test_searches_uploads_and_loads_share_the_rate_limit(limited: Flask, photos: dict[str, bytes]) -> None:
    client = limited.test_client()
    assert post_image(client, "/img/upload", photos["coffee"]).status_code == 200
    assert post_image(client, "/api/v1/search", photos["coffee"]).status_code == 200
    assert_json_error(post_image(client, "/img/search", photos["coffee"]), 429)
    assert_json_error(client.post("/img/load", json={"File": "/tmp"}), 429)
    assert client.post("/img/count").status_code == 200  # cheap reads are not limited


def test_openapi_documents_the_bootcamp_endpoints(client: FlaskClient) -> None:
    spec = client.get("/api/v1/openapi.json").json
    operations = {
        ("/img/load", "post"),
        ("/img/upload", "post"),
        ("/img/search", "post"),
        ("/img/count", "post"),
        ("/img/drop", "post"),
        ("/progress", "get"),
        ("/data", "get"),
    }
    for path, method in operations:
        operation = spec["paths"][path][method]
        assert operation["tags"] == ["bootcamp"] and operation["summary"]
        assert "200" in operation["responses"]
    assert "bootcamp" in {tag["name"] for tag in spec["tags"]}
    load_body = spec["components"]["schemas"]["BootcampLoad"]
    assert load_body["required"] == ["File"] and set(load_body["properties"]) == {"File", "Table"}
    search = spec["components"]["schemas"]["BootcampSearch"]["properties"]
    assert search["image"]["format"] == "binary" and (search["topk"]["minimum"], search["topk"]["maximum"]) == (1, 100)
    assert spec["paths"]["/progress"]["get"]["responses"]["200"]["content"]["application/json"]["schema"]["pattern"]


def test_progress_follows_the_newest_load_not_a_scan_started_after_it(app: Flask, client: FlaskClient) -> None:
    folder = import_folder(app, "before-a-scan")
    for i, data in enumerate(noise_images(3, seed=47)):
        (folder / f"{i}.jpg").write_bytes(data)
    url = load(client, folder)
    assert wait_for_job(client, url)["status"] == "done"
    scan = client.post("/api/v1/duplicates/scan")
    assert scan.status_code == 202
    assert wait_for_job(client, scan.json["url"])["kind"] == "duplicates"
    assert progress(client) == (3, 3)  # the load the demo's client started, not the newer scan
    assert client.get("/progress").headers["Location"].endswith(url)
