"""What downloading an album as a zip costs, with searches beside it.

Fills a library on Milvus Lite (in a temporary data folder) as ``bench/moves.py`` does (random unit
vectors, day albums under ``photos``), gives each original of the album ``photos/2001`` a size
(random bytes: the zip stores them as they are, nothing decodes them), then downloads that album
through the app in-process (``GET /api/v1/images/export``, read to its end) with searches of
``photos/2000`` every 10 ms in a second thread, marked as a person's (``PRIORITY.interactive``, as
``Library.search`` marks them): the download's rate and the searches' p50 meanwhile.

    .venv/bin/python bench/exports.py [--images 20000] [--kilobytes 100]
"""

from __future__ import annotations

import argparse
import io
import os
import sys
import tempfile
import time
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.moves import PER_DAY, Searches, fill, p50  # noqa: E402
from webapp import create_app  # noqa: E402
from webapp.runtime import EXTENSION  # noqa: E402
from webapp.services.priority import PRIORITY  # noqa: E402

ALBUM = "photos/2001"


class InteractiveSearches(Searches):
    """Searches marked as a person's, as ``Library.search`` marks them: background work steps aside."""

    def one(self, i: int, album: str) -> float:
        with PRIORITY.interactive():
            return super().one(i, album)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=20000)
    parser.add_argument("--kilobytes", type=int, default=100, help="the size of each original of the album")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        settings = {"DATA_DIR": tmp, "MODEL_DIR": str(ROOT / "var" / "models"), "SECRET_KEY": "bench", "AUTH": "off"}
        app = create_app(settings)
        rt = app.extensions[EXTENSION]
        try:
            with app.app_context():
                lib = rt.library
                fill(lib, args.images, lib.embedder.dim)
                print(f"{args.images} images in {args.images // PER_DAY} day albums")
                after: tuple[int, str] | None = None
                count = 0
                while page := lib.catalog.following(ALBUM, after, 1000):
                    for _, sha, _ in page:
                        original = lib.original(sha)
                        assert original is not None
                        original.write_bytes(os.urandom(args.kilobytes * 1024))
                        count += 1
                    after = page[-1][:2]
                print(f"the album {ALBUM}: {count} originals of {args.kilobytes} KB")

                searches = InteractiveSearches(lib, 0)
                idle = [searches.one(i, "photos/2000") for i in range(200)]
                print(f"a search in photos/2000, idle: p50 {p50(idle)}")
                sent = io.BytesIO()

                def download() -> None:
                    with app.test_client().get("/api/v1/images/export", query_string={"album": ALBUM}) as answer:
                        assert answer.status_code == 200, answer.status_code
                        for chunk in answer.iter_encoded():  # as a server sends it, a chunk at a time
                            sent.write(chunk)

                started = time.perf_counter()
                during, refused = searches.beside(download, "photos/2000")
                took = time.perf_counter() - started
                names = zipfile.ZipFile(sent).namelist()
                assert len(names) == count, (len(names), count)
                megabytes = sent.tell() / 1e6
                print(
                    f"downloading {ALBUM} as a zip ({count} images, {megabytes:.0f} MB): {took:.1f} s, "
                    f"{megabytes / took:.0f} MB/s, {count / took:.0f} images/s; searches in photos/2000 meanwhile: "
                    f"p50 {p50(during)}, the slowest {max(during, default=0) * 1000:.0f} ms, over {len(during)}, "
                    f"{len(refused)} refused"
                )
        finally:
            rt.close()


if __name__ == "__main__":
    main()
