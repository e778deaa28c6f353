"""The image a person chose as an album's cover (services/covers.py).

Revision ID: 0016
Revises: 0015
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """No cover was chosen before: an empty table (each album shows its newest image)."""
    op.create_table(
        "album_covers",
        sa.Column("album", sa.String(512), primary_key=True),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("set_by", sa.String(64), nullable=False, server_default=""),
        sa.Column("set_at", sa.Float, nullable=False),
    )


def downgrade() -> None:
    """Forget the chosen covers."""
    op.drop_table("album_covers")
