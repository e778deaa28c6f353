"""The Celery app of scale-out ingestion (Flask's "Background Tasks with Celery" pattern).

Only built when ``BROKER_URL`` is set. Its tasks are the units of work of ingestion, scans and moves;
the job logic lives there, Celery only carries the messages. Late acknowledgement plus Redis's
visibility timeout redeliver a chunk whose worker died (SIGKILL, a machine gone) to another one.
"""

from __future__ import annotations

from typing import Any

from flask import Flask

QUEUE = "webapp-ingest"


def make_celery(app: Flask) -> Any:
    """Return a Celery app whose tasks run inside ``app``'s context."""
    from celery import Celery, Task

    class FlaskTask(Task):
        def __call__(self, *args: Any, **kwargs: Any) -> Any:
            with app.app_context():
                return self.run(*args, **kwargs)

    visibility = int(app.config["TASK_VISIBILITY_TIMEOUT"])
    celery = Celery(app.name, task_cls=FlaskTask)
    celery.conf.update(
        broker_url=app.config["BROKER_URL"],
        task_default_queue=QUEUE,
        task_ignore_result=True,
        # Acknowledge a chunk when it is done, not when it is taken: a worker that dies mid-chunk
        # leaves it unacknowledged, and Redis hands it to another worker after the timeout.
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,  # a worker holds one chunk at a time, so the others share a job
        broker_connection_retry_on_startup=True,
        broker_connection_timeout=3,
        broker_transport_options={
            "visibility_timeout": visibility,
            "unacked_restore_interval": max(1, min(10, visibility // 3)),
            "unacked_restore_throttle": 1,
            "socket_timeout": 5,
            "socket_connect_timeout": 3,
        },
        # A request that starts a job answers 503 at once when the broker is down, not after minutes.
        task_publish_retry_policy={"max_retries": 2, "interval_start": 0, "interval_step": 0.5},
        worker_hijack_root_logger=False,
    )

    @celery.task(name="webapp.ingest.prepare")
    def prepare(job_id: str) -> None:
        """List a job's items and send its chunks."""
        from webapp.runtime import runtime

        runtime().ingestion.prepare(job_id)

    @celery.task(name="webapp.ingest.chunk")
    def chunk(job_id: str, number: int) -> None:
        """Process one chunk of a job."""
        from webapp.runtime import runtime

        runtime().ingestion.run_chunk(job_id, number)

    @celery.task(name="webapp.ingest.duplicates")
    def duplicates(job_id: str) -> None:
        """Scan the library for near-duplicate groups."""
        from webapp.runtime import runtime

        runtime().duplicates.run(job_id)

    @celery.task(name="webapp.ingest.move")
    def move(job_id: str) -> None:
        """Move an album and its sub-albums."""
        from webapp.runtime import runtime

        runtime().album_moves.run(job_id)

    @celery.task(name="webapp.ingest.delete")
    def delete(job_id: str) -> None:
        """Delete an album, or what a load added, into the trash."""
        from webapp.runtime import runtime

        runtime().deletions.run(job_id)

    @celery.task(name="webapp.ingest.restore")
    def restore(job_id: str) -> None:
        """Restore what a deletion put in the trash."""
        from webapp.runtime import runtime

        runtime().deletions.run_restore(job_id)

    return celery
