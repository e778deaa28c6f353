"""What carries units of work: this process's own thread (embedded default) or Celery on Redis."""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable
from typing import Any

from webapp.errors import StoreUnavailable
from webapp.services.job_states import WHOLE_JOBS
from webapp.services.jobs import HEARTBEAT_EVERY, QUEUE_OWNER, JobStore, local_owner
from webapp.services.priority import background_thread

log = logging.getLogger(__name__)
Handler = Callable[[str, str, int, Callable[[], bool]], None]  # (task, job_id, chunk, should_stop)


class Heartbeat:
    """Tell other processes every HEARTBEAT_EVERY seconds that this process's local jobs are alive.

    It runs in a thread of its own, started by a thread of normal priority: a job's threads run
    at idle priority (``priority.background_thread``) and may get no CPU for a while when other
    work keeps every core busy, which is not a dead process. A job whose process died stops
    beating and is then reported interrupted (``JobStore.get``).
    """

    def __init__(self, store: JobStore, owner: str) -> None:
        self._store, self.owner = store, owner
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Beat from now on (at once, then every HEARTBEAT_EVERY seconds), if not already beating."""
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._stop.clear()
                self._thread = threading.Thread(target=self._run, name="job-heartbeat", daemon=True)
                self._thread.start()

    def stop(self) -> None:
        """Stop beating (at once) and wait for the thread."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def _run(self) -> None:
        while True:
            try:
                self._store.heartbeat(self.owner)
            except StoreUnavailable as exc:
                log.warning("job heartbeat failed: %s", exc.message)
            if self._stop.wait(HEARTBEAT_EVERY):
                return


class LocalQueue:
    """One background thread of this process works through the messages in order.

    Milvus Lite allows one process per file, so in the embedded default whatever consumes the
    work must live in the process that holds the file: the Gunicorn worker. Its jobs are
    owned by this process; if it dies they are reported interrupted and can be resumed.
    """

    def __init__(self, handler: Handler, store: JobStore) -> None:
        self.owner = local_owner()
        self._handler = handler
        self._store = store
        self._messages: deque[tuple[str, str, int]] = deque()
        self._wake = threading.Condition()
        self._stopping = False
        self._thread: threading.Thread | None = None
        self._heartbeat = Heartbeat(store, self.owner)

    def send(self, task: str, job_id: str, chunk: int = 0) -> None:
        """Queue a unit of work for the background thread."""
        self._heartbeat.start()  # from the sender's thread: it keeps normal priority
        with self._wake:
            self._messages.append((task, job_id, chunk))
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._loop, name="ingest", daemon=True)
                self._thread.start()
            self._wake.notify()

    def depth(self) -> int:
        """Return how many units of work wait."""
        return len(self._messages)

    def stop(self, timeout: float = 20.0) -> None:
        """Stop after the current batch; the job it was running is left interrupted (resumable)."""
        with self._wake:
            self._stopping = True
            self._wake.notify()
        if self._thread is not None:
            self._thread.join(timeout)
        self._heartbeat.stop()

    def _loop(self) -> None:
        background_thread()  # jobs share the process with searches: searches get the cores first
        while True:
            with self._wake:
                self._wake.wait_for(lambda: self._messages or self._stopping)
                if self._stopping:
                    return
                task, job_id, chunk = self._messages.popleft()
            try:
                self._handler(task, job_id, chunk, lambda: self._stopping)
            except Exception:  # keep the thread alive for the next job whatever happened
                log.exception("%s of job %s crashed", task, job_id)


class CeleryQueue:
    """Celery on Redis: any number of `flask --app wsgi worker` processes, on any machine."""

    owner = QUEUE_OWNER

    def __init__(self, celery: Any, broker_url: str) -> None:
        self.celery = celery
        self.broker_url = broker_url
        self._redis: Any = None

    def send(self, task: str, job_id: str, chunk: int = 0) -> None:
        """Publish a unit of work; 503 when the broker cannot take it."""
        from kombu.exceptions import OperationalError

        args = [job_id] if task in ("prepare", *WHOLE_JOBS) else [job_id, chunk]
        try:
            self.celery.send_task(f"webapp.ingest.{task}", args=args)
        except OperationalError as exc:
            raise StoreUnavailable(f"the task queue (broker) cannot be reached ({exc}); try again") from exc

    def depth(self) -> int | None:
        """Return how many messages wait in the broker's queue (None if it cannot be asked)."""
        import redis

        try:
            if self._redis is None:
                self._redis = redis.Redis.from_url(self.broker_url, socket_timeout=2, socket_connect_timeout=2)
            return int(self._redis.llen(self.celery.conf.task_default_queue))
        except redis.RedisError:
            return None
