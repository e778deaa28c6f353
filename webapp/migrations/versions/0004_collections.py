"""Which model each collection was embedded with (a library is bound to its model).

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Create the table; a collection of an earlier release is bound to the model that opens it first."""
    op.create_table(
        "collections",
        sa.Column("name", sa.String(255), primary_key=True),
        sa.Column("library", sa.String(255), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("model", sa.String(64), nullable=False),
        sa.Column("variant", sa.String(16), nullable=False),
        sa.Column("model_sha256", sa.String(64), nullable=False),
        sa.Column("dim", sa.Integer, nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
    )
    op.create_index("collections_by_library", "collections", ["library", "state"])


def downgrade() -> None:
    """Forget the bindings."""
    op.drop_index("collections_by_library", "collections")
    op.drop_table("collections")
