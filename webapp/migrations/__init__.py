"""Alembic migrations of the jobs and catalogue schema; ``upgrade`` applies them in-process."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import Connection

HERE = Path(__file__).resolve().parent


def config(connection: Connection | None = None) -> object:
    """Return an Alembic configuration for this folder, bound to ``connection`` when given."""
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(HERE))
    cfg.attributes["connection"] = connection
    return cfg


def upgrade(connection: Connection, revision: str = "head") -> None:
    """Apply the migrations up to ``revision`` on ``connection`` (inside its transaction)."""
    from alembic import command

    command.upgrade(config(connection), revision)  # type: ignore[arg-type]


def current(connection: Connection) -> str | None:
    """Return the revision the database is at (None: never migrated)."""
    from alembic.runtime.migration import MigrationContext

    return MigrationContext.configure(connection).get_current_revision()
