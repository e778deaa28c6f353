"""Jobs split into chunks that workers on any machine take from the task queue.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None
CHUNK = 256  # the chunk size of the release that added chunks (webapp.services.units.CHUNK)


def upgrade() -> None:
    """Number every job item's chunk (seq // 256 for the items of earlier jobs) and index it."""
    with op.batch_alter_table("job_items") as batch:
        batch.add_column(sa.Column("chunk", sa.Integer, nullable=False, server_default="0"))
    op.execute(sa.text(f"UPDATE job_items SET chunk = seq / {CHUNK}"))
    op.create_index("job_items_by_chunk", "job_items", ["job_id", "chunk", "state"])


def downgrade() -> None:
    """Drop the chunk numbers."""
    op.drop_index("job_items_by_chunk", "job_items")
    with op.batch_alter_table("job_items") as batch:
        batch.drop_column("chunk")
