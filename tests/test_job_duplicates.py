"""The files a load found already in the library: which image each matched, in the API, on the
job's page and as CSV."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient

from tests.conftest import wait_for_job
from webapp.errors import StoreUnavailable
from webapp.runtime import EXTENSION
from webapp.services.imaging import content_id
from webapp.services.jobs import ItemResult
from webapp.services.library import Library


def test_a_loads_duplicate_files_name_the_image_each_matched(
    app: Flask, client: FlaskClient, photos: dict[str, bytes]
) -> None:
    uploaded = client.post("/api/v1/images", data={"image": (io.BytesIO(photos["rocket"]), "launch.jpg")})
    assert uploaded.status_code == 201
    folder = Path(app.config["IMPORT_ROOTS"][0]) / "trip"
    (folder / "day1").mkdir(parents=True)
    (folder / "day2").mkdir()
    (folder / "day1" / "coffee.jpg").write_bytes(photos["coffee"])
    (folder / "day2" / "coffee-copy.jpg").write_bytes(photos["coffee"])  # a copy within the load
    (folder / "day2" / "rocket.jpg").write_bytes(photos["rocket"])  # already uploaded, as launch.jpg
    (folder / "camera.jpg").write_bytes(photos["camera"])
    started = client.post("/api/v1/jobs", json={"folder": str(folder)})
    job = wait_for_job(client, started.json["url"])
    assert (job["added"], job["duplicates"]) == (2, 2)

    url = f"/api/v1/jobs/{job['id']}/duplicates"
    listed = client.get(url)
    assert listed.status_code == 200, listed.json
    assert json.loads(listed.headers["X-Pagination"])["total"] == 2
    found = {d["name"]: d for d in listed.json}
    assert set(found) == {"day2/coffee-copy.jpg", "day2/rocket.jpg"}
    assert found["day2/rocket.jpg"]["image_id"] == content_id(photos["rocket"])
    assert found["day2/rocket.jpg"]["image"]["filename"] == "launch.jpg"
    assert found["day2/coffee-copy.jpg"]["image"]["filename"] == "coffee.jpg"
    assert found["day2/coffee-copy.jpg"]["image"]["album"] == "day1"
    after = client.get(url, query_string={"after": found["day2/coffee-copy.jpg"]["position"]})
    assert [d["name"] for d in after.json] == ["day2/rocket.jpg"]

    page = client.get(f"/jobs/{job['id']}").get_data(as_text=True)
    assert "Files already in the library" in page
    assert f'<a href="/images/{content_id(photos["rocket"])}">launch.jpg</a>' in page
    assert f'href="/jobs/{job["id"]}/duplicates.csv"' in page

    assert client.delete(f"/api/v1/images/{content_id(photos['rocket'])}").status_code == 204
    gone = {d["name"]: d["image"] for d in client.get(url).json}
    assert gone["day2/rocket.jpg"] is None and gone["day2/coffee-copy.jpg"]["filename"] == "coffee.jpg"
    assert "an image deleted since" in client.get(f"/jobs/{job['id']}").get_data(as_text=True)
    download = client.get(f"/jobs/{job['id']}/duplicates.csv")
    assert download.status_code == 200 and download.mimetype == "text/csv"
    assert "attachment" in download.headers["Content-Disposition"]
    rows = list(csv.reader(io.StringIO(download.get_data(as_text=True))))
    assert rows == [
        ["file", "image_id", "image_filename", "image_album", "in_library"],
        ["day2/coffee-copy.jpg", content_id(photos["coffee"]), "coffee.jpg", "day1", "yes"],
        ["day2/rocket.jpg", content_id(photos["rocket"]), "", "", "no (deleted since)"],
    ]


def test_a_load_without_duplicates_has_no_such_list_and_unknown_jobs_are_404(
    app: Flask, client: FlaskClient, photos: dict[str, bytes]
) -> None:
    folder = Path(app.config["IMPORT_ROOTS"][0]) / "single"
    folder.mkdir(parents=True)
    (folder / "coffee.jpg").write_bytes(photos["coffee"])
    job = wait_for_job(client, client.post("/api/v1/jobs", json={"folder": str(folder)}).json["url"])
    assert client.get(f"/api/v1/jobs/{job['id']}/duplicates").json == []
    assert "Files already in the library" not in client.get(f"/jobs/{job['id']}").get_data(as_text=True)
    unknown = "0123456789abcdef0123456789abcdef"
    assert client.get(f"/api/v1/jobs/{unknown}/duplicates").status_code == 404
    assert client.get(f"/jobs/{unknown}/duplicates.csv").status_code == 404
    refused = client.get(f"/api/v1/jobs/{job['id']}/duplicates", query_string={"after": "-1"})
    assert refused.status_code == 422 and "after" in refused.json["errors"]["query"]


def test_the_page_shows_the_first_hundred_and_the_download_has_every_one(
    app: Flask, client: FlaskClient, photos: dict[str, bytes]
) -> None:
    client.post("/api/v1/images", data={"image": (io.BytesIO(photos["coffee"]), "coffee.jpg")})
    rt = app.extensions[EXTENSION]
    job = rt.jobs.create("folder", "/x", "queue", [f"{i:03d}.jpg" for i in range(102)])
    sha = content_id(photos["coffee"])
    rt.jobs.record(job.id, [ItemResult(i, "duplicate", "", sha) for i in range(102)])

    page = client.get(f"/jobs/{job.id}").get_data(as_text=True)
    assert page.count('<a href="/images/') == 100
    assert "Showing the first 100 of 102." in page
    rows = list(csv.reader(io.StringIO(client.get(f"/jobs/{job.id}/duplicates.csv").get_data(as_text=True))))
    assert [row[0] for row in rows[1:]] == [f"{i:03d}.jpg" for i in range(102)]
    assert {row[2] for row in rows[1:]} == {"coffee.jpg"}


def test_a_download_the_store_cannot_answer_is_a_503_not_a_cut_file(
    app: Flask, client: FlaskClient, photos: dict[str, bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    rt = app.extensions[EXTENSION]
    job = rt.jobs.create("folder", "/x", "queue", ["a.jpg"])
    rt.jobs.record(job.id, [ItemResult(0, "duplicate", "", content_id(photos["coffee"]))])

    def down(*args: object, **kwargs: object) -> None:
        raise StoreUnavailable("the vector store is not answering")

    monkeypatch.setattr(Library, "records", down)
    answer = client.get(f"/jobs/{job.id}/duplicates.csv")
    assert answer.status_code == 503 and "not answering" in answer.get_data(as_text=True)
