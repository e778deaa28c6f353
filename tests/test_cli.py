"""`flask --app wsgi ingest`: locally, against a busy Lite file, and through a running server."""

from __future__ import annotations

import getpass
from datetime import UTC, datetime
from pathlib import Path

import requests
from flask import Flask

from tests.test_activity import entries
from tests.test_auth import PASSWORD
from tests.test_checks import resaved
from tests.test_database import HEAD
from tests.test_gunicorn import Server
from webapp.cli import expiry_warning
from webapp.runtime import EXTENSION
from webapp.services.roles import Role


def photo_folder(root: Path, photos: dict[str, bytes]) -> Path:
    folder = root / "pictures"
    (folder / "2024").mkdir(parents=True)
    (folder / "coffee.jpg").write_bytes(photos["coffee"])
    (folder / "2024" / "rocket.jpg").write_bytes(photos["rocket"])
    (folder / "2024" / "rocket-copy.jpg").write_bytes(photos["rocket"])
    (folder / "2024" / "broken.jpg").write_bytes(b"\xff\xd8\xff")
    return folder


def test_ingest_prints_a_summary_and_counts_duplicates(app: Flask, tmp_path: Path, photos: dict[str, bytes]) -> None:
    folder = photo_folder(tmp_path, photos)
    runner = app.test_cli_runner()
    first = runner.invoke(args=["ingest", str(folder)])
    assert first.exit_code == 0, first.output
    assert "4 files: 2 added, 1 duplicates, 1 failed" in first.output
    assert "failed: 2024/broken.jpg:" in first.output
    second = runner.invoke(args=["ingest", str(folder)])
    assert second.exit_code == 0 and "4 files: 0 added, 3 duplicates, 1 failed" in second.output
    client = app.test_client()
    jobs = client.get("/api/v1/jobs").json
    added = [client.get(image["url"].removesuffix("/file")).json for image in client.get("/api/v1/images").json]
    assert {job["started_by"] for job in jobs} | {image["added_by"] for image in added} == {getpass.getuser()}
    logged = [(e["via"], e["path"], e["note"].split(") ")[-1]) for e in entries(app)]  # newest first
    assert logged == [
        ("command", f"flask ingest {folder}", "done: 0 added, 3 duplicates, 1 failed"),
        ("command", f"flask ingest {folder}", "done: 2 added, 1 duplicates, 1 failed"),
    ]


def test_ingest_check_says_what_the_library_holds_and_adds_nothing(
    app: Flask, tmp_path: Path, photos: dict[str, bytes]
) -> None:
    runner = app.test_cli_runner()
    library = tmp_path / "library"
    (library / "trips").mkdir(parents=True)
    (library / "trips" / "rocket.jpg").write_bytes(photos["rocket"])
    assert runner.invoke(args=["ingest", str(library)]).exit_code == 0
    folder = photo_folder(tmp_path, photos)  # coffee (new), rocket twice, a broken file
    (folder / "small-rocket.jpg").write_bytes(resaved(photos["rocket"]))
    checked = runner.invoke(args=["ingest", str(folder), "--check"])
    assert checked.exit_code == 0, checked.output
    assert "5 files: 2 in the library, 1 the same picture, 1 new, 1 failed" in checked.output
    assert "  in the library: 2024/rocket.jpg as trips/rocket.jpg (100% alike)" in checked.output
    assert "  the same picture: small-rocket.jpg as trips/rocket.jpg (" in checked.output
    assert "failed: 2024/broken.jpg:" in checked.output and "coffee.jpg" not in checked.output
    assert app.test_client().get("/api/v1/stats").json["count"] == 1
    job = app.test_client().get("/api/v1/jobs").json[0]
    assert job["kind"] == "check-cli" and job["started_by"] == getpass.getuser()
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "bad.png").write_bytes(b"nope")
    refused = runner.invoke(args=["ingest", str(broken), "--check"])
    assert refused.exit_code == 1 and "no file could be read" in refused.output

    # --new-only: the same check, then a load of what it found new, and nothing else.
    loaded = runner.invoke(args=["ingest", str(folder), "--new-only"])
    assert loaded.exit_code == 0, loaded.output
    assert "5 files: 2 in the library, 1 the same picture, 1 new, 1 failed" in loaded.output
    assert "loading the 1 new file\n" in loaded.output and "1 files: 1 added, 0 duplicates, 0 failed" in loaded.output
    listed = app.test_client().get("/api/v1/images").json
    assert sorted(image["filename"] for image in listed) == ["coffee.jpg", "rocket.jpg"]
    again = runner.invoke(args=["ingest", str(folder), "--new-only"])
    assert again.exit_code == 0 and "0 new" in again.output and "loading" not in again.output
    both = runner.invoke(args=["ingest", str(folder), "--new-only", "--check"])
    assert both.exit_code == 2 and "give one of them" in both.output


def test_ingest_fails_when_nothing_could_be_indexed(app: Flask, tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    result = app.test_cli_runner().invoke(args=["ingest", str(empty)])
    assert result.exit_code == 1 and "no image files found" in result.output
    (empty / "bad.png").write_bytes(b"nope")
    result = app.test_cli_runner().invoke(args=["ingest", str(empty)])
    assert result.exit_code == 1 and "nothing could be indexed" in result.output


def test_ingest_refuses_a_lite_file_in_use_and_can_send_the_work_to_the_server(
    tmp_path: Path, model_dir: Path, photos: dict[str, bytes]
) -> None:
    from webapp import create_app

    folder = photo_folder(tmp_path, photos)
    server = Server(tmp_path / "data", model_dir, WEBAPP_SEARCH_PROCESSES="0", WEBAPP_AUTH="on")  # no query to embed
    try:
        app = create_app({"DATA_DIR": str(tmp_path / "data"), "MODEL_DIR": str(model_dir)})
        busy = app.test_cli_runner().invoke(args=["ingest", str(folder)])
        assert busy.exit_code == 1
        assert "in use by another process" in busy.output and "--server" in busy.output

        accounts = app.extensions[EXTENSION].accounts
        accounts.create_user("ada", Role.EDITOR, PASSWORD)
        token = accounts.create_token("ada", Role.EDITOR, "script", expires_in_days=3.5)[1]
        bearer = {"Authorization": f"Bearer {token}"}
        sent = app.test_cli_runner().invoke(args=["ingest", str(folder), "--server", server.url, "--token", token])
        assert sent.exit_code == 0, sent.output
        assert sent.output.count("warning: this token expires in 3 days (") == 1  # once, not every request
        assert "4 files: 2 added, 1 duplicates, 1 failed" in sent.output
        assert "failed: 2024/broken.jpg:" in sent.output
        (folder / "small-rocket.jpg").write_bytes(resaved(photos["rocket"]))
        args = ["ingest", str(folder), "--check", "--server", server.url, "--token", token]
        checked = app.test_cli_runner().invoke(args=args)
        assert checked.exit_code == 0, checked.output
        assert "5 files: 3 in the library, 1 the same picture, 0 new, 1 failed" in checked.output  # all but one added
        assert "  the same picture: small-rocket.jpg as 2024/rocket" in checked.output
        (folder / "camera.jpg").write_bytes(photos["camera"])
        args[args.index("--check")] = "--new-only"
        loaded = app.test_cli_runner().invoke(args=args)  # the server keeps what its checks found new, and adds it
        assert loaded.exit_code == 0, loaded.output
        assert "6 files: 3 in the library, 1 the same picture, 1 new, 1 failed" in loaded.output
        assert "loading the 1 new file\n" in loaded.output
        assert "1 files: 1 added, 0 duplicates, 0 failed" in loaded.output
        names = [image["filename"] for image in requests.get(f"{server.url}/api/v1/images", headers=bearer).json()]
        assert sorted(names) == ["camera.jpg", "coffee.jpg", "rocket-copy.jpg"]  # (the first of two of its bytes)
    finally:
        server.stop()
    assert (tmp_path / "data" / "milvus.db").exists()


def test_db_upgrade_brings_the_schema_to_the_latest_revision(app: Flask) -> None:
    runner = app.test_cli_runner()
    result = runner.invoke(args=["db", "upgrade"])
    assert result.exit_code == 0, result.output
    assert f"webapp.sqlite is at revision {HEAD}" in result.output
    again = runner.invoke(args=["db", "upgrade"])  # nothing left to apply: the same answer
    assert again.exit_code == 0 and f"at revision {HEAD}" in again.output


def test_worker_needs_a_broker(app: Flask) -> None:
    result = app.test_cli_runner().invoke(args=["worker"])
    assert result.exit_code != 0 and "WEBAPP_BROKER_URL" in result.output


def test_a_token_that_expires_soon_gets_a_warning_from_the_commands_that_use_it() -> None:
    now = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)
    assert expiry_warning("2026-12-30T12:00:00Z", now) is None  # 26 days left
    soon = expiry_warning("2026-12-14T13:00:00Z", now)
    assert soon is not None and soon.startswith("warning: this token expires in 10 days (2026-12-14T13:00:00Z)")
    assert "within a day" in (expiry_warning("2026-12-04T18:00:00Z", now) or "")
    assert "expires in 1 day (" in (expiry_warning("2026-12-05T13:00:00Z", now) or "")
    assert expiry_warning("next tuesday", now) is None
