"""Access control: who may change what, over every state-changing endpoint; tokens, sessions, settings."""

from __future__ import annotations

import io
import re
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from tests.conftest import csrf_token, noise_images, wait_for_job
from webapp import create_app
from webapp.errors import InvalidInput
from webapp.runtime import EXTENSION, runtime
from webapp.services.accounts import Accounts
from webapp.services.database import tokens as token_table
from webapp.services.roles import Role

PASSWORD = "correct horse battery staple"
NO_IMAGE = "0" * 64
NOT_A_JOB = "f" * 32
EVIL = "https://evil.example"


def make_app(tmp_path: Path, model_dir: Path, **settings: Any) -> Flask:
    return create_app(
        {
            "TESTING": True,
            "DATA_DIR": str(tmp_path / "data"),
            "MODEL_DIR": str(model_dir),
            "SECRET_KEY": "test",
            "AUTH": "on",
            **settings,
        }
    )


def people(app: Flask) -> Accounts:
    with app.app_context():
        return runtime().accounts


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory, model_dir: Path) -> Iterator[dict[str, Any]]:
    """One app with access control on, an account of each role, a token of each, and one revoked token."""
    app = make_app(tmp_path_factory.mktemp("secured"), model_dir)
    accounts = people(app)
    found: dict[str, Any] = {"app": app, "tokens": {}}
    for role in Role:
        accounts.create_user(f"{role}-person", role, PASSWORD)
        found["tokens"][str(role)] = accounts.create_token(f"{role}-person", role, "matrix")[1]
    revoked, secret = accounts.create_token("admin-person", Role.ADMIN, "gone")
    accounts.revoke_token(revoked.id)
    found["tokens"]["revoked"] = secret
    with app.test_client() as seed:  # one image in the library, so that a wrongly allowed delete shows
        added = seed.post(
            "/api/v1/images",
            data={"image": (io.BytesIO(noise_images(1, seed=5)[0]), "kept.jpg")},
            headers=bearer(found["tokens"]["editor"]),
        )
        assert added.status_code == 201, added.json
        found["image"] = added.json["id"]
    yield found
    app.extensions[EXTENSION].close()


def bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


def signed_in(app: Flask, name: str, password: str = PASSWORD) -> FlaskClient:
    """Return a client with a session of ``name`` (signed in through the login form)."""
    client = app.test_client()
    token = csrf_token(client, "/login")
    answer = client.post("/login", data={"name": name, "password": password, "csrf_token": token, "next": "/"})
    assert answer.status_code == 303, answer.get_data(as_text=True)
    return client


# Every state-changing endpoint, with a payload that does no harm when the role check lets it through
# (the view then answers 404, 409 or 422 itself), and the role it needs.
API: list[tuple[str, str, dict[str, Any], Role]] = [
    ("POST", "/api/v1/images", {"data": {"image": (b"not an image", "x.jpg")}}, Role.EDITOR),
    ("DELETE", "/api/v1/images?confirm=987654", {}, Role.ADMIN),
    ("DELETE", f"/api/v1/images/{NO_IMAGE}", {}, Role.EDITOR),
    ("PATCH", f"/api/v1/images/{NO_IMAGE}", {"json": {"album": "x"}}, Role.EDITOR),
    ("POST", "/api/v1/images/move", {"json": {"ids": [NO_IMAGE], "album": "x"}}, Role.EDITOR),
    ("POST", "/api/v1/images/albums/move", {"json": {"album": "no such album", "to": "x"}}, Role.EDITOR),
    ("PUT", "/api/v1/images/albums/cover", {"json": {"album": "no such album", "image": NO_IMAGE}}, Role.EDITOR),
    ("DELETE", "/api/v1/images/albums/cover?album=no+such+album", {}, Role.EDITOR),
    ("POST", "/api/v1/jobs", {"json": {"folder": "relative/path"}}, Role.EDITOR),
    ("POST", "/api/v1/jobs", {"json": {"folder": "relative/path", "check": True}}, Role.EDITOR),
    ("POST", "/api/v1/images/delete", {"json": {"ids": [NO_IMAGE]}}, Role.EDITOR),
    ("POST", "/api/v1/images/export", {"json": {"ids": [NO_IMAGE]}}, Role.VIEWER),
    ("POST", "/api/v1/images/albums/delete", {"json": {"album": "no such album"}}, Role.ADMIN),
    ("POST", f"/api/v1/jobs/{NOT_A_JOB}/undo", {}, Role.ADMIN),
    ("DELETE", f"/api/v1/jobs/{NOT_A_JOB}", {}, Role.EDITOR),
    ("POST", f"/api/v1/jobs/{NOT_A_JOB}/resume", {}, Role.EDITOR),
    ("POST", f"/api/v1/jobs/{NOT_A_JOB}/add-new", {"json": {}}, Role.EDITOR),
    ("DELETE", f"/api/v1/jobs/{NOT_A_JOB}/kept", {}, Role.EDITOR),
    ("POST", "/api/v1/search", {"data": {"top_k": "3"}}, Role.VIEWER),
    ("POST", "/img/load", {"json": {"File": "relative/path"}}, Role.EDITOR),
    ("POST", "/img/upload", {"data": {}}, Role.EDITOR),
    ("POST", "/img/search", {"data": {}}, Role.VIEWER),
    ("POST", "/img/count", {}, Role.VIEWER),
    ("POST", "/img/drop?confirm=987654", {}, Role.ADMIN),
    ("POST", "/api/v1/duplicates/99/resolve", {"json": {"keep": NO_IMAGE}}, Role.EDITOR),
    ("POST", "/api/v1/duplicates/99/keep-all", {"json": {}}, Role.EDITOR),
    ("DELETE", "/api/v1/duplicates/kept-apart", {}, Role.EDITOR),
    ("POST", "/api/v1/duplicates/99/take-out", {"json": {"image": NO_IMAGE}}, Role.EDITOR),
]
PAGES: list[tuple[str, str, dict[str, str], Role]] = [
    ("POST", "/images", {}, Role.EDITOR),
    ("POST", "/add", {"source": "folder", "folder": "relative/path"}, Role.EDITOR),
    ("POST", "/add", {"source": "folder", "folder": "relative/path", "check": "1"}, Role.EDITOR),
    ("POST", f"/jobs/{NOT_A_JOB}/cancel", {}, Role.EDITOR),
    ("POST", f"/jobs/{NOT_A_JOB}/resume", {}, Role.EDITOR),
    ("POST", f"/jobs/{NOT_A_JOB}/add-new", {}, Role.EDITOR),
    ("POST", f"/jobs/{NOT_A_JOB}/discard-kept", {}, Role.EDITOR),
    ("POST", f"/images/{NO_IMAGE}/delete", {}, Role.EDITOR),
    ("POST", f"/images/{NO_IMAGE}/album", {"album": "x"}, Role.EDITOR),
    ("POST", f"/images/{NO_IMAGE}/cover", {"album": "x"}, Role.EDITOR),
    ("POST", "/library/move-images", {"ids": NO_IMAGE, "album": "x"}, Role.EDITOR),
    ("POST", "/library/delete-images", {"ids": NO_IMAGE}, Role.EDITOR),
    ("POST", "/library/download-images", {"ids": NO_IMAGE}, Role.VIEWER),
    ("POST", "/library/delete-album", {"album": "no such album", "confirm": "987654"}, Role.ADMIN),
    ("POST", f"/jobs/{NOT_A_JOB}/undo", {"confirm": "987654"}, Role.ADMIN),
    ("POST", "/library/move", {"album": "no such album", "to": "x"}, Role.EDITOR),
    ("POST", "/library/clear", {"confirm": "987654"}, Role.ADMIN),
    ("POST", "/search", {}, Role.VIEWER),
    ("POST", "/account/tokens", {"name": "t", "role": "no-such-role"}, Role.VIEWER),
    ("POST", "/account/tokens/nosuchid/revoke", {}, Role.VIEWER),
    ("POST", "/account/users", {"name": "x", "role": "no-such-role", "password": PASSWORD}, Role.ADMIN),
    ("POST", "/account/users/nobody/delete", {}, Role.ADMIN),
    ("POST", "/account/password", {"current": "wrong", "password": "short", "confirm": "short"}, Role.VIEWER),
    ("POST", "/account/sessions/end", {}, Role.VIEWER),
    ("POST", "/account/users/nobody/role", {"role": "viewer"}, Role.ADMIN),
    ("POST", "/account/users/nobody/password", {"password": PASSWORD}, Role.ADMIN),
    ("POST", "/account/users/nobody/rename", {"name": "somebody"}, Role.ADMIN),
    ("POST", "/duplicates/99/resolve", {"keep": NO_IMAGE}, Role.EDITOR),
    ("POST", "/duplicates/99/keep-all", {}, Role.EDITOR),
    ("POST", "/duplicates/kept-apart/forget", {}, Role.EDITOR),
    ("POST", "/duplicates/99/take-out", {"image": NO_IMAGE}, Role.EDITOR),
]
WHO = ["anonymous", "viewer", "editor", "admin", "revoked token", "cross-site cookie"]


def _call(client: FlaskClient, method: str, path: str, kwargs: dict[str, Any], headers: dict[str, str]) -> Any:
    kwargs = dict(kwargs)
    if "data" in kwargs:
        kwargs["data"] = {k: (io.BytesIO(v[0]), v[1]) if isinstance(v, tuple) else v for k, v in kwargs["data"].items()}
        kwargs.setdefault("content_type", "multipart/form-data")
    return client.open(path, method=method, headers=headers, **kwargs)


def _library_unchanged(secured: dict[str, Any]) -> None:
    with secured["app"].test_client() as check:
        stats = check.get("/api/v1/stats", headers=bearer(secured["tokens"]["viewer"])).json
        assert stats["count"] == 1
        assert (
            check.get(f"/api/v1/images/{secured['image']}", headers=bearer(secured["tokens"]["viewer"])).status_code
            == 200
        )


@pytest.mark.parametrize("who", WHO)
@pytest.mark.parametrize(("method", "path", "kwargs", "needed"), API, ids=[f"{m} {p}" for m, p, *_ in API])
def test_api_and_bootcamp_writes_follow_the_roles(
    secured: dict[str, Any], who: str, method: str, path: str, kwargs: dict[str, Any], needed: Role
) -> None:
    app = secured["app"]
    client = app.test_client()
    headers: dict[str, str] = {}
    if who in ("viewer", "editor", "admin", "revoked token"):
        headers = bearer(secured["tokens"][who.split()[0] if who != "revoked token" else "revoked"])
    elif who == "cross-site cookie":
        client = signed_in(app, "admin-person")
        headers = {"Origin": EVIL, "Sec-Fetch-Site": "cross-site"}
    answer = _call(client, method, path, kwargs, headers)
    status = answer.status_code
    assert answer.is_json, answer.get_data(as_text=True)
    if who in ("anonymous", "revoked token"):
        assert status == 401, answer.json
        assert answer.headers["WWW-Authenticate"].startswith("Bearer")
    elif who == "cross-site cookie":
        assert status == 403, answer.json
    elif Role(who).allows(needed):
        assert status not in (401, 403), answer.json  # the view itself answered
        assert 200 <= status < 500
    else:
        assert status == 403, answer.json
        assert f"needs the {needed} role" in answer.json["message"]
    _library_unchanged(secured)


@pytest.mark.parametrize("who", WHO)
@pytest.mark.parametrize(("method", "path", "form", "needed"), PAGES, ids=[f"{m} {p}" for m, p, *_ in PAGES])
def test_page_forms_follow_the_roles(
    secured: dict[str, Any], who: str, method: str, path: str, form: dict[str, str], needed: Role
) -> None:
    app = secured["app"]
    headers: dict[str, str] = {}
    data = dict(form)
    if who in ("viewer", "editor", "admin"):
        client = signed_in(app, f"{who}-person")
        data["csrf_token"] = csrf_token(client, "/")
    elif who == "cross-site cookie":
        client = signed_in(app, "admin-person")  # the attacker's page cannot read the CSRF token
        headers = {"Origin": EVIL, "Sec-Fetch-Site": "cross-site"}
    else:
        client = app.test_client()
        if who == "revoked token":
            headers = bearer(secured["tokens"]["revoked"])
    answer = client.open(path, method=method, data=data, headers=headers)
    status = answer.status_code
    if who in ("anonymous", "revoked token"):
        assert status == 401 and "text/html" in answer.content_type
    elif who == "cross-site cookie":
        assert status in (400, 403) and "CSRF" in answer.get_data(as_text=True)
    elif Role(who).allows(needed):
        assert status not in (401, 403), answer.get_data(as_text=True)[:500]
        assert status < 500
    else:
        assert status == 403 and f"needs the {needed} role" in answer.get_data(as_text=True)
    _library_unchanged(secured)


def test_reading_needs_the_viewer_role_and_pages_send_people_to_sign_in(secured: dict[str, Any]) -> None:
    client = secured["app"].test_client()
    job = "0123456789abcdef0123456789abcdef"
    reads = (
        "/api/v1/stats",
        "/api/v1/images",
        f"/api/v1/images/{secured['image']}/file",
        "/api/v1/images/export",
        "/api/v1/images/albums?parent=",
    )
    for path in (*reads, "/data", "/metrics"):
        assert client.get(path).status_code == 401, path
    for path in (
        f"/api/v1/jobs/{job}/duplicates",
        f"/api/v1/jobs/{job}/matches",
        f"/jobs/{job}/duplicates.csv",
        f"/jobs/{job}/failures.csv",
        f"/jobs/{job}/matches.csv",
        "/check",
        "/albums?album=no-such-album",
    ):
        assert client.get(path).status_code in (302, 401), path  # signing in first, not a 404 that tells
    page = client.get("/library?page=2")
    assert page.status_code == 302 and page.headers["Location"] == "/login?next=/library?page%3D2"
    for path in ("/api/v1/health", "/api/v1/openapi.json", "/api/docs", "/login", "/static/css/app.css"):
        assert client.get(path).status_code == 200, path
    viewer = bearer(secured["tokens"]["viewer"])
    assert client.get(f"/api/v1/images/{secured['image']}/thumbnail", headers=viewer).status_code == 200
    assert client.get("/metrics", headers=viewer).status_code == 200
    assert signed_in(secured["app"], "viewer-person").get("/check").status_code == 403  # a check is an editor's
    albums = signed_in(secured["app"], "viewer-person").get("/albums").get_data(as_text=True)
    assert "Albums" in albums and "Add images" not in albums  # a viewer browses the albums, adds nothing
    with client.get("/api/v1/images/export", headers=viewer) as exported:  # the library's one image, zipped
        assert exported.status_code == 200 and exported.get_data().startswith(b"PK")


def test_a_signed_in_person_works_through_the_pages_and_signs_out(secured: dict[str, Any]) -> None:
    client = signed_in(secured["app"], "editor-person")
    home = client.get("/").get_data(as_text=True)
    assert "editor-person (editor)" in home and "Add images" in home and "This library is open" not in home
    token = csrf_token(client, "/")
    shown = client.post("/account/tokens", data={"name": "backup", "role": "viewer", "csrf_token": token})
    assert shown.status_code == 200 and shown.headers["Cache-Control"] == "no-store"
    secret = re.search(r'id="new-token"[^>]*>([^<]+)<', shown.get_data(as_text=True)).group(1)
    assert client.application.test_client().get("/api/v1/stats", headers=bearer(secret)).status_code == 200
    assert client.post("/logout", data={"csrf_token": token}).status_code == 303
    assert client.get("/").status_code == 302  # the session ended
    viewer_home = signed_in(secured["app"], "viewer-person").get("/").get_data(as_text=True)
    assert "Add images" not in viewer_home  # no link to what the role may not do


@pytest.mark.parametrize("database", ["sqlite", "postgresql"], indirect=True)
def test_a_nul_in_a_name_is_told_apart_not_a_server_error(tmp_path: Path, model_dir: Path, database: str) -> None:
    """PostgreSQL's text holds no NUL, which SQLite takes: names with one were 500s there."""
    app = make_app(tmp_path, model_dir, DATABASE_URL=database)
    accounts = people(app)
    accounts.create_user("ada", Role.ADMIN, PASSWORD)
    client = app.test_client()
    token = csrf_token(client, "/login")
    wrong = client.post("/login", data={"name": "ada\x00", "password": PASSWORD, "csrf_token": token})
    assert wrong.status_code == 401 and "do not match" in wrong.get_data(as_text=True)
    client = signed_in(app, "ada")
    token = csrf_token(client, "/account")
    shown = client.post("/account/tokens", data={"name": "back\x00up", "role": "viewer", "csrf_token": token})
    assert shown.status_code == 200
    assert [t.name for t in accounts.tokens("ada")] == ["backup"]
    gone = client.post("/account/users/no%00body/delete", data={"csrf_token": token})
    assert gone.status_code == 404
    assert client.post("/account/tokens/a%00b/revoke", data={"csrf_token": token}).status_code == 404
    editor = accounts.create_token("ada", Role.EDITOR)[1]
    files = [
        (io.BytesIO(image), name)
        for image, name in zip(noise_images(2, seed=94), ["x\x00y.jpg", "ok.jpg"], strict=True)
    ]
    job = client.post("/api/v1/jobs", data={"files": files}, headers=bearer(editor), content_type="multipart/form-data")
    assert job.status_code == 202, job.json
    finished = wait_for_job(client, job.json["url"])
    assert (finished["added"], finished["failed"]) == (2, 0)
    assert {i["filename"] for i in client.get("/api/v1/images").json} == {"xy.jpg", "ok.jpg"}
    with app.app_context():
        db = runtime().database
    if db.dialect == "postgresql":  # SQLite takes a NUL; PostgreSQL refuses it, for any statement: 422
        with pytest.raises(InvalidInput, match="NUL"), db.connect() as conn:
            conn.execute(token_table.update().values(name="a\x00b"))
    assert sorted(t.name for t in accounts.tokens("ada")) == ["backup", "token"]  # and nothing was stored
    app.extensions[EXTENSION].close()


def test_the_session_cookie_is_httponly_lax_and_secure_in_production(tmp_path: Path, model_dir: Path) -> None:
    app = make_app(tmp_path, model_dir, ENV="production")
    people(app).create_user("ada", Role.VIEWER, PASSWORD)
    client = app.test_client()
    token = csrf_token(client, "/login")
    answer = client.post("/login", data={"name": "ada", "password": PASSWORD, "csrf_token": token})
    cookie = answer.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Secure" in cookie and "Expires=" in cookie
    app.extensions[EXTENSION].close()


def test_sessions_end_after_their_hours_and_when_the_password_changes(tmp_path: Path, model_dir: Path) -> None:
    app = make_app(tmp_path, model_dir, SESSION_HOURS=3 / 3600)
    accounts = people(app)
    accounts.create_user("ada", Role.VIEWER, PASSWORD)
    client = signed_in(app, "ada")
    assert client.get("/").status_code == 200
    time.sleep(3.2)
    assert client.get("/").status_code == 302
    app.config.update(SESSION_HOURS=1, PERMANENT_SESSION_LIFETIME=3600)  # only the password change ends it now
    client = signed_in(app, "ada")
    accounts.set_password("ada", "another long passphrase")
    assert client.get("/").status_code == 302
    app.extensions[EXTENSION].close()


def test_people_change_their_password_and_admins_set_roles_and_passwords(tmp_path: Path, model_dir: Path) -> None:
    app = make_app(tmp_path, model_dir)
    accounts = people(app)
    accounts.create_user("boss", Role.ADMIN, PASSWORD)
    accounts.create_user("ada", Role.VIEWER, PASSWORD)
    ada, elsewhere = signed_in(app, "ada"), signed_in(app, "ada")

    def change(client: FlaskClient, path: str, **form: str) -> str:
        answer = client.post(path, data={**form, "csrf_token": csrf_token(client, "/account")})
        assert answer.status_code == 303, answer.get_data(as_text=True)[:300]
        return " ".join(client.get("/account").get_data(as_text=True).split())

    new = "a new passphrase for ada"
    said = change(ada, "/account/password", current="not it", password=new, confirm=new)
    assert "The current password is not right; the password is unchanged." in said
    said = change(ada, "/account/password", current=PASSWORD, password=new, confirm=new + "!")
    assert "The new password and its confirmation differ" in said
    assert accounts.authenticate("ada", PASSWORD, "10.0.0.9") is not None  # unchanged so far
    said = change(ada, "/account/password", current=PASSWORD, password=new, confirm=new)
    assert "Your password is changed. Your other sessions are signed out." in said  # this one goes on
    assert elsewhere.get("/account").status_code == 302
    assert accounts.authenticate("ada", new, "10.0.0.9") is not None
    elsewhere = signed_in(app, "ada", new)
    assert "Your other sessions are signed out." in change(ada, "/account/sessions/end")
    assert elsewhere.get("/account").status_code == 302 and ada.get("/account").status_code == 200

    boss = signed_in(app, "boss")
    assert "Account ada is editor now." in change(boss, "/account/users/ada/role", role="editor")
    assert '<h1>ada <span class="muted">(editor)</span></h1>' in change(ada, "/account/tokens", name="t", role="x")
    assert "You cannot change your own role here" in change(boss, "/account/users/boss/role", role="viewer")
    assert "You cannot set your own password here" in change(boss, "/account/users/boss/password", password=PASSWORD)
    assert "The password of ada set" in change(boss, "/account/users/ada/password", password="set by the boss")
    assert ada.get("/account").status_code == 302  # the reset ended ada's sessions
    assert accounts.authenticate("ada", "set by the boss", "10.0.0.9") is not None
    assert "10 to 1024 characters" in change(boss, "/account/users/ada/password", password="short")

    cli = app.test_cli_runner()
    boss_token = accounts.create_token("boss", Role.ADMIN, "made while an admin")[1]
    assert cli.invoke(args=["users", "role", "ada", "--role", "admin"]).exit_code == 0
    assert cli.invoke(args=["users", "role", "boss", "--role", "viewer"]).exit_code == 0  # ada is an admin
    last = cli.invoke(args=["users", "role", "ada", "--role", "editor"])
    assert last.exit_code == 1 and "ada is the last admin" in last.output
    log = app.test_client().get("/api/v1/activity", headers=bearer(accounts.create_token("ada", Role.ADMIN)[1]))
    notes = [e["note"] for e in log.json]
    assert notes[:3] == [
        "account boss is viewer now",
        "account ada is admin now",
        "the password of ada set; its sessions ended",
    ]
    assert "account ada is editor now" in notes and "password changed; the other sessions ended" in notes
    assert notes.count("password change refused: the current password given was not right") == 1  # not the typo
    assert "the other sessions ended" in notes

    # boss's token was lowered with boss, and stays lowered once boss is an admin again.
    assert cli.invoke(args=["users", "role", "boss", "--role", "admin"]).exit_code == 0
    assert [t.role for t in accounts.tokens("boss")] == [Role.VIEWER]
    assert app.test_client().get("/api/v1/activity", headers=bearer(boss_token)).status_code == 403
    assert app.test_client().get("/api/v1/stats", headers=bearer(boss_token)).status_code == 200
    app.extensions[EXTENSION].close()


def test_the_account_forms_need_a_session_of_ones_own(tmp_path: Path, model_dir: Path) -> None:
    app = make_app(tmp_path, model_dir, AUTH="off")  # the library is open: anyone, but no one signed in
    try:
        client = app.test_client()
        token = csrf_token(client, "/")
        form = {"csrf_token": token, "name": "t", "role": "viewer", "current": "x", "password": "y" * 12}
        for path in ("/account/tokens", "/account/password", "/account/sessions/end"):
            answer = client.post(path, data=form)
            assert answer.status_code == 303 and answer.headers["Location"] == "/", path
        assert people(app).tokens() == []
    finally:
        app.extensions[EXTENSION].close()


def test_failed_logins_are_throttled_even_for_the_right_password(tmp_path: Path, model_dir: Path) -> None:
    app = make_app(tmp_path, model_dir)
    people(app).create_user("ada", Role.VIEWER, PASSWORD)
    client = app.test_client()
    token = csrf_token(client, "/login")
    for _ in range(10):
        wrong = client.post("/login", data={"name": "ada", "password": "not the password", "csrf_token": token})
        assert wrong.status_code == 401 and "do not match" in wrong.get_data(as_text=True)
    refused = client.post("/login", data={"name": "ada", "password": PASSWORD, "csrf_token": token})
    assert refused.status_code == 429 and int(refused.headers["Retry-After"]) > 0
    assert "too many failed logins" in refused.get_data(as_text=True)
    app.extensions[EXTENSION].close()


def test_login_only_goes_on_to_pages_of_this_site(secured: dict[str, Any]) -> None:
    client = secured["app"].test_client()
    token = csrf_token(client, "/login")
    for target, expected in [("//evil.example/x", "/"), ("https://evil.example", "/"), ("/jobs", "/jobs")]:
        form = {"name": "viewer-person", "password": PASSWORD, "csrf_token": token, "next": target}
        assert client.post("/login", data=form).headers["Location"] == expected
        token = csrf_token(client, "/login")


def test_tokens_are_stored_hashed_capped_by_their_owner_and_record_their_last_use(secured: dict[str, Any]) -> None:
    app = secured["app"]
    accounts = people(app)
    secret = secured["tokens"]["viewer"]
    with app.app_context(), runtime().database.connect() as conn:
        stored = conn.execute(select(token_table)).all()
    assert all(secret not in str(tuple(row)) for row in stored)
    listed = {t.name: t for t in accounts.tokens("viewer-person")}
    assert listed["matrix"].last_used_at is not None
    with pytest.raises(Exception, match="at most the role viewer"):
        accounts.create_token("viewer-person", Role.ADMIN)


def test_a_token_may_expire_and_then_opens_nothing(tmp_path: Path, model_dir: Path) -> None:
    app = make_app(tmp_path, model_dir)
    accounts = people(app)
    accounts.create_user("ada", Role.EDITOR, PASSWORD)
    for wrong in (0, -1, 3651):
        with pytest.raises(InvalidInput, match="expires after"):
            accounts.create_token("ada", Role.VIEWER, "x", wrong)
    cli, client = app.test_cli_runner(), app.test_client()
    never = accounts.create_token("ada", Role.VIEWER, "never")[1]
    made = cli.invoke(args=["tokens", "create", "ada", "--role", "viewer", "--expires-days", str(2 / 86400)])
    assert made.exit_code == 0, made.output
    secret = made.stdout.strip()
    working = client.get("/api/v1/stats", headers=bearer(secret))
    (token,) = [t for t in accounts.tokens("ada") if t.expires_at is not None]
    assert token.expires_at is not None and working.status_code == 200
    expiry = datetime.fromtimestamp(token.expires_at, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert working.headers["X-Token-Expires"] == expiry  # every answer tells the script when
    assert "X-Token-Expires" not in client.get("/api/v1/stats", headers=bearer(never)).headers
    assert "\tactive, expires " in cli.invoke(args=["tokens", "list"]).output
    time.sleep(2.1)
    expired = client.get("/api/v1/stats", headers=bearer(secret))
    assert expired.status_code == 401 and expired.json["message"].startswith("the token expired 20")
    assert "\texpired " in cli.invoke(args=["tokens", "list"]).output
    assert cli.invoke(args=["tokens", "create", "ada", "--role", "viewer", "--expires-days", "0"]).exit_code == 2

    ada = signed_in(app, "ada")
    expiries: list[tuple[str, int | None]] = [("90 days", 90), ("never", None), ("", 90)]  # 90 days unless chosen
    for expiry, days in expiries:
        form = {"name": f"t-{expiry}", "role": "viewer", "expires": expiry, "csrf_token": csrf_token(ada, "/account")}
        assert ada.post("/account/tokens", data=form).status_code == 200
        (token,) = [t for t in accounts.tokens("ada") if t.name == f"t-{expiry}"]
        lasts = None if token.expires_at is None else round((token.expires_at - token.created_at) / 86400)
        assert lasts == days, expiry
    form = {"name": "odd", "role": "viewer", "expires": "a week", "csrf_token": csrf_token(ada, "/account")}
    assert ada.post("/account/tokens", data=form).status_code == 303
    page = " ".join(ada.get("/account").get_data(as_text=True).split())
    assert "a token expires after 30 days, 90 days, a year, never" in page
    assert '<td class="cell-actions"> expired </td>' in page  # the token of the command, expired
    assert "revoked —" not in page
    assert ": soon</strong>" not in page
    accounts.create_token("ada", Role.VIEWER, "short", 3)
    page = " ".join(ada.get("/account").get_data(as_text=True).split())
    assert page.count(": soon</strong>") == 1  # the 3-day token; not the 90-day ones, nor the expired one
    app.extensions[EXTENSION].close()


def test_anonymous_search_lets_the_demo_client_search_but_never_write(
    tmp_path: Path, model_dir: Path, photos: dict[str, bytes]
) -> None:
    app = make_app(tmp_path, model_dir, ANONYMOUS_SEARCH=True)
    client = app.test_client()
    found = client.post("/img/search", data={"image": (io.BytesIO(photos["coffee"]), "q.jpg")})
    assert found.status_code == 200, found.json
    assert client.post("/api/v1/search", data={"image": (io.BytesIO(photos["coffee"]), "q.jpg")}).status_code == 200
    for method, path, kwargs, needed in API:
        if needed is not Role.VIEWER:
            assert _call(client, method, path, dict(kwargs), {}).status_code == 401, path
    app.extensions[EXTENSION].close()


def test_with_no_admin_the_operator_is_told_how_to_create_one(
    tmp_path: Path, model_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    app = make_app(tmp_path, model_dir)
    page = app.test_client().get("/login").get_data(as_text=True)
    assert "No admin account exists yet" in page and "flask --app wsgi users create NAME --role admin" in page
    assert any("no admin account exists" in r.getMessage() for r in caplog.records)
    app.extensions[EXTENSION].close()


def test_with_auth_off_every_page_says_the_library_is_open(tmp_path: Path, model_dir: Path) -> None:
    app = make_app(tmp_path, model_dir, AUTH="off")
    client = app.test_client()
    for path in ("/", "/library", "/jobs", "/add"):
        assert "This library is open" in client.get(path).get_data(as_text=True), path
    app.extensions[EXTENSION].close()


@pytest.mark.parametrize(
    ("settings", "enabled"),
    [
        ({}, False),  # development on loopback: make run
        ({"BIND": "127.0.0.1:8000"}, False),
        ({"BIND": "0.0.0.0:8000"}, True),  # development reachable from the network
        ({"ENV": "production"}, True),
        ({"ENV": "production", "AUTH": "off", "AUTH_OFF_CONFIRMED": "true"}, False),
        ({"AUTH": "on"}, True),
    ],
)
def test_when_access_control_is_on(tmp_path: Path, settings: dict[str, str], enabled: bool) -> None:
    app = create_app({"DATA_DIR": str(tmp_path), "SECRET_KEY": "k", **settings})
    assert app.config["AUTH_ENABLED"] is enabled


def test_production_refuses_to_start_open_unless_confirmed(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="AUTH_OFF_CONFIRMED"):
        create_app({"DATA_DIR": str(tmp_path), "SECRET_KEY": "k", "ENV": "production", "AUTH": "off"})
    with pytest.raises(RuntimeError, match="must be on or off"):
        create_app({"DATA_DIR": str(tmp_path), "SECRET_KEY": "k", "AUTH": "maybe"})


def test_the_openapi_document_declares_the_schemes_and_each_operations_role(secured: dict[str, Any]) -> None:
    spec = secured["app"].test_client().get("/api/v1/openapi.json").json
    assert set(spec["components"]["securitySchemes"]) == {"bearerAuth", "sessionCookie"}
    assert spec["components"]["securitySchemes"]["bearerAuth"]["scheme"] == "bearer"
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            if method == "parameters":
                continue
            if path.startswith("/api/v1/health"):
                assert operation["security"] == [], (method, path)
                continue
            role = operation["x-required-role"]
            assert f"Needs the **{role}** role." in operation["description"], (method, path)
            assert {"bearerAuth": []} in operation["security"] and "401" in operation["responses"], (method, path)
    assert spec["paths"]["/api/v1/images"]["delete"]["x-required-role"] == "admin"
    assert spec["paths"]["/img/drop"]["post"]["x-required-role"] == "admin"
    assert spec["paths"]["/api/v1/jobs"]["post"]["x-required-role"] == "editor"


def test_a_session_cookie_alone_cannot_change_anything_through_the_api(secured: dict[str, Any]) -> None:
    client = signed_in(secured["app"], "admin-person")
    no_evidence = client.delete("/api/v1/images?confirm=987654")
    assert no_evidence.status_code == 403 and "X-CSRFToken" in no_evidence.json["message"]
    token = csrf_token(client, "/")
    with_token = client.delete("/api/v1/images?confirm=987654", headers={"X-CSRFToken": token})
    assert with_token.status_code == 409  # past the check: the count did not match
    same_origin = client.delete("/api/v1/images?confirm=987654", headers={"Sec-Fetch-Site": "same-origin"})
    assert same_origin.status_code == 409
    _library_unchanged(secured)


@pytest.mark.parametrize("content_type", ["application/x-www-form-urlencoded", "text/plain"])
def test_form_and_text_bodies_never_reach_a_json_endpoint(secured: dict[str, Any], content_type: str) -> None:
    client = secured["app"].test_client()
    editor = bearer(secured["tokens"]["editor"])
    for path, body in [("/api/v1/jobs", "folder=/tmp"), ("/img/load", '{"File": "/tmp"}')]:
        answer = client.post(path, data=body, content_type=content_type, headers=editor)
        assert answer.status_code == 415 and "application/json" in answer.json["message"], path


def test_commands_manage_accounts_and_tokens(tmp_path: Path, model_dir: Path) -> None:
    app = make_app(tmp_path, model_dir)
    cli = app.test_cli_runner()
    created = cli.invoke(args=["users", "create", "ada", "--role", "editor", "--password-stdin"], input=PASSWORD + "\n")
    assert created.exit_code == 0 and "created ada (editor)" in created.output
    prompted = cli.invoke(args=["users", "create", "bob", "--role", "viewer"], input=f"{PASSWORD}\n{PASSWORD}\n")
    assert prompted.exit_code == 0, prompted.output
    short = cli.invoke(args=["users", "create", "eve", "--role", "viewer", "--password-stdin"], input="short\n")
    assert short.exit_code != 0 and "10 to 1024 characters" in short.output
    assert cli.invoke(args=["users", "create", "ada", "--role", "viewer", "--password-stdin"], input=PASSWORD).exit_code
    listed = cli.invoke(args=["users", "list"]).output
    assert "ada\teditor" in listed and "bob\tviewer" in listed and PASSWORD not in listed

    too_high = cli.invoke(args=["tokens", "create", "ada", "--role", "admin"])
    assert too_high.exit_code != 0 and "at most the role editor" in too_high.output
    made = app.test_cli_runner().invoke(args=["tokens", "create", "ada", "--role", "editor"])
    secret = made.stdout.strip()
    assert made.exit_code == 0 and secret.startswith("ris_")
    client = app.test_client()
    assert client.get("/api/v1/stats", headers=bearer(secret)).status_code == 200
    token_id = cli.invoke(args=["tokens", "list"]).output.split("\t")[0]
    assert "last used" in cli.invoke(args=["tokens", "list", "--user", "ada"]).output
    assert cli.invoke(args=["tokens", "revoke", token_id]).exit_code == 0
    revoked = client.get("/api/v1/stats", headers=bearer(secret))
    assert revoked.status_code == 401 and revoked.json["message"].startswith("the token was revoked 20")
    assert client.get("/api/v1/stats", headers=bearer("ris_" + "x" * 43)).json["message"] == "the token is unknown"

    another = app.test_cli_runner().invoke(args=["tokens", "create", "bob", "--role", "viewer"])
    assert cli.invoke(args=["users", "delete", "bob"]).exit_code == 0
    assert client.get("/api/v1/stats", headers=bearer(another.stdout.strip())).status_code == 401
    assert "bob" not in cli.invoke(args=["users", "list"]).output
    unknown = cli.invoke(args=["users", "password", "bob"], input=f"{PASSWORD}\n{PASSWORD}\n")
    assert unknown.exit_code != 0 and "no account named 'bob'" in unknown.output and "Password" not in unknown.output
    app.extensions[EXTENSION].close()
