"""Gunicorn settings; each can be overridden by a WEBAPP_* environment variable (see README)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

from webapp.config import PREFIX, ROOT, is_server_uri, machine_key_warning, milvus_uri


def _env(name: str, default: str) -> str:
    return os.environ.get(f"{PREFIX}_{name}", default)


bind = _env("BIND", "127.0.0.1:8000")
workers = int(_env("WORKERS", "1"))
# gthread, not gevent: pymilvus's gRPC hangs under gevent. onnxruntime releases the GIL,
# so one worker's threads use every core.
worker_class = "gthread"
threads = int(_env("THREADS", "8"))
timeout = int(_env("TIMEOUT", "60"))
graceful_timeout = 30
accesslog = "-"  # stdout
errorlog = "-"  # stderr; the app's own log lines (webapp/logs.py) go to the same place
# One line per request: client, request line, status, bytes, latency, the worker's pid and the
# request id (X-Request-ID, also on the app's log lines). No headers, cookies or bodies.
access_log_format = '%(h)s "%(r)s" %(s)s %(b)s %(M)sms pid=%(p)s request_id=%({x-request-id}o)s'

wsgi_app = "wsgi:app"

# Metrics of every worker in one GET /metrics: prometheus_client's multiprocess mode reads this
# folder, which must be set before any worker imports prometheus_client (so here, in the master).
# In memory (/dev/shm) where there is one: the workers map these files into memory and grow them
# sparse, so on a full disk a worker that touched a new page of one died of SIGBUS, with every
# request it was serving (found with the data folder on a small tmpfs). Elsewhere, DATA_DIR/metrics.
_shm = Path("/dev/shm")
if _shm.is_dir() and os.access(_shm, os.W_OK):
    _metrics_dir = _shm / f"webapp-metrics-{os.getpid()}"
else:
    _metrics_dir = ROOT / _env("DATA_DIR", "var") / "metrics" / str(os.getpid())
os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR", str(_metrics_dir))
# Gunicorn 27's control socket defaults to one path per user: two servers on one machine (make run
# beside the test suite, or two instances) would fight over it, and nothing here uses it.
control_socket_disable = True


def on_starting(server: Any) -> None:
    """Start with empty metrics; refuse several workers against a Milvus Lite file (one process per file)."""
    metrics_dir = Path(os.environ["PROMETHEUS_MULTIPROC_DIR"])
    _sweep_metrics(metrics_dir)
    shutil.rmtree(metrics_dir, ignore_errors=True)
    metrics_dir.mkdir(parents=True)
    data_dir = ROOT / _env("DATA_DIR", "var")
    uri = milvus_uri(_env("MILVUS_URI", ""), data_dir)
    if server.cfg.workers > 1 and not is_server_uri(uri):
        raise SystemExit(
            f"Refusing to start {server.cfg.workers} workers on the Milvus Lite file {uri}: "
            "Milvus Lite allows one process per file. Run one worker with more threads "
            f"({PREFIX}_WORKERS=1 {PREFIX}_THREADS=16), or point {PREFIX}_MILVUS_URI at a "
            "Milvus server (http://host:19530) to run several workers."
        )


def _sweep_metrics(mine: Path) -> None:
    """Remove the metrics folders that servers killed before they could left beside ``mine``
    (named as it is, with a pid that no longer runs)."""
    if mine != _metrics_dir:
        return  # the operator's own PROMETHEUS_MULTIPROC_DIR: not ours to sweep around
    prefix = mine.name.removesuffix(str(os.getpid()))
    for folder in mine.parent.glob(f"{prefix}*"):
        pid = folder.name.removeprefix(prefix)
        if not pid.isdigit() or folder == mine:
            continue
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            shutil.rmtree(folder, ignore_errors=True)
        except PermissionError:
            pass  # another user's running server


def post_worker_init(worker: Any) -> None:
    """Open the model, its query helpers and the vector store after the fork, before the first
    request; start the housekeeping (services/housekeeping.py)."""
    from webapp.runtime import EXTENSION

    if warning := machine_key_warning(worker.wsgi.config):
        worker.log.warning(warning)
    runtime = worker.wsgi.extensions[EXTENSION]
    try:
        runtime.library.embedder.query_helpers()  # started now, not by the first search
    except Exception as exc:  # the app answers 503 with the reason until it can build
        worker.log.error("could not open the library yet: %s", exc)
    runtime.start_housekeeping()  # the trash's expired images and stale uploads go every hour, unasked


def child_exit(server: Any, worker: Any) -> None:
    """Let the metrics of a worker that exited stop counting as live gauges."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)


def on_exit(server: Any) -> None:
    """Remove this server's metrics folder."""
    shutil.rmtree(os.environ["PROMETHEUS_MULTIPROC_DIR"], ignore_errors=True)


def worker_exit(server: Any, worker: Any) -> None:
    """Flush and close the vector store so a graceful stop loses nothing."""
    from webapp.runtime import EXTENSION

    app = getattr(worker, "wsgi", None)
    if app is not None:
        app.extensions[EXTENSION].close()
