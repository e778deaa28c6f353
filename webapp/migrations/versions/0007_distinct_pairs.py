"""The pairs of images a person said are not duplicates (services/distinct_pairs.py).

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """None yet: every group of the last scan stays as it is."""
    op.create_table(
        "distinct_pairs",
        sa.Column("first", sa.String(64), primary_key=True),
        sa.Column("second", sa.String(64), primary_key=True),
        sa.Column("marked_at", sa.BigInteger, nullable=False),
    )
    op.create_index("distinct_pairs_by_second", "distinct_pairs", ["second"])


def downgrade() -> None:
    """Forget them: the next scan groups those images again."""
    op.drop_index("distinct_pairs_by_second", "distinct_pairs")
    op.drop_table("distinct_pairs")
