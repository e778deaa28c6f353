"""Who added each image, and who started each job (the account; "" with access control off).

Revision ID: 0010
Revises: 0009
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

TABLES = {"images": "added_by", "trash": "added_by", "jobs": "started_by"}


def upgrade() -> None:
    """Images and jobs of earlier releases name nobody. The library lists an account's images."""
    for table, column in TABLES.items():
        with op.batch_alter_table(table) as batch:
            batch.add_column(sa.Column(column, sa.String(64), nullable=False, server_default=""))
    op.create_index("images_by_adder", "images", ["added_by", "added_at"])


def downgrade() -> None:
    """Forget who added and started what."""
    op.drop_index("images_by_adder", "images")
    for table, column in TABLES.items():
        with op.batch_alter_table(table) as batch:
            batch.drop_column(column)
