"""Which deletion job put each image in the trash, so undoing the job restores them all.

Revision ID: 0014
Revises: 0013
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Images deleted before name no job: they are restored one by one, as before."""
    with op.batch_alter_table("trash") as batch:
        batch.add_column(sa.Column("deleted_in", sa.String(32), nullable=True))
    op.create_index("trash_by_deletion", "trash", ["deleted_in", "sha256"])


def downgrade() -> None:
    """Forget which job deleted what."""
    op.drop_index("trash_by_deletion", "trash")
    with op.batch_alter_table("trash") as batch:
        batch.drop_column("deleted_in")
