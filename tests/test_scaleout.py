"""One library on two "machines": two Gunicorn instances with their own DATA_DIR and one shared
STORAGE_DIR, one PostgreSQL, one Redis, the real Milvus server, and two Celery workers.

A job uploaded to the first machine is processed by the workers, followed on the second, survives
one worker's SIGKILL in the middle of a chunk, and ends done with exact counts; every image is
then searchable from both machines and `flask check` finds the library consistent.
"""

from __future__ import annotations

import io
import re
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from flask import Flask
from pymilvus import MilvusClient

from tests.conftest import INT8, MODEL, noise_images
from tests.milvus_server import MilvusServer
from tests.servers import FLASK, PostgresServer, RedisServer, Worker, free_port
from tests.test_gunicorn import Server, environment
from webapp import create_app
from webapp.config import ROOT
from webapp.models import DEFAULT
from webapp.runtime import EXTENSION
from webapp.services.catalog import Catalog

IMAGES = 400
CHUNK = 40


@pytest.fixture(scope="module")
def cluster(
    tmp_path_factory: pytest.TempPathFactory,
    model_dir: Path,
    milvus_server: MilvusServer,
    postgres: PostgresServer,
    redis_server: RedisServer,
) -> Iterator[dict[str, Any]]:
    """Start two web machines and two workers sharing one library (once for this module's tests)."""
    tmp_path = tmp_path_factory.mktemp("cluster")
    collection = f"scale_{uuid.uuid4().hex[:10]}"
    shared = {
        "WEBAPP_MILVUS_URI": milvus_server.uri,
        "WEBAPP_COLLECTION": collection,
        "WEBAPP_DATABASE_URL": postgres.create_database(collection),
        "WEBAPP_BROKER_URL": redis_server.url.rsplit("/", 1)[0] + "/1",
        "WEBAPP_STORAGE_DIR": str(tmp_path / "shared"),
        "WEBAPP_JOB_CHUNK_SIZE": str(CHUNK),
        "WEBAPP_TASK_VISIBILITY_TIMEOUT": "8",
        # Every process looks for a reindex's switch each second, not 5: a reindex waits twice that
        # for all of them to follow before it drops the old collection.
        "WEBAPP_LIBRARY_FOLLOW_SECONDS": "1",
        "WEBAPP_SECRET_KEY": "scale-out-test",
    }
    web: list[Server] = []
    workers: list[Worker] = []
    try:
        # The first machine runs two Gunicorn workers: /metrics must add them up.
        web.append(Server(tmp_path / "web1", model_dir, **shared, WEBAPP_WORKERS="2"))
        # One worker on a server would start three query helpers (about 3 s of a core, and each follows a
        # reindex with a model of its own): test_gunicorn.py and test_query_helpers.py test them.
        web.append(Server(tmp_path / "web2", model_dir, **shared, WEBAPP_SEARCH_PROCESSES="0"))
        for n in (1, 2):
            env = environment(tmp_path / f"worker{n}", model_dir, **shared, WEBAPP_WORKER_METRICS_PORT=str(free_port()))
            (tmp_path / f"worker{n}").mkdir()
            workers.append(Worker(f"w{n}", env, tmp_path / f"worker{n}" / "worker.log"))
            workers[-1].metrics_url = f"http://127.0.0.1:{env['WEBAPP_WORKER_METRICS_PORT']}/metrics"
        for worker in workers:
            worker.wait_ready()
        yield {"web": web, "workers": workers, "env": shared, "tmp": tmp_path, "model_dir": model_dir}
    finally:
        for worker in workers:
            worker.stop()
        for server in web:
            server.stop()
        client = MilvusClient(uri=milvus_server.uri, timeout=30)
        for name in client.list_collections():  # a reindex made one of its own
            if name.startswith(collection):
                client.drop_collection(name)
        client.close()


def follow(url: str, timeout: float = 240) -> dict[str, Any]:
    """Poll a job until it ends; return its final state."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = requests.get(url, timeout=10).json()
        if job["status"] not in ("queued", "running"):
            return dict(job)
        time.sleep(0.2)
    raise AssertionError(f"job {url} did not end: {job}")


def test_two_machines_share_one_library_and_lose_nothing_when_a_worker_dies(cluster: dict[str, Any]) -> None:
    first, second = cluster["web"]
    images = noise_images(IMAGES, seed=11)
    files = [("files", (f"{i:04d}.jpg", io.BytesIO(data))) for i, data in enumerate(images)]
    response = requests.post(f"{first.url}/api/v1/jobs", files=files, timeout=120)
    assert response.status_code == 202, response.text
    job_url = second.url + response.json()["url"]

    # Followed on the second machine; one worker dies in the middle of a chunk.
    deadline = time.monotonic() + 120
    while (job := requests.get(job_url, timeout=10).json())["processed"] < CHUNK // 2:
        assert time.monotonic() < deadline and job["status"] in ("queued", "running"), job
        time.sleep(0.05)
    victim, survivor = cluster["workers"]
    victim.kill()
    assert job["processed"] < IMAGES

    final = follow(job_url)
    assert final["status"] == "done", final
    assert (final["total"], final["processed"], final["added"], final["duplicates"], final["failed"]) == (
        IMAGES,
        IMAGES,
        IMAGES,
        0,
        0,
    )
    # The chunk the victim held when it died went to the survivor (Redis's visibility timeout).
    held = re.findall(r"Task (webapp\.ingest\.chunk\[[0-9a-f-]+\]) received", victim.log.read_text())
    finished = re.findall(r"Task (webapp\.ingest\.chunk\[[0-9a-f-]+\]) succeeded", victim.log.read_text())
    lost = set(held) - set(finished)
    survivor_log = survivor.log.read_text()
    redelivered = bool(lost) and all(f"{task} received" in survivor_log for task in lost)
    # Or the victim died between popping a message and recording it: the survivor's sweep resent it.
    assert redelivered or "sending its work again" in survivor_log, (lost, survivor_log[-2000:])

    for server in (first, second):
        assert requests.get(f"{server.url}/api/v1/stats", timeout=10).json()["count"] == IMAGES
        for i in (0, 137, IMAGES - 1):
            found = requests.post(
                f"{server.url}/api/v1/search", files={"image": ("q.jpg", images[i])}, data={"top_k": "1"}, timeout=30
            ).json()
            assert found["results"][0]["filename"] == f"{i:04d}.jpg" and found["results"][0]["score"] > 0.99

    env = environment(cluster["tmp"] / "checker", cluster["model_dir"], **cluster["env"])
    check = subprocess.run([FLASK, "--app", "wsgi", "check"], cwd=ROOT, env=env, capture_output=True, text=True)
    assert check.returncode == 0 and "consistent" in check.stdout, check.stdout + check.stderr
    uploads = cluster["tmp"] / "shared" / "uploads"
    deadline = time.monotonic() + 10  # the job's uploads are removed as it ends
    while any(uploads.iterdir()):
        assert time.monotonic() < deadline, list(uploads.iterdir())
        time.sleep(0.1)

    for _ in range(6):  # spread over both of the first machine's Gunicorn workers
        requests.get(f"{first.url}/api/v1/jobs", timeout=10)
    metrics = requests.get(f"{first.url}/metrics", timeout=10).text
    assert 'webapp_jobs{status="done"} 1.0' in metrics
    assert "webapp_queue_depth 0.0" in metrics
    assert 'webapp_http_requests_total{endpoint="jobs.Jobs",method="POST",status="202"} 1.0' in metrics
    assert 'webapp_http_requests_total{endpoint="jobs.Jobs",method="GET",status="200"} 6.0' in metrics
    assert 'webapp_http_requests_total{endpoint="jobs.JobById",method="GET",status="200"}' not in metrics  # polled on 2
    # An ingestion worker serves its own counters (the survivor processed files of the job).
    text = requests.get(survivor.metrics_url, timeout=10).text
    added = re.search(r'^webapp_images_ingested_total\{outcome="added"\} (\S+)$', text, re.MULTILINE)
    assert added and float(added.group(1)) > 0


def test_cancel_and_resume_from_the_other_machine(cluster: dict[str, Any]) -> None:
    first, second = cluster["web"]
    images = noise_images(300, seed=12)
    files = [("files", (f"{i:04d}.jpg", io.BytesIO(data))) for i, data in enumerate(images)]
    job = requests.post(f"{first.url}/api/v1/jobs", files=files, timeout=120).json()
    cancelled = requests.delete(second.url + job["url"], timeout=10).json()
    assert cancelled["status"] == "cancelled"
    time.sleep(2)  # chunks in flight stop after their current batch
    stopped = requests.get(first.url + job["url"], timeout=10).json()
    assert stopped["status"] == "cancelled" and stopped["processed"] < 300

    resumed = requests.post(f"{second.url}{job['url']}/resume", timeout=10)
    # A worker may take the job between the resume and its answer: queued or running already.
    assert resumed.status_code == 202 and resumed.json()["status"] in ("queued", "running")
    final = follow(first.url + job["url"])
    assert final["status"] == "done" and final["processed"] == final["added"] == 300


def search(url: str, data: bytes) -> dict[str, Any]:
    """Return the best match of an image on a machine."""
    answer = requests.post(f"{url}/api/v1/search", files={"image": ("q.jpg", data)}, data={"top_k": "1"}, timeout=30)
    assert answer.status_code == 200, answer.text
    return dict(answer.json()["results"][0])


def test_a_reindex_started_on_one_machine_switches_every_machine_and_worker(cluster: dict[str, Any]) -> None:
    first, second = cluster["web"]
    images = noise_images(21, seed=13)
    files = [("files", (f"reindex-{i}.jpg", io.BytesIO(data))) for i, data in enumerate(images[:20])]
    loaded = requests.post(f"{first.url}/api/v1/jobs", files=files, timeout=60).json()
    assert follow(first.url + loaded["url"])["status"] == "done"
    count = requests.get(f"{second.url}/api/v1/stats", timeout=10).json()["count"]

    target = MODEL if DEFAULT != MODEL else INT8  # the Lite0 variant the library is not embedded with
    started = requests.post(f"{first.url}/api/v1/library/reindex", json={"model": target}, timeout=30)
    assert started.status_code == 202, started.text
    answers: list[dict[str, Any]] = []
    job_url = second.url + started.json()["url"]  # followed on the other machine
    while (job := requests.get(job_url, timeout=10).json())["status"] in ("queued", "running"):
        answers.append(search(second.url, images[len(answers) % 20]))  # searches keep answering meanwhile
        # A search every 0.2 s, not back to back: the reindex runs at idle priority, and searches
        # without a pause on this 2-core machine starved it (36 s instead of 5 for this library).
        time.sleep(0.2)
    assert job["status"] == "done" and job["processed"] == count, job
    assert answers and all(a["score"] > 0.99 for a in answers)

    deadline = time.monotonic() + 30  # every machine looks at the database every few seconds
    while {requests.get(f"{m.url}/api/v1/stats", timeout=10).json()["model"] for m in (first, second)} != {target}:
        assert time.monotonic() < deadline
        time.sleep(0.5)
    for machine in (first, second):
        found = search(machine.url, images[7])
        assert found["filename"] == "reindex-7.jpg" and found["score"] > 0.99

    # A job after the switch is embedded by the surviving worker with the library's new model.
    late = requests.post(
        f"{second.url}/api/v1/jobs", files=[("files", ("reindex-late.jpg", images[20]))], timeout=30
    ).json()
    assert follow(first.url + late["url"])["added"] == 1
    # Session searches see another process's writes a moment later (README, Consistency): wait for it.
    deadline = time.monotonic() + 10
    while (found := search(first.url, images[20]))["filename"] != "reindex-late.jpg" and time.monotonic() < deadline:
        time.sleep(0.2)
    assert found["filename"] == "reindex-late.jpg" and found["score"] > 0.99


def test_an_album_moved_from_one_machine_is_moved_by_the_workers_for_every_machine(
    cluster: dict[str, Any], photos: dict[str, bytes]
) -> None:
    first, second = cluster["web"]
    images = noise_images(3, seed=14)
    for i, (data, album) in enumerate(zip(images, ["trip", "trip/day1", "trip/day1"], strict=True)):
        added = requests.post(
            f"{first.url}/api/v1/images", files={"image": (f"trip-{i}.jpg", data)}, data={"album": album}, timeout=30
        )
        assert added.status_code == 201, added.text
    started = requests.post(
        f"{second.url}/api/v1/images/albums/move", json={"album": "trip", "to": "travel"}, timeout=30
    )
    assert started.status_code == 202, started.text
    assert follow(first.url + started.json()["url"])["status"] == "done"
    # Session searches see another process's writes a moment later (README, Consistency): wait for them.
    for machine in (first, second):
        deadline = time.monotonic() + 10
        while (seen := moved(machine.url, images[1])) != EXPECTED and time.monotonic() < deadline:
            time.sleep(0.5)
        assert seen == EXPECTED
    # A deletion travels the same way (webapp.ingest.delete).
    deleted = requests.post(f"{first.url}/api/v1/images/albums/delete", json={"album": "travel/day1"}, timeout=30)
    assert deleted.status_code == 202, deleted.text
    assert follow(second.url + deleted.json()["url"])["status"] == "done"
    left = requests.get(f"{second.url}/api/v1/images", params={"album": "travel"}, timeout=10).json()
    assert [image["filename"] for image in left] == ["trip-0.jpg"]
    undone = requests.post(f"{second.url}/api/v1/jobs/{deleted.json()['id']}/undo", timeout=30)  # a restore
    assert undone.status_code == 202, undone.text
    assert follow(first.url + undone.json()["url"])["status"] == "done"
    back = requests.get(f"{first.url}/api/v1/images", params={"album": "travel/day1"}, timeout=10).json()
    assert sorted(image["filename"] for image in back) == ["trip-1.jpg", "trip-2.jpg"]
    # A check travels the same way (its files in the shared uploads), and adds nothing; what it
    # found new it keeps there, for any machine to add.
    files = [("files", ("same.jpg", images[0])), ("files", ("other.jpg", photos["rocket"]))]
    held = requests.get(f"{second.url}/api/v1/stats", timeout=10).json()["count"]  # the module's tests share it
    check = requests.post(f"{second.url}/api/v1/jobs", files=files, data={"check": "true"}, timeout=30)
    assert check.status_code == 202, check.text
    assert follow(first.url + check.json()["url"])["status"] == "done"
    found = requests.get(f"{first.url}/api/v1/jobs/{check.json()['id']}/matches", timeout=10).json()
    same = next(f for f in found if f["name"] == "same.jpg")
    assert same["verdict"] == "in_library" and same["matches"][0]["image"]["filename"] == "trip-0.jpg"
    assert requests.get(f"{second.url}/api/v1/stats", timeout=10).json()["count"] == held
    assert next(f for f in found if f["name"] == "other.jpg")["verdict"] == "new"
    added = requests.post(f"{first.url}/api/v1/jobs/{check.json()['id']}/add-new", json={"album": "new"}, timeout=30)
    assert added.status_code == 202, added.text
    assert follow(second.url + added.json()["url"])["added"] == 1
    listed = requests.get(f"{second.url}/api/v1/images", params={"album": "new"}, timeout=10).json()
    assert [image["filename"] for image in listed] == ["other.jpg"]


EXPECTED = ({"travel": 3, "travel/day1": 2}, {"trip-1.jpg", "trip-2.jpg"})


def moved(url: str, query: bytes) -> tuple[dict[str, int], set[str]]:
    """Return a machine's albums with their counts, and what a search narrowed to travel/day1 finds."""
    listed = requests.get(f"{url}/api/v1/images/albums", timeout=10).json()
    found = requests.post(
        f"{url}/api/v1/search",
        files={"image": ("q.jpg", query)},
        data={"top_k": "5", "album": "travel/day1"},
        timeout=30,
    ).json()["results"]
    return {a["name"]: a["count"] for a in listed}, {hit["filename"] for hit in found}


@pytest.fixture()
def broker_app(
    tmp_path: Path, model_dir: Path, milvus_server: MilvusServer, postgres: PostgresServer
) -> Iterator[tuple[Flask, RedisServer]]:
    """An app whose broker is a Redis of its own (so the test may stop it)."""
    redis = RedisServer(tmp_path / "redis")
    redis.start()
    collection = f"broker_{uuid.uuid4().hex[:10]}"
    settings = {"TESTING": True, "DATA_DIR": str(tmp_path / "data"), "MODEL_DIR": str(model_dir)}
    settings |= {"MILVUS_URI": milvus_server.uri, "COLLECTION": collection, "BROKER_URL": redis.url}
    settings |= {"DATABASE_URL": postgres.create_database(collection)}
    app = create_app(settings)
    try:
        yield app, redis
    finally:
        app.extensions[EXTENSION].close()
        redis.stop()
        client = MilvusClient(uri=milvus_server.uri, timeout=30)
        client.drop_collection(collection)
        client.close()


def test_a_stopped_broker_is_503_and_recovers(broker_app: tuple[Flask, RedisServer]) -> None:
    app, redis = broker_app
    client = app.test_client()
    files = {"files": [(io.BytesIO(noise_images(1)[0]), "a.jpg")]}
    assert client.post("/api/v1/jobs", data=files, content_type="multipart/form-data").status_code == 202
    redis.stop()
    files = {"files": [(io.BytesIO(noise_images(1)[0]), "a.jpg")]}
    started = time.monotonic()
    refused = client.post("/api/v1/jobs", data=files, content_type="multipart/form-data")
    assert refused.status_code == 503 and "task queue" in refused.json["message"]
    assert time.monotonic() - started < 15
    ready = client.get("/api/v1/health/ready")
    assert ready.status_code == 503 and not ready.json["broker"]["ok"] and ready.json["database"]["ok"]
    failed = client.get("/api/v1/jobs").json[0]
    assert failed["status"] == "failed" and "task queue" in failed["error"]  # resumable later
    redis.start()
    assert client.get("/api/v1/health/ready").json["broker"]["ok"]
    resumed = client.post(f"/api/v1/jobs/{failed['id']}/resume")
    assert resumed.status_code == 202 and resumed.json["status"] == "queued"


def test_a_worker_refuses_a_milvus_lite_file(tmp_path: Path, model_dir: Path) -> None:
    env = environment(tmp_path, model_dir, WEBAPP_BROKER_URL="redis://127.0.0.1:1/0")
    done = subprocess.run([FLASK, "--app", "wsgi", "worker"], cwd=ROOT, env=env, capture_output=True, text=True)
    assert done.returncode != 0 and "Milvus server" in done.stderr


def test_a_worker_refuses_a_storage_that_holds_none_of_the_librarys_files(tmp_path: Path, model_dir: Path) -> None:
    settings = {"DATA_DIR": str(tmp_path), "MODEL_DIR": str(model_dir), "BROKER_URL": "redis://127.0.0.1:1/0"}
    app = create_app({**settings, "MILVUS_URI": "http://127.0.0.1:1", "STORAGE_DIR": str(tmp_path / "unmounted")})
    a_while_ago = int((time.time() - 600) * 1000)
    Catalog(app.extensions[EXTENSION].database).add([("ab" * 32, a_while_ago, "", None)])  # its file is on the share
    refused = app.test_cli_runner().invoke(args=["worker"])
    assert refused.exit_code != 0 and "is the shared storage (STORAGE_DIR) mounted?" in refused.output, refused.output


def test_servers_are_real(postgres: PostgresServer, redis_server: RedisServer) -> None:
    """The fixtures run the real servers (not mocks): ask them their versions."""
    import psycopg
    import redis

    with psycopg.connect(postgres.url("postgres").replace("postgresql+psycopg", "postgresql")) as conn:
        assert "PostgreSQL" in str(conn.execute("SELECT version()").fetchone())
    assert redis.Redis.from_url(redis_server.url).info()["redis_version"]
