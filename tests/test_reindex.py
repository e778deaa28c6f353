"""Re-embedding a library with another model while searches keep answering, then switching over."""

from __future__ import annotations

import getpass
import io
import os
import shutil
import threading
import time
from pathlib import Path
from typing import Any

from flask import Flask
from pymilvus import MilvusClient

from tests.conftest import INT8, MODEL, noise_images, wait_for_job
from webapp import create_app
from webapp.models import file_sha256
from webapp.runtime import EXTENSION, runtime
from webapp.services.binding import ModelBinding
from webapp.services.lite_store import LiteVectorStore
from webapp.services.retiring import Retirement

IMAGES = 40


def make(tmp_path: Path, model_dir: Path, model: str) -> Flask:
    return create_app(
        {
            "TESTING": True,
            "DATA_DIR": str(tmp_path / "data"),
            "MODEL_DIR": str(model_dir),
            "SECRET_KEY": "k",
            "MODEL": model,
            "LIBRARY_FOLLOW_SECONDS": 0.5,
        }
    )


def with_images(tmp_path: Path, model_dir: Path, count: int, seed: int) -> Flask:
    """Return an app on MODEL whose library holds ``count`` uploaded images (0.jpg, 1.jpg, ...)."""
    app = make(tmp_path, model_dir, MODEL)
    client = app.test_client()
    for i, data in enumerate(noise_images(count, seed=seed)):
        assert client.post("/api/v1/images", data={"image": (io.BytesIO(data), f"{i}.jpg")}).status_code == 201
    return app


def search(client: Any, data: bytes) -> Any:
    return client.post("/api/v1/search", data={"image": (io.BytesIO(data), "q.jpg"), "top_k": "1"})


def test_reindex_switches_the_library_while_searches_keep_answering(tmp_path: Path, model_dir: Path) -> None:
    app = make(tmp_path, model_dir, MODEL)
    client = app.test_client()
    images = noise_images(IMAGES + 1, seed=61)
    for i, data in enumerate(images[:IMAGES]):
        assert client.post("/api/v1/images", data={"image": (io.BytesIO(data), f"{i}.jpg")}).status_code == 201

    answers: list[int] = []
    uploaded: list[int] = []
    stop, copying = threading.Event(), threading.Event()

    def keep_searching() -> None:
        searcher = app.test_client()
        while not stop.is_set():
            answers.append(search(searcher, images[len(answers) % IMAGES]).status_code)
            time.sleep(0.1)  # searches back to back would starve the reindex, which runs at idle priority
            if copying.is_set() and not uploaded:  # an upload while the reindex runs is caught up
                late = {"image": (io.BytesIO(images[IMAGES]), "late.jpg")}
                uploaded.append(searcher.post("/api/v1/images", data=late).status_code)

    searching = threading.Thread(target=keep_searching)
    searching.start()
    with app.app_context():
        rt = runtime()
        job = rt.reindex(INT8, progress=lambda _: copying.set())  # after its first batch of 32
    stop.set()
    searching.join()
    assert len(answers) > 5 and set(answers) == {200}, answers  # every search answered, throughout
    assert uploaded == [201]
    assert (job.status, job.kind, job.total, job.processed, job.failed) == ("done", "reindex", IMAGES, IMAGES, 0)

    stats = client.get("/api/v1/stats").json
    assert stats["model"] == INT8 and stats["count"] == IMAGES + 1
    for i in (0, 17, IMAGES):
        found = search(client, images[i]).json["results"][0]
        assert found["filename"] == (f"{i}.jpg" if i < IMAGES else "late.jpg") and found["score"] > 0.99
    with app.app_context():
        active = ModelBinding(runtime().database).active("images")
        uri = runtime().vectors.uri
    assert active is not None and active.model.name == INT8 and active.collection != "images"
    app.extensions[EXTENSION].close()
    assert "images" not in MilvusClient(uri=uri).list_collections()  # the old collection was dropped

    stale = make(tmp_path, model_dir, MODEL)  # restarted with the old setting: refused, told what to set
    refused = stale.test_client().get("/api/v1/stats")
    assert refused.status_code == 503 and f"WEBAPP_MODEL={INT8}" in refused.json["message"]
    stale.extensions[EXTENSION].close()

    back = make(tmp_path, model_dir, INT8)  # and back to FP32 through the API, as a job
    api = back.test_client()
    started = api.post("/api/v1/library/reindex", json={"model": MODEL})
    assert started.status_code == 202 and started.json["kind"] == "reindex"
    assert api.post("/api/v1/library/reindex", json={"model": MODEL}).status_code == 409  # one at a time
    assert wait_for_job(api, started.json["url"])["status"] == "done"
    time.sleep(0.6)
    assert api.get("/api/v1/stats").json["model"] == MODEL
    assert search(api, images[3]).json["results"][0]["filename"] == "3.jpg"
    for _ in range(2):  # refused before it starts, a reindex lets the next one try (refused for its own reason)
        already = api.post("/api/v1/library/reindex", json={"model": MODEL})
        assert already.status_code == 409 and f"embedded with {MODEL} (" in already.json["message"]
    assert api.post("/api/v1/library/reindex", json={"model": "no-such-model"}).status_code == 422
    back.extensions[EXTENSION].close()


def test_a_reindex_in_the_background_switches_over_at_the_priority_of_the_thread_that_started_it(
    tmp_path: Path, model_dir: Path
) -> None:
    """The reindex runs at idle priority; the new store it switches to must not flush at that priority."""
    app = with_images(tmp_path, model_dir, 5, seed=62)
    with app.app_context():
        rt = runtime()
        old = rt.vectors
        job = rt.reindex(INT8, background=True)
        deadline = time.monotonic() + 120
        while rt.jobs.get(job.id).status.value in ("queued", "running") and time.monotonic() < deadline:
            time.sleep(0.05)  # the job only: a request meanwhile could follow the switch itself
        assert rt.jobs.get(job.id).status.value == "done"
        store = rt.vectors
        assert store is not old  # opened by the reindex's switch, not by this thread
        assert isinstance(store, LiteVectorStore)
        flusher = store._schedule._thread
    assert flusher is not None and flusher.native_id is not None
    assert os.sched_getscheduler(flusher.native_id) == os.sched_getscheduler(0) != os.SCHED_IDLE
    app.extensions[EXTENSION].close()


def test_a_process_closed_just_after_the_switch_lets_the_reindex_catch_up_and_drop_the_old_collection(
    tmp_path: Path, model_dir: Path
) -> None:
    """A web process stopped in the seconds after its reindex switched the library (a deploy, a restart)."""
    app = with_images(tmp_path, model_dir, 5, seed=64)
    with app.app_context():
        rt = runtime()
        uri, database = rt.vectors.uri, rt.database
        job = rt.reindex(INT8, background=True)
        deadline = time.monotonic() + 120
        while (active := ModelBinding(database).active("images")) is None or active.collection == "images":
            assert time.monotonic() < deadline
            time.sleep(0.02)
        assert rt.jobs.get(job.id).status.value == "running"  # switched, waiting for the other processes
    app.extensions[EXTENSION].close()

    restarted = make(tmp_path, model_dir, "")
    with restarted.app_context():
        finished = runtime().jobs.get(job.id)
    assert (finished.status.value, finished.processed) == ("done", 5), finished
    assert restarted.test_client().get("/api/v1/stats").json["count"] == 5
    restarted.extensions[EXTENSION].close()
    assert "images" not in MilvusClient(uri=uri).list_collections()  # the old collection was dropped


def test_the_reindex_command_reports_and_says_what_to_set_and_the_next_start_follows(
    tmp_path: Path, model_dir: Path
) -> None:
    app = with_images(tmp_path, model_dir, 6, seed=62)
    runner = app.test_cli_runner()
    done = runner.invoke(args=["reindex", "--model", INT8])
    assert done.exit_code == 0, done.output
    assert f"6 images re-embedded with {INT8}" in done.output
    assert f"WEBAPP_MODEL unset follow the library; where it is set, set WEBAPP_MODEL={INT8}" in done.output
    again = runner.invoke(args=["reindex", "--model", INT8])
    assert again.exit_code == 1 and "embedded with efficientnet-lite0-int8" in again.output
    app.extensions[EXTENSION].close()
    unset = make(tmp_path, model_dir, "")  # the next start, with WEBAPP_MODEL unset: the library's new model
    stats = unset.test_client().get("/api/v1/stats").json
    assert stats["model"] == INT8 and stats["count"] == 6
    (job,) = [j for j in unset.test_client().get("/api/v1/jobs").json if j["kind"] == "reindex"]
    assert job["started_by"] == getpass.getuser()  # the login that ran it
    (logged,) = [e for e in unset.test_client().get("/api/v1/activity").json if e["via"] == "command"]
    assert logged["path"] == "flask reindex" and logged["note"].startswith(f"job {job['id']}: 6 images re-embedded")
    unset.extensions[EXTENSION].close()


def test_a_library_whose_model_file_was_rebuilt_is_refused_and_reindexed_onto_the_new_file(
    tmp_path: Path, model_dir: Path
) -> None:
    """A rebuilt file (another onnxruntime, another recipe) may embed differently: the library moves to it."""
    import onnx

    before, after = tmp_path / "before", tmp_path / "after"
    before.mkdir()
    after.mkdir()
    shutil.copy(model_dir / f"{MODEL}.onnx", before)
    rebuilt = onnx.load(str(model_dir / f"{MODEL}.onnx"))
    onnx.helper.set_model_props(rebuilt, {"rebuilt": "yes"})  # the same weights, another file
    onnx.save(rebuilt, str(after / f"{MODEL}.onnx"))

    images = noise_images(6, seed=63)
    app = make(tmp_path, before, MODEL)
    for i, data in enumerate(images):
        added = app.test_client().post("/api/v1/images", data={"image": (io.BytesIO(data), f"{i}.jpg")})
        assert added.status_code == 201
    app.extensions[EXTENSION].close()

    refused = make(tmp_path, after, "")
    answer = refused.test_client().get("/api/v1/stats")
    assert answer.status_code == 503
    assert "it was rebuilt or changed since" in answer.json["message"]
    assert f"flask --app wsgi reindex --model {MODEL}" in answer.json["message"]
    done = refused.test_cli_runner().invoke(args=["reindex", "--model", MODEL])
    assert done.exit_code == 0, done.output
    assert f"6 images re-embedded with {MODEL}" in done.output
    refused.extensions[EXTENSION].close()

    moved = make(tmp_path, after, "")
    client = moved.test_client()
    assert client.get("/api/v1/stats").json["count"] == 6
    found = search(client, images[4]).json["results"][0]
    assert found["filename"] == "4.jpg" and found["score"] > 0.99
    with moved.app_context():
        assert ModelBinding(runtime().database).active("images").model.sha256 == file_sha256(after / f"{MODEL}.onnx")
    moved.extensions[EXTENSION].close()


class _Service:
    def __init__(self) -> None:
        self.closed = threading.Event()

    def close(self) -> None:
        self.closed.set()


def test_services_a_switch_retired_are_closed_later_or_all_at_once_on_exit() -> None:
    soon, later = Retirement(after=0.05), Retirement(after=3600)
    first, second, third = _Service(), _Service(), _Service()
    soon.retire(first, None)
    later.retire(second, third)
    assert first.closed.wait(5) and not second.closed.is_set()  # searches under way had their time
    later.close_all()  # the process exits: nothing waits an hour
    assert second.closed.is_set() and third.closed.is_set()
