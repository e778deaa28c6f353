"""Each image's fingerprint (its layout: services/fingerprints.py), for the duplicate scan.

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Images of earlier releases have none: a scan makes theirs from their files, once."""
    with op.batch_alter_table("images") as batch:
        batch.add_column(sa.Column("fingerprint", sa.LargeBinary(16), nullable=True))


def downgrade() -> None:
    """Drop the fingerprints."""
    with op.batch_alter_table("images") as batch:
        batch.drop_column("fingerprint")
