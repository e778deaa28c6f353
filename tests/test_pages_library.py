"""The Add images, jobs, library and image pages, through the test client (no JavaScript needed)."""

from __future__ import annotations

import html as htmllib
import io
import re
import time
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from tests.conftest import csrf_token, near_duplicate
from webapp.pages.blueprint import Pager
from webapp.runtime import library, runtime
from webapp.services.jobs import local_owner

BROKEN = b"\xff\xd8\xff\xe0 this is not really a JPEG"
BROKEN_NAME = "<img src=x onerror=alert(1)>.jpg"  # also proves failure names are escaped
GOOD = ("coffee", "chelsea", "rocket")


def post_form(client: FlaskClient, url: str, fields: dict[str, Any], token: bool = True) -> TestResponse:
    """Submit a page form (multipart), with a valid CSRF token unless told otherwise."""
    data = {"csrf_token": csrf_token(client, "/add"), **fields} if token else fields
    return client.post(url, data=data, content_type="multipart/form-data")


def wait_for(client: FlaskClient, job_id: str, timeout: float = 90.0) -> dict[str, Any]:
    """Poll the job's API URL until it has ended; return its last state."""
    deadline = time.monotonic() + timeout
    while True:
        job = client.get(f"/api/v1/jobs/{job_id}").json
        assert isinstance(job, dict)
        if job["status"] not in ("queued", "running"):
            return job
        assert time.monotonic() < deadline, f"the job is still {job['status']} after {timeout} s"
        time.sleep(0.1)


def job_id_of(response: TestResponse) -> str:
    """Return the id of the job a POST /add redirected to."""
    assert response.status_code == 303, response.get_data(as_text=True)
    match = re.fullmatch(r"/jobs/([0-9a-f]{32})", response.location)
    assert match, response.location
    return match.group(1)


def field(html: str, name: str) -> str:
    """Return the text of the job page element showing ``name``."""
    match = re.search(rf'data-job-field="{name}"[^>]*>([^<]*)<', html)
    assert match, f"no {name} on the page"
    return match.group(1)


def visible_forms(html: str) -> list[str]:
    """Return the actions of the page's forms that are not hidden."""
    forms = re.findall(r"<form\b([^>]*)>", html)
    return [re.search(r'action="([^"]*)"', f).group(1) for f in forms if not re.search(r"\shidden\b", f)]


def image_names(html: str) -> list[str]:
    """Return the file names of the image cards on a page, in order."""
    return [htmllib.unescape(n) for n in re.findall(r'<img loading="lazy" src="[^"]+" alt="([^"]+)"', html)]


def add_photos(app: Flask, photos: dict[str, bytes], names: list[str]) -> dict[str, str]:
    """Index photos one by one (oldest first); return their ids by name."""
    with app.app_context():
        return {name: library().add(photos[name], f"{name}.jpg")[0].sha256 for name in names}


def files_form(app: Flask, tmp_path: Path, photos: dict[str, bytes]) -> dict[str, Any]:
    files = [(io.BytesIO(photos[n]), f"{n}.jpg") for n in GOOD]
    files += [(io.BytesIO(photos["coffee"]), "coffee-again.jpg"), (io.BytesIO(BROKEN), BROKEN_NAME)]
    return {"source": "files", "files": files}


def archive_form(app: Flask, tmp_path: Path, photos: dict[str, bytes]) -> dict[str, Any]:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for n in GOOD:
            archive.writestr(f"trip/{n}.jpg", photos[n])
        archive.writestr("trip/copy/coffee-again.jpg", photos["coffee"])
        archive.writestr(BROKEN_NAME, BROKEN)
        archive.writestr("notes.txt", "not an image: ignored")
    buffer.seek(0)
    return {"source": "archive", "archive": (buffer, "trip.zip")}


def folder_form(app: Flask, tmp_path: Path, photos: dict[str, bytes]) -> dict[str, Any]:
    folder = Path(app.config["IMPORT_ROOTS"][0]) / "trip"
    (folder / "copy").mkdir(parents=True)
    for n in GOOD:
        (folder / f"{n}.jpg").write_bytes(photos[n])
    (folder / "copy" / "coffee-again.jpg").write_bytes(photos["coffee"])
    (folder / BROKEN_NAME).write_bytes(BROKEN)
    (folder / "notes.txt").write_text("not an image: ignored")
    return {"source": "folder", "folder": str(folder)}


def test_add_page_offers_three_forms(client: FlaskClient, app: Flask) -> None:
    html = client.get("/add").get_data(as_text=True)
    assert html.count('action="/add"') == 3 and html.count('name="csrf_token"') == 3
    for source in ("files", "archive", "folder"):
        assert f'name="source" value="{source}"' in html
    assert re.search(r'<input type="file" name="files"[^>]* multiple accept="image/\*,.heic,.heif"', html)
    assert re.search(r'<input type="file" name="archive"[^>]* accept=".zip,application/zip"', html)
    assert 'name="folder"' in html and app.config["IMPORT_ROOTS"][0] in html


@pytest.mark.parametrize("make_form", [files_form, archive_form, folder_form], ids=["files", "archive", "folder"])
def test_each_form_starts_a_job_whose_page_shows_counts_and_failures(
    client: FlaskClient,
    app: Flask,
    tmp_path: Path,
    photos: dict[str, bytes],
    make_form: Callable[[Flask, Path, dict[str, bytes]], dict[str, Any]],
) -> None:
    job_id = job_id_of(post_form(client, "/add", make_form(app, tmp_path, photos)))
    job = wait_for(client, job_id)
    assert job["status"] == "done"
    assert (job["total"], job["processed"], job["added"], job["duplicates"], job["failed"]) == (5, 5, 3, 1, 1)
    reason = job["failures"][0]["reason"]
    assert job["failures"][0]["name"].endswith(BROKEN_NAME) and reason

    html = client.get(f"/jobs/{job_id}").get_data(as_text=True)
    assert f'data-job-url="/api/v1/jobs/{job_id}"' in html and f'href="/jobs/{job_id}">Refresh' in html
    assert [field(html, n) for n in ("status", "processed", "total", "added", "duplicates", "failed")] == [
        "done",
        "5",
        "5",
        "3",
        "1",
        "1",
    ]
    assert re.search(r'<progress [^>]*max="5" value="5"', html)
    assert "&lt;img src=x onerror=alert(1)&gt;.jpg" in html and "<img src=x" not in html
    assert htmllib.escape(reason) in html
    assert visible_forms(html) == []  # nothing to cancel or resume
    assert re.search(r'<a class="button button-primary" href="/library"\s+data-job-show="done">', html)

    jobs = client.get("/jobs").get_data(as_text=True)
    assert f'href="/jobs/{job_id}"' in jobs and "1 job," in jobs
    library_html = client.get("/library").get_data(as_text=True)
    assert sorted(image_names(library_html)) == sorted(f"{n}.jpg" for n in GOOD)


@pytest.mark.parametrize(
    ("fields", "status", "text"),
    [
        ({"source": "files"}, 400, "Choose one or more image files"),
        ({"source": "files", "files": (io.BytesIO(b""), "")}, 400, "Choose one or more image files"),
        ({"source": "archive"}, 400, "Choose a .zip archive"),
        ({"source": "archive", "archive": (io.BytesIO(b"PK? no"), "x.zip")}, 422, "not a zip file"),
        ({"source": "folder", "folder": "  "}, 400, "Type the path of a folder"),
        ({"source": "folder", "folder": "photos/2024"}, 422, "not a folder"),
        ({"source": "folder", "folder": "/etc"}, 403, "not under an allowed import folder"),
        ({"source": "elsewhere"}, 400, "one of the forms"),
    ],
)
def test_bad_add_forms_get_an_html_error_page_and_start_nothing(
    client: FlaskClient, fields: dict[str, Any], status: int, text: str
) -> None:
    response = post_form(client, "/add", fields)
    assert response.status_code == status and response.mimetype == "text/html"
    assert text in response.get_data(as_text=True)
    assert "No jobs yet" in client.get("/jobs").get_data(as_text=True)


def test_a_folder_outside_the_import_roots_is_forbidden(client: FlaskClient, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    response = post_form(client, "/add", {"source": "folder", "folder": str(outside)})
    assert response.status_code == 403 and response.mimetype == "text/html"
    assert "403" in response.get_data(as_text=True)


def test_cancel_and_resume_buttons(client: FlaskClient, app: Flask, photos: dict[str, bytes]) -> None:
    folder = Path(app.config["IMPORT_ROOTS"][0]) / "later"
    folder.mkdir(parents=True)
    for name in ("moon", "coins"):
        (folder / f"{name}.jpg").write_bytes(photos[name])
    with app.app_context():
        job_id = runtime().jobs.create("folder", str(folder), local_owner()).id  # not submitted: stays queued
    cancel, resume = f"/jobs/{job_id}/cancel", f"/jobs/{job_id}/resume"

    html = client.get(f"/jobs/{job_id}").get_data(as_text=True)
    assert field(html, "status") == "queued" and visible_forms(html) == [cancel]
    assert re.search(r'<progress class="job-progress" data-job-progress aria-label="Progress">', html)  # no value

    response = post_form(client, cancel, {})
    assert response.status_code == 303 and response.location == f"/jobs/{job_id}"
    html = client.get(response.location).get_data(as_text=True)
    assert field(html, "status") == "cancelled" and visible_forms(html) == [resume]
    assert "The job is cancelled" in html

    response = post_form(client, resume, {})
    assert response.status_code == 303 and response.location == f"/jobs/{job_id}"
    job = wait_for(client, job_id)
    assert (job["status"], job["added"], job["failed"]) == ("done", 2, 0)

    for url in (cancel, resume):  # a finished job can be neither
        response = post_form(client, url, {})
        assert response.status_code == 409 and response.mimetype == "text/html"


def test_library_pages_newest_first(client: FlaskClient, app: Flask, photos: dict[str, bytes]) -> None:
    names = ["coffee", "chelsea", "rocket", "moon", "coins"]
    add_photos(app, photos, names)
    newest = [f"{n}.jpg" for n in reversed(names)]

    first = client.get("/library?per_page=2").get_data(as_text=True)
    assert image_names(first) == newest[:2] and "5 images" in first
    assert "Page 1 of 3" in first and 'href="/library?page=2&amp;per_page=2">Next' in first
    assert '<span class="button is-disabled" aria-disabled="true">← Previous</span>' in first
    assert 'href="/library/clear"' in first  # the danger zone

    second = client.get("/library?page=2&per_page=2").get_data(as_text=True)
    assert image_names(second) == newest[2:4] and "Page 2 of 3" in second
    assert 'href="/library?page=1&amp;per_page=2">← Previous' in second
    last = client.get("/library?page=3&per_page=2").get_data(as_text=True)
    assert image_names(last) == newest[4:] and "Page 3 of 3" in last

    everything = client.get("/library").get_data(as_text=True)
    assert image_names(everything) == newest and "Page 1 of" not in everything
    assert client.get("/library?page=7&per_page=2").location == "/library?page=3&per_page=2"
    for query in ("page=0", "page=x", "per_page=0", "per_page=-3"):
        assert client.get(f"/library?{query}").status_code == 400


def test_an_empty_library_points_to_add_images(client: FlaskClient) -> None:
    html = client.get("/library").get_data(as_text=True)
    assert "The library is empty" in html and 'href="/add">Add images</a> to browse' in html


@pytest.mark.parametrize(("query", "per_page"), [("", 48), ("?per_page=5", 5), ("?per_page=1000", 100)])
def test_page_size_is_capped(app: Flask, query: str, per_page: int) -> None:
    with app.test_request_context(f"/library{query}"):
        assert Pager.from_request(48).per_page == per_page


def test_image_page_shows_more_like_this(client: FlaskClient, app: Flask, photos: dict[str, bytes]) -> None:
    ids = add_photos(app, photos, ["chelsea", "rocket", "coffee", "moon"])
    with app.app_context():
        crop = library().add(near_duplicate(photos["chelsea"]), "chelsea-crop.jpg")[0].sha256

    html = client.get(f"/images/{ids['chelsea']}").get_data(as_text=True)
    assert "More like this" in html
    assert image_names(html)[0] == "chelsea-crop.jpg" and len(image_names(html)) == 4  # itself excluded
    assert f'href="/images/{crop}"' in html and f'href="/images/{ids["chelsea"]}"' not in html
    assert re.search(r"<strong>\d+\.\d%</strong> similarity", html)
    assert f'href="/images/{ids["chelsea"]}/delete"' in html


def test_delete_an_image_through_its_confirmation_page(
    client: FlaskClient, app: Flask, photos: dict[str, bytes]
) -> None:
    ids = add_photos(app, photos, ["coffee", "rocket"])
    image_id = ids["coffee"]
    record = client.get(f"/api/v1/images/{image_id}").json

    confirm = client.get(f"/images/{image_id}/delete").get_data(as_text=True)
    assert "Delete this image?" in confirm and f'action="/images/{image_id}/delete"' in confirm
    assert image_names(client.get("/library").get_data(as_text=True)) == ["rocket.jpg", "coffee.jpg"]

    response = post_form(client, f"/images/{image_id}/delete", {})
    assert response.status_code == 303 and response.location == "/library"
    html = client.get("/library").get_data(as_text=True)
    assert "Moved coffee.jpg to the trash, where it stays 30 days." in html and image_names(html) == ["rocket.jpg"]
    for url in (f"/api/v1/images/{image_id}", record["url"], record["thumbnail_url"]):
        assert client.get(url).status_code == 404
    assert client.get(f"/images/{image_id}").status_code == 404
    assert post_form(client, f"/images/{image_id}/delete", {}).status_code == 404


def test_clear_the_library_only_with_the_right_number(
    client: FlaskClient, app: Flask, photos: dict[str, bytes]
) -> None:
    add_photos(app, photos, ["coffee", "rocket", "moon"])
    form = client.get("/library/clear").get_data(as_text=True)
    assert "all 3 images" in form and 'name="confirm"' in form

    for typed, status in (("", 400), ("three", 400), ("2", 409), ("30", 409)):
        response = post_form(client, "/library/clear", {"confirm": typed})
        assert response.status_code == status and response.mimetype == "text/html"
        assert "Nothing was deleted" in response.get_data(as_text=True)
    assert client.get("/api/v1/stats").json["count"] == 3

    response = post_form(client, "/library/clear", {"confirm": "3"})
    assert response.status_code == 303 and response.location == "/library"
    html = client.get("/library").get_data(as_text=True)
    assert "Deleted all 3 images from the library." in html and "The library is empty" in html
    assert client.get("/api/v1/stats").json["count"] == 0


@pytest.mark.parametrize(
    "url",
    ["/add", f"/jobs/{'f' * 32}/cancel", f"/jobs/{'f' * 32}/resume", "/library/clear", f"/images/{'0' * 64}/delete"],
)
def test_posts_without_csrf_token_are_refused(client: FlaskClient, url: str) -> None:
    response = post_form(client, url, {"source": "folder", "folder": "/tmp", "confirm": "0"}, token=False)
    assert response.status_code == 400 and "CSRF" in response.get_data(as_text=True)


def test_unknown_jobs_are_html_404(client: FlaskClient) -> None:
    response = client.get("/jobs/nosuchjob")
    assert response.status_code == 404 and response.mimetype == "text/html"


def test_pages_link_everywhere_and_have_no_inline_code(
    client: FlaskClient, app: Flask, photos: dict[str, bytes]
) -> None:
    image_id = add_photos(app, photos, ["coffee"])["coffee"]
    with app.app_context():
        job_id = runtime().jobs.create("folder", str(app.config["IMPORT_ROOTS"][0]), local_owner()).id
    pages = ["/", "/add", "/jobs", f"/jobs/{job_id}", "/library", "/library/clear"]
    pages += [f"/images/{image_id}", f"/images/{image_id}/delete"]
    for path in pages:
        response = client.get(path)
        html = response.get_data(as_text=True)
        assert response.status_code == 200, path
        for href in ('href="/"', 'href="/add"', 'href="/library"', 'href="/jobs"', 'href="/api/docs"'):
            assert href in html, (path, href)
        assert not re.search(r"<script(?![^>]*\bsrc=)", html), path
        assert not re.search(r"\sstyle=|\son[a-z]+=", html), path
        assert "https://" not in html and "http://" not in html
