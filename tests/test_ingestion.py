"""The ingestion service's units of work, with the real model, Milvus Lite and SQLite: a chunk
delivered again after its worker died counts every file once, and as what it was."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from tests.conftest import noise_images
from webapp.runtime import runtime
from webapp.services.adding import Entry
from webapp.services.jobs import JobStatus, local_owner


def folder_of(app: Flask, images: list[bytes]) -> Path:
    folder = Path(app.config["IMPORT_ROOTS"][0]) / "redelivered"
    folder.mkdir(parents=True)
    for i, data in enumerate(images):
        (folder / f"{i:02d}.jpg").write_bytes(data)
    return folder


def test_a_chunk_redelivered_after_its_worker_died_counts_each_file_once(app: Flask) -> None:
    images = noise_images(6, seed=31)
    images.append(images[2])  # the same bytes twice in one job: one of them is a duplicate
    folder = folder_of(app, images)
    with app.app_context():
        ingestion = runtime().ingestion
        job = ingestion.store.create("folder", str(folder), local_owner())
        chunks = ingestion._prepare(job.id)
        assert chunks == [0]
        # A worker stored files 0-2 (files, vectors, catalogue), then died before recording them.
        tag = f"job:{job.id[:8]}"
        ingestion.library.add_many([Entry(f"{i:02d}.jpg", images[i]) for i in range(3)], tag)
        ingestion.run_chunk(job.id, 0)
        final = ingestion.get(job.id)
    assert final.status == JobStatus.DONE
    assert (final.total, final.processed, final.added, final.duplicates, final.failed) == (7, 7, 6, 1, 0)


def test_a_chunk_whose_worker_died_before_the_catalogue_is_completed(app: Flask) -> None:
    images = noise_images(4, seed=34)
    folder = folder_of(app, images)
    with app.app_context():
        ingestion = runtime().ingestion
        library = ingestion.library
        job = ingestion.store.create("folder", str(folder), local_owner())
        ingestion._prepare(job.id)
        # A worker stored files and vectors of 0-1, then died before their catalogue rows.
        tag = f"job:{job.id[:8]}"
        records = [r for r, _ in (library.add(images[i], f"{i:02d}.jpg", tag) for i in range(2))]
        library.forget({r.sha256 for r in records})
        ingestion.run_chunk(job.id, 0)
        final = ingestion.get(job.id)
        listed = library.catalog.all()
    assert (final.status, final.added, final.duplicates) == (JobStatus.DONE, 4, 0)
    assert {r.sha256 for r in records} <= listed and len(listed) == 4


def test_a_batch_is_written_before_the_library_is_emptied_or_not_at_all(app: Flask) -> None:
    # Before, a chunk asked whether its job was still wanted, then took the library's lock to write
    # its batch: the library emptied in between (/img/drop) kept the batch (64 images, once in CI).
    images = noise_images(6, seed=35)
    with app.app_context():
        library = runtime().library
        batch = library.prepare([Entry(f"{i}.jpg", data) for i, data in enumerate(images[:4])], "job:test")
        asked, cleared = threading.Event(), []

        def wanted() -> bool:  # still wanted as it is asked; the library is emptied meanwhile
            asked.set()
            time.sleep(0.5)
            return True

        def empty() -> None:
            assert asked.wait(10)
            cleared.append(library.clear())

        emptying = threading.Thread(target=empty)
        emptying.start()
        outcomes = library.commit(batch, wanted)
        emptying.join(30)
        assert outcomes is not None and [o.status for o in outcomes] == ["added"] * 4
        assert cleared == [4] and library.count() == 0  # the emptying waited for the batch
        batch = library.prepare([Entry(f"{i}.jpg", data) for i, data in enumerate(images[4:])], "job:test")
        assert library.commit(batch, lambda: False) is None and library.count() == 0


def test_a_batch_written_as_another_process_empties_the_library_takes_itself_back(
    app: Flask, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Another process's emptying cannot wait for this one's writes: it cancels the job as emptied,
    # deletes what is there, and the batch being written deletes what it added once it sees that.
    folder = folder_of(app, noise_images(4, seed=36))
    with app.app_context():
        ingestion = runtime().ingestion
        library = ingestion.library
        job = ingestion.store.create("folder", str(folder), local_owner())
        ingestion._prepare(job.id)
        real_upsert = library.vectors.upsert

        def emptied_meanwhile(rows: list[Any]) -> None:
            ingestion.store.request_cancel(job.id, emptied=True)  # and the other process empties it
            real_upsert(rows)

        monkeypatch.setattr(library.vectors, "upsert", emptied_meanwhile)
        ingestion.run_chunk(job.id, 0)
        final = ingestion.get(job.id)
        assert final.status == JobStatus.CANCELLED and final.emptied, final
        assert library.count() == 0 and library.catalog.all() == set()
        assert not list(library.images.ids())


def test_a_cancelled_job_takes_no_more_chunks(app: Flask) -> None:
    folder = folder_of(app, noise_images(3, seed=32))
    with app.app_context():
        ingestion = runtime().ingestion
        job = ingestion.store.create("folder", str(folder), local_owner())
        ingestion._prepare(job.id)
        ingestion.cancel(job.id)
        ingestion.run_chunk(job.id, 0)  # a message still in the queue when the job was cancelled
        final = ingestion.get(job.id)
    assert final.status == JobStatus.CANCELLED and final.processed == 0


def test_an_empty_folder_is_done_at_once(app: Flask) -> None:
    folder = folder_of(app, [])
    with app.app_context():
        ingestion = runtime().ingestion
        job = ingestion.store.create("folder", str(folder), local_owner())
        ingestion.prepare(job.id)
        final = ingestion.get(job.id)
    assert final.status == JobStatus.DONE and final.total == 0


class RecordingQueue:
    """A stand-in for the broker that records what is sent (the logic under test is around it)."""

    owner = "queue"

    def __init__(self, depth: int = 0) -> None:
        self.sent: list[tuple[str, str, int]] = []
        self.waiting = depth

    def send(self, task: str, job_id: str, chunk: int = 0) -> None:
        self.sent.append((task, job_id, chunk))

    def depth(self) -> int:
        return self.waiting


def test_work_lost_with_a_worker_is_sent_again_once(app: Flask, monkeypatch: pytest.MonkeyPatch) -> None:
    """kombu's Redis transport pops a message before it records it unacknowledged: a worker killed
    in between loses it. A job that stopped moving while the queue is empty gets its work again."""
    folder = folder_of(app, noise_images(5, seed=33))
    with app.app_context():
        ingestion = runtime().ingestion
        queue = RecordingQueue()
        monkeypatch.setattr(ingestion, "_queue", lambda: queue)
        running = ingestion.store.create("folder", str(folder), "queue")
        ingestion.store.set_items(running.id, [f"{i:02d}.jpg" for i in range(5)], chunk_size=2)
        ingestion.store.move(running.id, JobStatus.RUNNING)
        never_prepared = ingestion.store.create("folder", str(folder), "queue")
        assert ingestion.redeliver_stalled(idle_for=60) == []  # both moved a moment ago
        with runtime().database.connect() as conn:
            conn.exec_driver_sql("UPDATE jobs SET heartbeat = heartbeat - 120")
        queue.waiting = 3
        assert ingestion.redeliver_stalled(idle_for=60) == []  # messages still wait: nothing is lost yet
        queue.waiting = 0
        assert sorted(ingestion.redeliver_stalled(idle_for=60)) == sorted([running.id, never_prepared.id])
        assert sorted(queue.sent) == sorted(
            [
                ("chunk", running.id, 0),
                ("chunk", running.id, 1),
                ("chunk", running.id, 2),
                ("prepare", never_prepared.id, 0),
            ]
        )
        assert ingestion.redeliver_stalled(idle_for=60) == []  # claimed: not sent twice
