"""A query helper's program (services/query_helpers.py starts it): the model, then one query after another.

``python -m webapp.services.query_helper_process FD MODEL_DIR MODEL MAX_PIXELS``, where FD is its end
of a socket pair whose other end the web process holds.

Its module imports little on purpose: a helper imports it first, before anything of the app, so
that ``serve`` can set the process up before the embedder's modules load.
"""

from __future__ import annotations

import os
import signal
import sys
from multiprocessing.connection import Connection

from webapp.errors import WebappError
from webapp.services.imaging import QueryImage

PROGRAM = "webapp.services.query_helper_process"  # python -m PROGRAM: this module


def serve(conn: Connection, model_dir: str, model: str, max_pixels: int) -> None:
    """A helper's life: load the model, then embed one query after another until the pipe closes."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C stops the server, which closes the pipe
    # The embedder's modules define the app's metrics. Under Gunicorn they would be files in the
    # workers' metrics folder, empty (the worker counts a helper's queries) and never removed:
    # here they stay in memory.
    os.environ.pop("PROMETHEUS_MULTIPROC_DIR", None)
    from webapp.services.embedding import Embedder

    try:
        embedder = Embedder(model_dir, model, max_pixels=max_pixels, threads=1)  # overlapping: one core each
    except WebappError as exc:
        conn.send(exc)
        return
    conn.send(None)
    while True:
        try:
            data, box = conn.recv()
        except (EOFError, OSError):
            return
        try:
            decoded, vector = embedder.embed(data, box)
        except WebappError as exc:
            conn.send((exc, None, None))
            continue
        conn.send((None, QueryImage.of(decoded), vector))


def main(argv: list[str]) -> None:
    """Serve on the socket whose descriptor is the first argument."""
    fd, model_dir, model, max_pixels = argv
    serve(Connection(int(fd)), model_dir, model, int(max_pixels))


if __name__ == "__main__":
    main(sys.argv[1:])
