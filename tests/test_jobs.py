"""Bulk ingestion jobs through the API: each source, counts, progress, cancel, resume."""

from __future__ import annotations

import csv
import io
import json
import os
import time
import zipfile
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from PIL import Image

from tests.conftest import WIDE_GAMUT_PHOTO, csrf_token, heic, mpo, noise_images, png, wait_for_job
from webapp.runtime import EXTENSION
from webapp.services import units
from webapp.services.imaging import content_id
from webapp.services.jobs import ItemResult
from webapp.services.library import Library


def import_folder(app: Flask, name: str) -> Path:
    """Return a fresh folder under the first allowed import root."""
    folder = Path(app.config["IMPORT_ROOTS"][0]) / name
    folder.mkdir(parents=True)
    return folder


def start(client: FlaskClient, **kwargs: Any) -> dict[str, Any]:
    response = client.post("/api/v1/jobs", **kwargs)
    assert response.status_code == 202, response.json
    return dict(response.json or {})


def assert_counts_add_up(job: dict[str, Any]) -> None:
    assert job["status"] == "done"
    assert job["processed"] == job["total"] == job["added"] + job["duplicates"] + job["failed"]
    assert len(job["failures"]) == job["failed"]


def test_folder_job_with_good_duplicate_and_broken_files(
    app: Flask, client: FlaskClient, photos: dict[str, bytes]
) -> None:
    folder = import_folder(app, "holiday")
    (folder / "nested" / "deeper").mkdir(parents=True)
    (folder / "coffee.jpg").write_bytes(photos["coffee"])
    (folder / "nested" / "coffee-copy.jpg").write_bytes(photos["coffee"])
    (folder / "nested" / "deeper" / "rocket.jpeg").write_bytes(photos["rocket"])
    (folder / "broken.jpg").write_bytes(photos["moon"][:300])
    (folder / "text.png").write_bytes(b"not a png")
    (folder / "notes.txt").write_text("ignored: not an image file name")
    (folder / ".hidden.jpg").write_bytes(photos["camera"])

    job = wait_for_job(client, start(client, json={"folder": str(folder)})["url"])
    assert_counts_add_up(job)
    assert (job["total"], job["added"], job["duplicates"], job["failed"]) == (5, 2, 1, 2)
    reasons = {f["name"]: f["reason"] for f in job["failures"]}
    assert set(reasons) == {"broken.jpg", "text.png"}
    assert "damaged or truncated" in reasons["broken.jpg"] and "not an image" in reasons["text.png"]
    assert job["rate"] > 0 and job["eta_seconds"] is None

    again = wait_for_job(client, start(client, json={"folder": str(folder)})["url"])
    assert (again["added"], again["duplicates"], again["failed"]) == (0, 3, 2)
    assert client.get("/api/v1/stats").json["count"] == 2


def test_files_named_in_bytes_that_are_not_utf8_are_loaded_with_those_bytes_shown(
    app: Flask, client: FlaskClient
) -> None:
    """A Latin-1 name from an old NAS, or what unzip made of an old Windows zip: one such file
    crashed the listing of its whole job, which then stayed queued forever. A backslash in a name
    on disk is part of it, not a separator."""
    folder = os.fsencode(import_folder(app, "legacy"))
    os.mkdir(folder + b"/\xd6land")
    names = [b"/\xd6land/Stra\xdfe.jpg", b"/caf\xe9.jpg", b"/plain.jpg", b"/back\\slash.jpg"]
    for name, image in zip(names, noise_images(4, seed=91), strict=True):
        Path(os.fsdecode(folder + name)).write_bytes(image)
    job = wait_for_job(client, start(client, json={"folder": os.fsdecode(folder)})["url"])
    assert_counts_add_up(job)
    assert (job["added"], job["failed"]) == (4, 0)
    listed = {(image["album"], image["filename"]) for image in client.get("/api/v1/images").json}
    shown = {("\\xd6land", "Stra\\xdfe.jpg"), ("", "caf\\xe9.jpg"), ("", "plain.jpg"), ("", "back\\slash.jpg")}
    assert listed == shown
    assert client.get("/library", query_string={"album": "\\xd6land"}).status_code == 200


def test_a_folder_that_cannot_be_listed_is_a_failure_of_the_job_not_passed_over(
    app: Flask, client: FlaskClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A sub-folder of another user (no permission): os.walk passed over it without a word, and the
    job ended done without its photos. Root reads every folder, so the refusal is made here."""
    folder = import_folder(app, "shared")
    for sub, image in zip(["open", "locked"], noise_images(2, seed=96), strict=True):
        (folder / sub).mkdir()
        (folder / sub / "photo.jpg").write_bytes(image)
    root = import_folder(app, "closed")
    scandir, refused = os.scandir, {str(folder / "locked"), str(root)}

    def refusing(path: Any) -> Any:
        if str(path) in refused:
            raise PermissionError(13, "Permission denied", str(path))
        return scandir(path)

    monkeypatch.setattr(os, "scandir", refusing)
    job = wait_for_job(client, start(client, json={"folder": str(folder)})["url"])
    assert_counts_add_up(job)
    assert (job["added"], job["failed"]) == (1, 1)
    assert job["failures"] == [
        {
            "name": "locked/",
            "position": 0,
            "reason": "the folder cannot be read (permission denied): its files were not loaded",
        }
    ]
    closed = wait_for_job(client, start(client, json={"folder": str(root)})["url"])
    assert (closed["status"], closed["error"]) == ("failed", "the folder cannot be read (permission denied)")


def test_a_job_whose_listing_fails_unexpectedly_is_failed_not_left_queued(
    app: Flask, client: FlaskClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = import_folder(app, "unlistable")

    def crash(_self: Any) -> list[str]:
        raise RuntimeError("something the code did not expect")

    monkeypatch.setattr("webapp.services.sources.Folder.names", crash)
    job = wait_for_job(client, start(client, json={"folder": str(folder)})["url"])
    assert (job["status"], job["error"]) == ("failed", "an unexpected error stopped the job (its worker logged it)")


def test_a_job_reads_its_files_in_batches_of_bounded_bytes(
    app: Flask, client: FlaskClient, photos: dict[str, bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    names = ["astronaut", "coffee", "chelsea", "rocket", "camera", "moon", "coins"]
    folder = import_folder(app, "scans")
    for name in names:
        (folder / f"{name}.png").write_bytes(png(Image.open(io.BytesIO(photos[name]))))
    monkeypatch.setattr(units, "BATCH_BYTES", 1, raising=False)  # the file crossing the bound ends its batch
    batches: list[int] = []
    prepare = Library.prepare

    def counted(self: Library, entries: Any, *args: Any, **kwargs: Any) -> Any:
        batches.append(len(entries))
        return prepare(self, entries, *args, **kwargs)

    monkeypatch.setattr(Library, "prepare", counted)
    job = wait_for_job(client, start(client, json={"folder": str(folder)})["url"])
    assert (job["status"], job["added"]) == ("done", 7)
    assert batches == [1] * 7
    for image in client.get("/api/v1/images?limit=10").json:
        assert client.get(image["thumbnail_url"]).status_code == 200  # made from the pixels as it was embedded


def test_archive_job(client: FlaskClient, photos: dict[str, bytes]) -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("a/chelsea.jpg", photos["chelsea"])
        archive.writestr("b/chelsea-again.jpg", photos["chelsea"])
        archive.writestr("coins.jpg", photos["coins"])
        archive.writestr("saved-by-windows.jfif", photos["rocket"])
        archive.writestr("3d/DSCF0001.MPO", mpo(photos["camera"], photos["moon"]))
        archive.writestr("broken.png", b"\x89PNG\r\n\x1a\n")
        archive.writestr("__MACOSX/._coins.jpg", b"resource fork")
        archive.writestr("readme.md", "ignored")
    data = {"archive": (io.BytesIO(buffer.getvalue()), "photos.zip")}
    job = wait_for_job(client, start(client, data=data, content_type="multipart/form-data")["url"])
    assert_counts_add_up(job)
    assert (job["added"], job["duplicates"], job["failed"], job["source"]) == (4, 1, 1, "photos.zip")
    assert [f["name"] for f in job["failures"]] == ["broken.png"]
    found = client.post("/api/v1/search", data={"image": (io.BytesIO(photos["camera"]), "q.jpg")}).json
    assert (found["results"][0]["filename"], found["results"][0]["mime"]) == ("DSCF0001.MPO", "image/jpeg")


def test_not_a_zip_is_refused_at_once(client: FlaskClient) -> None:
    data = {"archive": (io.BytesIO(b"PK not really"), "fake.zip")}
    response = client.post("/api/v1/jobs", data=data, content_type="multipart/form-data")
    assert response.status_code == 422 and "not a zip" in response.json["message"]
    assert client.get("/api/v1/jobs").json == []


def test_files_job(client: FlaskClient, photos: dict[str, bytes]) -> None:
    files = [
        (io.BytesIO(photos["astronaut"]), "astronaut.jpg"),
        (io.BytesIO(photos["astronaut"]), "same-bytes.jpg"),
        (io.BytesIO(b""), "empty.jpg"),
        (io.BytesIO(photos["retina"]), "retina.jpg"),
    ]
    job = wait_for_job(client, start(client, data={"files": files}, content_type="multipart/form-data")["url"])
    assert_counts_add_up(job)
    assert (job["added"], job["duplicates"], job["failed"]) == (2, 1, 1)
    assert job["failures"] == [{"name": "empty.jpg", "position": 2, "reason": "the file is empty"}]


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        ({"json": {"folder": "/etc"}}, 403, "not under an allowed import folder"),
        ({"json": {"folder": "relative/path"}}, 422, "not a folder"),
        ({"json": {"folder": "../.."}}, 403, "not under an allowed import folder"),
        ({"json": {"folder": "/tmp/a\x00b"}}, 422, "control characters"),
        ({"data": '{"folder": "/\\ud800"}', "content_type": "application/json"}, 422, "invalid Unicode"),
        ({"json": {}}, 422, "exactly one of"),
        ({"json": {"folder": "/tmp", "unknown": 1}}, 422, "Unknown field"),
        ({"data": {"folder": ""}, "content_type": "multipart/form-data"}, 422, "exactly one of"),
    ],
)
def test_bad_job_requests(client: FlaskClient, body: dict[str, Any], status: int, message: str) -> None:
    response = client.post("/api/v1/jobs", **body)
    assert response.status_code == status
    assert message in str(response.json)


def test_missing_folder_under_a_root_is_422(app: Flask, client: FlaskClient) -> None:
    missing = Path(app.config["IMPORT_ROOTS"][0]) / "nope"
    response = client.post("/api/v1/jobs", json={"folder": str(missing)})
    assert response.status_code == 422 and "not a folder" in response.json["message"]


def test_links_out_of_the_folder_are_not_followed(
    app: Flask, client: FlaskClient, tmp_path: Path, photos: dict[str, bytes]
) -> None:
    outside = tmp_path / "private"
    outside.mkdir()
    (outside / "secret.jpg").write_bytes(photos["page"])
    folder = import_folder(app, "links")
    (folder / "ok.jpg").write_bytes(photos["text"])
    os.symlink(outside / "secret.jpg", folder / "secret.jpg")
    os.symlink(outside, folder / "private-dir")
    job = wait_for_job(client, start(client, json={"folder": str(folder)})["url"])
    assert (job["total"], job["added"]) == (1, 1)
    listed = client.get("/api/v1/images").json
    assert [image["filename"] for image in listed] == ["ok.jpg"]


def test_progress_is_visible_and_search_answers_while_a_job_runs(
    app: Flask, client: FlaskClient, photos: dict[str, bytes]
) -> None:
    folder = import_folder(app, "many")
    for i, data in enumerate(noise_images(300)):
        (folder / f"{i:04d}.jpg").write_bytes(data)
    url = start(client, json={"folder": str(folder)})["url"]
    seen: list[tuple[str, int, int | None]] = []
    searched: list[tuple[int, float]] = []
    while (job := client.get(url).json)["status"] in ("queued", "running"):
        seen.append((job["status"], job["processed"], job["total"]))
        if job["status"] == "running" and job["processed"] and not searched:
            started = time.monotonic()
            search = client.post(
                "/api/v1/search",
                data={"image": (io.BytesIO(photos["coffee"]), "q.jpg")},
                content_type="multipart/form-data",
            )
            searched.append((search.status_code, time.monotonic() - started))
        time.sleep(0.02)
    assert any(status == "running" and 0 < done < (total or 0) for status, done, total in seen), seen
    assert searched and searched[0][0] == 200
    assert client.get(url).json["added"] == 300


def test_cancel_then_resume_adds_everything_once(app: Flask, client: FlaskClient) -> None:
    folder = import_folder(app, "cancel")
    for i, data in enumerate(noise_images(400, seed=1)):
        (folder / f"{i:04d}.jpg").write_bytes(data)
    job = start(client, json={"folder": str(folder)})
    while client.get(job["url"]).json["processed"] == 0:
        time.sleep(0.01)
    cancelled = client.delete(job["url"])
    assert cancelled.status_code == 200
    stopped = wait_for_job(client, job["url"])
    assert stopped["status"] == "cancelled" and stopped["processed"] < 400
    assert client.delete(job["url"]).status_code == 409

    resumed = client.post(job["url"] + "/resume")
    assert resumed.status_code == 202
    final = wait_for_job(client, job["url"])
    assert_counts_add_up(final)
    assert final["added"] == 400 and final["duplicates"] == 0
    assert client.get("/api/v1/stats").json["count"] == 400
    assert client.post(job["url"] + "/resume").status_code == 409


def test_unknown_job_is_404(client: FlaskClient) -> None:
    for response in (client.get("/api/v1/jobs/nope"), client.delete("/api/v1/jobs/nope")):
        assert response.status_code == 404 and response.json["code"] == 404
    # A NUL in the id reached the database, and PostgreSQL, whose text holds none, answered a 500.
    for job in ("a%00b", "f" * 31 + "%00", "F" * 32, "f" * 32):
        for method, path in [
            ("GET", f"/api/v1/jobs/{job}"),
            ("DELETE", f"/api/v1/jobs/{job}"),
            ("GET", f"/api/v1/jobs/{job}/failures"),
            ("POST", f"/api/v1/jobs/{job}/resume"),
            ("GET", f"/jobs/{job}"),
            ("GET", f"/jobs/{job}/failures.csv"),
            ("POST", f"/jobs/{job}/cancel"),
            ("POST", f"/jobs/{job}/resume"),
        ]:
            form = {"csrf_token": csrf_token(client)} if method == "POST" and path.startswith("/jobs") else None
            response = client.open(path, method=method, data=form)
            assert response.status_code == 404, (method, path, response.status_code)
            assert response.is_json == path.startswith("/api/"), path


def test_jobs_are_listed_newest_first_with_pagination(app: Flask, client: FlaskClient) -> None:
    folder = import_folder(app, "empty")
    ids = [wait_for_job(client, start(client, json={"folder": str(folder)})["url"])["id"] for _ in range(3)]
    response = client.get("/api/v1/jobs?page_size=2")
    assert [job["id"] for job in response.json] == ids[::-1][:2]
    assert '"total": 3' in response.headers["X-Pagination"]


def test_a_job_leaves_thumbnails_of_jpegs_to_their_first_view_and_a_single_add_makes_its_own(
    app: Flask, client: FlaskClient, photos: dict[str, bytes]
) -> None:
    folder = import_folder(app, "thumbs")
    for name in ("coffee", "astronaut"):
        (folder / f"{name}.jpg").write_bytes(photos[name])
    phone = heic(Image.open(io.BytesIO(photos["moon"])))
    (folder / "moon.heic").write_bytes(phone)
    job = wait_for_job(client, start(client, json={"folder": str(folder)})["url"])
    assert job["added"] == 3
    thumbnails = Path(app.config["DATA_DIR"]) / "images" / "thumbnails"
    with_the_load = list(thumbnails.rglob("*.jpg"))
    assert [p.stem for p in with_the_load] == [content_id(phone)]  # a HEIC decodes whole: made with its pixels
    assert max(Image.open(with_the_load[0]).size) == 320
    records = {r["filename"]: r for r in client.get("/api/v1/images").json}
    first = client.get(records["coffee.jpg"]["thumbnail_url"])  # made now, from the original
    assert first.status_code == 200 and first.mimetype == "image/jpeg"
    assert Image.open(io.BytesIO(first.data)).size == (320, 213)  # 600x400, bounded to 320
    made = sorted(thumbnails.rglob("*.jpg"))
    assert sorted(p.stem for p in made) == sorted([records["coffee.jpg"]["id"], content_id(phone)])
    again = client.get(records["coffee.jpg"]["thumbnail_url"])
    assert again.data == first.data and sorted(thumbnails.rglob("*.jpg")) == made  # served as stored

    added = client.post(
        "/api/v1/images",
        data={"image": (io.BytesIO(photos["rocket"]), "rocket.jpg")},
        content_type="multipart/form-data",
    ).json
    assert (thumbnails / added["id"][:2] / f"{added['id']}.jpg").is_file()  # one upload: made with it
    client.delete(f"/api/v1/images/{records['astronaut.jpg']['id']}")
    assert client.get(records["astronaut.jpg"]["thumbnail_url"]).status_code == 404


def test_each_jpeg_made_of_a_wide_gamut_photo_carries_its_colour_profile(app: Flask, client: FlaskClient) -> None:
    # Browsers show an image without a profile as sRGB: an Adobe RGB or Display P3 photo's
    # thumbnail looked washed out beside its original (tests/test_imaging.py measures it).
    original = WIDE_GAMUT_PHOTO.read_bytes()
    img = Image.open(io.BytesIO(original))
    profile = img.info["icc_profile"]
    folder = import_folder(app, "wide-gamut")
    (folder / "rocket.jpg").write_bytes(original)
    (folder / "rocket.heic").write_bytes(heic(img, icc_profile=profile))
    assert wait_for_job(client, start(client, json={"folder": str(folder)})["url"])["added"] == 2
    records = {r["filename"]: r for r in client.get("/api/v1/images").json}
    out = io.BytesIO()
    img.save(out, "PNG", icc_profile=profile)
    single = client.post(
        "/api/v1/images", data={"image": (io.BytesIO(out.getvalue()), "rocket.png")}, content_type="multipart/form-data"
    ).json
    made = {
        "a JPEG's thumbnail, at its first view": records["rocket.jpg"]["thumbnail_url"],
        "a HEIC's thumbnail, with the load": records["rocket.heic"]["thumbnail_url"],
        "a HEIC's preview": f"/api/v1/images/{records['rocket.heic']['id']}/preview",
        "a single upload's thumbnail": single["thumbnail_url"],
    }
    for what, url in made.items():
        response = client.get(url)
        assert response.mimetype == "image/jpeg", what
        assert Image.open(io.BytesIO(response.data)).info.get("icc_profile") == profile, what


def test_a_thumbnail_that_cannot_be_stored_is_a_503_with_the_reason(
    app: Flask, client: FlaskClient, photos: dict[str, bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = import_folder(app, "full-disk")
    (folder / "coffee.jpg").write_bytes(photos["coffee"])
    wait_for_job(client, start(client, json={"folder": str(folder)})["url"])
    record = client.get("/api/v1/images").json[0]

    def full(*args: object, **kwargs: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("webapp.services.images._stage", full)
    response = client.get(record["thumbnail_url"])
    assert response.status_code == 503 and "No space left on device" in response.json["message"]
    monkeypatch.undo()
    assert client.get(record["thumbnail_url"]).status_code == 200  # space again: made now


def test_a_folder_of_phone_photos_in_heic_is_loaded_and_found_by_their_jpeg_copies(
    app: Flask, client: FlaskClient, photos: dict[str, bytes]
) -> None:
    folder = import_folder(app, "iphone")
    names = ("chelsea", "rocket", "coffee")
    for i, name in enumerate(names):
        (folder / f"IMG_{i:04d}.HEIC").write_bytes(heic(Image.open(io.BytesIO(photos[name]))))
    job = wait_for_job(client, start(client, json={"folder": str(folder)})["url"])
    assert (job["added"], job["failed"]) == (3, 0), job
    for i, name in enumerate(names):
        found = client.post(
            "/api/v1/search", data={"image": (io.BytesIO(photos[name]), "q.jpg")}, content_type="multipart/form-data"
        ).json["results"][0]
        assert (found["filename"], found["mime"]) == (f"IMG_{i:04d}.HEIC", "image/heic")
        assert found["score"] > 0.95  # the JPEG and its HEIC copy are near-duplicates


def test_every_failed_file_of_a_big_load_can_be_listed_and_downloaded(app: Flask, client: FlaskClient) -> None:
    folder = import_folder(app, "broken")
    for i in range(1002):
        (folder / f"note-{i:04d}.jpg").write_text("not a photo")
    (folder / "=HYPERLINK(1).jpg").write_text("a formula, for a spreadsheet")
    job = wait_for_job(client, start(client, json={"folder": str(folder)})["url"])
    assert (job["status"], job["failed"], len(job["failures"])) == ("done", 1003, 1000)  # the detail: the first 1000

    url = f"/api/v1/jobs/{job['id']}/failures"
    last = client.get(url, query_string={"page": 11, "page_size": 100})
    assert last.status_code == 200 and len(last.get_json()) == 3
    assert json.loads(last.headers["X-Pagination"])["total"] == 1003
    names = [
        f["name"] for page in range(1, 12) for f in client.get(url, query_string={"page": page, "page_size": 100}).json
    ]
    assert sorted(names) == sorted(p.name for p in folder.iterdir())
    assert client.get("/api/v1/jobs/0123456789abcdef0123456789abcdef/failures").status_code == 404

    page = client.get(f"/jobs/{job['id']}").get_data(as_text=True)
    assert f'href="/jobs/{job["id"]}/failures.csv"' in page
    download = client.get(f"/jobs/{job['id']}/failures.csv")
    assert download.status_code == 200 and download.mimetype == "text/csv"
    assert "attachment" in download.headers["Content-Disposition"]
    rows = list(csv.reader(io.StringIO(download.get_data(as_text=True))))
    assert rows[0] == ["file", "reason"] and len(rows) == 1004
    assert ["'=HYPERLINK(1).jpg", rows[1][1]] in rows  # never read as a formula
    assert all("not an image" in reason for _, reason in rows[1:])
    assert client.get("/jobs/0123456789abcdef0123456789abcdef/failures.csv").status_code == 404


def test_the_list_of_a_running_jobs_failures_gives_each_once(app: Flask) -> None:
    # Chunks run side by side, so files fail out of order: one failing before the place a download
    # has reached must not shift the pages it reads next (read by offset, one was listed twice).
    rt = app.extensions[EXTENSION]
    job = rt.jobs.create("folder", "/x", "queue", [f"{i}.jpg" for i in range(6)])
    rt.jobs.record(job.id, [ItemResult(i, "failed", "broken") for i in (2, 3, 4, 5)])
    reading = rt.ingestion.all_failures(job.id, page=2)
    names = [next(reading).name, next(reading).name]
    rt.jobs.record(job.id, [ItemResult(0, "failed", "broken")])  # an earlier chunk's file, meanwhile
    names += [failure.name for failure in reading]
    assert names == ["2.jpg", "3.jpg", "4.jpg", "5.jpg"]
    assert [f.name for f in rt.ingestion.all_failures(job.id)] == ["0.jpg", "2.jpg", "3.jpg", "4.jpg", "5.jpg"]


def test_the_api_lists_a_running_jobs_failures_past_a_position_each_once(app: Flask, client: FlaskClient) -> None:
    rt = app.extensions[EXTENSION]
    job = rt.jobs.create("folder", "/x", "queue", [f"{i}.jpg" for i in range(6)])
    rt.jobs.record(job.id, [ItemResult(i, "failed", "broken") for i in (2, 3, 4, 5)])
    url = f"/api/v1/jobs/{job.id}/failures"
    first = client.get(url, query_string={"page_size": 2})
    assert [(f["name"], f["position"]) for f in first.json] == [("2.jpg", 2), ("3.jpg", 3)]
    rt.jobs.record(job.id, [ItemResult(0, "failed", "broken")])  # an earlier chunk's file, meanwhile
    by_page = client.get(url, query_string={"page": 2, "page_size": 2})
    assert [f["name"] for f in by_page.json] == ["3.jpg", "4.jpg"]  # shifted: what `after` is for
    rest = client.get(url, query_string={"after": first.json[-1]["position"], "page_size": 2})
    assert [f["name"] for f in rest.json] == ["4.jpg", "5.jpg"]
    pages = json.loads(rest.headers["X-Pagination"])
    assert (pages["total"], pages["total_pages"]) == (2, 1)  # counted past the position
    assert client.get(url, query_string={"after": 5}).json == []
    assert json.loads(client.get(url).headers["X-Pagination"])["total"] == 5
    for bad in ("-1", "x", str(2**31)):
        refused = client.get(url, query_string={"after": bad})
        assert refused.status_code == 422 and "after" in refused.json["errors"]["query"], refused.json
