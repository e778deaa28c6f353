"""Hostile input found by trying the running app as an attacker would (issue: "the hostile inputs
that still get through"): each is a clear 4xx, or one failed entry of a job, never a 500 or a hang."""

from __future__ import annotations

import errno
import io
import os
import struct
import time
import zipfile
import zlib
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from PIL import Image
from werkzeug.datastructures import FileStorage

from tests.conftest import csrf_token, noise_images, wait_for_job
from tests.test_api import BOTH_STORES
from webapp.errors import StoreUnavailable
from webapp.runtime import EXTENSION
from webapp.services import images as images_module
from webapp.services.catalog import Catalog
from webapp.services.imaging import MIME_BY_FORMAT


def many_scans(count: int) -> bytes:
    """A real progressive JPEG with ``count`` extra empty scans before its end (each scan costs a pass)."""
    out = io.BytesIO()
    Image.new("RGB", (64, 64), "teal").save(out, "JPEG", progressive=True)
    data = out.getvalue()
    sos = data.rindex(b"\xff\xda")
    length = int.from_bytes(data[sos + 2 : sos + 4], "big")
    header = data[sos : sos + 2 + length]
    return data[:-2] + header * count + data[-2:]


def test_a_jpeg_with_thousands_of_scans_is_refused_at_once(client: FlaskClient) -> None:
    # The ordinary one first: it also opens the model and the store, which the timing must not include.
    ordinary = client.post("/api/v1/images", data={"image": (io.BytesIO(many_scans(0)), "fine.jpg")})
    assert ordinary.status_code == 201
    body = many_scans(20_000)
    started = time.perf_counter()
    response = client.post("/api/v1/search", data={"image": (io.BytesIO(body), "scans.jpg")})
    took = time.perf_counter() - started
    assert response.status_code == 422 and "progressive scans" in response.json["message"]
    assert took < 1.0


def png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


SMALL_PIECES = {
    # 2 MB each: Pillow reads each piece in Python (bench/headers.py: 3-13 s at 30 MB before)
    "empty-chunks.png": b"\x89PNG\r\n\x1a\n"
    + png_chunk(b"IHDR", struct.pack(">IIBBBBB", 10, 10, 8, 2, 0, 0, 0))
    + png_chunk(b"prIv", b"") * 170_000
    + png_chunk(b"IDAT", zlib.compress(b"\x00" * 310))
    + png_chunk(b"IEND", b""),
    "fill-bytes.jpg": b"\xff\xd8" + b"\xff" * 2_000_000,
    "comments.gif": b"GIF89a" + struct.pack("<HHBBB", 10, 10, 0, 0, 0) + b"\x21\xfe\x01a\x00" * 400_000,
}


@pytest.mark.parametrize("name", sorted(SMALL_PIECES))
def test_a_file_of_countless_tiny_chunks_or_markers_is_refused_after_a_bounded_read(
    app: Flask, client: FlaskClient, name: str
) -> None:
    for url in ("/api/v1/images", "/api/v1/search"):
        response = client.post(url, data={"image": (io.BytesIO(SMALL_PIECES[name]), name)})
        assert response.status_code == 422, response.json
        assert "too many small pieces" in response.json["message"]
    assert client.get("/api/v1/stats").json["count"] == 0
    assert sorted((Path(app.config["DATA_DIR"]) / "images").rglob("*.*")) == []


def test_only_the_readers_of_the_formats_the_app_takes_ever_see_a_file(
    client: FlaskClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    Image.init()

    def never(*args: object) -> None:
        raise AssertionError("a reader of a format the app does not take was handed the file")

    for fmt, (_, accept) in list(Image.OPEN.items()):
        if fmt not in MIME_BY_FORMAT:
            monkeypatch.setitem(Image.OPEN, fmt, (never, accept))
    refusals = {
        "drawing.eps": (b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\n", "unsupported image format EPS"),
        "layers.psd": (b"8BPS\x00\x01" + bytes(100), "unsupported image format PSD"),
        "scan.ppm": (b"P6\n10 10\n255\n" + bytes(300), "not an image this app can read"),
        "frame.tga": (b"\x00\x00\x02\x00" + bytes(300), "not an image this app can read"),
    }
    for name, (data, words) in refusals.items():
        response = client.post("/api/v1/search", data={"image": (io.BytesIO(data), name)})
        assert response.status_code == 422 and words in response.json["message"], (name, response.json)


PAGED = [
    "/api/v1/images",
    "/api/v1/jobs",
    "/api/v1/trash",
    "/jobs",
    "/library",
    "/albums",
    "/trash",
    "/activity",
    "/duplicates",
]


@pytest.mark.parametrize("path", PAGED)
def test_an_absurd_page_number_is_not_a_500(client: FlaskClient, path: str) -> None:
    # 4,301 digits and more: int() refuses them; "²" passes str.isdigit() and not int() (each was a 500)
    for value in ("99999999999999999999", "9" * 5000, "²", "٣"):
        for name in ("page", "per_page", "page_size"):
            response = client.get(path, query_string={name: value})
            assert response.status_code in (200, 302, 400, 422), (name, value[:20], response.status_code)


@pytest.mark.parametrize("path", ["/library/clear", "/trash/empty"])
def test_a_confirmation_that_is_no_count_is_400(client: FlaskClient, path: str) -> None:
    token = csrf_token(client, "/add")  # an empty library's confirmation page has no form
    for typed in ("", "x", "-1", "²", "٣", "9" * 5000):
        response = client.post(path, data={"csrf_token": token, "confirm": typed})
        assert response.status_code == 400 and "to confirm" in response.get_data(as_text=True), typed[:20]


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/api/v1/images/move", {"album": "x"}),
        ("/api/v1/trash/restore", {}),
        ("/api/v1/duplicates/1/keep-all", {}),
    ],
)
def test_an_id_with_a_final_newline_is_422(client: FlaskClient, path: str, body: dict[str, str]) -> None:
    # A regular expression's "$" matches before a final newline: the ids passed as well formed.
    key = "shown" if "keep-all" in path else "ids"
    answer = client.post(path, json={**body, key: ["a" * 64 + "\n"]})
    assert answer.status_code == 422 and "image id" in str(answer.json["errors"]), answer.json
    assert client.get("/api/v1/activity", query_string={"image": "a" * 64 + "\n"}).status_code == 422


def test_a_folder_name_too_long_or_a_link_loop_is_422(app: Flask, client: FlaskClient) -> None:
    root = Path(app.config["IMPORT_ROOTS"][0])
    root.mkdir(parents=True)
    loop = root / "loop"
    os.symlink(loop, loop)
    for folder, words in ((root / ("a" * 300), "too long"), (loop, "loop")):
        response = client.post("/api/v1/jobs", json={"folder": str(folder)})
        assert response.status_code == 422 and words in response.json["message"], response.json


def test_deeply_nested_json_is_400(client: FlaskClient) -> None:
    body = "[" * 100_000 + "]" * 100_000
    response = client.post("/api/v1/jobs", data=body, content_type="application/json")
    assert response.status_code == 400 and response.is_json


def test_a_fifo_and_a_looping_link_fail_alone_and_the_next_job_runs(app: Flask, client: FlaskClient) -> None:
    folder = Path(app.config["IMPORT_ROOTS"][0]) / "odd"
    folder.mkdir(parents=True)
    for i, data in enumerate(noise_images(2, seed=41)):
        (folder / f"{i}.jpg").write_bytes(data)
    os.mkfifo(folder / "b.jpg")  # reading it would block for ever
    os.symlink(folder / "c.jpg", folder / "c.jpg")  # a link to itself
    job = wait_for_job(client, client.post("/api/v1/jobs", json={"folder": str(folder)}).json["url"], timeout=60)
    assert (job["status"], job["added"], job["failed"]) == ("done", 2, 2)
    reasons = {f["name"]: f["reason"] for f in job["failures"]}
    assert reasons["b.jpg"] == "not a regular file" and "symbolic links" in reasons["c.jpg"], reasons
    assert not any("Error" in r or "'" in r for r in reasons.values())  # words, not Python reprs
    later = Path(app.config["IMPORT_ROOTS"][0]) / "later"
    later.mkdir()
    (later / "x.jpg").write_bytes(noise_images(1, seed=42)[0])
    assert wait_for_job(client, client.post("/api/v1/jobs", json={"folder": str(later)}).json["url"])["added"] == 1


def test_two_archive_entries_with_one_name_are_both_read(client: FlaskClient) -> None:
    first, second = noise_images(2, seed=43)
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive, pytest.warns(UserWarning, match="Duplicate name"):
        archive.writestr("same.jpg", first)
        archive.writestr("same.jpg", second)
    response = client.post("/api/v1/jobs", data={"archive": (io.BytesIO(out.getvalue()), "twins.zip")})
    job = wait_for_job(client, response.json["url"])
    assert (job["status"], job["total"], job["added"], job["duplicates"]) == ("done", 2, 2, 0)


def test_bidi_controls_are_taken_out_of_file_names(client: FlaskClient) -> None:
    data = noise_images(1, seed=44)[0]
    response = client.post("/api/v1/images", data={"image": (io.BytesIO(data), "invoice\u202egpj.exe")})
    assert response.status_code == 201 and response.json["filename"] == "invoicegpj.exe"


def test_html_405_pages_say_what_is_allowed(client: FlaskClient) -> None:
    response = client.put("/library")
    assert response.status_code == 405 and response.mimetype == "text/html"
    assert set(response.headers["Allow"].split(", ")) >= {"GET"}


def test_an_archive_of_too_many_entries_is_refused_before_its_directory_is_parsed(
    app: Flask, client: FlaskClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        for i in range(1500):
            archive.writestr(f"{i}.jpg", b"")
    app.config["MAX_ARCHIVE_ENTRIES"] = 1000
    app.extensions["webapp"].settings["MAX_ARCHIVE_ENTRIES"] = 1000

    def parsed(*args: object, **kwargs: object) -> None:
        raise AssertionError("the whole directory was parsed")

    monkeypatch.setattr("webapp.services.sources.zipfile.ZipFile", parsed)
    response = client.post("/api/v1/jobs", data={"archive": (io.BytesIO(out.getvalue()), "many.zip")})
    assert response.status_code == 422 and "1500 entries" in response.json["message"]
    assert client.get("/api/v1/jobs").json == []


def test_a_zip64_archive_declares_its_count_in_its_zip64_record(tmp_path: Path) -> None:
    from webapp.services.archives import directory_size

    path = tmp_path / "big.zip"
    with zipfile.ZipFile(path, "w") as archive:  # past 65,535 entries, Python writes the zip64 records
        for i in range(70_000):
            archive.writestr(str(i), b"")
    entries, directory = directory_size(path) or (0, 0)
    assert entries == 70_000 and directory > 70_000 * 46


MEMORY_PROBE = """
import io, resource, sys, threading
from PIL import Image
from webapp.services.imaging import decode, return_large_buffers_to_the_system
assert return_large_buffers_to_the_system()  # as the app does when it builds its embedder
buf = io.BytesIO()
Image.new("RGBA", (8000, 8000), (10, 200, 30, 128)).save(buf, "PNG")
data = buf.getvalue()
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
shapes = []
threads = [threading.Thread(target=lambda: shapes.append(decode(data, 64_000_000, 448))) for _ in range(8)]
[t.start() for t in threads]
[t.join() for t in threads]
grown = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base) // 1024
print(len(data), grown, {(d.width, d.height, max(d.image.size)) for d in shapes})
"""


def test_eight_huge_transparent_pngs_at_once_stay_within_a_bounded_memory() -> None:
    """An 8000x8000 RGBA PNG is 250 KB on the wire and took 1.5 GB to decode; 4 at once, 5.4 GB."""
    import subprocess
    import sys

    from webapp.config import ROOT

    done = subprocess.run([sys.executable, "-c", MEMORY_PROBE], cwd=ROOT, capture_output=True, text=True, check=True)
    size, grown_mb, shapes = done.stdout.split(" ", 2)
    assert int(size) < 400_000 and shapes.strip() == "{(8000, 8000, 2000)}"
    assert int(grown_mb) < 1200, f"peak resident memory grew by {grown_mb} MB"


def test_a_damaged_archive_entry_is_described_in_words(client: FlaskClient) -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
        archive.writestr("good.jpg", noise_images(1, seed=51)[0])
        archive.writestr("bad.jpg", noise_images(1, seed=52)[0])
    data = bytearray(buffer.getvalue())
    at = data.rfind(b"bad.jpg", 0, data.find(b"PK\x01\x02")) + len(b"bad.jpg") + 200
    data[at] ^= 0xFF  # one byte of the stored image flipped: its CRC no longer matches
    started = client.post("/api/v1/jobs", data={"archive": (io.BytesIO(bytes(data)), "photos.zip")})
    job = wait_for_job(client, started.json["url"])
    reasons = {f["name"]: f["reason"] for f in job["failures"]}
    assert reasons == {"bad.jpg": "the archive entry is damaged: its checksum does not match its bytes"}


def test_uploads_are_removed_when_a_job_ends_or_stops_for_longer_than_the_retention(
    app: Flask, client: FlaskClient
) -> None:
    from dataclasses import replace

    from webapp.runtime import runtime
    from webapp.services.jobs import JobStatus

    uploads = Path(app.config["STORAGE_DIR"]) / "uploads"
    files = [("files", (io.BytesIO(data), f"{i}.jpg")) for i, data in enumerate(noise_images(3, seed=53))]
    done = wait_for_job(client, client.post("/api/v1/jobs", data=dict(files=[f[1] for f in files])).json["url"])
    # The job's thread removes its files just after it records the job done, so allow it a moment.
    deadline = time.monotonic() + 10
    while (uploads / done["id"]).exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert done["status"] == "done" and not (uploads / done["id"]).exists()

    with app.app_context():
        ingestion = runtime().ingestion
        stopped = ingestion.store.create("files", "2 uploaded files", "nobody", ["a.jpg", "b.jpg"]).id
        (uploads / stopped).mkdir(parents=True)
        (uploads / stopped / "000000").write_bytes(b"kept while the job may resume")
        ingestion.store.request_cancel(stopped)
        assert ingestion.store.get(stopped).status == JobStatus.CANCELLED
        orphan = uploads / ("e" * 32)
        orphan.mkdir()
        os.utime(orphan, (time.time() - 7200, time.time() - 7200))  # a job that never came to be
        assert ingestion.drop_stale_uploads() == [orphan.name]
        assert (uploads / stopped).is_dir()  # within the retention: resumable

        ingestion.limits = replace(ingestion.limits, upload_retention=0)
        runtime().start_housekeeping()  # as each web and queue worker does: no job need start
        deadline = time.monotonic() + 30
        while (uploads / stopped).exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not (uploads / stopped).exists()
    resumed = client.post(f"/api/v1/jobs/{stopped}/resume")
    assert resumed.status_code == 409 and "uploaded files were removed" in resumed.json["message"]


def test_json_bodies_over_a_mebibyte_are_413_and_long_lists_one_error(client: FlaskClient) -> None:
    # Before, a 6 MB JSON list of numbers as `files` took a worker 15 s and 1.5 GB and answered
    # 206 MB: one error for each number.
    numbers = ",".join(["0"] * 400_000)
    huge = client.post("/api/v1/jobs", data=f'{{"files": [{numbers},{numbers}]}}', content_type="application/json")
    assert huge.status_code == 413 and "at most 1 MiB" in huge.json["message"]
    files = client.post("/api/v1/jobs", data=f'{{"files": [{numbers}]}}', content_type="application/json")
    assert files.status_code == 422 and len(files.data) < 1000, files.data[:300]
    assert files.json["errors"]["json_or_multipart"]["files"] == [
        "Must be file uploads (multipart/form-data file parts)."
    ]
    body = f'{{"keep": "{"a" * 64}", "delete": [{numbers}]}}'
    delete = client.post("/api/v1/duplicates/1/resolve", data=body, content_type="application/json")
    assert delete.status_code == 422 and delete.json["errors"]["json"]["delete"] == ["Longer than maximum length 500."]


def test_a_full_disk_is_503_with_its_reason_and_a_job_resumes_once_there_is_room(
    app: Flask, client: FlaskClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Before, an upload met "No space left on device" as a 500, and a job failed with "an
    # unexpected error".
    real_stage, full = images_module._stage, [True]

    def stage(path: Path, data: bytes) -> Path:
        if full[0]:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_stage(path, data)

    monkeypatch.setattr(images_module, "_stage", stage)
    one, *others = noise_images(3, seed=61)
    response = client.post("/api/v1/images", data={"image": (io.BytesIO(one), "a.jpg")})
    assert response.status_code == 503 and "No space left on device" in response.json["message"], response.json
    files = {"files": [(io.BytesIO(data), f"{i}.jpg") for i, data in enumerate(others)]}
    job = client.post("/api/v1/jobs", data=files, content_type="multipart/form-data").json
    ended = wait_for_job(client, job["url"])
    assert ended["status"] == "failed" and "No space left on device" in ended["error"], ended
    assert client.get("/api/v1/stats").json["count"] == 0
    assert not list((Path(app.config["STORAGE_DIR"]) / "originals").rglob("*.*"))
    full[0] = False  # room again
    assert client.post(f"{job['url']}/resume").status_code == 202
    assert wait_for_job(client, job["url"])["added"] == 2

    def save(*args: object, **kwargs: object) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(FileStorage, "save", save)  # no room for a new job's uploads
    files = {"files": [(io.BytesIO(one), "a.jpg")]}
    response = client.post("/api/v1/jobs", data=files, content_type="multipart/form-data")
    assert response.status_code == 503 and "no job was started" in response.json["message"], response.json
    assert len(client.get("/api/v1/jobs").json or []) == 1
    assert not list((Path(app.config["STORAGE_DIR"]) / "uploads").glob("*/*"))


def test_milvus_lite_meeting_a_full_disk_is_503_and_nothing_is_stored(
    app: Flask, client: FlaskClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    import milvus_lite.engine.collection as lite_collection

    def insert(*args: object, **kwargs: object) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")  # what its write-ahead log met

    monkeypatch.setattr(lite_collection.Collection, "insert", insert)
    response = client.post("/api/v1/images", data={"image": (io.BytesIO(noise_images(1, seed=62)[0]), "a.jpg")})
    assert response.status_code == 503 and "No space left on device" in response.json["message"], response.json
    assert client.get("/api/v1/stats").json["count"] == 0
    assert not list((Path(app.config["STORAGE_DIR"]) / "originals").rglob("*.*"))


def test_a_database_that_cannot_record_an_upload_leaves_nothing_searchable(
    app: Flask, client: FlaskClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Before, the image answered 503 but stayed searchable, missing from the library's pages.
    def add(*args: object, **kwargs: object) -> None:
        raise StoreUnavailable("the database cannot be reached (database or disk is full); try again")

    monkeypatch.setattr(Catalog, "add", add)
    query = noise_images(1, seed=63)[0]
    response = client.post("/api/v1/images", data={"image": (io.BytesIO(query), "a.jpg")})
    assert response.status_code == 503 and "disk is full" in response.json["message"], response.json
    assert client.get("/api/v1/stats").json["count"] == 0
    assert client.post("/api/v1/search", data={"image": (io.BytesIO(query), "q.jpg")}).json["results"] == []
    assert not list((Path(app.config["STORAGE_DIR"]) / "originals").rglob("*.*"))


@BOTH_STORES
def test_an_upload_whose_vector_write_timed_out_leaves_nothing_searchable(
    app: Flask, client: FlaskClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A call past its deadline may still be carried out by a Milvus server: the vector is taken back too.

    Before, the files went and the catalogue had no row, but the vector a late write left was found
    by searches, its thumbnail missing.
    """
    store = app.extensions[EXTENSION].library.vectors
    upsert = store.upsert

    def late(items: object) -> None:
        upsert(items)  # carried out, as a server does a call whose caller gave up on it
        raise StoreUnavailable("the vector store failed: it did not answer in time")

    monkeypatch.setattr(store, "upsert", late)
    query = noise_images(1, seed=64)[0]
    response = client.post("/api/v1/images", data={"image": (io.BytesIO(query), "a.jpg")})
    assert response.status_code == 503 and "in time" in response.json["message"], response.json
    monkeypatch.undo()
    assert client.get("/api/v1/stats").json["count"] == 0
    assert client.post("/api/v1/search", data={"image": (io.BytesIO(query), "q.jpg")}).json["results"] == []
    assert not list((Path(app.config["STORAGE_DIR"]) / "originals").rglob("*.*"))
