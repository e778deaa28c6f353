"""The activity log: who changed what, when and from where; what it leaves out; who may read it."""

from __future__ import annotations

import csv
import getpass
import hashlib
import io
import json
import logging
import re
import socket
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select

from tests.conftest import csrf_token, near_duplicate, noise_images, wait_for_job
from tests.test_auth import PASSWORD, bearer, make_app, people, signed_in
from webapp import audit
from webapp.errors import StoreUnavailable
from webapp.runtime import EXTENSION
from webapp.services.activity import Activity, Entry, subjects
from webapp.services.database import Database, activity_subjects, sqlite_url
from webapp.services.roles import Role


@pytest.fixture()
def team(tmp_path: Path, model_dir: Path, database: str) -> Iterator[dict[str, Any]]:
    """An app with access control on, an account of each role and a token of each."""
    app = make_app(tmp_path, model_dir, DATABASE_URL=database)
    accounts = people(app)
    found: dict[str, Any] = {"app": app, "tokens": {}}
    for role in Role:
        accounts.create_user(f"{role}-person", role, PASSWORD)
        found["tokens"][str(role)] = bearer(accounts.create_token(f"{role}-person", role, "script")[1])
    yield found
    app.extensions[EXTENSION].close()


def entries(app: Flask, **query: str) -> list[dict[str, Any]]:
    """Return the activity log through the API, as an admin reads it (anyone, with access control off)."""
    with app.test_client() as admin:
        signed = app.config["AUTH_ENABLED"]
        admin_token = bearer(people(app).create_token("admin-person", Role.ADMIN, "reader")[1]) if signed else {}
        answer = admin.get("/api/v1/activity", query_string=query, headers=admin_token)
    assert answer.status_code == 200, answer.json
    return list(answer.json or [])


def add(client: FlaskClient, data: bytes, name: str, headers: dict[str, str] | None = None) -> Any:
    return client.post("/api/v1/images", data={"image": (io.BytesIO(data), name)}, headers=headers or {})


def test_changes_are_recorded_with_who_how_and_what_and_reads_and_refusals_are_not(team: dict[str, Any]) -> None:
    app, tokens = team["app"], team["tokens"]
    client = app.test_client()
    first, second = noise_images(2, seed=41)
    added = add(client, first, "harbour.jpg", tokens["editor"])
    assert added.status_code == 201
    sha = added.json["id"]
    assert add(client, second, "refused.jpg", tokens["viewer"]).status_code == 403  # refused: not recorded
    searched = client.post("/api/v1/search", data={"image": (io.BytesIO(second), "q.jpg")}, headers=tokens["viewer"])
    assert searched.status_code == 200  # a search changes nothing: not recorded
    assert client.delete("/api/v1/images/" + "0" * 64, headers=tokens["editor"]).status_code == 404  # failed
    deleted = client.delete(f"/api/v1/images/{sha}", headers={**tokens["editor"], "X-Request-ID": "cleanup-7"})
    assert deleted.status_code == 204

    log = entries(app)
    assert [(e["method"], e["path"], e["status"]) for e in log] == [
        ("DELETE", f"/api/v1/images/{sha}", 204),
        ("POST", "/api/v1/images", 201),
    ]
    removal, upload = log
    assert (removal["actor"], removal["via"], removal["address"]) == ("editor-person", "token", "127.0.0.1")
    assert removal["note"] == f"harbour.jpg ({sha}) deleted" and removal["request_id"] == "cleanup-7"
    assert removal["action"] == "Delete an image: out of the library and its searches, into the trash for TRASH_DAYS"
    assert upload["note"] == f"harbour.jpg ({sha}) added" and upload["at"] <= removal["at"]
    assert upload["id"] < removal["id"]


def test_sign_ins_refused_sign_ins_tokens_and_sign_outs_are_recorded_and_no_secret_is(team: dict[str, Any]) -> None:
    app = team["app"]
    stranger = app.test_client()
    token = csrf_token(stranger, "/login")
    refused = stranger.post("/login", data={"name": "admin-person", "password": "wrong" * 3, "csrf_token": token})
    assert refused.status_code == 401
    person = signed_in(app, "viewer-person")
    token = csrf_token(person, "/account")
    shown = person.post("/account/tokens", data={"name": "backup", "role": "viewer", "csrf_token": token})
    secret = re.search(r'id="new-token"[^>]*>([^<]+)<', shown.get_data(as_text=True)).group(1)
    too_high = person.post("/account/tokens", data={"name": "x", "role": "admin", "csrf_token": token})
    assert too_high.status_code == 303  # the page says why; nothing was created, so nothing is recorded
    assert person.post("/logout", data={"csrf_token": token}).status_code == 303

    log = entries(app)
    backup = next(t for t in people(app).tokens("viewer-person") if t.name == "backup")
    assert [(e["actor"], e["via"], e["note"]) for e in log] == [
        ("viewer-person", "session", "signed out"),
        ("viewer-person", "session", f"token {backup.id} (backup, viewer) created"),
        ("viewer-person", "session", "signed in"),
        ("admin-person", "anonymous", "sign-in refused: the name and password do not match an account"),
    ]
    assert log[-1]["status"] == 401
    assert all(secret not in str(e) and "wrong" not in str(e) for e in log)
    assert [e["note"] for e in entries(app, actor="admin-person")] == [log[-1]["note"]]


def test_only_admins_read_the_log_and_its_page(team: dict[str, Any]) -> None:
    app, tokens = team["app"], team["tokens"]
    client = app.test_client()
    assert add(client, noise_images(1, seed=42)[0], "a.jpg", tokens["editor"]).status_code == 201
    for role in ("viewer", "editor"):
        assert client.get("/api/v1/activity", headers=tokens[role]).status_code == 403
    editor = signed_in(app, "editor-person")
    assert editor.get("/activity").status_code == 403
    assert "Activity</a>" not in editor.get("/").get_data(as_text=True)

    admin = signed_in(app, "admin-person")
    assert 'href="/activity"' in admin.get("/").get_data(as_text=True)
    page = admin.get("/activity").get_data(as_text=True)
    assert "Add one image to the library" in page and "a.jpg (" in page and "POST /api/v1/images" in page
    assert "signed in" in page  # the admin's own sign-in
    assert re.search(r"data-seconds>\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC</time>", page)  # to the second
    only = admin.get("/activity", query_string={"actor": "editor-person"}).get_data(as_text=True)
    assert "2 entries by editor-person" in " ".join(only.split())  # the upload, and the sign-in above
    assert "a.jpg (" in only and "actor=admin-person" not in only
    assert 'href="/activity?actor=editor-person"' in admin.get("/account").get_data(as_text=True)
    assert admin.get("/activity", query_string={"actor": "x" * 65}).status_code == 400
    assert admin.get("/activity", query_string={"page": "9"}).status_code == 302  # past the end: the last page


def test_a_resolution_names_what_it_deleted_and_emptying_says_how_many(
    tmp_path: Path, model_dir: Path, photos: dict[str, bytes]
) -> None:
    app = make_app(tmp_path, model_dir, AUTH="off")
    client = app.test_client()
    try:
        keep = add(client, photos["chelsea"], "chelsea.jpg").json["id"]
        copy = add(client, near_duplicate(photos["chelsea"]), "chelsea copy.jpg").json["id"]
        app.extensions[EXTENSION].duplicates.threshold = 0.80
        wait_for_job(client, client.post("/api/v1/duplicates/scan").json["url"])
        group = client.get("/api/v1/duplicates").json[0]
        assert client.post(f"/api/v1/duplicates/{group['id']}/resolve", json={"keep": keep}).status_code == 200
        add(client, photos["rocket"], "rocket.jpg")
        token = csrf_token(client, "/")  # with no accounts to sign in and out of, neither is recorded
        assert client.post("/login", data={"name": "x", "password": "y", "csrf_token": token}).status_code == 303
        assert client.post("/logout", data={"csrf_token": token}).status_code == 303
        assert client.delete("/api/v1/images", query_string={"confirm": 2}).status_code == 200

        log = entries(app)
        assert [e["path"] for e in log] == [
            "/api/v1/images?confirm=2",
            "/api/v1/images",
            f"/api/v1/duplicates/{group['id']}/resolve",
            "/api/v1/duplicates/scan",
            "/api/v1/images",
            "/api/v1/images",
        ]
        assert log[0]["note"] == "the library emptied: 2 images deleted"
        assert log[2]["note"] == f"kept {keep}; deleted 1: chelsea copy.jpg ({copy})"
        assert re.fullmatch(r"job [0-9a-f]{32} \(duplicates: .*\)", log[3]["note"]), log[3]["note"]
        assert {(e["actor"], e["via"]) for e in log} == {("", "open")}  # access control off: no name to give
    finally:
        app.extensions[EXTENSION].close()


def test_a_log_that_cannot_be_written_leaves_the_change_standing_and_says_so(
    team: dict[str, Any], monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    app, tokens = team["app"], team["tokens"]

    def unavailable(self: Activity, entry: Entry) -> None:
        raise StoreUnavailable("the database cannot be reached (test); try again")

    monkeypatch.setattr(Activity, "record", unavailable)
    caplog.set_level(logging.WARNING, logger="webapp")
    client = app.test_client()
    added = add(client, noise_images(1, seed=43)[0], "kept.jpg", tokens["editor"])
    assert added.status_code == 201
    assert client.get(f"/api/v1/images/{added.json['id']}", headers=tokens["viewer"]).status_code == 200
    assert "the activity log could not record POST /api/v1/images" in caplog.text
    monkeypatch.undo()
    assert entries(app) == []


def test_entries_past_the_retention_are_removed_as_new_ones_are_written(database: str, tmp_path: Path) -> None:
    db = Database(database or sqlite_url(tmp_path / "webapp.sqlite"))
    now = time.time()

    def entry(at: float, actor: str = "ann", path: str = "/api/v1/images") -> Entry:
        return Entry(
            at=at, actor=actor, via="token", address="10.0.0.1", method="POST", path=path, endpoint="e", status=201
        )

    kept_forever = Activity(db, keep_days=0)
    kept_forever.record(entry(now - 400 * 86400))
    assert kept_forever.entries()[1] == 1
    log = Activity(db, keep_days=365)
    log.record(entry(now - 366 * 86400, "bob"))  # the first write of a process removes what is past 365 days
    log.record(entry(now, "a\u202enn\x00", "/x?" + "y" * 5000))  # cut to its column, without controls
    found, total = log.entries()
    assert total == 1 and found[0].actor == "ann" and len(found[0].path) == 2048
    assert log.entries(actor="bob") == ([], 0)
    image = f"{5:064x}"
    log.record(entry(now, path=f"/api/v1/images/{image}"))
    log.prune(now + 1)  # what an entry named goes with it
    assert log.entries(image=image) == ([], 0)
    with db.connect() as conn:
        assert conn.scalar(select(func.count()).select_from(activity_subjects)) == 0


def test_an_entry_names_the_images_and_jobs_in_its_path_and_note() -> None:
    image, other, job = "a" * 64, "b" * 64, "c" * 32
    assert subjects(f"/api/v1/trash/{image}/restore", "") == {image}
    assert subjects("/duplicates/3/resolve", f"deleted x.jpg ({image}), y.jpg ({other})") == {image, other}
    assert subjects("/api/v1/jobs", f"job {job} (folder: /photos)") == {job}
    assert subjects(f"/jobs/{job}/cancel", "") == {job}
    assert subjects(f"/api/v1/images/{image}0", f"job {job}0 ({'d' * 63})") == set()  # longer or shorter: no id


def test_the_activity_command_prints_the_log_newest_first(team: dict[str, Any]) -> None:
    app, tokens = team["app"], team["tokens"]
    client = app.test_client()
    for i, data in enumerate(noise_images(2, seed=44)):
        assert add(client, data, f"n{i}.jpg", tokens["editor"]).status_code == 201
    printed = app.test_cli_runner().invoke(args=["activity", "--user", "editor-person", "--limit", "1"])
    assert printed.exit_code == 0, printed.output
    (line,) = printed.output.splitlines()
    when, who, via, address, request, note = line.split("\t")
    assert (who, via, address, request) == ("editor-person", "token", "127.0.0.1", "POST /api/v1/images 201")
    assert note.startswith("n1.jpg (") and when.endswith("UTC")
    assert app.test_cli_runner().invoke(args=["activity", "--user", "nobody"]).output == ""


def test_commands_that_change_accounts_or_the_library_are_recorded_as_the_login_that_ran_them(
    team: dict[str, Any],
) -> None:
    app, editor = team["app"], team["tokens"]["editor"]
    cli, client = app.test_cli_runner(), app.test_client()
    ran = [
        cli.invoke(args=["users", "create", "ada", "--role", "editor", "--password-stdin"], input=PASSWORD + "\n"),
        cli.invoke(args=["users", "create", "eve", "--role", "viewer", "--password-stdin"], input="short\n"),
        cli.invoke(args=["tokens", "create", "ada", "--role", "editor", "--label", "backup"]),
        cli.invoke(args=["users", "list"]),
    ]
    assert [r.exit_code for r in ran] == [0, 1, 0, 0], [r.output for r in ran]
    secret = ran[2].stdout.strip()
    token_id = cli.invoke(args=["tokens", "list", "--user", "ada"]).output.split("\t")[0]
    assert cli.invoke(args=["tokens", "revoke", token_id]).exit_code == 0
    assert cli.invoke(args=["users", "password", "ada", "--password-stdin"], input=PASSWORD + "!\n").exit_code == 0
    sha = add(client, noise_images(1, seed=45)[0], "dock.jpg", editor).json["id"]
    assert client.delete(f"/api/v1/images/{sha}", headers=editor).status_code == 204
    assert cli.invoke(args=["trash", "--restore", sha]).exit_code == 0
    assert cli.invoke(args=["users", "delete", "ada"]).exit_code == 0

    commands = [e for e in entries(app) if e["via"] == "command"][::-1]  # oldest first
    assert [(e["path"], e["note"]) for e in commands] == [
        ("flask users create ada", "account ada (editor) created"),  # eve's refusal changed nothing
        ("flask tokens create ada", f"token {token_id} (backup, editor) of ada created"),
        (f"flask tokens revoke {token_id}", f"token {token_id} (backup) of ada revoked"),
        ("flask users password ada", "the password of ada changed"),
        ("flask trash", f"1 restored: dock.jpg ({sha})"),
        ("flask users delete ada", "account ada and its tokens deleted"),
    ]
    login, host = getpass.getuser(), socket.gethostname()
    assert {(e["actor"], e["address"], e["method"], e["status"]) for e in commands} == {(login, host, "CLI", 0)}
    assert commands[0]["action"] == "Create the account NAME (the password is asked for; there is no default password)"
    assert commands[4]["action"].startswith("Print the trash")
    assert all(secret not in str(e) and PASSWORD not in str(e) for e in entries(app))

    printed = cli.invoke(args=["activity", "--user", login, "--limit", "1"]).output
    assert printed.split("\t")[1:5] == [login, "command", host, "CLI flask users delete ada 0"]
    page = signed_in(app, "admin-person").get("/activity").get_data(as_text=True)
    assert "Create the account NAME" in page and "flask users create ada" in page


def test_an_image_says_who_added_it_and_a_job_who_started_it(team: dict[str, Any], tmp_path: Path) -> None:
    app, tokens = team["app"], team["tokens"]
    client = app.test_client()
    api_upload, compat_upload, page_upload, *loaded = noise_images(5, seed=46)
    by_api = add(client, api_upload, "api.jpg", tokens["editor"]).json["id"]
    compat = {"image": (io.BytesIO(compat_upload), "compat.jpg")}
    assert client.post("/img/upload", data=compat, headers=tokens["editor"]).status_code == 200
    editor = signed_in(app, "editor-person")
    form = {"image": (io.BytesIO(page_upload), "page.jpg"), "csrf_token": csrf_token(editor)}
    assert editor.post("/images", data=form, content_type="multipart/form-data").status_code == 302
    files = {"files": [(io.BytesIO(data), f"job{i}.jpg") for i, data in enumerate(loaded)], "album": "trip"}
    started = client.post("/api/v1/jobs", data=files, headers=tokens["admin"], content_type="multipart/form-data")
    assert started.status_code == 202 and started.json["started_by"] == "admin-person"
    admin = signed_in(app, "admin-person")
    assert wait_for_job(admin, started.json["url"])["added"] == 2

    listed = client.get("/api/v1/images", query_string={"page_size": 10}, headers=tokens["viewer"]).json
    ids = {image["filename"]: image["id"] for image in listed}
    adders = {
        name: client.get(f"/api/v1/images/{sha}", headers=tokens["viewer"]).json["added_by"]
        for name, sha in ids.items()
    }
    assert {image["filename"]: image["added_by"] for image in listed} == adders
    assert adders == {
        "api.jpg": "editor-person",
        "compat.jpg": "editor-person",
        "page.jpg": "editor-person",
        "job0.jpg": "admin-person",
        "job1.jpg": "admin-person",
    }
    viewer = signed_in(app, "viewer-person")
    image_page = viewer.get(f"/images/{by_api}").get_data(as_text=True)
    assert 'by <a href="/library?added_by=editor-person">editor-person</a>' in image_page
    assert "by admin-person" in admin.get("/jobs").get_data(as_text=True)
    scan = client.post("/api/v1/duplicates/scan", headers=tokens["editor"])
    assert scan.status_code == 202 and scan.json["started_by"] == "editor-person", scan.json
    wait_for_job(admin, scan.json["url"])
    move = client.post("/api/v1/images/albums/move", json={"album": "trip", "to": "x"}, headers=tokens["editor"])
    assert move.status_code == 202 and move.json["started_by"] == "editor-person", move.json
    wait_for_job(admin, move.json["url"])

    def added_by(name: str) -> list[str]:
        answer = client.get("/api/v1/images", query_string={"added_by": name}, headers=tokens["viewer"])
        assert answer.status_code == 200, answer.json
        assert json.loads(answer.headers["X-Pagination"])["total"] == len(answer.json)
        assert {image["added_by"] for image in answer.json} <= {name}  # the list says who, too
        return sorted(image["filename"] for image in answer.json)

    assert added_by("admin-person") == ["job0.jpg", "job1.jpg"]
    assert added_by("editor-person") == ["api.jpg", "compat.jpg", "page.jpg"]
    assert added_by("") == [] and added_by("nobody") == []
    too_long = client.get("/api/v1/images", query_string={"added_by": "x" * 65}, headers=tokens["viewer"])
    assert too_long.status_code == 422
    listed_page = viewer.get("/library?added_by=admin-person").get_data(as_text=True)
    assert "2 images added by admin-person" in " ".join(listed_page.split()) and "job1.jpg" in listed_page
    assert '<input type="hidden" name="added_by" value="admin-person">' in listed_page  # kept by the album filter
    assert "api.jpg" not in listed_page and viewer.get("/library?added_by=" + "x" * 65).status_code == 400


def test_an_images_history_is_the_entries_naming_it(team: dict[str, Any]) -> None:
    app, editor = team["app"], team["tokens"]["editor"]
    client = app.test_client()
    mine, other = noise_images(2, seed=47)
    sha = add(client, mine, "mine.jpg", editor).json["id"]
    add(client, other, "other.jpg", editor)
    assert client.patch(f"/api/v1/images/{sha}", json={"album": "kept"}, headers=editor).status_code == 200
    assert client.delete(f"/api/v1/images/{sha}", headers=editor).status_code == 204
    assert client.post(f"/api/v1/trash/{sha}/restore", headers=editor).status_code == 201

    history = entries(app, image=sha)
    assert [(e["method"], e["path"].replace(sha, "ID")) for e in history] == [
        ("POST", "/api/v1/trash/ID/restore"),
        ("DELETE", "/api/v1/images/ID"),
        ("PATCH", "/api/v1/images/ID"),
        ("POST", "/api/v1/images"),  # its id is in the note
    ]
    admin = signed_in(app, "admin-person")
    assert admin.get("/api/v1/activity?image=" + sha.upper()).status_code == 422
    page = admin.get(f"/activity?image={sha}").get_data(as_text=True)
    assert "4 entries" in page and "other.jpg" not in page and "mine.jpg" in page
    assert admin.get("/activity?image=../x").status_code == 400
    assert f'href="/activity?image={sha}">History</a>' in admin.get(f"/images/{sha}").get_data(as_text=True)
    assert "History</a>" not in signed_in(app, "editor-person").get(f"/images/{sha}").get_data(as_text=True)
    printed = app.test_cli_runner().invoke(args=["activity", "--image", sha]).output.splitlines()
    assert len(printed) == 4 and "mine.jpg" in printed[-1]
    assert app.test_cli_runner().invoke(args=["activity", "--image", "x"]).exit_code == 2

    # An image a job added: its history has the request that started the job.
    (loaded,) = noise_images(1, seed=48)
    files = {"files": [(io.BytesIO(loaded), "loaded.jpg")]}
    started = client.post("/api/v1/jobs", data=files, headers=editor, content_type="multipart/form-data")
    job = wait_for_job(admin, started.json["url"])
    loaded_id = hashlib.sha256(loaded).hexdigest()
    link = f'<a href="/jobs/{job["id"]}">job:{job["id"][:8]}</a>'  # its page's source leads to the job
    assert link in admin.get(f"/images/{loaded_id}").get_data(as_text=True)
    assert 'href="/jobs/' not in admin.get(f"/images/{sha}").get_data(as_text=True)
    assert client.delete(f"/api/v1/images/{loaded_id}", headers=editor).status_code == 204
    history = entries(app, image=loaded_id)
    assert [(e["method"], e["path"].replace(job["id"], "JOB")) for e in history] == [
        ("DELETE", f"/api/v1/images/{loaded_id}"),
        ("POST", "/api/v1/jobs"),  # the job's id is in the note
    ]
    assert len(entries(app, image=sha)) == 4  # no other image's job


def test_downloads_are_recorded_with_what_they_sent(team: dict[str, Any]) -> None:
    app, tokens = team["app"], team["tokens"]
    client = app.test_client()
    kept, other = noise_images(2, seed=49)
    kept_id = client.post(
        "/api/v1/images", data={"image": (io.BytesIO(kept), "kept.jpg"), "album": "trip"}, headers=tokens["editor"]
    ).json["id"]
    other_id = add(client, other, "other.jpg", tokens["editor"]).json["id"]
    viewer = tokens["viewer"]
    with client.get("/api/v1/images/export", query_string={"album": "trip"}, headers=viewer) as got:
        assert got.status_code == 200
    with client.head("/api/v1/images/export", headers=viewer) as got:  # sends no zip
        assert got.status_code == 200
    assert client.get("/api/v1/images/export?album=nowhere", headers=viewer).status_code == 404
    chosen = {"ids": [kept_id, "0" * 64]}
    with client.post("/api/v1/images/export", json=chosen, headers=viewer) as got:
        assert got.status_code == 200
    person = signed_in(app, "viewer-person")
    form = {"ids": [other_id], "csrf_token": csrf_token(person, "/library")}
    with person.post("/library/download-images", data=form) as got:
        assert got.status_code == 200

    log = [e for e in entries(app) if "/login" not in e["path"]][:3]  # the sign-in is recorded too
    assert [(e["method"], e["path"], e["actor"], e["via"], e["status"]) for e in log] == [
        ("POST", "/library/download-images", "viewer-person", "session", 200),
        ("POST", "/api/v1/images/export", "viewer-person", "token", 200),
        ("GET", "/api/v1/images/export?album=trip", "viewer-person", "token", 200),
    ]
    assert [e["note"] for e in log] == [
        f"a zip of 1 image: other.jpg ({other_id})",
        f"a zip of 1 image: kept.jpg ({kept_id})",
        "a zip of the album 'trip' and below: 1 image",
    ]
    assert log[2]["action"] == "Download an album with its sub-albums, or the whole library, as a zip of the originals"
    assert [e["path"] for e in entries(app, image=kept_id)] == ["/api/v1/images/export", "/api/v1/images"]
    with client.get("/api/v1/images/export", query_string={"added_by": "editor-person"}, headers=viewer) as got:
        assert got.status_code == 200
    assert entries(app)[0]["note"] == "a zip of the library, what 'editor-person' added: 2 images"
    assert (
        audit.zip_of_album("trip", "", 3)
        == "a zip of the album 'trip' and below, the images that name nobody: 3 images"
    )


def test_an_images_history_has_the_jobs_that_moved_deleted_and_restored_it(team: dict[str, Any]) -> None:
    app, tokens = team["app"], team["tokens"]
    client, admin = app.test_client(), signed_in(app, "admin-person")
    mine, other = noise_images(2, seed=49)
    added = client.post(
        "/api/v1/images", data={"image": (io.BytesIO(mine), "mine.jpg"), "album": "trip"}, headers=tokens["editor"]
    )
    sha = added.json["id"]
    add(client, other, "other.jpg", tokens["editor"])  # in no album: no job touches it
    jobs = []
    for path, body, role in (
        ("/api/v1/images/albums/move", {"album": "trip", "to": "trips/2026"}, "editor"),
        ("/api/v1/images/albums/delete", {"album": "trips"}, "admin"),
    ):
        started = client.post(path, json=body, headers=tokens[role])
        assert started.status_code == 202, started.json
        jobs.append(wait_for_job(admin, started.json["url"])["id"])
    undo = client.post(f"/api/v1/jobs/{jobs[-1]}/undo", headers=tokens["admin"])
    assert undo.status_code == 202, undo.json
    restore = wait_for_job(admin, undo.json["url"])
    assert restore["status"] == "done" and admin.get(f"/api/v1/images/{sha}").json["album"] == "trips/2026"

    history = entries(app, image=sha)
    assert [(e["path"], e["note"].split()[:2]) for e in history] == [
        (f"/api/v1/jobs/{jobs[1]}/undo", ["job", restore["id"]]),
        ("/api/v1/images/albums/delete", ["job", jobs[1]]),
        ("/api/v1/images/albums/move", ["job", jobs[0] + ":"]),
        ("/api/v1/images", ["mine.jpg", f"({sha})"]),
    ], history
    assert [e["path"] for e in entries(app, image=hashlib.sha256(other).hexdigest())] == ["/api/v1/images"]


def test_an_account_renamed_keeps_its_images_jobs_trash_tokens_and_sessions(team: dict[str, Any]) -> None:
    app, tokens = team["app"], team["tokens"]
    client, editor = app.test_client(), tokens["editor"]
    kept, deleted, loaded = noise_images(3, seed=49)
    sha = add(client, kept, "kept.jpg", editor).json["id"]
    gone = add(client, deleted, "deleted.jpg", editor).json["id"]
    assert client.delete(f"/api/v1/images/{gone}", headers=editor).status_code == 204
    files = {"files": [(io.BytesIO(loaded), "loaded.jpg")]}
    started = client.post("/api/v1/jobs", data=files, headers=editor, content_type="multipart/form-data")
    admin, session = signed_in(app, "admin-person"), signed_in(app, "editor-person")
    wait_for_job(admin, started.json["url"])

    def rename(name: str, new: str) -> str:
        form = {"name": new, "csrf_token": csrf_token(admin, "/account")}
        assert admin.post(f"/account/users/{name}/rename", data=form).status_code == 303
        return " ".join(admin.get("/account").get_data(as_text=True).split())

    assert "an account named &#39;admin-person&#39; exists already" in rename("editor-person", "admin-person")
    assert "a name is 1 to 64 letters" in rename("editor-person", "ed itor")
    assert "You cannot rename your own account here" in rename("admin-person", "boss")
    assert "Account editor-person renamed ed." in rename("editor-person", "ed")

    viewer = tokens["viewer"]
    assert client.get(f"/api/v1/images/{sha}", headers=editor).json["added_by"] == "ed"  # the token goes on
    listed = client.get("/api/v1/images", query_string={"added_by": "ed"}, headers=viewer).json
    assert sorted(i["filename"] for i in listed) == ["kept.jpg", "loaded.jpg"]
    assert client.get("/api/v1/images", query_string={"added_by": "editor-person"}, headers=viewer).json == []
    assert client.get(started.json["url"], headers=viewer).json["started_by"] == "ed"
    assert client.get(f"/api/v1/trash/{gone}", headers=editor).json["deleted_by"] == "ed"
    assert client.post(f"/api/v1/trash/{gone}/restore", headers=editor).status_code == 201
    assert client.get(f"/api/v1/images/{gone}", headers=viewer).json["added_by"] == "ed"  # as the trash kept it
    assert "<h1>ed " in session.get("/account").get_data(as_text=True)  # the session goes on
    log = entries(app)
    assert log[1]["note"] == "account editor-person renamed ed" and log[1]["actor"] == "admin-person"
    assert {e["actor"] for e in log if e["path"] == "/api/v1/images"} == {"editor-person"}  # as they were

    cli = app.test_cli_runner()
    back = cli.invoke(args=["users", "rename", "ed", "editor-person"])
    assert back.exit_code == 0 and "ed is editor-person now" in back.output
    assert client.get(f"/api/v1/images/{sha}", headers=viewer).json["added_by"] == "editor-person"
    assert (entries(app)[0]["via"], entries(app)[0]["note"]) == ("command", "account ed renamed editor-person")
    assert cli.invoke(args=["users", "rename", "nobody", "x"]).exit_code == 1


def test_the_log_narrows_to_dates_and_downloads_as_csv(team: dict[str, Any]) -> None:
    app = team["app"]
    day = datetime(2026, 11, 3, tzinfo=UTC).timestamp()
    with app.app_context():
        log = app.extensions[EXTENSION].activity
        for at, actor, path in [
            (day - 1, "ann", "/api/v1/images/before"),  # 2 November, 23:59:59
            (day, '=HYPERLINK("http://evil")', "/login"),  # a name tried at sign-in: anyone's text
            (day + 86399, "ann", "/api/v1/images/last"),  # 3 November, 23:59:59
            (day + 86400, "bob", "/api/v1/images/after"),  # 4 November
        ]:
            log.record(
                Entry(at=at, actor=actor, via="token", address="", method="POST", path=path, endpoint="", status=201)
            )
    paths = [e["path"] for e in entries(app, since="2026-11-03", until="2026-11-03")]
    assert paths == ["/api/v1/images/last", "/login"]  # a date alone takes in the whole day
    paths = [e["path"] for e in entries(app, since="2026-11-02T23:59:59Z", until="2026-11-03T00:00:00+00:00")]
    assert paths == ["/api/v1/images/before"]  # a time is an instant; until is before it
    assert [e["path"] for e in entries(app, actor="ann", since="2026-11-03")] == ["/api/v1/images/last"]

    admin = signed_in(app, "admin-person")
    assert admin.get("/api/v1/activity?since=yesterday").status_code == 422
    page = admin.get("/activity?since=2026-11-03&until=2026-11-03&actor=").get_data(as_text=True)
    assert "2 entries" in page and "from 2026-11-03 until 2026-11-03" in page  # an empty account: anyone
    assert 'value="2026-11-03"' in page and 'href="/activity.csv?since=2026-11-03&amp;until=2026-11-03"' in page
    wrong = admin.get("/activity?until=9999-12-31")
    assert wrong.status_code == 400 and "until: Not a date this log could hold." in wrong.get_data(as_text=True)

    download = admin.get("/activity.csv?since=2026-11-03&until=2026-11-03")
    assert download.status_code == 200 and download.mimetype == "text/csv"
    assert download.headers["Content-Disposition"].startswith('attachment; filename="activity-')
    rows = list(csv.reader(io.StringIO(download.get_data(as_text=True))))
    assert rows[0] == ["id", "at", "actor", "via", "address", "method", "path", "status", "request_id", "what", "note"]
    assert [(r[1], r[2], r[6]) for r in rows[1:]] == [
        ("2026-11-03T23:59:59+00:00", "ann", "/api/v1/images/last"),
        ("2026-11-03T00:00:00+00:00", '\'=HYPERLINK("http://evil")', "/login"),  # read as text, not a formula
    ]
    assert signed_in(app, "editor-person").get("/activity.csv").status_code == 403
    assert admin.get("/activity.csv?actor=a%00b").status_code == 400  # PostgreSQL could not compare it

    def unavailable(*args: Any, **kwargs: Any) -> Iterator[Entry]:
        raise StoreUnavailable("the database cannot be reached (test)")
        yield

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(Activity, "export", unavailable)
        assert admin.get("/activity.csv").status_code == 503  # before the first row, not a download cut short

    cli = app.test_cli_runner()
    printed = cli.invoke(args=["activity", "--since", "2026-11-04"]).output
    assert "/api/v1/images/after" in printed and "/api/v1/images/last" not in printed
    assert cli.invoke(args=["activity", "--until", "soon"]).exit_code == 2


def test_admins_see_when_each_account_was_last_seen(team: dict[str, Any]) -> None:
    app, tokens = team["app"], team["tokens"]
    client = app.test_client()
    assert client.get("/api/v1/stats", headers=tokens["editor"]).status_code == 200  # a token's use
    refused = {"name": "viewer-person", "password": "not it", "csrf_token": csrf_token(client, "/login")}
    assert client.post("/login", data=refused).status_code == 401  # anyone may try a name: not seen
    admin = signed_in(app, "admin-person")  # a sign-in

    page = " ".join(admin.get("/account").get_data(as_text=True).split())
    row = r'title="What ([\w-]+) changed">.*?</td> <td[^>]*>\w+</td> ?<td[^>]*>[^<]*</td> <td[^>]*>(.*?)</td>'
    rows = dict(re.findall(row, page))
    assert rows["viewer-person"] == '<span class="muted">never</span>'
    today = time.strftime("%Y-%m-%d", time.gmtime())
    assert rows["editor-person"].startswith(today) and rows["admin-person"].startswith(today)
    listed = app.test_cli_runner().invoke(args=["users", "list"]).output
    assert re.search(r"viewer-person\tviewer\tcreated [^\t]+\tnever seen", listed)
    assert re.search(rf"editor-person\teditor\tcreated [^\t]+\tlast seen {today}", listed)
