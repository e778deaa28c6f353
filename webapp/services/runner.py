"""The job runner: one background thread per process that works through queued jobs."""

from __future__ import annotations

import logging
import shutil
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from webapp.errors import WebappError
from webapp.services.jobs import HEARTBEAT_EVERY, Job, JobStore
from webapp.services.library import Library, Outcome
from webapp.services.sources import Source, open_source

Progress = Callable[[Job], None]


log = logging.getLogger(__name__)
FLUSH_EVERY = 10.0  # seconds between flushes during a job: Lite searches unflushed rows by brute force
CHUNK = 64  # files read, embedded and written per step (the model sees EMBED_BATCH_SIZE at a time)


class JobRunner:
    """Runs this process's jobs one at a time in a background thread (writes stay serialised)."""

    def __init__(self, store: JobStore, library: Library, settings: dict[str, Any]) -> None:
        self.store = store
        self.library = library
        self.settings = settings
        self._queue: list[str] = []
        self._wake = threading.Condition()
        self._stopping = False
        self._thread: threading.Thread | None = None

    def submit(self, job_id: str) -> None:
        """Queue a job to run in the background."""
        with self._wake:
            self._queue.append(job_id)
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._loop, name="ingest", daemon=True)
                self._thread.start()
            self._wake.notify()

    def stop(self, timeout: float = 20.0) -> None:
        """Stop after the current batch; the job it was running is left interrupted (resumable)."""
        with self._wake:
            self._stopping = True
            self._wake.notify()
        if self._thread is not None:
            self._thread.join(timeout)

    def _loop(self) -> None:
        last_beat = 0.0
        while True:
            with self._wake:
                while not self._queue and not self._stopping:
                    self._wake.wait(HEARTBEAT_EVERY)
                    self.store.heartbeat()
                if self._stopping:
                    return
                job_id = self._queue.pop(0)
            if time.monotonic() - last_beat > HEARTBEAT_EVERY:
                self.store.heartbeat()
                last_beat = time.monotonic()
            try:
                self.run(job_id)
            except Exception:  # keep the runner alive for the next job whatever happened
                log.exception("job %s crashed the runner", job_id)

    def run(self, job_id: str, progress: Progress | None = None) -> Job:
        """Run a job to its end in the calling thread; return its final state."""
        store = self.store
        if store.cancel_requested(job_id):
            store.finish(job_id, "cancelled")
            return store.get(job_id)
        store.start(job_id)
        job = store.get(job_id)
        try:
            with open_source(job.kind, job.source, store.spool_dir(job_id), self.settings) as source:
                if store.has_items(job_id):
                    self._reconcile(job_id)
                else:
                    store.set_items(job_id, source.names())
                status = self._process(job_id, source, progress)
        except WebappError as exc:
            store.finish(job_id, "failed", exc.message)
        except Exception as exc:  # a job must never take the worker down with it
            store.finish(job_id, "failed", f"{type(exc).__name__}: {exc}")
        else:
            store.finish(job_id, status)
            if status == "done":
                shutil.rmtree(store.spool_dir(job_id), ignore_errors=True)
        finally:
            self._checkpoint(job_id)
        return store.get(job_id)

    def _checkpoint(self, job_id: str) -> None:
        """Flush, so a crash keeps what was indexed and Milvus Lite indexes it."""
        try:
            self.library.vectors.flush()
        except WebappError as exc:
            log.warning("job %s: could not flush the vector store: %s", job_id, exc.message)

    def _reconcile(self, job_id: str) -> None:
        """Before resuming, reopen items whose vectors a crash lost (Milvus Lite's unflushed writes)."""
        done = self.store.indexed_items(job_id)
        lost: list[int] = []
        for start in range(0, len(done), 1000):
            chunk = done[start : start + 1000]
            present = self.library.vectors.get({sha for _, sha in chunk})
            lost += [seq for seq, sha in chunk if sha not in present]
        if lost:
            reopened = set(lost)
            missing = {sha for seq, sha in done if seq in reopened}
            self.library.catalog.remove(missing)
            self.store.reopen_items(job_id, lost)

    def _process(self, job_id: str, source: Source, progress: Progress | None) -> str:
        """Embed batch N+1 while batch N is written: the model and the disk work overlap."""
        size = CHUNK
        flushed_at = time.monotonic()
        in_flight: set[str] = set()
        writing: tuple[list[tuple[int, str]], set[str], Future[list[Outcome]]] | None = None
        status = "done"
        with ThreadPoolExecutor(1, thread_name_prefix="ingest-write") as writer:
            last_seq = -1  # items of the batch being written are still pending in the store
            while True:
                if self._stopping:
                    status = "interrupted"
                elif self.store.cancel_requested(job_id):
                    status = "cancelled"
                items = [] if status != "done" else self.store.pending(job_id, size, last_seq)
                prepared = None
                if items:
                    batch = self.library.prepare(
                        [source.read(seq, name) for seq, name in items], f"job:{job_id[:8]}", in_flight
                    )
                    in_flight |= batch.new_shas
                    prepared = (items, batch.new_shas, writer.submit(self.library.commit, batch))
                    last_seq = items[-1][0]
                if writing is not None:
                    done_items, shas, future = writing
                    self._record(job_id, done_items, future.result())
                    in_flight -= shas
                    if progress is not None:
                        progress(self.store.get(job_id))
                writing = prepared
                if writing is None:
                    break
                if time.monotonic() - flushed_at > FLUSH_EVERY:
                    self.library.vectors.flush()
                    flushed_at = time.monotonic()
        return status

    def _record(self, job_id: str, items: list[tuple[int, str]], outcomes: list[Outcome]) -> None:
        self.store.record(
            job_id,
            [
                (seq, o.status, o.reason, o.record.sha256 if o.record else None)
                for (seq, _), o in zip(items, outcomes, strict=True)
            ],
        )
