"""The trash: deleted images kept a while, restorable (services/trash.py).

Revision ID: 0009
Revises: 0008
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """An empty trash: what was deleted before it existed is gone."""
    op.create_table(
        "trash",
        sa.Column("sha256", sa.String(64), primary_key=True),
        sa.Column("filename", sa.Text, nullable=False),
        sa.Column("album", sa.String(512), nullable=False, server_default=""),
        sa.Column("source", sa.Text, nullable=False, server_default=""),
        sa.Column("mime", sa.String(64), nullable=False),
        sa.Column("width", sa.Integer, nullable=False),
        sa.Column("height", sa.Integer, nullable=False),
        sa.Column("added_at", sa.BigInteger, nullable=False),
        sa.Column("deleted_at", sa.Float, nullable=False),
        sa.Column("deleted_by", sa.String(64), nullable=False, server_default=""),
    )
    op.create_index("trash_by_time", "trash", ["deleted_at"])


def downgrade() -> None:
    """Forget what the trash holds (its files stay under STORAGE_DIR/trash)."""
    op.drop_index("trash_by_time", "trash")
    op.drop_table("trash")
