"""The database layer: migrations (fresh, and a library of the SQLite-only releases), the catalogue
and the job store's transitions and exact counting, on SQLite and PostgreSQL."""

from __future__ import annotations

import functools
import io
import itertools
import os
import signal
import socket
import sqlite3
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from argon2 import PasswordHasher
from sqlalchemy import Connection, create_engine, delete, event, inspect, select, text
from sqlalchemy.exc import DBAPIError

from tests.conftest import noise_images, wait_for_job
from tests.servers import CutOffHost, PostgresServer
from webapp import create_app
from webapp.errors import Conflict, ModelMismatch, NotFound, StoreUnavailable
from webapp.migrations import current, upgrade
from webapp.models import ModelIdentity
from webapp.runtime import EXTENSION
from webapp.services import bounded_waits, distinct_pairs
from webapp.services import database as database_module
from webapp.services.accounts import Accounts
from webapp.services.activity import Activity
from webapp.services.binding import ModelBinding
from webapp.services.catalog import Catalog
from webapp.services.database import (
    CONNECT_TIMEOUT,
    Database,
    collections,
    duplicate_groups,
    duplicate_members,
    images,
    jobs,
    sqlite_url,
    tokens,
    users,
)
from webapp.services.db_copy import copy_database
from webapp.services.fingerprints import Fingerprint, from_bytes, to_bytes
from webapp.services.group_claims import Claim, put_back, take
from webapp.services.jobs import ItemResult, JobStatus, JobStore, local_owner
from webapp.services.roles import Role

# The schema exactly as the SQLite-only releases created it (webapp/services/jobs.py and catalog.py).
LEGACY_SCHEMA = """CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    source TEXT NOT NULL,
    status TEXT NOT NULL,
    total INTEGER,
    processed INTEGER NOT NULL DEFAULT 0,
    added INTEGER NOT NULL DEFAULT 0,
    duplicates INTEGER NOT NULL DEFAULT 0,
    failed INTEGER NOT NULL DEFAULT 0,
    created_at REAL NOT NULL,
    started_at REAL,
    finished_at REAL,
    run_started_at REAL,
    run_start_processed INTEGER NOT NULL DEFAULT 0,
    heartbeat REAL NOT NULL,
    owner TEXT NOT NULL,
    cancel_requested INTEGER NOT NULL DEFAULT 0,
    error TEXT
);
CREATE TABLE IF NOT EXISTS job_items (
    job_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    name TEXT NOT NULL,
    state TEXT NOT NULL DEFAULT 'pending',
    reason TEXT,
    sha256 TEXT,
    PRIMARY KEY (job_id, seq)
);
CREATE INDEX IF NOT EXISTS jobs_by_time ON jobs (created_at DESC);
CREATE TABLE IF NOT EXISTS images (
    sha256 TEXT PRIMARY KEY,
    added_at INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS images_by_time ON images (added_at);
"""
HEAD = "0016"


@pytest.fixture()
def db(database: str, tmp_path: Path) -> Database:
    """Return a fresh database: SQLite in a temporary folder, or a new PostgreSQL database."""
    return Database(database or sqlite_url(tmp_path / "webapp.sqlite"))


def test_an_empty_database_is_migrated_to_the_latest_revision(db: Database) -> None:
    db.upgrade()
    with db.connect() as conn:
        assert current(conn) == HEAD
        tables = set(inspect(conn).get_table_names())
        columns = {c["name"] for c in inspect(conn).get_columns("job_items")}
    assert {"jobs", "job_items", "images", "alembic_version"} <= tables
    assert "chunk" in columns


def test_a_library_of_the_sqlite_only_releases_keeps_every_row(tmp_path: Path) -> None:
    path = tmp_path / "webapp.sqlite"
    legacy = sqlite3.connect(path)
    legacy.executescript(LEGACY_SCHEMA)
    legacy.execute(
        "INSERT INTO jobs (id, kind, source, status, total, processed, added, created_at, heartbeat, owner)"
        " VALUES ('a' , 'folder', '/photos', 'interrupted', 600, 300, 290, 1.0, 2.0, 'old:1')"
    )
    legacy.executemany(
        "INSERT INTO job_items (job_id, seq, name, state) VALUES ('a', ?, ?, ?)",
        [(i, f"{i}.jpg", "added" if i < 300 else "pending") for i in range(600)],
    )
    legacy.executemany("INSERT INTO images VALUES (?, ?)", [(f"{i:064x}", 1000 + i) for i in range(290)])
    legacy.commit()
    legacy.close()

    db = Database(sqlite_url(path))
    store, catalog = JobStore(db), Catalog(db)
    job = store.get("a")
    assert (job.status, job.total, job.processed, job.added) == (JobStatus.INTERRUPTED, 600, 300, 290)
    assert catalog.total() == 290 and catalog.newest(0, 1) == [f"{289:064x}"]
    assert store.pending_chunks("a") == [1, 2]  # items 300-599: chunks of 256 numbered by position
    assert [seq for seq, _ in store.pending("a", 1)] == list(range(300, 512))
    with db.connect() as conn:
        assert current(conn) == HEAD


def test_the_entries_of_an_older_log_are_read_into_what_they_name_on_upgrade(db: Database) -> None:
    image, job = f"{7:064x}", f"{9:032x}"
    with db.engine.begin() as conn:
        upgrade(conn, "0012")
        rows = [
            ("/api/v1/images", f"added {image} (a.jpg)"),  # its upload
            (f"/api/v1/images/{image}", "deleted a.jpg"),
            ("/api/v1/jobs", f"job {job} (folder: /photos)"),  # the job that loaded it, below
            (f"/api/v1/images/{8:064x}", ""),  # another image's
        ]
        for at, (path, note) in enumerate(rows):
            values = {"at": at, "via": "token", "method": "POST", "path": path, "status": 201, "note": note}
            conn.execute(text(_insert("activity", values)), values)
        item = {"job_id": job, "seq": 0, "name": "a.jpg", "state": "added", "sha256": image}
        conn.execute(text(_insert("job_items", item)), item)
    found, total = Activity(db, 0).entries(image=image)  # upgrades to the head first
    assert total == 3 and [e.path for e in found] == ["/api/v1/jobs", f"/api/v1/images/{image}", "/api/v1/images"]


def _insert(table: str, values: dict[str, object]) -> str:
    return f"INSERT INTO {table} ({', '.join(values)}) VALUES ({', '.join(':' + k for k in values)})"


def test_catalogue_ignores_known_images_and_lists_newest_first(db: Database) -> None:
    catalog = Catalog(db)
    catalog.add([("a" * 64, 1, "", None), ("b" * 64, 3, "", None)])
    catalog.add([("a" * 64, 9, "", None), ("c" * 64, 2, "", None)])  # "a" is known: left as it was
    assert catalog.newest(0, 10) == ["b" * 64, "c" * 64, "a" * 64]
    assert catalog.total() == 3 and catalog.all() == {"a" * 64, "b" * 64, "c" * 64}
    catalog.remove(["b" * 64])
    assert catalog.newest(1, 10) == ["a" * 64]


def test_the_catalogue_keeps_fingerprints_as_added_and_as_made_later(db: Database) -> None:
    catalog = Catalog(db)
    added = to_bytes(Fingerprint(2**62 + 5, 12345, (1, 2), 3, (640, 480)))
    made = to_bytes(Fingerprint(7, 2**63 - 1, (2**64 - 1, 0), 9, (2**32 - 1, 1)))
    catalog.add([("a" * 64, 1, "", added), ("b" * 64, 2, "", None)])  # b: of an earlier release
    shas = ["a" * 64, "b" * 64, "c" * 64]
    assert catalog.fingerprints(shas) == {"a" * 64: added, "b" * 64: None}  # c is not catalogued
    catalog.keep_fingerprints({"b" * 64: made, "c" * 64: made})
    assert catalog.fingerprints(shas) == {"a" * 64: added, "b" * 64: made}
    assert catalog.total() == 2 and from_bytes(made) == Fingerprint(7, 2**63 - 1, (2**64 - 1, 0), 9, (2**32 - 1, 1))
    catalog.add([(f"{i:x}" * 64, 3 + i, "", added if i % 2 else None) for i in range(3, 10)])
    pages = list(catalog.every_fingerprint(size=2))  # as the duplicate scan reads them all
    assert [len(page) for page in pages] == [2, 2, 2, 2, 1]
    every = {sha: data for page in pages for sha, data in page.items()}
    assert every == catalog.fingerprints(f"{i:x}" * 64 for i in range(16)) and len(every) == 9
    catalog.add([("f" * 64, 20, "", bytes(16))])  # as a release of 2026-12-03 kept it
    assert catalog.without_fingerprint(len(added)) == 4  # 4, 6, 8 and f


def test_pairs_kept_apart_are_marked_once_and_forgotten_with_their_images(db: Database) -> None:
    catalog = Catalog(db)
    a, b, c, d = (letter * 64 for letter in "abcd")
    catalog.add([(sha, i, "", None) for i, sha in enumerate((a, b, c, d))])
    assert distinct_pairs.mark(db, distinct_pairs.every_pair([c, a, b])) == 3
    assert distinct_pairs.mark(db, [(d, b), (b, c), (c, d)]) == 2  # b-c was marked; each in either order
    assert distinct_pairs.marked(db, [(a, b), (a, d), (c, d), (b, a)]) == {(a, b), (c, d)}  # in order only
    catalog.remove([c])
    assert distinct_pairs.marked(db, list(itertools.combinations((a, b, c, d), 2))) == {(a, b), (b, d)}
    catalog.clear()
    assert distinct_pairs.marked(db, [(a, b), (b, d)]) == set()


def beside_an_open_transaction(
    db: Database, write: Callable[[Connection], object], call: Callable[[], object], commit: bool = True
) -> object:
    """Run ``call`` in a thread while another connection holds ``write`` uncommitted, then commit
    (or roll back) that; return what ``call`` returned, or what it raised."""
    first = db.engine.connect()
    transaction = first.begin()
    write(first)
    answers: list[object] = []

    def run() -> None:
        try:
            answers.append(call())
        except BaseException as exc:
            answers.append(exc)

    waiting = threading.Thread(target=run)
    waiting.start()
    time.sleep(0.5)
    assert waiting.is_alive()  # it waits for the other, whose write it cannot see yet
    transaction.commit() if commit else transaction.rollback()
    first.close()
    waiting.join(30)
    return answers[0]


def take_while_another_takes(db: Database, group_id: int, commit: bool) -> Claim | None:
    """Take a group while another connection has taken it and not yet committed (or rolled back)."""
    taking = delete(duplicate_groups).where(duplicate_groups.c.id == group_id)
    claim = beside_an_open_transaction(db, lambda conn: conn.execute(taking), lambda: take(db, group_id), commit)
    assert claim is None or isinstance(claim, Claim), claim
    return claim


def test_one_request_takes_a_duplicate_group_and_a_failed_one_puts_it_back(db: Database) -> None:
    catalog = Catalog(db)
    catalog.add([(c * 64, 1, "", None) for c in "abc"])
    with db.connect() as conn:
        conn.execute(duplicate_groups.insert(), [{"id": 1, "job_id": "scan1", "size": 3, "best": 0.99}])
        rows = [("a", 1.0, True), ("b", 0.99, False), ("c", 0.97, False)]
        conn.execute(
            duplicate_members.insert(),
            [{"group_id": 1, "sha256": c * 64, "similarity": s, "keeper": k} for c, s, k in rows],
        )
    claim = take_while_another_takes(db, 1, commit=False)
    assert claim is not None and take(db, 1) is None  # taken once (the first gave up), then no more
    assert {r["sha256"] for r in claim.members} == {c * 64 for c in "abc"} and claim.group["size"] == 3
    catalog.remove(["c" * 64])  # deleted before the resolution failed
    assert put_back(db, claim)
    with db.connect() as conn:
        assert conn.execute(select(duplicate_groups.c.size, duplicate_groups.c.best)).all() == [(2, 0.99)]
        assert set(conn.scalars(select(duplicate_members.c.sha256))) == {"a" * 64, "b" * 64}
    assert not put_back(db, claim)  # its number is taken again
    assert take_while_another_takes(db, 1, commit=True) is None  # the other took it
    assert put_back(db, claim)
    taken = take(db, 1)
    assert taken is not None
    with db.connect() as conn:
        conn.execute(duplicate_groups.insert(), [{"id": 7, "job_id": "scan2", "size": 2, "best": 0.98}])
    assert not put_back(db, taken)  # a newer scan's groups replaced the list


def test_a_resolution_and_a_deletion_of_its_keeper_take_turns_across_processes(db: Database) -> None:
    # Before, a resolution checked its keeper as another process was deleting it, deleted the rest,
    # and neither was left. The keeper's row decides now: whoever takes it first, the other waits.
    catalog = Catalog(db)
    keep, other = "a" * 64, "b" * 64
    catalog.add([(keep, 1, "", None), (other, 2, "", None)])
    deleting_keeper = delete(images).where(images.c.sha256 == keep)  # a deletion unlists first
    resolving = functools.partial(catalog.unlist, [other], keeping=keep)
    rolled_back = beside_an_open_transaction(db, lambda conn: conn.execute(deleting_keeper), resolving, commit=False)
    assert isinstance(rolled_back, list) and [row["sha256"] for row in rolled_back] == [other]
    catalog.relist(rolled_back)  # as a resolution that failed after it does
    assert catalog.all() == {keep, other}
    deleted = beside_an_open_transaction(db, lambda conn: conn.execute(deleting_keeper), resolving)
    assert isinstance(deleted, NotFound) and keep in deleted.message, deleted
    assert catalog.all() == {other}

    catalog.add([(keep, 1, "", None)])
    paused, go = threading.Event(), threading.Event()

    def pause(*args: object) -> None:  # the resolution holds its keeper and is taking the others
        if str(args[2]).startswith("DELETE FROM images") and not paused.is_set():
            paused.set()
            go.wait(10)

    event.listen(db.engine, "before_cursor_execute", pause)
    taken: list[object] = []
    resolution = threading.Thread(target=lambda: taken.append(resolving()))
    resolution.start()
    assert paused.wait(10)

    def delete_keeper() -> None:
        with db.connect() as conn:
            conn.execute(deleting_keeper)

    deletion = threading.Thread(target=delete_keeper)
    deletion.start()
    time.sleep(0.5)
    assert deletion.is_alive()  # it waits for the resolution
    go.set()
    resolution.join(10)
    deletion.join(10)
    event.remove(db.engine, "before_cursor_execute", pause)
    assert len(taken) == 1 and [row["sha256"] for row in taken[0]] == [other]  # type: ignore[attr-defined]
    assert catalog.all() == set()


def test_a_taken_account_name_is_a_conflict_decided_by_the_database(db: Database) -> None:
    # Before, a name was looked up, then inserted: two admins creating it at once on PostgreSQL
    # could both pass the look-up, and the second got a 500 from the unique index.
    accounts = Accounts(db, PasswordHasher(time_cost=1, memory_cost=8, parallelism=1))
    accounts.users()  # the schema, migrated
    inserting = users.insert().values(name="ada", role=Role.EDITOR, password_hash="x", created_at=0.0)
    answer = beside_an_open_transaction(  # another admin's request has inserted "ada", not yet committed
        db, lambda conn: conn.execute(inserting), lambda: accounts.create_user("ada", Role.VIEWER, "a long password")
    )
    assert isinstance(answer, Conflict) and "exists already" in answer.message, answer
    assert [(u.name, u.role) for u in accounts.users()] == [("ada", Role.EDITOR)]


def test_processes_binding_a_new_library_at_once_agree_on_its_model(db: Database) -> None:
    # The first start of a scaled-out library: every web and worker process binds it at once.
    # Before, on PostgreSQL, one that lost the race got the primary key's error instead of the binding.
    model, other = ModelIdentity("m", "int8", "a" * 64, 1280), ModelIdentity("n", "int8", "b" * 64, 1280)
    binding = ModelBinding(db)
    binding.any_recorded()  # the schema, migrated
    for asked, expected in ((model, "images"), (other, ModelMismatch)):
        answer = beside_an_open_transaction(  # another process is binding the library to `model`
            db,
            lambda conn: ModelBinding._insert(conn, "images", "images", "active", model),
            functools.partial(binding.bind, "images", asked),
        )
        assert answer == expected or (isinstance(expected, type) and isinstance(answer, expected)), answer
        with db.connect() as conn:
            conn.execute(delete(collections))


def test_a_pages_album_list_is_kept_a_few_seconds_unless_this_process_changes_the_catalogue(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    mine, other = Catalog(db), Catalog(db)  # this process's, and another machine's
    mine.add([("a" * 64, 1, "trips/day1", None)])
    assert mine.albums(kept=True) == [("trips", 1), ("trips/day1", 1)]
    other.add([("b" * 64, 2, "cats", None)])
    assert mine.albums(kept=True) == [("trips", 1), ("trips/day1", 1)]  # kept: another's change shows later
    assert mine.albums() == [("cats", 1), ("trips", 1), ("trips/day1", 1)]  # the API's: never kept
    other.add([("c" * 64, 3, "dogs", None)])
    monkeypatch.setattr(Catalog, "ALBUMS_KEPT_SECONDS", 0.0)  # from now on, each list lapses at once
    mine.remove(["a" * 64])  # its own change: the next list is made afresh
    assert mine.albums(kept=True) == [("cats", 1), ("dogs", 1)]
    other.add([("d" * 64, 4, "owls", None)])
    assert mine.albums(kept=True) == [("cats", 1), ("dogs", 1), ("owls", 1)]  # lapsed


def test_the_catalogue_narrows_to_an_album_and_its_sub_albums(db: Database) -> None:
    catalog = Catalog(db)
    albums = ["a_b", "a_b/c", "axb", "a_b2", "100%", "1000", 'q"\\x', ""]
    catalog.add([(f"{i:064x}", i, album, None) for i, album in enumerate(albums)])
    assert catalog.newest(0, 10, "a_b") == [f"{1:064x}", f"{0:064x}"]  # _ is no wildcard
    assert catalog.total("100%") == 1 and catalog.total("a_b/c") == 1 and catalog.total() == 8
    assert catalog.newest(0, 10, 'q"\\x') == [f"{6:064x}"]
    assert dict(catalog.albums()) == {"a_b": 2, "a_b/c": 1, "axb": 1, "a_b2": 1, "100%": 1, "1000": 1, 'q"\\x': 1}


def test_job_states_move_only_along_the_transitions(db: Database) -> None:
    store = JobStore(db)
    job = store.create("folder", "/x", local_owner(), ["a.jpg", "b.jpg"])
    assert job.status == JobStatus.QUEUED and job.total == 2
    assert not store.move(job.id, JobStatus.DONE)  # queued cannot be done
    assert store.move(job.id, JobStatus.RUNNING)
    assert not store.move(job.id, JobStatus.DONE)  # items are still pending
    store.record(job.id, [ItemResult(0, "added", sha256="a" * 64), ItemResult(1, "failed", "broken")])
    assert store.move(job.id, JobStatus.DONE)
    assert not store.move(job.id, JobStatus.QUEUED)  # done is final
    with pytest.raises(Conflict):
        store.request_cancel(job.id)
    with pytest.raises(Conflict):
        store.requeue(job.id, local_owner())


def test_an_item_recorded_twice_counts_once(db: Database) -> None:
    """A redelivered chunk records its items again: only the first record counts."""
    store = JobStore(db)
    job = store.create("folder", "/x", "queue", [f"{i}.jpg" for i in range(3)])
    first = [ItemResult(0, "added", sha256="a" * 64), ItemResult(1, "duplicate", sha256="b" * 64)]
    assert store.record(job.id, first) == 2
    again = [*first, ItemResult(2, "failed", "broken")]
    assert store.record(job.id, again) == 1
    job = store.get(job.id)
    assert (job.processed, job.added, job.duplicates, job.failed) == (3, 1, 1, 1)
    assert store.added_by(job.id, ["a" * 64, "b" * 64]) == {"a" * 64}


def test_queue_jobs_are_never_reported_stale(db: Database) -> None:
    """A job carried by the task queue has no heartbeat: the queue's redelivery keeps it alive."""
    store = JobStore(db)
    local = store.create("folder", "/x", "nobody-here:1")
    queued = store.create("folder", "/y", "queue")
    with db.connect() as conn:
        conn.exec_driver_sql("UPDATE jobs SET heartbeat = 0")
    assert store.get(local.id).status == JobStatus.INTERRUPTED
    assert store.get(queued.id).status == JobStatus.QUEUED


def test_a_stopped_database_is_503_and_recovers(tmp_path: Path, model_dir: Path) -> None:
    server = PostgresServer()
    server.start()
    settings = {"TESTING": True, "DATA_DIR": str(tmp_path / "data"), "MODEL_DIR": str(model_dir)}
    app = create_app({**settings, "DATABASE_URL": server.create_database("recover")})
    client = app.test_client()
    try:
        assert client.get("/api/v1/jobs").status_code == 200
        assert client.get("/api/v1/health/ready").status_code == 200  # the model loaded, as Gunicorn's workers do
        server.stop()
        down = client.get("/api/v1/jobs")
        assert down.status_code == 503 and "database cannot be reached" in down.json["message"]
        page = client.get("/jobs")
        assert page.status_code == 503 and page.mimetype == "text/html"
        ready = client.get("/api/v1/health/ready")
        assert ready.status_code == 503 and not ready.json["database"]["ok"] and ready.json["model"]["ok"]
        server.restart()
        deadline = time.monotonic() + 10
        while (status := client.get("/api/v1/jobs").status_code) != 200 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert status == 200
    finally:
        app.extensions[EXTENSION].close()
        server.remove()


def test_a_connection_whose_server_stops_answering_is_given_up_within_the_answer_timeout(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The server's processes stopped (as by a stalled disk) while its machine still acknowledges
    every packet: before, a statement waited for them as long as they were stopped."""
    monkeypatch.setattr(bounded_waits, "ANSWER_TIMEOUT", 2.0)
    server = PostgresServer()
    server.start()
    url = server.create_database("hung")
    app = create_app({"TESTING": True, "DATA_DIR": str(tmp_path / "data"), "DATABASE_URL": url})
    client = app.test_client()
    db = app.extensions[EXTENSION].database
    postmaster = server.pid()
    stopped: list[int] = []

    def stop_its_processes() -> None:
        # Every process of the server as it is now, backends included, but the postmaster: one
        # stopped even for a moment no longer shuts down. New connections are still served.
        children = subprocess.run(["pgrep", "-P", str(postmaster)], capture_output=True, check=True).stdout
        for pid in map(int, children.split()):
            os.kill(pid, signal.SIGSTOP)
            stopped.append(pid)

    try:
        assert client.get("/api/v1/jobs").status_code == 200
        with pytest.raises(StoreUnavailable, match="the database did not answer within 2 s"):
            with db.connect() as conn:  # a transaction under way as the server stops
                conn.execute(text("SELECT 1"))
                stop_its_processes()
                started = time.monotonic()
                conn.execute(text("SELECT 1"))
        assert time.monotonic() - started < 6
        started = time.monotonic()  # the pool's ping of a connection it holds gives up too, then a new one
        assert client.get("/api/v1/jobs").status_code == 200
        assert time.monotonic() - started < 8
    finally:
        for pid in stopped:
            os.kill(pid, signal.SIGCONT)
        app.extensions[EXTENSION].close()
        server.remove()


def test_a_database_that_never_answers_is_503_within_the_connect_timeout() -> None:
    """A host that accepts the connection and then says nothing (a hung server or proxy): 503, not a wait forever."""
    silent = socket.create_server(("127.0.0.1", 0))
    port = silent.getsockname()[1]
    accepted: list[socket.socket] = []
    threading.Thread(target=lambda: accepted.append(silent.accept()[0]), daemon=True).start()
    db = Database(f"postgresql+psycopg://user:pw@127.0.0.1:{port}/nothing")
    failures: list[BaseException] = []

    def connect() -> None:
        try:
            with db.connect():
                pass
        except BaseException as exc:  # noqa: BLE001 - the test looks at what it was
            failures.append(exc)

    try:
        thread = threading.Thread(target=connect, daemon=True)
        started = time.monotonic()
        thread.start()
        thread.join(CONNECT_TIMEOUT * 3)
        assert not thread.is_alive(), "still waiting for a database that never answers"
        assert accepted, "the test's listener was never reached"
        assert time.monotonic() - started >= CONNECT_TIMEOUT * 0.8
        [failure] = failures
        assert isinstance(failure, StoreUnavailable) and "database cannot be reached" in failure.message
    finally:
        db.dispose()
        silent.close()
        for conn in accepted:
            conn.close()


def within(seconds: float, call: Callable[[], object]) -> object:
    """Return what ``call`` returns or raises, run in a thread; fail if it is still running after ``seconds``."""
    outcome: list[object] = []

    def run() -> None:
        try:
            outcome.append(call())
        except BaseException as exc:  # noqa: BLE001 - the caller looks at what it was
            outcome.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), f"still waiting after {seconds} s"
    return outcome[0]


@pytest.mark.skipif(not CutOffHost.available(), reason="needs root and iproute2 for a network namespace")
def test_a_database_host_gone_from_the_network_is_503_within_the_network_timeout(
    tmp_path: Path, model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A machine powered off or partitioned away acknowledges nothing: a request pinging a pooled
    connection, and a statement in flight, give up after NETWORK_TIMEOUT, not the OS's ~15 minutes."""
    monkeypatch.setattr(database_module, "NETWORK_TIMEOUT", 2.0)
    host = CutOffHost()
    host.start()
    server = PostgresServer(host)
    app = None
    try:
        server.start()
        url = server.create_database("gone")
        settings = {"TESTING": True, "DATA_DIR": str(tmp_path / "data"), "MODEL_DIR": str(model_dir)}
        app = create_app({**settings, "DATABASE_URL": url})
        client = app.test_client()
        assert client.get("/api/v1/jobs").status_code == 200  # a pooled connection, pinged at the next request
        statement = Database(url)

        def sleep_on_the_server() -> None:
            with statement.connect() as conn:
                conn.execute(text("SELECT pg_sleep(60)"))

        in_flight = threading.Thread(target=lambda: failures.append(within(20, sleep_on_the_server)), daemon=True)
        failures: list[object] = []
        in_flight.start()
        time.sleep(1)  # the statement has reached the server
        host.cut()
        started = time.monotonic()
        down = within(20, lambda: client.get("/api/v1/jobs"))
        assert down.status_code == 503 and "database" in down.json["message"], down.json  # type: ignore[attr-defined]
        assert time.monotonic() - started >= 2 * 0.8
        in_flight.join(25)
        [failure] = failures
        assert isinstance(failure, StoreUnavailable) and "database cannot be reached" in failure.message
        host.mend()
        deadline = time.monotonic() + 15
        while (status := client.get("/api/v1/jobs").status_code) != 200 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert status == 200
        statement.dispose()
    finally:
        if app is not None:
            app.extensions[EXTENSION].close()
        server.remove()
        host.remove()


def test_no_free_connection_in_the_pool_is_503(postgres: PostgresServer) -> None:
    db = Database(postgres.create_database("pool"))
    db.upgrade()
    db.engine = create_engine(db.url, pool_size=1, max_overflow=0, pool_timeout=0.2)
    try:
        with db.connect():  # the pool's one connection, held
            with pytest.raises(StoreUnavailable, match="no connection was free"):
                with db.connect():
                    pass
    finally:
        db.dispose()


def test_a_lock_held_too_long_is_503_and_a_stuck_transaction_is_ended(
    postgres: PostgresServer, tmp_path: Path, model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A worker cut off in the middle of a transaction holds its job's row: a request waiting for it
    gets 503 after LOCK_TIMEOUT, and the server ends the stuck session after IDLE_IN_TRANSACTION_TIMEOUT."""
    monkeypatch.setattr(database_module, "LOCK_TIMEOUT", 1.0)
    monkeypatch.setattr(database_module, "IDLE_IN_TRANSACTION_TIMEOUT", 3.0)
    url = postgres.create_database("locks")
    settings = {"TESTING": True, "DATA_DIR": str(tmp_path / "data"), "MODEL_DIR": str(model_dir)}
    app = create_app({**settings, "DATABASE_URL": url})
    client = app.test_client()
    job = app.extensions[EXTENSION].jobs.create("folder", "/x", "queue")
    worker = Database(url)  # the stuck worker's sessions are the app's kind
    stuck = worker.engine.connect()
    answers: list[tuple[int, str]] = []

    def cancel() -> None:
        response = client.delete(f"/api/v1/jobs/{job.id}")
        answers.append((response.status_code, response.json["message" if response.status_code >= 400 else "status"]))

    try:
        stuck.begin()
        stuck.execute(select(jobs.c.id).where(jobs.c.id == job.id).with_for_update())
        waiting = threading.Thread(target=cancel, daemon=True)
        waiting.start()
        waiting.join(20)
        assert not waiting.is_alive(), "still waiting for a row lock that is never released"
        assert answers == [(503, "the database is busy: what this needs stayed locked for 1 s; try again")]
        time.sleep(4)  # the stuck worker stays silent: the server ends its session, and its lock goes
        assert client.delete(f"/api/v1/jobs/{job.id}").json["status"] == "cancelled"
        with pytest.raises(DBAPIError):  # the stuck worker, back, finds its session ended
            stuck.execute(select(jobs.c.id))
    finally:
        stuck.close()
        worker.dispose()
        app.extensions[EXTENSION].close()


def test_a_library_moves_from_sqlite_to_postgresql_and_back_with_every_row(
    tmp_path: Path, model_dir: Path, postgres: PostgresServer
) -> None:
    """`db copy`: accounts, tokens, jobs, albums and which collection holds the library with which
    model all move; a new database would have bound the library afresh (after a reindex, to an
    empty collection) and lost every account."""
    password = "a long password"
    settings = {"TESTING": True, "DATA_DIR": str(tmp_path / "data"), "MODEL_DIR": str(model_dir), "AUTH": "on"}
    laptop = create_app({**settings, "SECRET_KEY": "k"})
    rt = laptop.extensions[EXTENSION]
    rt.accounts.create_user("ada", Role.ADMIN, password)
    secret = rt.accounts.create_token("ada", Role.EDITOR, "script")[1]
    client = laptop.test_client()
    client.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {secret}"
    one, two = noise_images(2, seed=95)
    added = client.post("/api/v1/images", data={"image": (io.BytesIO(one), "a.jpg"), "album": "trips"})
    assert added.status_code == 201, added.json
    job = client.post("/api/v1/jobs", data={"files": [(io.BytesIO(two), "b.jpg")]})
    assert job.status_code == 202, job.json
    assert wait_for_job(client, job.json["url"])["added"] == 1
    with rt.database.connect() as conn:  # a name stored with a NUL before SQLite's names were cleaned
        conn.execute(tokens.update().where(tokens.c.name == "script").values(name="scr\x00ipt"))
    before = _every_row(rt.database)
    url = postgres.create_database("moved")

    copied = laptop.test_cli_runner().invoke(args=["db", "copy", "--to", url])
    assert copied.exit_code == 0, copied.output
    assert "users: 1 rows" in copied.output and "1 values lost a NUL character" in copied.output
    assert "To move the library to it: stop the app and its workers" in copied.output
    again = laptop.test_cli_runner().invoke(args=["db", "copy", "--to", url])
    assert again.exit_code != 0 and "already holds rows" in again.output
    rt.close()

    moved = Database(url)
    after = _every_row(moved)
    before["tokens"] = [tuple(v.replace("\x00", "") if isinstance(v, str) else v for v in r) for r in before["tokens"]]
    assert after == before and after["collections"] and after["images"] and after["job_items"]
    moved.dispose()
    server = create_app({**settings, "SECRET_KEY": "k", "DATABASE_URL": url})
    client = server.test_client()
    client.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {secret}"  # the token still works
    listed = client.get("/api/v1/images")
    assert listed.status_code == 200 and {(i["filename"], i["album"]) for i in listed.json} == {
        ("a.jpg", "trips"),
        ("b.jpg", ""),
    }
    assert [j["id"] for j in client.get("/api/v1/jobs").json] == [job.json["id"]]
    server.extensions[EXTENSION].accounts.create_user("bob", Role.VIEWER, password)  # numbering goes on
    back = server.test_cli_runner().invoke(args=["db", "copy", "--to", sqlite_url(tmp_path / "back.sqlite")])
    assert back.exit_code == 0, back.output
    server.extensions[EXTENSION].close()
    returned = Database(sqlite_url(tmp_path / "back.sqlite"))
    assert {name: len(rows) for name, rows in _every_row(returned).items()} == {
        name: len(rows) + (name == "users") for name, rows in after.items()
    }
    returned.dispose()


def test_a_copy_of_postgresql_is_one_moment_of_it_while_others_write(tmp_path: Path, postgres: PostgresServer) -> None:
    """A copy of a running library (a backup into a SQLite file) reads every table in one snapshot:
    a row written once the copy began is in no table of the copy. PostgreSQL's default isolation
    gives each statement a moment of its own, so tables read later held rows the earlier ones lacked."""
    source = Database(postgres.create_database("snapshot"))
    with source.connect() as conn:
        conn.execute(images.insert().values(sha256="a" * 64, added_at=1, album=""))
    target = Database(sqlite_url(tmp_path / "backup.sqlite"))
    written: list[str] = []

    def meanwhile(line: str) -> None:  # told after each table; the catalogue comes after the first
        if not written:
            with source.connect() as conn:
                conn.execute(images.insert().values(sha256="b" * 64, added_at=2, album=""))
            written.append(line)

    try:
        copied = copy_database(source, target, meanwhile)
        assert written and copied["images"] == 1
        with target.connect() as conn:
            assert list(conn.scalars(select(images.c.sha256))) == ["a" * 64]
    finally:
        source.dispose()
        target.dispose()


def _every_row(db: Database) -> dict[str, list[tuple[object, ...]]]:
    with db.connect() as conn:
        return {
            t.name: sorted(tuple(r) for r in conn.execute(select(t))) for t in database_module.metadata.sorted_tables
        }
