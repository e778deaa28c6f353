"""Copy a library's database into another, empty one (``flask --app wsgi db copy --to URL``).

How a library grown on a laptop (SQLite) moves to PostgreSQL for many machines, or back. Every
table is copied: accounts and tokens, jobs and their files, the catalogue and its albums, the
duplicate groups, and which collection holds the library's vectors with which model. The last is
what a library cannot lose: after a reindex its vectors live in a collection named after the
model, and a new database would bind the library to a collection of its own name.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from sqlalchemy import Integer, Table, func, insert, select, text
from sqlalchemy.exc import DBAPIError

from webapp.errors import Conflict, InvalidInput
from webapp.services.database import Database, first_line, metadata

BATCH = 5000  # rows read and written at a time


def copy_database(source: Database, target: Database, say: Callable[[str], None]) -> dict[str, int]:
    """Copy every table of ``source`` into ``target`` in one transaction; return the rows per table.

    Both are migrated to the latest revision first. The target must hold no rows (a process that
    merely opened it has not written any). Reads happen in one snapshot of the source (SQLite's
    read transaction, PostgreSQL's REPEATABLE READ), so the copy is one moment of it: a backup of
    PostgreSQL taken while the app runs holds no job item without its job, no duplicate group
    without its members. (A SQLite source's transaction takes its write lock, so the app's writes
    wait for the copy: stop the app first, as Milvus Lite asks anyway.) Stop the app and its
    workers to move a library, or what they write after that moment is not copied.

    PostgreSQL's text cannot hold NUL, which SQLite takes (names stored before 2026-12-03 may have
    one): it is dropped from the values copied there, and counted.
    """
    if source.engine.url == target.engine.url:
        raise InvalidInput("the target is the database the app is configured with; name another one")
    source.upgrade()
    target.upgrade()
    tables = metadata.sorted_tables  # parents first: users before tokens, groups before members
    with target.connect() as conn:
        held = {t.name: n for t in tables if (n := conn.execute(select(func.count()).select_from(t)).scalar_one())}
    if held:
        listed = ", ".join(f"{name}: {n}" for name, n in held.items())
        raise Conflict(f"the target database already holds rows ({listed}); copy into an empty database")
    drop_nul = target.dialect == "postgresql"
    copied: dict[str, int] = {}
    lost_nul = 0
    with source.connect() as reading, target.connect() as writing:
        if source.dialect == "postgresql":  # its default gives each statement a moment of its own
            reading.execute(text("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY"))
        for table in tables:
            started, count = time.monotonic(), 0
            query = select(table).order_by(*table.primary_key.columns)
            for rows in reading.execution_options(yield_per=BATCH).execute(query).partitions():
                values = [row._asdict() for row in rows]
                if drop_nul:
                    lost_nul += sum(_drop_nul(value) for value in values)
                try:
                    writing.execute(insert(table), values)
                except DBAPIError as exc:
                    raise InvalidInput(f"a row of {table.name} does not fit the target: {first_line(exc)}") from exc
                count += len(values)
            copied[table.name] = count
            say(f"{table.name}: {count} rows ({time.monotonic() - started:.1f} s)")
        if target.dialect == "postgresql":
            for table in tables:
                _continue_numbering(writing, table)
    with target.connect() as conn:
        found = {t.name: conn.execute(select(func.count()).select_from(t)).scalar_one() for t in tables}
    if found != copied:
        raise Conflict(f"the target holds other counts than were copied: {found} against {copied}")
    if lost_nul:
        say(f"{lost_nul} values lost a NUL character, which PostgreSQL cannot store")
    return copied


def _drop_nul(row: dict[str, Any]) -> int:
    """Take NUL out of the row's text values; return how many had one."""
    changed = 0
    for key, value in row.items():
        if isinstance(value, str) and "\x00" in value:
            row[key] = value.replace("\x00", "")
            changed += 1
    return changed


def _continue_numbering(conn: Any, table: Table) -> None:
    """Set a PostgreSQL serial key's sequence past the rows copied, or the next insert collides."""
    keys = list(table.primary_key.columns)
    if len(keys) != 1 or not isinstance(keys[0].type, Integer) or keys[0].autoincrement is not True:
        return
    column = keys[0].name
    conn.execute(
        text(
            f"SELECT setval(pg_get_serial_sequence(:table, :column), "
            f"COALESCE((SELECT MAX({column}) FROM {table.name}), 0) + 1, false)"
        ),
        {"table": table.name, "column": column},
    )
