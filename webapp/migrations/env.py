"""Alembic's environment: migrations run on the connection the app hands over (never a URL here)."""

from __future__ import annotations

from alembic import context

from webapp.services.database import metadata

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations with `flask --app wsgi db upgrade` (it brings the app's connection)")
# render_as_batch: SQLite alters tables by copying them; Alembic's batch mode does that for us.
context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
