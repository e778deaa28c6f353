"""Optional per-client rate limiting of searches and uploads (off unless RATE_LIMIT is set)."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask

from tests.conftest import csrf_token
from webapp import create_app
from webapp.runtime import EXTENSION


@pytest.fixture()
def limited(tmp_path: Path, model_dir: Path) -> Iterator[Flask]:
    app = create_app(
        {"DATA_DIR": str(tmp_path), "MODEL_DIR": str(model_dir), "SECRET_KEY": "t", "RATE_LIMIT": "3/minute"}
    )
    yield app
    app.extensions[EXTENSION].close()


def test_searches_and_uploads_share_one_budget_per_client(limited: Flask, photos: dict[str, bytes]) -> None:
    client = limited.test_client()

    def post(url: str) -> int:
        data = {"image": (io.BytesIO(photos["coffee"]), "c.jpg")}
        return client.post(url, data=data, content_type="multipart/form-data").status_code

    assert [post("/api/v1/search"), post("/api/v1/images"), post("/api/v1/search")] == [200, 201, 200]
    refused = client.post(
        "/api/v1/search", data={"image": (io.BytesIO(photos["coffee"]), "c.jpg")}, content_type="multipart/form-data"
    )
    assert refused.status_code == 429 and refused.json["code"] == 429
    assert "3 per 1 minute" in refused.json["message"]
    assert client.get("/api/v1/stats").status_code == 200  # reads are not limited
    page = client.post(
        "/search",
        data={"csrf_token": csrf_token(client), "image": (io.BytesIO(photos["coffee"]), "c.jpg")},
        content_type="multipart/form-data",
    )
    assert page.status_code == 429 and page.mimetype == "text/html"
    other = client.post(  # another client (address) has its own budget
        "/api/v1/search",
        data={"image": (io.BytesIO(photos["coffee"]), "c.jpg")},
        content_type="multipart/form-data",
        environ_base={"REMOTE_ADDR": "10.9.8.7"},
    )
    assert other.status_code == 200


def test_no_limit_by_default(app: Flask, photos: dict[str, bytes]) -> None:
    assert app.config["RATE_LIMIT"] == "" and not app.config["RATELIMIT_ENABLED"]
    client = app.test_client()
    for _ in range(8):
        data = {"image": (io.BytesIO(photos["coffee"]), "c.jpg")}
        assert client.post("/api/v1/search", data=data, content_type="multipart/form-data").status_code == 200
