"""What a search costs in Flask around the library's own search, in-process, without Gunicorn or HTTP.

Creates the app on a temporary data folder (Milvus Lite, no query helpers), adds a few of
scikit-image's photos, then calls the app's WSGI callable with one prepared multipart search body
and times, in alternating order:

- the whole request (routing, hooks, webargs, the search, marshmallow, JSON);
- ``Library.search`` alone on the same bytes;
- the whole request again, with ``Library.search`` answering a result kept from before: the
  Flask side alone, with the interpreter's caches warm (a real search's model run evicts them, so
  the Flask side costs more in a real request than here).

    .venv/bin/python bench/flask_side.py [--requests 300] [--rounds 3]
"""

from __future__ import annotations

import argparse
import io
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.latency import photos  # noqa: E402
from webapp import create_app  # noqa: E402
from webapp.runtime import EXTENSION, library  # noqa: E402

BOUNDARY = "benchboundary"


def search_body(image: bytes, top_k: int) -> bytes:
    """Return a multipart search body: the image and ``top_k``."""
    head = f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="image"; filename="q.jpg"\r\n'
    head += "Content-Type: image/jpeg\r\n\r\n"
    tail = f'\r\n--{BOUNDARY}\r\nContent-Disposition: form-data; name="top_k"\r\n\r\n{top_k}\r\n--{BOUNDARY}--\r\n'
    return head.encode() + image + tail.encode()


def requester(app: Any, body: bytes) -> Callable[[], None]:
    """Return a function that sends the search through the app's WSGI callable and checks it answered 200."""
    base = {
        "REQUEST_METHOD": "POST",
        "PATH_INFO": "/api/v1/search",
        "SCRIPT_NAME": "",
        "QUERY_STRING": "",
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "8000",
        "HTTP_HOST": "127.0.0.1:8000",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "127.0.0.1",
        "CONTENT_TYPE": f"multipart/form-data; boundary={BOUNDARY}",
        "CONTENT_LENGTH": str(len(body)),
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": "http",
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": True,
        "wsgi.multiprocess": False,
        "wsgi.run_once": False,
    }

    def send() -> None:
        statuses: list[str] = []
        answer = app.wsgi_app({**base, "wsgi.input": io.BytesIO(body)}, lambda s, h, e=None: statuses.append(s))
        b"".join(answer)
        answer.close()
        if not statuses[0].startswith("200"):
            raise RuntimeError(f"the search answered {statuses[0]}")

    return send


def timed(function: Callable[[], Any], samples: list[float]) -> None:
    """Time one call of ``function`` into ``samples`` (ms)."""
    start = time.perf_counter()
    function()
    samples.append((time.perf_counter() - start) * 1000)


def main() -> None:
    """Build the app and its library, then print the request's, the search's and the Flask side's p50 by round."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=300, help="per measure and round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--model-dir", type=Path, default=ROOT / "var" / "models")
    args = parser.parse_args()
    images = photos()
    query = images["chelsea"]
    with tempfile.TemporaryDirectory() as tmp:
        settings = {"DATA_DIR": tmp, "MODEL_DIR": str(args.model_dir), "SECRET_KEY": "bench"}
        app = create_app({**settings, "SEARCH_PROCESSES": "0"})
        client = app.test_client()
        for name, data in images.items():
            added = client.post("/api/v1/images", data={"image": (io.BytesIO(data), f"{name}.jpg")})
            if added.status_code != 201:
                raise RuntimeError(f"adding {name} answered {added.status}")
        with app.app_context():
            lib = library()
        send = requester(app, search_body(query, 10))
        for _ in range(30):
            send()
        search = lib.search
        kept = search(query, 10)
        print(f"library: {len(images)} images; {args.requests} requests per measure and round")
        print(f"{'round':>5} {'request p50':>12} {'search p50':>11} {'difference':>11} {'Flask side alone':>17}")
        for round_ in range(1, args.rounds + 1):
            whole: list[float] = []
            alone: list[float] = []
            flask_side: list[float] = []
            for _ in range(args.requests):
                timed(send, whole)
                timed(lambda: search(query, 10), alone)
            lib.search = lambda *a, **k: kept  # type: ignore[method-assign]
            try:
                for _ in range(args.requests):
                    timed(send, flask_side)
            finally:
                del lib.search  # the class's method again
            w, s, f = (float(np.median(x)) for x in (whole, alone, flask_side))
            print(f"{round_:>5} {w:9.2f} ms {s:8.2f} ms {w - s:8.2f} ms {f:14.3f} ms")
        app.extensions[EXTENSION].close()


if __name__ == "__main__":
    main()
