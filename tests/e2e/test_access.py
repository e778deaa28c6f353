"""Access control in a browser: signing in and out, and Swagger UI's Authorize button with an API token."""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from playwright.sync_api import Browser, Page, expect

from tests.e2e.conftest import Console, browsing, check_accessibility
from tests.servers import FLASK
from tests.test_gunicorn import Server, environment
from webapp.config import ROOT

PASSWORD = "a long enough passphrase"


def flask(server: Server, *args: str, stdin: str = "") -> str:
    """Run a `flask --app wsgi` command against the server's library; return what it printed."""
    env = environment(server.data_dir, server.model_dir, WEBAPP_AUTH="on")
    done = subprocess.run(
        [FLASK, "--app", "wsgi", *args], cwd=ROOT, env=env, input=stdin, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


@pytest.fixture()
def secured(tmp_path: Path, model_dir: Path) -> Iterator[Server]:
    """Serve the app under Gunicorn with access control on."""
    served = Server(tmp_path / "data", model_dir, WEBAPP_AUTH="on", WEBAPP_SEARCH_PROCESSES="0")
    yield served
    if served.proc.poll() is None:
        served.stop()


def test_sign_in_see_your_role_and_sign_out(browser: Browser, secured: Server, axe_source: str) -> None:
    console = Console()
    with browsing(browser, secured, console=console) as page:
        page.goto("/library")
        expect(page.locator("#no-admin")).to_contain_text("users create NAME --role admin")
        flask(secured, "users", "create", "root", "--role", "admin", "--password-stdin", stdin=PASSWORD)
        flask(secured, "users", "create", "ada", "--role", "editor", "--password-stdin", stdin=PASSWORD)
        page.reload()
        expect(page.locator("#no-admin")).to_have_count(0)
        check_accessibility(page, axe_source)

        page.get_by_label("Name").fill("ada")
        page.get_by_label("Password").fill("not it at all")
        console.expect_error_page("/login", 401)
        page.get_by_role("button", name="Sign in").click()
        expect(page.get_by_role("alert")).to_contain_text("do not match")
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_role("button", name="Sign in").click()
        expect(page).to_have_url(f"{secured.url}/library")  # back where the person was going
        expect(page.get_by_role("link", name="ada (editor)")).to_be_visible()

        page.get_by_role("link", name="ada (editor)").click()
        page.get_by_label("Name").fill("nightly backup")
        page.get_by_role("button", name="Create token").click()
        expect(page.locator("#new-token")).to_contain_text("ris_")
        check_accessibility(page, axe_source)
        page.get_by_label("Current password").fill(PASSWORD)
        page.get_by_label("New password", exact=True).fill("ada's own new passphrase")
        page.get_by_label("New password again").fill("ada's own new passphrase")
        page.get_by_role("button", name="Change password").click()
        expect(page.get_by_role("status")).to_contain_text("Your password is changed")
        page.get_by_role("button", name="Sign out").first.click()
        expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
        page.get_by_label("Name").fill("ada")
        page.get_by_label("Password").fill("ada's own new passphrase")
        page.get_by_role("button", name="Sign in").click()
        expect(page.get_by_role("link", name="ada (editor)")).to_be_visible()
        page.get_by_role("button", name="Sign out").first.click()
        expect(page.get_by_role("heading", name="Sign in")).to_be_visible()

        page.get_by_label("Name").fill("root")  # an admin renames ada
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_role("button", name="Sign in").click()
        page.get_by_role("link", name="root (admin)").click()
        page.get_by_text("Change…").click()
        page.get_by_label("New name").fill("ada.l")
        page.get_by_role("button", name="Rename").click()
        expect(page.get_by_role("status")).to_contain_text("Account ada renamed ada.l.")
        expect(page.get_by_role("link", name="ada.l", exact=True)).to_be_visible()
        check_accessibility(page, axe_source)
        page.get_by_role("button", name="Sign out").first.click()
        expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
        page.goto("/jobs")
        expect(page).to_have_url(f"{secured.url}/login?next=/jobs")


def test_swagger_ui_authorize_with_a_token(browser: Browser, secured: Server) -> None:
    flask(secured, "users", "create", "ops", "--role", "viewer", "--password-stdin", stdin=PASSWORD)
    token = flask(secured, "tokens", "create", "ops", "--role", "viewer").strip()
    console = Console()
    console.expect_error_page("/api/v1/stats", 401)
    with browsing(browser, secured, console=console) as docs:
        docs.goto("/api/docs")
        operation = docs.locator("#operations-stats-get_api_v1_stats")
        operation.locator(".opblock-summary-control").click()
        operation.get_by_role("button", name="Try it out").click()
        operation.get_by_role("button", name="Execute").click()
        status = operation.locator(".live-responses-table .response .response-col_status")
        expect(status).to_have_text("401")

        docs.locator(".auth-wrapper .authorize").click()
        dialog = docs.locator(".modal-ux")
        dialog.locator("input").first.fill(token)
        dialog.get_by_role("button", name="Authorize", exact=True).first.click()
        dialog.get_by_role("button", name="Close").first.click()
        operation.get_by_role("button", name="Execute").click()
        expect(status).to_have_text("200")
        assert "ops" in flask(secured, "tokens", "list")  # and its last use is recorded
        assert "last used never" not in flask(secured, "tokens", "list")


def test_an_editor_deletes_into_the_trash_and_only_an_admin_deletes_for_good(
    browser: Browser, secured: Server, photos: dict[str, bytes], axe_source: str
) -> None:
    flask(secured, "users", "create", "root", "--role", "admin", "--password-stdin", stdin=PASSWORD)
    flask(secured, "users", "create", "ada", "--role", "editor", "--password-stdin", stdin=PASSWORD)
    token = flask(secured, "tokens", "create", "ada", "--role", "editor").strip()
    added = requests.post(
        f"{secured.url}/api/v1/images",
        files={"image": ("coffee.jpg", photos["coffee"])},
        headers={"Authorization": f"Bearer {token}"},
        timeout=60,
    )
    assert added.status_code == 201, added.text

    def sign_in(page: Page, name: str) -> None:
        page.goto("/login")
        page.get_by_label("Name").fill(name)
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_role("button", name="Sign in").click()
        expect(page.get_by_role("link", name=re.compile(f"^{name} "))).to_be_visible()

    with browsing(browser, secured) as page:
        sign_in(page, "ada")
        page.goto(f"/images/{added.json()['id']}")
        page.get_by_role("link", name="Delete…").click()
        expect(page.get_by_text("waits in the trash 30 days")).to_be_visible()
        page.get_by_role("button", name="Delete image").click()
        expect(page.get_by_text("Moved coffee.jpg to the trash, where it stays 30 days.")).to_be_visible()
        page.get_by_role("link", name="Trash", exact=True).click()
        expect(page.get_by_text("by ada")).to_be_visible()
        expect(page.get_by_role("button", name="Restore coffee.jpg")).to_be_visible()
        expect(page.get_by_role("button", name="Delete for good coffee.jpg")).to_have_count(0)  # an editor's trash
        page.get_by_role("button", name="Sign out").first.click()

        sign_in(page, "root")
        page.goto("/trash")
        check_accessibility(page, axe_source)
        page.get_by_role("button", name="Delete for good coffee.jpg").click()
        expect(page.get_by_text("Removed coffee.jpg for good.")).to_be_visible()
        expect(page.get_by_text("The trash is empty.")).to_be_visible()
        page.get_by_role("link", name="Activity").click()
        rows = page.get_by_role("row")
        expect(rows.filter(has_text=re.compile(r"coffee\.jpg \(\w+\) deleted")).filter(has_text="ada")).to_have_count(1)
        expect(rows.filter(has_text="1 removed for good: coffee.jpg").filter(has_text="root")).to_have_count(1)
