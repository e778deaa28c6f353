"""What moving images between albums costs: one image, and a whole album as a job, with searches beside it.

Fills a library on Milvus Lite (in a temporary data folder) with random unit vectors, one tiny
file each and their catalogue rows, in day albums (``photos/YYYY/MM/DD``), flushed and indexed as a
job leaves them; then times, in-process:

- moving one image (``PATCH /api/v1/images/<id>`` through the WSGI callable), back and forth;
- the vector search (the store alone, a random vector) of the whole library and of albums of every
  size, idle;
- moving the album ``photos`` to ``archive`` (every image), as the job does it, with the same
  searches in a second thread: the move's rate and the searches' p50 meanwhile.

    .venv/bin/python bench/moves.py [--images 20000] [--moves 50] [--searches 200]
"""

from __future__ import annotations

import argparse
import hashlib
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from webapp import create_app  # noqa: E402
from webapp.errors import WebappError  # noqa: E402
from webapp.runtime import EXTENSION  # noqa: E402
from webapp.services.album_moves import KIND  # noqa: E402
from webapp.services.records import Record  # noqa: E402

PER_DAY = 20


def fill(library: object, images: int, dim: int) -> list[str]:
    """Add ``images`` random images in day albums; return their content ids, oldest first."""
    rng = np.random.default_rng(7)
    shas: list[str] = []
    lib = library
    for start in range(0, images, 1000):
        batch = []
        for n in range(start, min(start + 1000, images)):
            day = n // PER_DAY
            album = f"photos/{2000 + day // 336}/{day // 28 % 12 + 1:02d}/{day % 28 + 1:02d}"
            sha = hashlib.sha256(str(n).encode()).hexdigest()
            vector = rng.standard_normal(dim).astype(np.float32)
            batch.append((Record(sha, f"{n}.jpg", 64, 64, "bench", "image/jpeg", 1_700_000_000_000 + n, album), vector))
            shas.append(sha)
        lib.images.put_many((rec.sha256, rec.mime, b"\xff\xd8 not decoded", None) for rec, _ in batch)  # type: ignore[attr-defined]
        lib.vectors.upsert([(rec, vec / np.linalg.norm(vec)) for rec, vec in batch])  # type: ignore[attr-defined]
        lib.catalog.add((rec.sha256, rec.added_at, rec.album, None) for rec, _ in batch)  # type: ignore[attr-defined]
    lib.vectors.flush()  # type: ignore[attr-defined]
    engine = lib.vectors._engine()  # type: ignore[attr-defined]
    deadline = time.monotonic() + 600  # Milvus Lite indexes flushed segments in the background
    while time.monotonic() < deadline:
        segments = [s for s in engine.collection._read_snapshot()[0] if s.num_rows]
        if all(s.indexes.get("vector") is not None for s in segments):
            break
        time.sleep(0.2)
    return shas


def p50(times: list[float]) -> str:
    return f"{statistics.median(times) * 1000:.1f} ms" if times else "-"


class Searches:
    """Vector searches of random unit vectors, in an album or the whole library, timed."""

    def __init__(self, library: Any, count: int) -> None:
        self.library = library
        rng = np.random.default_rng(8)
        self.queries = [v / np.linalg.norm(v) for v in rng.standard_normal((64, library.embedder.dim))]

    def one(self, i: int, album: str) -> float:
        t = time.perf_counter()
        self.library.vectors.search(self.queries[i % len(self.queries)].astype(np.float32), 10, album)
        return time.perf_counter() - t

    def beside(self, work: Callable[[], None], album: str) -> tuple[list[float], list[str]]:
        """Search every 10 ms while ``work`` runs; return the searches' times and the refusals' messages."""
        times: list[float] = []
        refused: list[str] = []
        running = threading.Event()
        running.set()

        def searcher() -> None:
            while running.is_set():
                try:
                    times.append(self.one(len(times) + len(refused), album))
                except WebappError as exc:  # the app answers 503 with Retry-After
                    refused.append(exc.message)
                time.sleep(0.01)

        thread = threading.Thread(target=searcher)
        thread.start()
        try:
            work()
        finally:
            running.clear()
            thread.join()
        return times, refused


def single_moves(client: Any, shas: list[str], moves: int) -> list[float]:
    """Move ten images back and forth between two albums through the API; return each move's time."""
    times = []
    for i in range(moves):
        t = time.perf_counter()
        answer = client.patch(f"/api/v1/images/{shas[i % 10]}", json={"album": f"moved/{i % 2}"})
        times.append(time.perf_counter() - t)
        assert answer.status_code == 200, answer.json
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=20000)
    parser.add_argument("--moves", type=int, default=50, help="single-image moves timed")
    parser.add_argument("--searches", type=int, default=200, help="idle searches timed in each album")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        settings = {"DATA_DIR": tmp, "MODEL_DIR": str(ROOT / "var" / "models"), "SECRET_KEY": "bench", "AUTH": "off"}
        app = create_app(settings)
        rt = app.extensions[EXTENSION]
        try:
            with app.app_context():
                lib = rt.library
                started = time.perf_counter()
                shas = fill(lib, args.images, lib.embedder.dim)
                took = time.perf_counter() - started
                print(f"{args.images} images in {args.images // PER_DAY} day albums, filled in {took:.1f} s")
                one = single_moves(app.test_client(), shas, args.moves)
                print(f"moving one image (PATCH): p50 {p50(one)} over {args.moves}")
                searches = Searches(lib, args.searches)
                for album in ("", "photos", "photos/2000", "photos/2000/01", "photos/2000/01/01"):
                    idle = [searches.one(i, album) for i in range(args.searches)]
                    size = lib.catalog.total(album)
                    print(f"a search in {album or 'the whole library'} ({size} images): p50 {p50(idle)}")

                job = rt.jobs.create(KIND, "photos", rt.queue.owner, album="archive")
                started = time.perf_counter()
                during, refused = searches.beside(lambda: rt.album_moves.run(job.id), "photos/2000")
                took = time.perf_counter() - started
                done = rt.jobs.get(job.id)
                assert done.status == "done", done
                assert lib.catalog.total("photos") == 0 and lib.catalog.total("archive") == done.processed
                print(
                    f"moving the album photos ({done.processed} images) to archive: {took:.1f} s, "
                    f"{done.processed / took:.0f} images/s; searches in photos/2000 meanwhile: "
                    f"p50 {p50(during)}, the slowest {max(during, default=0) * 1000:.0f} ms, over {len(during)}, "
                    f"{len(refused)} refused"
                )
                for message in sorted(set(refused)):
                    print(f"  refused: {message} ({refused.count(message)})")
        finally:
            rt.close()


if __name__ == "__main__":
    main()
