"""How long ``flask --app wsgi db copy`` takes to move a large library's database to PostgreSQL.

Fills a SQLite database with a library's rows (images in albums, a job's items per image, duplicate
groups, an account and its tokens), starts a real PostgreSQL (tests/servers.py: Debian's packages,
`make install-servers`), copies into it with the command's own function and prints the time.

    .venv/bin/python bench/db_copy.py [--images 100000]
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
import uuid
from pathlib import Path

from sqlalchemy import insert

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.servers import PostgresServer  # noqa: E402
from webapp.services.database import (  # noqa: E402
    Database,
    duplicate_groups,
    duplicate_members,
    images,
    job_items,
    jobs,
    sqlite_url,
    tokens,
    users,
)
from webapp.services.db_copy import copy_database  # noqa: E402


def fill(db: Database, count: int) -> None:
    """Write ``count`` images, each an item of one of 10 jobs, and a group per 50 images."""
    rng = random.Random(7)
    now = time.time()
    job_ids = [uuid.uuid4().hex for _ in range(10)]
    with db.connect() as conn:
        conn.execute(
            insert(users), [{"id": 1, "name": "ada", "role": "admin", "password_hash": "x", "created_at": now}]
        )
        conn.execute(
            insert(tokens),
            [
                {"id": f"t{i}", "user_id": 1, "name": "script", "role": "editor", "secret_hash": f"{i:064x}"}
                | {"created_at": now}
                for i in range(5)
            ],
        )
        conn.execute(
            insert(jobs),
            [
                {"id": j, "kind": "folder", "source": f"/photos/{n}", "status": "done", "total": count // 10}
                | {"processed": count // 10, "added": count // 10, "created_at": now, "heartbeat": now}
                | {"owner": "local"}
                for n, j in enumerate(job_ids)
            ],
        )
        shas = [f"{rng.getrandbits(256):064x}" for _ in range(count)]
        for start in range(0, count, 5000):
            part = range(start, min(start + 5000, count))
            conn.execute(
                insert(images),
                [{"sha256": shas[i], "added_at": int(now * 1000) + i, "album": f"trips/{i % 40}"} for i in part],
            )
            conn.execute(
                insert(job_items),
                [
                    {"job_id": job_ids[i % 10], "seq": i // 10, "name": f"trips/{i % 40}/IMG_{i:06d}.jpg"}
                    | {"state": "added", "sha256": shas[i], "chunk": i // 10 // 64}
                    for i in part
                ],
            )
        groups = count // 50
        conn.execute(
            insert(duplicate_groups),
            [{"id": g + 1, "job_id": job_ids[0], "size": 2, "best": 0.97} for g in range(groups)],
        )
        conn.execute(
            insert(duplicate_members),
            [
                {"group_id": g + 1, "sha256": shas[2 * g + k], "similarity": 1.0 - 0.03 * k, "keeper": k == 0}
                for g in range(groups)
                for k in (0, 1)
            ],
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, default=100_000)
    args = parser.parse_args()
    scratch = tempfile.TemporaryDirectory(prefix="bench-db-copy-")
    folder = Path(scratch.name)
    source = Database(sqlite_url(folder / "webapp.sqlite"))
    server = PostgresServer()
    try:
        started = time.perf_counter()
        fill(source, args.images)
        print(f"filled SQLite with {args.images} images in {time.perf_counter() - started:.1f} s")
        server.start()
        target = Database(server.create_database("copy"))
        started = time.perf_counter()
        copied = copy_database(source, target, lambda line: print(f"  {line}"))
        took = time.perf_counter() - started
        rows = sum(copied.values())
        print(f"copied {rows} rows in {took:.1f} s ({rows / took:,.0f} rows/s) to PostgreSQL")
        target.dispose()
    finally:
        source.dispose()
        server.remove()
        scratch.cleanup()


if __name__ == "__main__":
    main()
