"""Downloading an album, or the whole library, as a zip of the originals (real model, Milvus Lite)."""

from __future__ import annotations

import hashlib
import io
import zipfile
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient

from tests.conftest import csrf_token, noise_images, wait_for_job
from tests.test_albums import ODD, ids_in, load_tree
from tests.test_auth import PASSWORD, bearer, make_app, people, signed_in
from webapp.runtime import EXTENSION
from webapp.services import exports
from webapp.services.roles import Role


def download(client: FlaskClient, album: str | None = None) -> zipfile.ZipFile:
    with client.get("/api/v1/images/export", query_string={"album": album} if album is not None else {}) as answer:
        assert answer.status_code == 200, answer.get_json()
        assert answer.mimetype == "application/zip"
        return zipfile.ZipFile(io.BytesIO(answer.get_data()))


def test_an_album_comes_out_as_a_zip_of_its_originals_and_goes_back_in_as_it_was(
    app: Flask, client: FlaskClient
) -> None:
    load_tree(app, client)
    cat = next(i for i in client.get("/api/v1/images").json if i["filename"] == "cat.jpg")
    (twin,) = noise_images(1, seed=52)  # another cat.jpg in animals: named apart in the zip
    added = client.post("/api/v1/images", data={"image": (io.BytesIO(twin), "CAT.jpg"), "album": "animals"})
    assert added.status_code == 201

    archive = download(client, "animals")
    assert sorted(archive.namelist()) == ["CAT (2).jpg", "birds/owl.jpg", "birds/tit.jpg", "cat.jpg"]
    stored = archive.read("cat.jpg")
    assert hashlib.sha256(stored).hexdigest() == cat["id"]  # the original, as it was added
    assert archive.getinfo("cat.jpg").compress_type == zipfile.ZIP_STORED and archive.testzip() is None
    with client.get("/api/v1/images/export", query_string={"album": "animals"}) as answer:
        assert answer.headers["Content-Disposition"].startswith('attachment; filename="animals.zip"')

    page = client.get("/library", query_string={"album": "animals"}).get_data(as_text=True)
    assert 'href="/api/v1/images/export?album=animals" download>Download the album (zip)' in page
    assert 'href="/api/v1/images/export" download>Download all (zip)' in client.get("/library").get_data(as_text=True)
    whole = download(client)  # the library: each under its album's whole path
    assert "top.jpg" in whole.namelist() and "animals/birds/owl.jpg" in whole.namelist()
    assert "say _cheese_ _ 100%_off/x.jpg" in whole.namelist()  # ODD: characters Windows refuses become _
    assert f"{ODD}/x.jpg" not in whole.namelist() and len(whole.namelist()) == 7

    # Uploaded again into the album after the library is emptied, it brings the same albums and names.
    count = client.get("/api/v1/stats").json["count"]
    assert client.delete("/api/v1/images", query_string={"confirm": count}).status_code == 200
    zipped = io.BytesIO()
    with zipfile.ZipFile(zipped, "w") as copy:
        for name in archive.namelist():
            copy.writestr(name, archive.read(name))
    data = {"archive": (io.BytesIO(zipped.getvalue()), "animals.zip"), "album": "animals"}
    job = client.post("/api/v1/jobs", data=data, content_type="multipart/form-data")
    assert wait_for_job(client, job.json["url"])["added"] == 4
    assert ids_in(client, "animals/birds") == {"owl.jpg", "tit.jpg"}
    assert ids_in(client, "animals") == {"owl.jpg", "tit.jpg", "cat.jpg", "CAT (2).jpg"}


def test_chosen_images_come_out_as_a_zip_from_the_api_and_the_library_page(app: Flask, client: FlaskClient) -> None:
    load_tree(app, client)
    by_name = {i["filename"]: i["id"] for i in client.get("/api/v1/images").json}
    unknown = "0" * 64
    with client.post("/api/v1/images/export", json={"ids": [by_name["owl.jpg"], unknown, by_name["top.jpg"]]}) as got:
        assert got.status_code == 200 and got.headers["Content-Disposition"].startswith(
            'attachment; filename="images.zip"'
        )
        assert zipfile.ZipFile(io.BytesIO(got.get_data())).namelist() == ["animals/birds/owl.jpg", "top.jpg"]
    assert client.post("/api/v1/images/export", json={"ids": [unknown]}).status_code == 404
    assert client.post("/api/v1/images/export", json={"ids": []}).status_code == 422

    page = client.get("/library").get_data(as_text=True)
    assert 'formaction="/library/download-images">Download selected</button>' in page
    token = csrf_token(client, "/library")
    form = {"ids": [by_name["cat.jpg"], by_name["y.jpg"]], "csrf_token": token}
    with client.post("/library/download-images", data=form) as got:
        assert got.status_code == 200 and got.mimetype == "application/zip"
        assert zipfile.ZipFile(io.BytesIO(got.get_data())).namelist() == ["animals/cat.jpg", "animalsx/y.jpg"]
    for bad in ({"csrf_token": token}, {"ids": ["../x"], "csrf_token": token}, {"ids": [unknown], "csrf_token": token}):
        refused = client.post("/library/download-images", data=bad)
        assert refused.status_code in (400, 404) and "text/html" in refused.content_type, bad


def test_a_viewer_ticks_images_on_the_grid_and_downloads_them(tmp_path: Path, model_dir: Path) -> None:
    app = make_app(tmp_path, model_dir)
    accounts = people(app)
    accounts.create_user("vera", Role.VIEWER, PASSWORD)
    accounts.create_user("ed", Role.EDITOR, PASSWORD)
    editor = bearer(accounts.create_token("ed", Role.EDITOR)[1])
    for i, data in enumerate(noise_images(2, seed=54)):
        added = app.test_client().post(
            "/api/v1/images", data={"image": (io.BytesIO(data), f"v{i}.jpg")}, headers=editor
        )
        assert added.status_code == 201, added.json
    viewer = signed_in(app, "vera")
    page = viewer.get("/library").get_data(as_text=True)
    assert page.count('form="move-selected"') == 2 and 'action="/library/download-images"' in page
    assert "Move selected" not in page and "Delete selected" not in page  # a viewer may only take them out
    ids = [i["id"] for i in viewer.get("/api/v1/images").json]
    form = {"ids": ids, "csrf_token": csrf_token(viewer, "/library")}
    with viewer.post("/library/download-images", data=form) as got:
        assert got.status_code == 200 and sorted(zipfile.ZipFile(io.BytesIO(got.get_data())).namelist()) == [
            "v0.jpg",
            "v1.jpg",
        ]
    app.extensions[EXTENSION].close()


def test_a_download_narrowed_to_one_account_holds_what_it_added(tmp_path: Path, model_dir: Path) -> None:
    app = make_app(tmp_path, model_dir)
    accounts = people(app)
    accounts.create_user("vera", Role.VIEWER, PASSWORD)
    for name, count in (("ed", 2), ("eve", 1)):
        accounts.create_user(name, Role.EDITOR, PASSWORD)
        token = bearer(accounts.create_token(name, Role.EDITOR)[1])
        for i, data in enumerate(noise_images(count, seed=len(name))):
            form = {"image": (io.BytesIO(data), f"{name}{i}.jpg"), "album": "shared"}
            assert app.test_client().post("/api/v1/images", data=form, headers=token).status_code == 201
    viewer = signed_in(app, "vera")
    page = viewer.get("/library", query_string={"album": "shared", "added_by": "ed"}).get_data(as_text=True)
    link = "/api/v1/images/export?album=shared&amp;added_by=ed"
    assert f'href="{link}" download>Download what ed added (zip)' in page
    with viewer.get("/api/v1/images/export", query_string={"album": "shared", "added_by": "ed"}) as got:
        assert got.headers["Content-Disposition"].startswith('attachment; filename="shared-added-by-ed.zip"')
        assert sorted(zipfile.ZipFile(io.BytesIO(got.get_data())).namelist()) == ["ed0.jpg", "ed1.jpg"]
    with viewer.get("/api/v1/images/export", query_string={"added_by": "eve"}) as got:
        assert zipfile.ZipFile(io.BytesIO(got.get_data())).namelist() == ["shared/eve0.jpg"]
    for by, message in (("zed", "the library has no images that zed added"), ("", "that name who added them")):
        refused = viewer.get("/api/v1/images/export", query_string={"added_by": by})
        assert refused.status_code == 404 and message in refused.json["message"], refused.json
    assert viewer.get("/api/v1/images/export", query_string={"added_by": "x" * 65}).status_code == 422
    app.extensions[EXTENSION].close()


def test_an_export_refuses_what_it_cannot_send_and_a_third_at_once_waits(app: Flask, client: FlaskClient) -> None:
    assert client.get("/api/v1/images/export").status_code == 404  # an empty library
    load_tree(app, client)
    for album, status in (("nowhere", 404), ("../up", 422), ("a\x00b", 422)):
        refused = client.get("/api/v1/images/export", query_string={"album": album})
        assert refused.status_code == status, (album, refused.get_json())
    held = [client.get("/api/v1/images/export") for _ in range(exports.MAX_AT_ONCE)]  # not read yet: still sending
    busy = client.get("/api/v1/images/export")
    assert busy.status_code == 429 and busy.headers["Retry-After"] == "30" and "downloads" in busy.json["message"]
    held.pop().close()  # one ends (read, or its client gone): the place is free again
    with client.get("/api/v1/images/export", query_string={"album": "animals"}) as again:
        assert again.status_code == 200 and len(zipfile.ZipFile(io.BytesIO(again.get_data())).namelist()) == 3
    for answer in held:
        answer.close()
    with client.get("/api/v1/images/export") as after:
        assert after.status_code == 200


def test_an_image_deleted_as_the_zip_is_written_is_left_out(
    app: Flask, client: FlaskClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    load_tree(app, client)
    lib = app.extensions[EXTENSION].library
    owl = next(i["id"] for i in client.get("/api/v1/images").json if i["filename"] == "owl.jpg")
    original = lib.original
    # Its path read, then its file gone (to the trash) before it is opened.
    monkeypatch.setattr(
        lib, "original", lambda sha: original(sha).with_suffix(".gone") if sha == owl else original(sha)
    )
    assert sorted(download(client, "animals").namelist()) == ["birds/tit.jpg", "cat.jpg"]


def test_names_in_the_zip_unpack_safely_anywhere() -> None:
    names = exports._Names()
    record = exports.Record("a" * 64, "x.jpg", 1, 1, "upload", "image/jpeg", 0, "")

    def path(filename: str, album: str, of: str = "") -> str:
        from dataclasses import replace

        return names.of(replace(record, filename=filename, album=album), of)

    assert path("..", "") == "_"
    assert path("a\\..\\b.jpg", "..\\up") == ".._up/a_.._b.jpg"  # no part is .. and no \\ is a separator
    assert path("c:d?.jpg", "t/u", of="t") == "u/c_d_.jpg"
    assert path("C_D_.JPG", "t/u", of="t") == "u/C_D_ (2).JPG"  # one file on Windows and macOS
    assert path("noext", "") == "noext" and path("noext", "") == "noext (2)"
    assert path(".hidden", "") == ".hidden"
    # what Windows refuses or changes: device names (any case, any extension), trailing dots and spaces
    assert path("con.jpg", "aux/Lpt1 ") == "_aux/_Lpt1/_con.jpg"
    assert path("nul", "") == "_nul" and path("COM9.tar.gz", "") == "_COM9.tar.gz"
    assert path("console.jpg", "com10") == "com10/console.jpg"  # not a device
    assert path("dots. ", "trip...") == "trip/dots" and path("dots", "trip.") == "trip/dots (2)"
    assert path("tab\tname.jpg", "") == "tab_name.jpg"
