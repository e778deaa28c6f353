"""How long an image's history takes to read from a large activity log, on SQLite and PostgreSQL.

An image's history (`/activity?image=ID`) is every entry naming the image's id in its path or its
note, or naming a job that added it: since migration 0013 an index read of what each entry names
(``activity_subjects``); before, a scan of the log with ``LIKE``. Fills each database with
``--entries`` entries (uploads, moves and deletions over a quarter as many images; a tenth of the
images loaded by jobs, one job for every 10,000 entries, its start an entry of its own) and prints
the median time of ``Activity.entries`` for a few images. The PostgreSQL is a real one
(tests/servers.py: Debian's packages, `make install-servers`).

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
from webapp.services.activity import Activity, subjects  # noqa: E402
from webapp.services.database import Database, activity, activity_subjects, job_items, jobs, sqlite_url  # noqa: E402

IMAGES_READ = 9


def fill(db: Database, count: int) -> list[str]:
    """Write ``count`` entries over ``count // 4`` images; return the images' ids."""
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
            if len(rows) == 20_000:
                conn.execute(insert(activity), rows)
                conn.execute(insert(activity_subjects), named)
                rows, named = [], []
        if rows:
            conn.execute(insert(activity), rows)
            conn.execute(insert(activity_subjects), named)
    return shas


def read_histories(db: Database, shas: list[str]) -> tuple[float, int]:
    """Return the median milliseconds of a history's first page, and the entries of the last one read."""
    log, took, total = Activity(db, 0), [], 0
    for sha in shas[:IMAGES_READ]:  # the first tenth were loaded by jobs, so their jobs are looked up too
        started = time.perf_counter()
        _, total = log.entries(0, 50, None, sha)
        took.append(time.perf_counter() - started)
    return statistics.median(took) * 1000, total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--entries", type=int, default=1_000_000)
    args = parser.parse_args()
    server = PostgresServer()
    try:
        server.start()
        targets = {
            "SQLite": sqlite_url(Path(tempfile.mkdtemp(prefix="bench-history-")) / "webapp.sqlite"),
            "PostgreSQL": server.create_database("history"),
        }
        for name, url in targets.items():
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
            finally:
                db.dispose()
    finally:
        server.remove()


if __name__ == "__main__":
    main()
