"""Scale-out against a real Milvus server: health, outage and recovery, several Gunicorn workers."""

from __future__ import annotations

import os
import re
import signal
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
import requests
from flask import Flask
from flask.testing import FlaskClient
from pymilvus import MilvusClient

from tests.conftest import noise_images
from tests.milvus_server import MilvusServer
from tests.test_api import BOTH_STORES, upload
from tests.test_gunicorn import Server
from webapp.models import DEFAULT


@BOTH_STORES
def test_liveness_and_readiness(client: FlaskClient) -> None:
    assert client.get("/api/v1/health").json == {"status": "ok"}
    ready = client.get("/api/v1/health/ready")
    assert ready.status_code == 200 and ready.json["status"] == "ready"
    assert ready.json["model"]["ok"] and ready.json["store"]["ok"] and ready.json["storage"]["ok"]
    assert f"{DEFAULT} loaded from" in ready.json["model"]["message"]
    assert ready.json["storage"]["message"].endswith(": no image added over 120 s ago yet")


def test_readiness_reports_a_missing_model_apart_from_the_store(tmp_path: Path) -> None:
    from webapp import create_app

    app = create_app({"DATA_DIR": str(tmp_path), "MODEL_DIR": str(tmp_path / "none"), "SECRET_KEY": "x"})
    ready = app.test_client().get("/api/v1/health/ready")
    assert ready.status_code == 503 and ready.json["status"] == "unavailable"
    assert not ready.json["model"]["ok"] and "make model" in ready.json["model"]["message"]
    assert app.test_client().get("/api/v1/health").status_code == 200


@pytest.mark.parametrize("backend", ["server"], indirect=True)
def test_milvus_down_gives_quick_503s_and_the_app_recovers_by_itself(
    app: Flask, client: FlaskClient, photos: dict[str, bytes], milvus_server: MilvusServer
) -> None:
    assert upload(client, "/api/v1/images", photos["coffee"]).status_code == 201
    images = Path(app.config["DATA_DIR"]) / "images"
    files_before = sorted(images.rglob("*.*"))
    milvus_server.stop()
    try:
        for url, data in (("/api/v1/search", photos["coffee"]), ("/api/v1/images", photos["rocket"])):
            started = time.monotonic()
            response = upload(client, url, data)
            assert response.status_code == 503 and time.monotonic() - started < 6
            assert response.json["code"] == 503 and "vector store" in response.json["message"]
            assert response.headers["Retry-After"] == "5"
        assert sorted(images.rglob("*.*")) == files_before  # nothing half-written
        page = client.get("/")
        assert page.status_code == 503 and page.mimetype == "text/html"
        ready = client.get("/api/v1/health/ready")
        assert ready.status_code == 503 and ready.json["model"]["ok"] and not ready.json["store"]["ok"]
        assert client.get("/api/v1/health").status_code == 200
    finally:
        milvus_server.start()
    deadline = time.monotonic() + 90
    while (response := upload(client, "/api/v1/search", photos["coffee"])).status_code != 200:
        assert time.monotonic() < deadline, response.json
        time.sleep(1)
    assert response.json["results"][0]["filename"] == "photo.jpg"
    assert upload(client, "/api/v1/images", photos["rocket"]).status_code == 201
    assert client.get("/api/v1/health/ready").status_code == 200


@pytest.mark.parametrize("backend", ["server"], indirect=True)
def test_a_milvus_server_that_does_not_answer_in_time_gives_503s_not_500s(
    app: Flask, photos: dict[str, bytes], milvus_server: MilvusServer
) -> None:
    """A server too busy to answer within MILVUS_TIMEOUT (here: paused) gets 503 and Retry-After.

    pymilvus passes a call past its deadline on as grpc's own error, which answered 500 before.
    The pause is kept to about two seconds: past ten, this Milvus loses its etcd session and stops.
    """
    from webapp import create_app
    from webapp.runtime import EXTENSION

    impatient = create_app({**app.config, "MILVUS_TIMEOUT": 0.8})
    client = impatient.test_client()
    try:
        assert upload(client, "/api/v1/images", photos["coffee"]).status_code == 201
        images = Path(app.config["DATA_DIR"]) / "images"
        files_before = sorted(images.rglob("*.*"))
        assert milvus_server.proc is not None
        os.killpg(milvus_server.proc.pid, signal.SIGSTOP)
        try:
            answers = [
                upload(client, url, data)
                for url, data in (("/api/v1/search", photos["coffee"]), ("/api/v1/images", photos["rocket"]))
            ]
        finally:
            os.killpg(milvus_server.proc.pid, signal.SIGCONT)
        for response in answers:
            assert response.status_code == 503, response.json
            assert "vector store" in response.json["message"] and "in time" in response.json["message"]
            assert response.headers["Retry-After"] == "5"
        assert sorted(images.rglob("*.*")) == files_before
        deadline = time.monotonic() + 60
        while (response := upload(client, "/api/v1/search", photos["coffee"])).status_code != 200:
            assert time.monotonic() < deadline, response.json
            time.sleep(0.5)
        assert response.json["results"][0]["filename"] == "photo.jpg"
        assert client.get("/api/v1/stats").json["count"] == 1  # the refused upload stored no vector either
    finally:
        impatient.extensions[EXTENSION].close()


def search(url: str, data: bytes) -> dict[str, Any]:
    """Return the best match of a search (an empty dict when nothing is found)."""
    results = requests.post(f"{url}/api/v1/search", files={"image": ("q.jpg", data)}, data={"top_k": 1}).json()
    return dict(results["results"][0]) if results["results"] else {"id": None}


def test_three_workers_share_one_server_consistently(
    tmp_path: Path, model_dir: Path, milvus_server: MilvusServer
) -> None:
    collection = f"test_{uuid.uuid4().hex[:12]}"
    server = Server(
        tmp_path / "data",
        model_dir,
        WEBAPP_WORKERS="3",
        WEBAPP_THREADS="2",
        WEBAPP_MILVUS_URI=milvus_server.uri,
        WEBAPP_COLLECTION=collection,
    )
    try:
        for i, data in enumerate(noise_images(24, seed=3, size=96)):
            # A new connection each time, so Gunicorn spreads the requests over its workers.
            added = requests.post(f"{server.url}/api/v1/images", files={"image": (f"{i}.jpg", data)})
            assert added.status_code == 201, added.text
            # Read-your-writes where it matters, through any worker: the image's page and the
            # duplicate check (Strong reads). A search on another worker sees it a moment later.
            assert requests.get(f"{server.url}/api/v1/images/{added.json()['id']}").status_code == 200
            again = requests.post(f"{server.url}/api/v1/images", files={"image": ("again.jpg", data)})
            assert again.status_code == 200 and again.json()["duplicate"] is True
            deadline = time.monotonic() + 5
            while (found := search(server.url, data))["id"] != added.json()["id"]:
                assert time.monotonic() < deadline, found
                time.sleep(0.05)
        assert requests.get(f"{server.url}/api/v1/stats").json()["count"] == 24
    finally:
        log = server.stop()
    workers = set(re.findall(r"pid=<(\d+)>", log))
    assert len(workers) >= 2, "the requests were not spread over several workers"
    assert "Traceback" not in log


def test_migrate_a_library_from_lite_to_the_server(
    app: Flask, client: FlaskClient, photos: dict[str, bytes], milvus_server: MilvusServer, model_dir: Path
) -> None:
    from webapp import create_app
    from webapp.runtime import EXTENSION

    names = ["coffee", "rocket", "moon", "chelsea", "astronaut"]
    for name in names:
        assert upload(client, "/api/v1/images", photos[name], f"{name}.jpg").status_code == 201
    collection = f"test_{uuid.uuid4().hex[:12]}"
    result = app.test_cli_runner().invoke(args=["migrate", "--to", milvus_server.uri, "--collection", collection])
    assert result.exit_code == 0, result.output
    assert f"5 images in {app.config['MILVUS_URI']}; 5 now in {milvus_server.uri}" in result.output
    app.extensions[EXTENSION].close()

    moved = create_app({**app.config, "MILVUS_URI": milvus_server.uri, "COLLECTION": collection})
    try:
        other = moved.test_client()
        assert other.get("/api/v1/stats").json["count"] == 5
        found = upload(other, "/api/v1/search", photos["chelsea"], top_k="1").json["results"][0]
        assert found["filename"] == "chelsea.jpg" and found["score"] == pytest.approx(1.0, abs=1e-3)
        assert other.get(found["thumbnail_url"]).status_code == 200  # the files came along (same data dir)
        assert [i["filename"] for i in other.get("/api/v1/images").json] == [f"{n}.jpg" for n in names[::-1]]
    finally:
        moved.extensions[EXTENSION].close()
        target = MilvusClient(uri=milvus_server.uri)
        target.drop_collection(collection)
        target.close()
