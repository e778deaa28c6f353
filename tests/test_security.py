"""Web security: headers on every response, no inline script, escaped names, CSRF tokens, request ids."""

from __future__ import annotations

import io
import logging
import re
import time
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from flask import Flask, Response
from flask.logging import default_handler
from flask.testing import FlaskClient
from markupsafe import escape
from werkzeug.test import TestResponse

from tests.conftest import csrf_token, noise_images
from webapp import create_app, logs
from webapp.extensions import csrf
from webapp.runtime import EXTENSION
from webapp.security import CONTENT_SECURITY_POLICY

# No "/" or "\\" (names keep their last path part) and no '"' (Werkzeug's test client does not escape it).
HOSTILE = ["'><img src=x onerror=alert(1)>.jpg", "<script>alert(1)<script>.jpg"]
BROKEN = b"\xff\xd8\xff\xe0 not really a JPEG"
SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Cross-Origin-Opener-Policy": "same-origin",
}
GENERATED_ID = re.compile(r"[0-9a-f]{32}")


class PageAudit(HTMLParser):
    """Collect what a strict CSP would block or what CSRF needs: inline script and style, handlers, forms."""

    def __init__(self, html: str) -> None:
        super().__init__(convert_charrefs=True)
        self.inline: list[str] = []
        self.post_forms: list[dict[str, Any]] = []
        self._form: dict[str, Any] | None = None
        self.feed(html)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        """Note inline script, inline style, event handlers, javascript: URLs and POST forms."""
        values = dict(attrs)
        if tag == "script" and not values.get("src"):
            self.inline.append("<script> without src")
        if tag == "style" or "style" in values:
            self.inline.append(f"<{tag}> style")
        self.inline += [f"<{tag} {name}=...>" for name, _ in attrs if name.startswith("on")]
        self.inline += [f"<{tag} {k}={v}>" for k, v in attrs if (v or "").strip().lower().startswith("javascript:")]
        if tag == "form" and (values.get("method") or "get").lower() == "post":
            self._form = {"action": values.get("action"), "csrf": False}
            self.post_forms.append(self._form)
        if tag == "input" and self._form is not None and values.get("name") == "csrf_token" and values.get("value"):
            self._form["csrf"] = True

    def handle_endtag(self, tag: str) -> None:
        """Close the current form."""
        if tag == "form":
            self._form = None


def add_image(client: FlaskClient, data: bytes, name: str) -> str:
    """Add an image through the API and return its id."""
    added = client.post("/api/v1/images", data={"image": (io.BytesIO(data), name)}, content_type="multipart/form-data")
    assert added.status_code == 201, added.get_data(as_text=True)
    return str(added.json["id"])


def search_page(client: FlaskClient, data: bytes, name: str) -> TestResponse:
    """Search from the home page's form and return the results page."""
    form = {"csrf_token": csrf_token(client), "image": (io.BytesIO(data), name), "top_k": "5"}
    return client.post("/search", data=form, content_type="multipart/form-data")


def failed_job(client: FlaskClient, name: str) -> str:
    """Start a job of one broken file called ``name`` through the API; return its id once it ended."""
    started = client.post(
        "/api/v1/jobs", data={"files": [(io.BytesIO(BROKEN), name)]}, content_type="multipart/form-data"
    )
    assert started.status_code in (201, 202), started.get_data(as_text=True)
    job_id = str(started.json["id"])
    deadline = time.monotonic() + 60
    while client.get(f"/api/v1/jobs/{job_id}").json["status"] in ("queued", "running"):
        assert time.monotonic() < deadline, "the job did not end"
        time.sleep(0.05)
    return job_id


@pytest.fixture()
def pages(client: FlaskClient, photos: dict[str, bytes]) -> dict[str, str]:
    """Fill a library with hostile file names, run a search and a failing job; return every page's HTML."""
    ids = [add_image(client, photos[photo], name) for photo, name in zip(["coffee", "rocket"], HOSTILE, strict=True)]
    job_id = failed_job(client, HOSTILE[1])
    paths = {
        "home": "/",
        "add": "/add",
        "library": "/library",
        "clear": "/library/clear",
        "jobs": "/jobs",
        "job": f"/jobs/{job_id}",
        "image": f"/images/{ids[0]}",
        "delete": f"/images/{ids[0]}/delete",
        "docs": "/api/docs",
        "404": "/nowhere",
    }
    out = {}
    for page, path in paths.items():
        response = client.get(path)
        assert response.status_code == (404 if page == "404" else 200), path
        out[page] = response.get_data(as_text=True)
    results = search_page(client, photos["coffee"], HOSTILE[1])  # both images are hits
    assert results.status_code == 200
    out["results"] = results.get_data(as_text=True)
    return out


def test_every_page_runs_under_the_csp(pages: dict[str, str]) -> None:
    for page, html in pages.items():
        assert PageAudit(html).inline == [], page
        sources = re.findall(r'<(?:script|link|img)\b[^>]*\b(?:src|href)="([^"]*)"', html)
        assert sources and all(re.match(r"/(?!/)|data:image/", s) for s in sources), (page, sources)


def test_hostile_file_names_are_escaped_everywhere(pages: dict[str, str]) -> None:
    shown_in = {"library": HOSTILE, "results": HOSTILE, "job": HOSTILE[1:], "image": HOSTILE[:1], "delete": HOSTILE[:1]}
    for page, names in shown_in.items():
        for name in names:
            assert name not in pages[page] and str(escape(name)) in pages[page], (page, name)


def test_every_post_form_carries_a_csrf_token(pages: dict[str, str]) -> None:
    forms = {page: PageAudit(html).post_forms for page, html in pages.items()}
    # search (home, results), add one, three add-job forms, clear, delete, cancel and resume a job
    assert sum(len(f) for f in forms.values()) >= 10, forms
    for page, page_forms in forms.items():
        assert all(form["csrf"] for form in page_forms), (page, page_forms)


def test_security_headers_on_every_kind_of_response(client: FlaskClient, photos: dict[str, bytes]) -> None:
    image_id = add_image(client, photos["moon"], "moon.jpg")
    responses = {
        "page": (client.get("/"), "text/html"),
        "api json": (client.get("/api/v1/stats"), "application/json"),
        "static file": (client.get("/static/js/app.js"), "text/javascript"),
        "swagger asset": (client.get("/api/docs/assets/swagger-ui.css"), "text/css"),
        "404 json": (client.get("/api/v1/images/" + "0" * 64), "application/json"),
        "404 html": (client.get("/nowhere"), "text/html"),
        "405 json": (client.put("/api/v1/stats"), "application/json"),
        "csrf 400": (client.post("/images", data={}), "text/html"),
        "image file": (client.get(f"/api/v1/images/{image_id}/file"), "image/jpeg"),
        "thumbnail": (client.get(f"/api/v1/images/{image_id}/thumbnail"), "image/jpeg"),
    }
    for kind, (response, mimetype) in responses.items():
        assert response.mimetype == mimetype, kind
        assert response.headers["Content-Security-Policy"] == CONTENT_SECURITY_POLICY, kind
        for name, value in SECURITY_HEADERS.items():
            assert response.headers.get(name) == value, (kind, name)
        assert GENERATED_ID.fullmatch(response.headers["X-Request-ID"]), kind
    assert responses["image file"][0].data == photos["moon"]


def test_the_policy_allows_same_origin_assets_only() -> None:
    directives = dict(d.split(" ", 1) for d in CONTENT_SECURITY_POLICY.split("; "))
    for name in ("default-src", "script-src", "style-src", "connect-src"):
        assert directives[name] == "'self'", name
    assert directives["img-src"] == "'self' data: blob:"
    assert directives["object-src"] == directives["frame-ancestors"] == "'none'"


def test_a_view_may_set_its_own_header(app: Flask, client: FlaskClient) -> None:
    app.add_url_rule("/framable", "framable", lambda: Response("ok", headers={"X-Frame-Options": "SAMEORIGIN"}))
    response = client.get("/framable")
    assert response.headers["X-Frame-Options"] == "SAMEORIGIN"
    assert response.headers["X-Content-Type-Options"] == "nosniff"


def test_swagger_ui_is_served_without_inline_script(client: FlaskClient) -> None:
    html = client.get("/api/docs").get_data(as_text=True)  # the app's template, not flask-smorest's
    assert '<html lang="en">' in html and "<title>Reverse image search · API docs</title>" in html
    assert 'data-spec-url="/api/v1/openapi.json"' in html and "data-config='{}'" in html
    scripts = re.findall(r'<script src="([^"]+)"', html)
    assert scripts[-1] == "/static/js/swagger-init.js"
    for asset in [*scripts, *re.findall(r'<link rel="stylesheet" href="([^"]+)"', html)]:
        assert client.get(asset).status_code == 200, asset


@pytest.mark.parametrize(
    ("sent", "kept"),
    [
        (None, False),
        ("", False),
        ("req-42.A_b", True),
        ("x" * 64, True),
        ("x" * 65, False),
        ("x" * 200, False),
        ("abc\n", False),
        ("abc\ninjected=1", False),
        ("a b", False),
        ("é", False),
    ],
)
def test_request_id_is_echoed_only_when_well_formed(client: FlaskClient, sent: str | None, kept: bool) -> None:
    environ = {} if sent is None else {"HTTP_X_REQUEST_ID": sent}  # the raw header, newlines included
    got = client.get("/api/v1/health", environ_overrides=environ).headers["X-Request-ID"]
    assert got == sent if kept else GENERATED_ID.fullmatch(got)


def test_each_request_gets_its_own_id(client: FlaskClient) -> None:
    assert client.get("/nowhere").headers["X-Request-ID"] != client.get("/nowhere").headers["X-Request-ID"]


@csrf.exempt  # so a POST reaches the view and its form could be logged
def _raise() -> str:
    raise RuntimeError("boom")


@pytest.fixture()
def failing(app: Flask) -> None:
    """Add routes that raise an unexpected error, as a page and under /api."""
    app.add_url_rule("/boom", "boom", _raise, methods=["GET", "POST"])
    app.add_url_rule("/api/v1/boom", "api_boom", _raise)


@pytest.mark.usefixtures("failing")
@pytest.mark.parametrize(("path", "mimetype"), [("/boom", "text/html"), ("/api/v1/boom", "application/json")])
def test_an_unexpected_error_is_logged_with_the_id_the_client_gets(
    client: FlaskClient, caplog: pytest.LogCaptureFixture, path: str, mimetype: str
) -> None:
    response = client.get(path)
    assert response.status_code == 500 and response.mimetype == mimetype
    assert "boom" not in response.get_data(as_text=True)  # no detail leaks to the client
    request_id = response.headers["X-Request-ID"]
    assert GENERATED_ID.fullmatch(request_id)
    assert response.headers["Content-Security-Policy"] == CONTENT_SECURITY_POLICY
    [record] = [r for r in caplog.records if r.name == "webapp.handlers"]
    assert record.__dict__["request_id"] == request_id and record.exc_info is not None


@pytest.mark.usefixtures("failing")
@pytest.mark.parametrize("path", ["/boom", "/api/v1/boom"])
def test_a_500_body_quotes_the_request_id(client: FlaskClient, path: str) -> None:
    response = client.get(path)
    assert response.headers["X-Request-ID"] in response.get_data(as_text=True)


@pytest.mark.usefixtures("failing")
def test_the_log_line_has_the_id_and_no_secrets(
    app: Flask, client: FlaskClient, caplog: pytest.LogCaptureFixture
) -> None:
    app.config["SECRET_KEY"] = "key-secret"
    client.set_cookie("session", "cookie-secret")
    form = {"password": "form-secret", "image": (io.BytesIO(b"image-bytes-secret"), "x.jpg")}
    headers = {"Authorization": "Bearer auth-secret", "X-Request-ID": "trace-1"}
    response = client.post("/boom?q=1", data=form, headers=headers, content_type="multipart/form-data")
    assert response.status_code == 500
    [handler] = [h for h in logging.getLogger("webapp").handlers if h.name == "webapp-stderr"]
    lines = [handler.format(r) for r in caplog.records]
    assert any("request_id=trace-1" in line and "Traceback" in line for line in lines), lines
    for line in lines:
        assert "\n" not in line  # one line per record, traceback included
        for secret in ("key-secret", "cookie-secret", "form-secret", "image-bytes-secret", "auth-secret"):
            assert secret not in line


def test_log_lines_cannot_be_forged_and_are_tagged_outside_requests() -> None:
    record = logging.LogRecord("webapp.x", logging.WARNING, __file__, 1, "GET /%s", ("a\r\nFAKE line",), None)
    assert logs.RequestIdFilter().filter(record) and record.__dict__["request_id"] == "-"
    assert logs.OneLineFormatter(logs.FORMAT).format(record).endswith("request_id=-: GET /a\\r\\nFAKE line")


def test_app_logs_are_written_once(app: Flask, model_dir: Path, tmp_path: Path) -> None:
    settings = {"TESTING": True, "DATA_DIR": str(tmp_path / "other"), "MODEL_DIR": str(model_dir), "SECRET_KEY": "t"}
    other = create_app(settings)  # a second app in the process adds no second handler
    assert app.logger is other.logger is logging.getLogger("webapp")  # Flask's logger is the package's
    # pytest's capture handlers aside, one handler writes the lines, and none reaches root's (towhee's).
    assert [h.name for h in app.logger.handlers].count("webapp-stderr") == 1
    assert default_handler not in app.logger.handlers and not app.logger.propagate
    other.extensions[EXTENSION].close()


CROSS_SITE = [
    {"Origin": "http://evil.example"},
    {"Sec-Fetch-Site": "cross-site"},
    {"Sec-Fetch-Site": "same-site", "Origin": "http://other.localhost"},
    {"Origin": "null"},
]


@pytest.mark.parametrize("headers", CROSS_SITE, ids=["origin", "fetch-site", "sibling", "null"])
@pytest.mark.parametrize(
    ("method", "path"),
    [("POST", "/api/v1/jobs"), ("POST", "/api/v1/images"), ("DELETE", "/api/v1/images?confirm=0")],
)
def test_api_writes_from_other_sites_pages_are_refused(
    client: FlaskClient, headers: dict[str, str], method: str, path: str
) -> None:
    """A page elsewhere can post a plain form to the API; the browser says where it came from."""
    response = client.open(path, method=method, headers=headers, data={"folder": "/"})
    assert response.status_code == 403 and "other sites" in response.json["message"]
    assert client.get("/api/v1/jobs").json == []


def test_api_writes_from_this_app_and_from_scripts_go_through(client: FlaskClient) -> None:
    same = {"Origin": "http://localhost", "Sec-Fetch-Site": "same-origin"}
    image = noise_images(1, seed=51)[0]
    for headers in (same, {}):
        response = client.post("/api/v1/images", headers=headers, data={"image": (io.BytesIO(image), "a.jpg")})
        assert response.status_code in (200, 201), response.json
    assert client.get("/api/v1/stats", headers={"Origin": "http://evil.example"}).status_code == 200  # reads stay


def test_an_unknown_host_is_400_so_dns_rebinding_gets_nowhere(client: FlaskClient) -> None:
    """A page at evil.example rebinding its name to 127.0.0.1 sends Host: evil.example."""
    for path, kind in (("/", "text/html"), ("/api/v1/stats", "application/json")):
        response = client.get(path, headers={"Host": "evil.example:8000"})
        assert response.status_code == 400 and response.mimetype == kind
    posted = client.post("/api/v1/jobs", headers={"Host": "evil.example"}, json={"folder": "/"})
    assert posted.status_code == 400
    assert client.get("/", headers={"Host": "127.0.0.1:8000"}).status_code == 200


def test_trusted_hosts_setting_names_the_hosts(tmp_path: Path, model_dir: Path) -> None:
    settings = {"TESTING": True, "DATA_DIR": str(tmp_path), "MODEL_DIR": str(model_dir), "SECRET_KEY": "t"}
    app = create_app({**settings, "TRUSTED_HOSTS": "photos.example, .lan"})
    client = app.test_client()
    assert client.get("/api/v1/health", headers={"Host": "photos.example"}).status_code == 200
    assert client.get("/api/v1/health", headers={"Host": "nas.lan:8000"}).status_code == 200
    assert client.get("/api/v1/health", headers={"Host": "localhost"}).status_code == 400
    anyone = create_app({**settings, "TRUSTED_HOSTS": "*"}).test_client()
    assert anyone.get("/api/v1/health", headers={"Host": "whatever.example"}).status_code == 200
