"""The jobs that added an image, found by its id (an image's history names them).

Revision ID: 0012
Revises: 0011
"""

from __future__ import annotations

from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Index the job items by the image each added."""
    op.create_index("job_items_by_image", "job_items", ["sha256"])


def downgrade() -> None:
    """Drop the index."""
    op.drop_index("job_items_by_image", table_name="job_items")
