"""`flask --app wsgi check [--repair]`: files, vectors and catalogue after a crash."""

from __future__ import annotations

import os
import time
from dataclasses import replace
from pathlib import Path

from flask import Flask
from flask.testing import FlaskClient

from tests.test_activity import entries
from tests.test_api import add_all
from webapp.runtime import EXTENSION


def test_check_finds_and_repairs_every_kind_of_disagreement(
    app: Flask, client: FlaskClient, photos: dict[str, bytes]
) -> None:
    ids = add_all(client, {name: photos[name] for name in ("coffee", "rocket", "moon", "coins", "brick")})
    library = app.extensions[EXTENSION].library
    runner = app.test_cli_runner()
    assert runner.invoke(args=["check"]).output.endswith("consistent\n")

    library.vectors.delete([ids["coffee"]])  # a crash after the file, before the vector
    library.catalog.remove([ids["coffee"]])
    library.images.original(ids["rocket"]).unlink()  # a file lost
    library.catalog.remove([ids["moon"]])  # a catalogue entry lost
    library.catalog.add([("ab" * 32, 1, "", None)])  # and a stale one

    found = runner.invoke(args=["check"])
    assert found.exit_code == 1
    for line in (
        "vectors without their file: 1",
        "files without their vector: 1",
        "missing from the catalogue: 1",
        "stale in the catalogue: 2",
    ):
        assert line in found.output, found.output

    repaired = runner.invoke(args=["check", "--repair"])
    assert repaired.exit_code == 0 and "repaired: 1 files embedded again, 1 vectors removed" in repaired.output
    assert runner.invoke(args=["check"]).output.endswith("consistent\n")
    (logged,) = [e for e in entries(app) if e["via"] == "command"]  # the checks that changed nothing are not
    assert (logged["path"], logged["note"]) == ("flask check", repaired.output.splitlines()[-1])
    assert client.get("/api/v1/stats").json["count"] == 4
    assert client.get(f"/api/v1/images/{ids['rocket']}").status_code == 404
    coffee = client.get(f"/api/v1/images/{ids['coffee']}").json
    assert coffee["filename"].startswith("recovered-") and coffee["source"] == "repair"
    listed = {image["id"] for image in client.get("/api/v1/images").json}
    assert listed == {ids[name] for name in ("coffee", "moon", "coins", "brick")}


def test_check_reports_a_damaged_file_instead_of_indexing_it(
    app: Flask, client: FlaskClient, photos: dict[str, bytes]
) -> None:
    ids = add_all(client, {"coffee": photos["coffee"]})
    library = app.extensions[EXTENSION].library
    library.vectors.delete([ids["coffee"]])
    path = library.images.original(ids["coffee"])
    assert path is not None
    path.write_bytes(b"garbage")
    result = app.test_cli_runner().invoke(args=["check", "--repair"])
    assert "unreadable file left in place" in result.output
    assert Path(path).exists()


def test_check_removes_temporary_files_a_crash_left_but_not_those_of_a_batch_being_written(
    app: Flask, client: FlaskClient, photos: dict[str, bytes]
) -> None:
    ids = add_all(client, {"coffee": photos["coffee"]})
    library = app.extensions[EXTENSION].library
    folder = library.images.original(ids["coffee"]).parent
    left = folder / ".tmp-crashed"  # written, never renamed: its batch's process died
    left.write_bytes(b"half a batch")
    hour_ago = time.time() - 3600
    os.utime(left, (hour_ago, hour_ago))
    preview = library.images.root / "previews" / ids["coffee"][:2] / ".tmp-preview"  # a page's, cut short
    preview.parent.mkdir(parents=True)
    preview.write_bytes(b"half a preview")
    os.utime(preview, (hour_ago, hour_ago))
    writing = library.images.root / "thumbnails" / ids["coffee"][:2] / ".tmp-writing"  # a batch in progress
    writing.write_bytes(b"about to be renamed")
    runner = app.test_cli_runner()

    found = runner.invoke(args=["check"])
    assert found.exit_code == 1 and "temporary files left by a crash: 2 (.tmp-crashed" in found.output

    repaired = runner.invoke(args=["check", "--repair"])
    assert repaired.exit_code == 0 and "2 temporary files removed" in repaired.output
    assert not left.exists() and not preview.exists() and writing.exists()
    assert runner.invoke(args=["check"]).output.endswith("consistent\n")


def test_check_sets_an_album_a_move_cut_short_left_in_the_catalogue_as_stored_with_the_vector(
    app: Flask, client: FlaskClient, photos: dict[str, bytes]
) -> None:
    ids = add_all(client, {name: photos[name] for name in ("coffee", "rocket")})
    library = app.extensions[EXTENSION].library
    record = library.get(ids["coffee"])
    # A move writes the vectors first: killed before the catalogue, the two name different albums.
    library.vectors.upsert([(replace(record, album="kitchen"), library.vectors.vector(ids["coffee"]))])
    runner = app.test_cli_runner()
    found = runner.invoke(args=["check"])
    assert found.exit_code == 1 and f"albums the catalogue names otherwise: 1 ({ids['coffee'][:12]}" in found.output
    repaired = runner.invoke(args=["check", "--repair"])
    assert repaired.exit_code == 0 and "1 albums set as stored with the vectors" in repaired.output
    assert runner.invoke(args=["check"]).output.endswith("consistent\n")
    listed = client.get("/api/v1/images", query_string={"album": "kitchen"}).json
    assert [image["id"] for image in listed] == [ids["coffee"]]
    assert {a["name"]: a["count"] for a in client.get("/api/v1/images/albums").json} == {"kitchen": 1}
