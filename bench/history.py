"""How the activity log's reads scale, on SQLite and PostgreSQL: an image's history, when each
account was last seen, the CSV download, and the migration that indexed what entries name.

An image's history (`/activity?image=ID`) is every entry naming the image's id in its path or its
note, or naming a job that added it: since migration 0013 an index read of what each entry names
(``activity_subjects``); before, a scan of the log with ``LIKE``. Fills each database with
``--entries`` entries (uploads, moves and deletions over a quarter as many images; a tenth of the
images loaded by jobs, one job for every 10,000 entries, its start an entry of its own) and prints
the median time of ``Activity.entries`` for a few images; then the time of ``Activity.last_seen``
for 50 accounts, of the page's CSV download of the newest 100,000 entries (its generator, in a
request context, without HTTP), and of migration 0013 over a log of the same size written at
0012. The PostgreSQL is a real one (tests/servers.py: Debian's packages, `make install-servers`).

    .venv/bin/python bench/history.py [--entries 1000000]
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from sqlalchemy import insert

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.servers import PostgresServer  # noqa: E402
from webapp.migrations import upgrade  # noqa: E402
from webapp.services.activity import Activity, subjects  # noqa: E402
from webapp.services.database import Database, activity, activity_subjects, job_items, jobs, sqlite_url  # noqa: E402

IMAGES_READ = 9


def fill(db: Database, count: int, subjects_too: bool = True) -> list[str]:
    """Write ``count`` entries over ``count // 4`` images (and what each names, unless the schema
    predates it); return the images' ids."""
    rng = random.Random(7)
    now = time.time() - count
    shas = [f"{rng.getrandbits(256):064x}" for _ in range(max(1, count // 4))]
    loads = [uuid.uuid4().hex for _ in range(max(1, count // 10_000))]
    with db.connect() as conn:
        conn.execute(
            insert(jobs),
            [
                {"id": j, "kind": "folder", "source": "/photos", "status": "done", "created_at": now}
                | {"heartbeat": now, "owner": "local"}
                for j in loads
            ],
        )
        loaded = shas[: len(shas) // 10]
        for start in range(0, len(loaded), 5000):
            part = range(start, min(start + 5000, len(loaded)))
            conn.execute(
                insert(job_items),
                [
                    {"job_id": loads[i % len(loads)], "seq": i, "name": f"IMG_{i}.jpg", "state": "added"}
                    | {"sha256": loaded[i], "chunk": 0}
                    for i in part
                ],
            )
        rows: list[dict[str, Any]] = []
        named: list[dict[str, Any]] = []  # what each entry names, as Activity.record writes it
        for i in range(count):
            sha, kind = rng.choice(shas), rng.random()
            if kind < 0.5:
                path, note = "/api/v1/images", f"added {sha} (photo_{i}.jpg)"
            elif kind < 0.9:
                path, note = f"/api/v1/images/{sha}", f"deleted photo_{i}.jpg"
            else:
                path, note = f"/api/v1/images/{sha}", f"photo_{i}.jpg moved to album 'trips'"
            if i % (count // len(loads)) == 0 and i // (count // len(loads)) < len(loads):  # each job's start
                path, note = "/api/v1/jobs", f"job {loads[i // (count // len(loads))]} (folder: /photos)"
            rows.append(
                {"id": i + 1, "at": now + i, "actor": "ada", "via": "token", "address": "10.0.0.1", "method": "POST"}
                | {"path": path, "endpoint": "x", "status": 201, "request_id": "r", "note": note}
            )
            named += [{"subject": subject, "entry_id": i + 1} for subject in subjects(path, note)]
            if len(rows) == 20_000 or i == count - 1:
                conn.execute(insert(activity), rows)
                if subjects_too:
                    conn.execute(insert(activity_subjects), named)
                rows, named = [], []
    return shas


def read_histories(db: Database, shas: list[str]) -> tuple[float, int]:
    """Return the median milliseconds of a history's first page, and the entries of the last one read."""
    log, took, total = Activity(db, 0), [], 0
    for sha in shas[:IMAGES_READ]:  # the first tenth were loaded by jobs, so their jobs are looked up too
        started = time.perf_counter()
        _, total = log.entries(0, 50, None, sha)
        took.append(time.perf_counter() - started)
    return statistics.median(took) * 1000, total


def time_the_rest(db: Database, url: str, folder: Path) -> str:
    """Return, as a line, the time of last seen for 50 accounts and of the CSV download."""
    from webapp import create_app
    from webapp.pages.activity import MAX_DOWNLOAD, _csv

    started = time.perf_counter()
    Activity(db, 0).last_seen(["ada", *(f"someone{i}" for i in range(49))])
    seen = time.perf_counter() - started
    app = create_app({"TESTING": True, "DATA_DIR": str(folder / "app"), "DATABASE_URL": url, "SECRET_KEY": "bench"})
    with app.test_request_context("/activity.csv"):
        started = time.perf_counter()
        parts = list(_csv(Activity(db, 0).export(MAX_DOWNLOAD)))
        download = time.perf_counter() - started
    rows, size = sum(part.count("\n") for part in parts) - 1, sum(len(part) for part in parts)
    return (
        f"last seen of 50 accounts {seen * 1000:.0f} ms; CSV of {rows:,} entries {download:.1f} s ({size / 1e6:.0f} MB)"
    )


def time_the_migration(url: str, count: int) -> float:
    """Return the seconds migration 0013 takes over ``count`` entries written at 0012."""
    db = Database(url)
    try:
        with db.engine.begin() as conn:
            upgrade(conn, "0012")
        db._upgraded = True  # stay at 0012 while the log is written
        fill(db, count, subjects_too=False)
        started = time.perf_counter()
        with db.engine.begin() as conn:
            upgrade(conn)
        return time.perf_counter() - started
    finally:
        db.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--entries", type=int, default=1_000_000)
    args = parser.parse_args()
    server, scratch = PostgresServer(), tempfile.TemporaryDirectory(prefix="bench-history-")
    folder = Path(scratch.name)  # the SQLite files (about 750 MB at a million entries) and the app's folder
    try:
        server.start()
        targets = {
            "SQLite": lambda n: sqlite_url(folder / f"{n}.sqlite"),
            "PostgreSQL": server.create_database,
        }
        for name, new_database in targets.items():
            url = new_database("history")
            db = Database(url)
            try:
                started = time.perf_counter()
                shas = fill(db, args.entries)
                filled = time.perf_counter() - started
                ms, total = read_histories(db, shas)
                print(
                    f"{name}: {args.entries:,} entries (written in {filled:.0f} s): an image's history "
                    f"p50 {ms:.0f} ms over {IMAGES_READ} images (the last: {total} entries)"
                )
                print(f"{name}: {time_the_rest(db, url, folder)}")
            finally:
                db.dispose()
            took = time_the_migration(new_database("upgraded"), args.entries)
            print(f"{name}: migration 0013 over {args.entries:,} entries written at 0012: {took:.1f} s")
    finally:
        server.remove()
        scratch.cleanup()


if __name__ == "__main__":
    main()
