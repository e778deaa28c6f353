"""`flask --app wsgi check [--repair]`: files, vectors and catalogue after a crash."""

from __future__ import annotations

from pathlib import Path

from flask import Flask
from flask.testing import FlaskClient

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
    library.catalog.add([("ab" * 32, 1, "")])  # and a stale one

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
