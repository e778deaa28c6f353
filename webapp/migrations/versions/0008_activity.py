"""The activity log: who changed what in the library, and when (services/activity.py).

Revision ID: 0008
Revises: 0007
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """An empty log: what happened before it existed is not known."""
    op.create_table(
        "activity",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("at", sa.Float, nullable=False),
        sa.Column("actor", sa.String(64), nullable=False, server_default=""),
        sa.Column("via", sa.String(16), nullable=False),
        sa.Column("address", sa.String(64), nullable=False, server_default=""),
        sa.Column("method", sa.String(8), nullable=False),
        sa.Column("path", sa.Text, nullable=False),
        sa.Column("endpoint", sa.String(128), nullable=False, server_default=""),
        sa.Column("status", sa.Integer, nullable=False),
        sa.Column("request_id", sa.String(64), nullable=False, server_default=""),
        sa.Column("note", sa.Text, nullable=False, server_default=""),
    )
    op.create_index("activity_by_time", "activity", ["at"])
    op.create_index("activity_by_actor", "activity", ["actor", "at"])


def downgrade() -> None:
    """Forget the log."""
    op.drop_index("activity_by_actor", "activity")
    op.drop_index("activity_by_time", "activity")
    op.drop_table("activity")
