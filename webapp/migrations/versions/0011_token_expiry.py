"""When an API token stops working by itself (None: never, as every token before).

Revision ID: 0011
Revises: 0010
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Tokens of earlier releases never expire."""
    with op.batch_alter_table("tokens") as batch:
        batch.add_column(sa.Column("expires_at", sa.Float, nullable=True))


def downgrade() -> None:
    """Forget the expiries: every token works until it is revoked."""
    with op.batch_alter_table("tokens") as batch:
        batch.drop_column("expires_at")
