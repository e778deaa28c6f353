"""Scale-out commands: ``flask --app wsgi worker`` (an ingestion worker) and ``flask --app wsgi db``."""

from __future__ import annotations

import logging
import threading
import time

import click
from flask import Flask
from flask.cli import with_appcontext

from webapp.config import PREFIX, is_server_uri
from webapp.errors import WebappError
from webapp.runtime import runtime
from webapp.services.ingestion import Ingestion

log = logging.getLogger(__name__)


@click.command(
    "worker",
    context_settings={"ignore_unknown_options": True, "allow_extra_args": True},
    add_help_option=False,
)
@click.argument("celery_args", nargs=-1, type=click.UNPROCESSED)
@with_appcontext
def worker_command(celery_args: tuple[str, ...]) -> None:
    """Take ingestion work from the broker (Celery's own options may follow, e.g. --concurrency 2)."""
    rt = runtime()
    settings = rt.settings
    if not settings["BROKER_URL"]:
        raise click.ClickException(
            f"set {PREFIX}_BROKER_URL (redis://host:6379/0): without a broker, jobs run inside the web process"
        )
    if not is_server_uri(settings["MILVUS_URI"]):  # config.load refuses this too; say it plainly here
        raise click.ClickException(f"a worker needs a Milvus server: set {PREFIX}_MILVUS_URI=http://host:19530")
    try:
        rt.database.upgrade()
        # A share that is not mounted leaves an empty folder: the worker would store originals
        # there that no web machine can show, hidden again once the share is mounted over them.
        click.echo(f"image storage: {rt.storage_state()}")
    except WebappError as exc:
        raise click.ClickException(exc.message) from exc
    _sweep_stalled_jobs(rt.ingestion, float(settings["TASK_VISIBILITY_TIMEOUT"]))
    rt.start_housekeeping()  # expired images leave the trash from here too (and from each web worker)
    port = int(settings["WORKER_METRICS_PORT"])
    if port:
        from prometheus_client import start_http_server

        start_http_server(port)
    # Two chunks at a time in threads of one process: one chunk's model calls overlap the other's
    # file and Milvus writes (bench/scaleout.py, one run each: 0.69 of the embedded rate with one
    # chunk at a time, 0.85 with two). Celery's own options, passed after, override these.
    argv = [
        "worker",
        "--pool",
        "threads",
        "--concurrency",
        "2",
        "--loglevel",
        "INFO",
        "--without-gossip",
        "--without-mingle",
    ]
    logging.getLogger("towhee").setLevel(logging.WARNING)  # a line per pipeline node per batch otherwise
    rt.celery.worker_main([*argv, *celery_args])


def _sweep_stalled_jobs(ingestion: Ingestion, visibility_timeout: float) -> None:
    """Resend, from a background thread, the work of jobs whose messages were lost with a worker."""
    idle_for = 2 * visibility_timeout  # a redelivery (after the timeout) would have moved them by then
    every = max(1.0, visibility_timeout / 2)

    def loop() -> None:
        while True:
            time.sleep(every)
            try:
                ingestion.redeliver_stalled(idle_for)
                ingestion.drop_stale_uploads()
            except WebappError as exc:  # the database or broker is down: try again next round
                log.warning("could not look for stalled jobs: %s", exc.message)

    threading.Thread(target=loop, name="stalled-jobs", daemon=True).start()


@click.group("db")
def db_group() -> None:
    """Database schema (Alembic migrations; also applied when the app first uses the database)."""


@db_group.command("upgrade")
@with_appcontext
def upgrade_command() -> None:
    """Apply every pending migration to the configured database."""
    from webapp.migrations import current

    db = runtime().database
    try:
        db.upgrade()
        with db.connect() as conn:
            revision = current(conn)
    except WebappError as exc:
        raise click.ClickException(exc.message) from exc
    click.echo(f"{db.engine.url.render_as_string(hide_password=True)} is at revision {revision}")


@db_group.command("copy")
@click.option("--to", "url", required=True, help="The empty database to copy into (an SQLAlchemy URL).")
@with_appcontext
def copy_command(url: str) -> None:
    """Copy every table of the configured database into another, empty one (SQLite to PostgreSQL, or back).

    The copy is one moment of the database (a backup of PostgreSQL may be taken while the app
    runs). To move a library, stop the app and its workers first, then set WEBAPP_DATABASE_URL to
    the copy.
    """
    from webapp.services.database import Database
    from webapp.services.db_copy import copy_database

    source = runtime().database
    target = Database(url)
    try:
        copied = copy_database(source, target, click.echo)
    except WebappError as exc:
        raise click.ClickException(exc.message) from exc
    finally:
        target.dispose()
    shown = target.engine.url.render_as_string(hide_password=True)
    click.echo(f"copied {sum(copied.values())} rows into {shown}")
    # The copy may be a backup as well as a move: say what each takes, not "start the app with it".
    click.echo(
        "To move the library to it: stop the app and its workers, then set WEBAPP_DATABASE_URL to it. "
        "As a backup: keep it with the Milvus data and STORAGE_DIR of the same moment (README, Backup and restore)."
    )


def init_app(app: Flask) -> None:
    """Register the commands."""
    app.cli.add_command(worker_command)
    app.cli.add_command(db_group)
