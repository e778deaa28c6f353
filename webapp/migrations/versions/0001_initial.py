"""The schema the SQLite-only releases created: jobs, job items and the catalogue.

A library made by those releases already has these tables (without Alembic's version table):
they are kept as they are, with their rows, and only the missing ones are created.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Create the jobs, job_items and images tables where missing."""
    existing = set(sa.inspect(op.get_bind()).get_table_names())
    if "jobs" not in existing:
        op.create_table(
            "jobs",
            sa.Column("id", sa.String(32), primary_key=True),
            sa.Column("kind", sa.String(16), nullable=False),
            sa.Column("source", sa.Text, nullable=False),
            sa.Column("status", sa.String(16), nullable=False),
            sa.Column("total", sa.Integer),
            sa.Column("processed", sa.Integer, nullable=False, server_default="0"),
            sa.Column("added", sa.Integer, nullable=False, server_default="0"),
            sa.Column("duplicates", sa.Integer, nullable=False, server_default="0"),
            sa.Column("failed", sa.Integer, nullable=False, server_default="0"),
            sa.Column("created_at", sa.Float, nullable=False),
            sa.Column("started_at", sa.Float),
            sa.Column("finished_at", sa.Float),
            sa.Column("run_started_at", sa.Float),
            sa.Column("run_start_processed", sa.Integer, nullable=False, server_default="0"),
            sa.Column("heartbeat", sa.Float, nullable=False),
            sa.Column("owner", sa.Text, nullable=False),
            sa.Column("cancel_requested", sa.Integer, nullable=False, server_default="0"),
            sa.Column("error", sa.Text),
        )
        op.create_index("jobs_by_time", "jobs", ["created_at"])
    if "job_items" not in existing:
        op.create_table(
            "job_items",
            sa.Column("job_id", sa.String(32), primary_key=True),
            sa.Column("seq", sa.Integer, primary_key=True),
            sa.Column("name", sa.Text, nullable=False),
            sa.Column("state", sa.String(16), nullable=False, server_default="pending"),
            sa.Column("reason", sa.Text),
            sa.Column("sha256", sa.String(64)),
        )
    if "images" not in existing:
        op.create_table(
            "images",
            sa.Column("sha256", sa.String(64), primary_key=True),
            sa.Column("added_at", sa.BigInteger, nullable=False),
        )
        op.create_index("images_by_time", "images", ["added_at"])


def downgrade() -> None:
    """Drop the three tables."""
    for table in ("images", "job_items", "jobs"):
        op.drop_table(table)
