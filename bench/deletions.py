"""What deleting many images costs: a selection, and a whole album as a job, with searches beside it.

Fills a library on Milvus Lite (in a temporary data folder) as ``bench/moves.py`` does (random unit
vectors, one tiny file each, day albums under ``photos``), then times, in-process:

- deleting selections of 500 images at once (``Library.delete_many``, what ``POST
  /api/v1/images/delete`` calls), into the trash;
- deleting the album ``photos/2001`` (and its days) as the deletion job does, with searches of
  ``photos/2000`` every 10 ms in a second thread: the job's rate and the searches' p50 meanwhile.

Restoring is not timed here: it embeds every image again, as an upload (``make bench``).

    .venv/bin/python bench/deletions.py [--images 20000] [--selections 4]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.moves import PER_DAY, Searches, fill, p50  # noqa: E402
from webapp import create_app  # noqa: E402
from webapp.runtime import EXTENSION  # noqa: E402
from webapp.services.deletions import KIND  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=20000)
    parser.add_argument("--selections", type=int, default=4, help="selections of 500 deleted one after another")
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
                filled = time.perf_counter() - started
                print(f"{args.images} images in {args.images // PER_DAY} day albums, filled in {filled:.1f} s")
                took = []
                for i in range(args.selections):  # the newest first, as a person ticks them on the grid
                    chosen = shas[len(shas) - 500 * (i + 1) : len(shas) - 500 * i]
                    started = time.perf_counter()
                    assert len(lib.delete_many(chosen, "bench")) == len(chosen)
                    took.append(time.perf_counter() - started)
                each = ", ".join(f"{t:.2f}" for t in took)
                print(f"deleting a selection of 500 images: p50 {p50(took)} over {args.selections} ({each} s)")

                searches = Searches(lib, 0)
                idle = [searches.one(i, "photos/2000") for i in range(200)]
                print(f"a search in photos/2000 ({lib.catalog.total('photos/2000')} images), idle: p50 {p50(idle)}")
                size = lib.catalog.total("photos/2001")
                job = rt.jobs.create(KIND, "album photos/2001", rt.queue.owner)
                started = time.perf_counter()
                during, refused = searches.beside(lambda: rt.deletions.run(job.id), "photos/2000")
                took_job = time.perf_counter() - started
                done = rt.jobs.get(job.id)
                assert done.status == "done", done
                assert lib.catalog.total("photos/2001") == 0 and lib.trash is not None
                print(
                    f"deleting the album photos/2001 ({size} images) in a job: {took_job:.1f} s, "
                    f"{size / took_job:.0f} images/s; searches in photos/2000 meanwhile: p50 {p50(during)}, "
                    f"the slowest {max(during, default=0) * 1000:.0f} ms, over {len(during)}, {len(refused)} refused; "
                    f"the trash holds {lib.trash.count()}"
                )
        finally:
            rt.close()


if __name__ == "__main__":
    main()
