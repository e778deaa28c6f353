"""Albums in the catalogue, and the near-duplicate groups a scan finds.

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Images of earlier releases have no album ("")."""
    with op.batch_alter_table("images") as batch:
        batch.add_column(sa.Column("album", sa.String(512), nullable=False, server_default=""))
    op.create_index("images_by_album", "images", ["album"])
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("album", sa.String(512), nullable=False, server_default=""))
    op.create_table(
        "duplicate_groups",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("job_id", sa.String(32), nullable=False),
        sa.Column("size", sa.Integer, nullable=False),
        sa.Column("best", sa.Float, nullable=False),
    )
    op.create_index("duplicate_groups_by_rank", "duplicate_groups", ["size", "best"])
    op.create_table(
        "duplicate_members",
        sa.Column(
            "group_id",
            sa.Integer,
            sa.ForeignKey("duplicate_groups.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("sha256", sa.String(64), primary_key=True),
        sa.Column("similarity", sa.Float, nullable=False),
        sa.Column("keeper", sa.Boolean, nullable=False, server_default=sa.false()),
    )
    op.create_index("duplicate_members_by_image", "duplicate_members", ["sha256"])


def downgrade() -> None:
    """Drop the groups and the albums."""
    op.drop_index("duplicate_members_by_image", "duplicate_members")
    op.drop_table("duplicate_members")
    op.drop_index("duplicate_groups_by_rank", "duplicate_groups")
    op.drop_table("duplicate_groups")
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("album")
    op.drop_index("images_by_album", "images")
    with op.batch_alter_table("images") as batch:
        batch.drop_column("album")
