"""The relational database of jobs and catalogue: SQLite by default, PostgreSQL to scale out."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Connection,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    create_engine,
    event,
    false,
    text,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DataError, DBAPIError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from webapp.errors import InvalidInput, StoreUnavailable
from webapp.services import bounded_waits
from webapp.services.bounded_waits import unbounded

log = logging.getLogger(__name__)

# Seconds to open a PostgreSQL connection (libpq's connect_timeout), the server's greeting included.
# libpq's default is to wait forever: a database host that accepted the connection but never
# answered (a hung server, a stuck proxy) held each request that needed a new connection.
CONNECT_TIMEOUT = 5
# Seconds a PostgreSQL statement may wait for a lock another session holds (lock_timeout), then 503.
# PostgreSQL's default is to wait forever: a request behind a row lock that a stuck worker held
# (a job's row, which every chunk's progress updates) waited with it.
LOCK_TIMEOUT = 10.0
# Seconds a session may sit idle inside a transaction before the server ends it and frees its locks
# (idle_in_transaction_session_timeout). A worker machine cut off or paused in the middle of a
# transaction otherwise holds its locks until the server notices, up to the OS's two-hour keepalive.
# No transaction of the app waits on anything but the database.
IDLE_IN_TRANSACTION_TIMEOUT = 60.0
LOCK_NOT_AVAILABLE = "55P03"  # PostgreSQL's SQLSTATE past lock_timeout
# Seconds the database's host may leave what was sent to it unacknowledged (libpq's
# tcp_user_timeout), or leave a statement in flight without answering TCP keepalives, before the
# connection is dropped and the request answers 503. A host gone from the network (a partition, a
# machine powered off) otherwise held each request that was using or pinging a connection for the
# OS's retransmissions, about 15 minutes. A live server's kernel answers keepalives however long
# a statement runs. Linux only: elsewhere libpq ignores tcp_user_timeout.
NETWORK_TIMEOUT = 10.0
metadata = MetaData()

# The tables as the latest migration leaves them (webapp/migrations/versions): queries use these.
jobs = Table(
    "jobs",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("kind", String(16), nullable=False),
    Column("source", Text, nullable=False),
    Column("status", String(16), nullable=False),
    Column("total", Integer),
    Column("processed", Integer, nullable=False, server_default="0"),
    Column("added", Integer, nullable=False, server_default="0"),
    Column("duplicates", Integer, nullable=False, server_default="0"),
    Column("failed", Integer, nullable=False, server_default="0"),
    Column("created_at", Float, nullable=False),
    Column("started_at", Float),
    Column("finished_at", Float),
    Column("run_started_at", Float),
    Column("run_start_processed", Integer, nullable=False, server_default="0"),
    Column("heartbeat", Float, nullable=False),
    Column("owner", Text, nullable=False),
    Column("cancel_requested", Integer, nullable=False, server_default="0"),
    Column("error", Text),
    Column("album", String(512), nullable=False, server_default=""),
    Column("started_by", String(64), nullable=False, server_default=""),  # the account; "" with access control off
    Index("jobs_by_time", "created_at"),
)
job_items = Table(
    "job_items",
    metadata,
    Column("job_id", String(32), primary_key=True),
    Column("seq", Integer, primary_key=True),
    Column("name", Text, nullable=False),
    Column("state", String(16), nullable=False, server_default="pending"),
    Column("reason", Text),
    Column("sha256", String(64)),
    Column("chunk", Integer, nullable=False, server_default="0"),
    Index("job_items_by_chunk", "job_id", "chunk", "state"),
    Index("job_items_by_image", "sha256"),  # the jobs that added, moved, deleted or restored an image: its history
)
# The closest images of each file a check compared with the library (services/checks.py), best first.
job_matches = Table(
    "job_matches",
    metadata,
    Column("job_id", String(32), primary_key=True),
    Column("seq", Integer, primary_key=True),  # the file's item
    Column("rank", Integer, primary_key=True),  # from 0, the closest
    Column("sha256", String(64), nullable=False),
    Column("score", Float, nullable=False),  # cosine similarity
    Column("same_picture", Boolean, nullable=False),  # one picture with the file, as a scan groups them
)
images = Table(
    "images",
    metadata,
    Column("sha256", String(64), primary_key=True),
    Column("added_at", BigInteger, nullable=False),
    Column("album", String(512), nullable=False, server_default=""),  # "" for none; see services/albums.py
    Column("fingerprint", LargeBinary),  # its layout (services/fingerprints.py); None until a scan makes it
    Column("added_by", String(64), nullable=False, server_default=""),  # the account; "" with access control off
    Index("images_by_time", "added_at"),
    Index("images_by_album", "album"),
    Index("images_by_adder", "added_by", "added_at"),
)
# The near-duplicate groups the last scan found (services/duplicates.py).
duplicate_groups = Table(
    "duplicate_groups",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("job_id", String(32), nullable=False),  # the scan that found it
    Column("size", Integer, nullable=False),
    Column("best", Float, nullable=False),  # the highest similarity of a member to the keeper
    Index("duplicate_groups_by_rank", "size", "best"),
)
duplicate_members = Table(
    "duplicate_members",
    metadata,
    Column("group_id", Integer, ForeignKey("duplicate_groups.id", ondelete="CASCADE"), primary_key=True),
    Column("sha256", String(64), primary_key=True),
    Column("similarity", Float, nullable=False),  # to the group's suggested keeper (1 for the keeper)
    Column("keeper", Boolean, nullable=False, server_default=false()),  # the one the scan suggests keeping
    Index("duplicate_members_by_image", "sha256"),
)
# The pairs of images a person said are not duplicates (services/distinct_pairs.py), first < second.
distinct_pairs = Table(
    "distinct_pairs",
    metadata,
    Column("first", String(64), primary_key=True),
    Column("second", String(64), primary_key=True),
    Column("marked_at", BigInteger, nullable=False),  # milliseconds since the epoch
    Index("distinct_pairs_by_second", "second"),
)

users = Table(
    "users",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(64), nullable=False, unique=True),
    Column("role", String(16), nullable=False),
    Column("password_hash", Text, nullable=False),
    Column("created_at", Float, nullable=False),
    # Changed when the password changes: the sessions opened with the old one end.
    Column("session_epoch", Integer, nullable=False, server_default="0"),
)
tokens = Table(
    "tokens",
    metadata,
    Column("id", String(16), primary_key=True),  # shown in lists; the secret is never stored
    Column("user_id", Integer, ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    Column("name", String(64), nullable=False),
    Column("role", String(16), nullable=False),
    Column("secret_hash", String(64), nullable=False, unique=True),  # SHA-256 of the whole token
    Column("created_at", Float, nullable=False),
    Column("last_used_at", Float),
    Column("revoked_at", Float),
    Column("expires_at", Float),  # None: never
)
collections = Table(
    "collections",
    metadata,
    Column("name", String(255), primary_key=True),  # a Milvus collection
    Column("library", String(255), nullable=False),  # the library (WEBAPP_COLLECTION) it holds the vectors of
    Column("state", String(16), nullable=False),  # active (searched), building (a reindex), retired
    Column("model", String(64), nullable=False),  # the model that embedded its vectors
    Column("variant", String(16), nullable=False),
    Column("model_sha256", String(64), nullable=False),
    Column("dim", Integer, nullable=False),
    Column("created_at", Float, nullable=False),
    Index("collections_by_library", "library", "state"),
)
login_failures = Table(
    "login_failures",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("key", String(160), nullable=False),  # "user:NAME" or "ip:ADDRESS"
    Column("at", Float, nullable=False),
    Index("login_failures_by_key", "key", "at"),
)
# Who changed what, and when: one row per request that changed the library or the accounts
# (services/activity.py), kept ACTIVITY_DAYS.
activity = Table(
    "activity",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("at", Float, nullable=False),
    Column("actor", String(64), nullable=False, server_default=""),  # "" with access control off
    Column("via", String(16), nullable=False),  # session, token, open or anonymous (a sign-in refused)
    Column("address", String(64), nullable=False, server_default=""),  # the client's, after PROXIES
    Column("method", String(8), nullable=False),
    Column("path", Text, nullable=False),  # with its query string
    Column("endpoint", String(128), nullable=False, server_default=""),
    Column("status", Integer, nullable=False),
    Column("request_id", String(64), nullable=False, server_default=""),
    Column("note", Text, nullable=False, server_default=""),  # what the request did, in words
    Index("activity_by_time", "at"),
    Index("activity_by_actor", "actor", "at"),
)
# What each entry names: an image's id, or a job's (services/activity.py), for an image's history.
activity_subjects = Table(
    "activity_subjects",
    metadata,
    Column("subject", String(64), primary_key=True),
    Column("entry_id", Integer, primary_key=True),
    Index("activity_subjects_by_entry", "entry_id"),
)
# Deleted images kept TRASH_DAYS, restorable (services/trash.py): what their record said, and who
# deleted them when. Their files are under STORAGE_DIR/trash.
trash = Table(
    "trash",
    metadata,
    Column("sha256", String(64), primary_key=True),
    Column("filename", Text, nullable=False),
    Column("album", String(512), nullable=False, server_default=""),
    Column("source", Text, nullable=False, server_default=""),
    Column("mime", String(64), nullable=False),
    Column("width", Integer, nullable=False),
    Column("height", Integer, nullable=False),
    Column("added_at", BigInteger, nullable=False),  # milliseconds since the epoch, as the record's
    Column("deleted_at", Float, nullable=False),  # seconds since the epoch
    Column("deleted_by", String(64), nullable=False, server_default=""),  # "" with access control off
    Column("added_by", String(64), nullable=False, server_default=""),  # as the catalogue said
    Column("deleted_in", String(32), nullable=True),  # the deletion job, if one deleted it (undone as one)
    Index("trash_by_time", "deleted_at"),
    Index("trash_by_deletion", "deleted_in", "sha256"),
)
# The image a person chose to show for an album (services/covers.py); without one, its newest.
album_covers = Table(
    "album_covers",
    metadata,
    Column("album", String(512), primary_key=True),  # as the album lists spell it (NFC)
    Column("sha256", String(64), nullable=False),
    Column("set_by", String(64), nullable=False, server_default=""),
    Column("set_at", Float, nullable=False),  # seconds since the epoch
)
# The columns that name an account, which a rename changes (the activity log keeps names as they were).
ACCOUNT_NAMES = (images.c.added_by, trash.c.added_by, trash.c.deleted_by, jobs.c.started_by, album_covers.c.set_by)

# OFFSET past this is past any real list, and past what SQLite and PostgreSQL take as an integer:
# a client's ?page=99999999999999999999 becomes an empty page, not an overflow.
MAX_OFFSET = 2**31 - 1


def page_bounds(offset: int, limit: int) -> tuple[int, int]:
    """Return (offset, limit) within what every database takes."""
    return min(max(offset, 0), MAX_OFFSET), min(max(limit, 0), MAX_OFFSET)


def sqlite_url(path: str | Path) -> str:
    """Return the URL of a SQLite file."""
    return f"sqlite:///{Path(path)}"


class Database:
    """An engine with a connection pool, shared by the threads of one process."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.dialect = url.split(":", 1)[0].split("+", 1)[0]
        if self.dialect == "sqlite":
            Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
            self.engine = _sqlite_engine(url)
        else:
            # pre_ping: a restarted database is reconnected to on the next request, no restart needed.
            self.engine = create_engine(
                url,
                pool_pre_ping=True,
                pool_size=5,
                max_overflow=10,
                pool_timeout=10,
                connect_args=_connect_args(),
            )
            event.listen(self.engine, "do_connect", bounded_waits.connect)
            event.listen(self.engine, "connect", _bound_waits)
        self._upgraded = False

    @contextmanager
    def connect(self) -> Iterator[Connection]:
        """Yield a connection inside one transaction, committed on success."""
        self.upgrade()
        with self._unavailable_as_503(), self.engine.begin() as conn:
            yield conn

    def upgrade(self) -> None:
        """Bring the schema to the latest migration, once per process (a lock serialises processes)."""
        if self._upgraded:
            return
        from webapp.migrations import upgrade

        # A migration's statements (an index on a big table) and the wait for another process's
        # migration may take longer than any answer is otherwise given (bounded_waits.py).
        with self._unavailable_as_503(), self.engine.begin() as conn, unbounded(conn.connection.dbapi_connection):
            if self.dialect == "postgresql":  # several web and worker processes may start at once
                # Wait for another process's migration however long it takes; the migration's own
                # statements then wait for locks no longer than any other statement.
                conn.execute(text("SET LOCAL lock_timeout = 0"))
                conn.execute(text("SELECT pg_advisory_xact_lock(724311)"))
                conn.execute(text(f"SET LOCAL lock_timeout = {round(LOCK_TIMEOUT * 1000)}"))
            upgrade(conn)
        self._upgraded = True

    def insert_ignoring_duplicates(self, table: Table) -> Any:
        """Return an INSERT that skips rows whose primary key exists (both dialects spell it alike)."""
        dialect = postgresql if self.dialect == "postgresql" else sqlite
        return dialect.insert(table).on_conflict_do_nothing()

    def dispose(self) -> None:
        """Close the pool's connections (after a fork, or at exit)."""
        self.engine.dispose()

    @contextmanager
    def _unavailable_as_503(self) -> Iterator[None]:
        try:
            yield
        except OperationalError as exc:
            if getattr(exc.orig, "sqlstate", None) == LOCK_NOT_AVAILABLE:  # waited LOCK_TIMEOUT
                raise StoreUnavailable(
                    f"the database is busy: what this needs stayed locked for {LOCK_TIMEOUT:g} s; try again"
                ) from exc
            raise StoreUnavailable(f"the database cannot be reached ({first_line(exc)}); try again") from exc
        except PoolTimeout as exc:  # every pooled connection is in use, for pool_timeout seconds
            raise StoreUnavailable("the database is busy: no connection was free in time; try again") from exc
        except DataError as exc:
            # PostgreSQL's text holds no NUL, which SQLite takes: a client's name with one (a login,
            # a token's name) was a 500 there. The transaction is rolled back: nothing is stored.
            if "NUL" in str(exc.orig):
                raise InvalidInput("text with a NUL character (\\0) cannot be stored; remove it") from exc
            raise
        except DBAPIError as exc:
            if exc.connection_invalidated:
                raise StoreUnavailable(f"the database connection was lost ({first_line(exc)}); try again") from exc
            raise


def _connect_args() -> dict[str, int]:
    """libpq's socket settings: client-side only, so a PgBouncer in between accepts them."""
    return {
        "connect_timeout": CONNECT_TIMEOUT,
        "tcp_user_timeout": round(NETWORK_TIMEOUT * 1000),
        "keepalives": 1,
        # First probe after half the bound idle; the user timeout ends the connection, not the count.
        "keepalives_idle": max(1, round(NETWORK_TIMEOUT / 2)),
        "keepalives_interval": max(1, round(NETWORK_TIMEOUT / 4)),
        "keepalives_count": 3,
    }


def _bound_waits(dbapi_connection: Any, _record: Any) -> None:
    """Set a new PostgreSQL session's LOCK_TIMEOUT and IDLE_IN_TRANSACTION_TIMEOUT.

    With SET, not libpq's ``options``: a PgBouncer refuses a connection that sends options.
    """
    with dbapi_connection.cursor() as cursor:
        cursor.execute(f"SET lock_timeout = {round(LOCK_TIMEOUT * 1000)}")
        cursor.execute(f"SET idle_in_transaction_session_timeout = {round(IDLE_IN_TRANSACTION_TIMEOUT * 1000)}")
    dbapi_connection.commit()  # a SET in a transaction rolled back would be undone


def first_line(exc: DBAPIError) -> str:
    """Return the first line of a driver's error, without SQLAlchemy's statement and link."""
    return str(exc.orig).strip().splitlines()[0] if exc.orig is not None else type(exc).__name__


def _sqlite_engine(url: str) -> Engine:
    """Open SQLite in WAL mode, taking the write lock when a transaction begins.

    pysqlite's deferred BEGIN lets two writers read and then fail at once with "database is
    locked" when both try to write; BEGIN IMMEDIATE makes the second wait (``timeout``) instead.
    This is SQLAlchemy's documented recipe for pysqlite, and the only place SQLite differs.
    """
    engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # let the "begin" hook below emit BEGIN
        dbapi_conn.execute("PRAGMA journal_mode=WAL")
        dbapi_conn.execute("PRAGMA synchronous=NORMAL")

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE")

    return engine
