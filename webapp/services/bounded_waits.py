"""PostgreSQL connections that stop waiting for an answer after ANSWER_TIMEOUT seconds.

libpq, and psycopg with it, waits for a statement's answer as long as it takes. A server that is up
but does not answer (its processes stopped or hung, its disk stalled) while its machine still
acknowledges packets and keepalives held every request that was using a connection: once all of a
worker's threads were held, the worker answered nothing, its liveness included, until the server
came back. Server-side bounds (lock_timeout, statement_timeout) need a server that runs.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
from psycopg import errors

# Seconds a statement (or a commit, a fetch, a ping) may wait for the server's answer, then 503.
# Above every statement the app makes at the library sizes it is built for, and below Gunicorn's
# worker timeout. The migrations' lock wait is exempt (services/database.py).
ANSWER_TIMEOUT = 30.0


class BoundedConnection(psycopg.Connection[Any]):
    """A psycopg connection that gives up on an answer after ``answer_timeout`` seconds, and closes."""

    answer_timeout: float | None = None  # set when connected: ANSWER_TIMEOUT as it is then

    def wait(self, gen: Any, interval: float = 0.1, timeout: float | None = None) -> Any:
        """Wait as psycopg does, for at most ``answer_timeout`` seconds unless the caller bounds it."""
        bound = self.answer_timeout if timeout is None else timeout
        try:
            return super().wait(gen, interval, bound)
        except errors._WaitTimeout:
            # The statement may still run in the server: this connection cannot carry another one.
            # Closed, it reads as broken to SQLAlchemy, which drops it from the pool.
            self.pgconn.finish()
            raise psycopg.OperationalError(f"the database did not answer within {bound:g} s") from None


def connect(_dialect: Any, _record: Any, cargs: Any, cparams: Any) -> BoundedConnection:
    """Open a bounded connection where SQLAlchemy would open a plain one (its ``do_connect`` event)."""
    connection = BoundedConnection.connect(*cargs, **cparams)
    connection.answer_timeout = ANSWER_TIMEOUT
    return connection


@contextmanager
def unbounded(dbapi_connection: Any) -> Iterator[None]:
    """Let a bounded connection wait for answers as long as the server takes, inside the block."""
    if not isinstance(dbapi_connection, BoundedConnection):
        yield  # SQLite's
        return
    bound, dbapi_connection.answer_timeout = dbapi_connection.answer_timeout, None
    try:
        yield
    finally:
        dbapi_connection.answer_timeout = bound
