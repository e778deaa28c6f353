"""What a library with many albums costs each page, with the pages' album list kept and made afresh.

Fills a catalogue (SQLite, in a temporary data folder) with one image row per photo of a library
organised by day (``photos/YYYY/MM/DD``, ten a day by default: 53,760 rows in 5,585 albums), then
calls the app's WSGI callable in-process, in alternating rounds:

- the home page and the library page as served (the album list kept up to a few seconds; past
  ``ALBUM_CHOICES`` albums, a field that suggests names instead of a menu of them all);
- the same pages with every album in a menu, as before 2026-12-03 ("menu");
- the same pages with every list made afresh (``Catalog.ALBUMS_KEPT_SECONDS`` at 0), as before
  2026-12-02, with the menu ("afresh");
- ``GET /api/v1/images/albums`` (never kept), and the suggestions a field asks for as you type;
- a level of the album tree with each album's cover (its newest image): a month's 28 days on the
  Albums page and in the API (``?parent=``); with ``--flat``, the days directly in ``photos``, a
  level of 5,376 albums (the page shows 48 of them, the API all), and a search for a month's days.

Milvus holds no vectors: the pages' grids are empty, so what is timed is the page, the album list
and the catalogue's count.

    .venv/bin/python bench/albums.py [--years 16] [--per-day 10] [--views 30] [--rounds 2] [--flat]
"""

from __future__ import annotations

import argparse
import hashlib
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from webapp import create_app  # noqa: E402
from webapp.runtime import library  # noqa: E402
from webapp.services.catalog import Catalog  # noqa: E402
from webapp.services.database import Database, sqlite_url  # noqa: E402

PATHS = (
    "/",
    "/library",
    "/albums?album=photos/2019/05",
    "/api/v1/images/albums",
    "/api/v1/images/albums?contains=2019/05&limit=20",
    "/api/v1/images/albums?parent=photos/2019/05",
)
EVERY_ALBUM = 10**9  # ALBUM_CHOICES that puts every album in a menu


FLAT_PATHS = ("/albums?album=photos", "/api/v1/images/albums?parent=photos", "/albums?find=2019-05")


def fill(data_dir: Path, years: int, per_day: int, flat: bool = False) -> int:
    """Record ``per_day`` images for each day of ``years`` years (28 days a month), in a folder a day
    (``flat``: all directly in ``photos``); return how many."""
    rows: list[tuple[str, int, str, bytes | None]] = []
    for year in range(2026 - years, 2026):
        for month in range(1, 13):
            for day in range(1, 29):
                album = f"photos/{year}-{month:02d}-{day:02d}" if flat else f"photos/{year}/{month:02d}/{day:02d}"
                for _ in range(per_day):
                    n = len(rows)
                    rows.append((hashlib.sha256(str(n).encode()).hexdigest(), n, album, None))
    catalog = Catalog(Database(sqlite_url(data_dir / "webapp.sqlite")))
    for start in range(0, len(rows), 5000):
        catalog.add(rows[start : start + 5000])
    return len(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--years", type=int, default=16)
    parser.add_argument("--per-day", type=int, default=10)
    parser.add_argument("--views", type=int, default=30, help="views of each page in each round")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--flat", action="store_true", help="a folder a day directly in photos: one level of them all")
    args = parser.parse_args()
    paths = FLAT_PATHS if args.flat else PATHS
    with tempfile.TemporaryDirectory() as tmp:
        data_dir = Path(tmp)
        images = fill(data_dir, args.years, args.per_day, args.flat)
        settings = {"DATA_DIR": str(data_dir), "MODEL_DIR": str(ROOT / "var" / "models"), "SECRET_KEY": "bench"}
        app = create_app({**settings, "AUTH": "off"})
        client = app.test_client()
        with app.app_context():
            catalog = library().catalog
        albums = len(client.get("/api/v1/images/albums").json or [])
        print(f"{images} images in {albums} albums; p50 of {args.views} views, in ms (page size)")
        kept_for, choices = Catalog.ALBUMS_KEPT_SECONDS, app.config["ALBUM_CHOICES"]
        variants = (("served", kept_for, choices), ("menu", kept_for, EVERY_ALBUM), ("afresh", 0.0, EVERY_ALBUM))
        for round_ in range(1, args.rounds + 1):
            for label, seconds, menu in variants:
                Catalog.ALBUMS_KEPT_SECONDS = seconds
                app.config["ALBUM_CHOICES"] = menu
                catalog._albums = None  # a list kept from the other setting would outlive the switch
                for path in paths:
                    client.get(path)
                    times = []
                    for _ in range(args.views):
                        start = time.perf_counter()
                        response = client.get(path)
                        times.append((time.perf_counter() - start) * 1000)
                    assert response.status_code == 200, (path, response.status_code)
                    size = len(response.data) // 1024
                    print(f"round {round_}  {label:6s}  {path:50s} {statistics.median(times):7.1f}  ({size} KB)")
        Catalog.ALBUMS_KEPT_SECONDS = kept_for


if __name__ == "__main__":
    main()
