"""The closest images of each file a check compared with the library (services/checks.py).

Revision ID: 0015
Revises: 0014
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """No check ran before: an empty table."""
    op.create_table(
        "job_matches",
        sa.Column("job_id", sa.String(32), primary_key=True),
        sa.Column("seq", sa.Integer, primary_key=True),
        sa.Column("rank", sa.Integer, primary_key=True),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("score", sa.Float, nullable=False),
        sa.Column("same_picture", sa.Boolean, nullable=False),
    )


def downgrade() -> None:
    """Forget what the checks found."""
    op.drop_table("job_matches")
