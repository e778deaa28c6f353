"""What each activity entry names (an image's id, a job's), so an image's history is an index read.

Until this revision an image's history scanned the whole log with LIKE (0.6-0.9 s over a million
entries). The entries already written are read once here, in batches, to fill the new table.

Revision ID: 0013
Revises: 0012
"""

from __future__ import annotations

import re

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

# As services/activity.py reads them at this revision (a migration keeps its own copy).
IMAGE_ID = re.compile(r"(?<![0-9a-f])[0-9a-f]{64}(?![0-9a-f])")
JOB_IN_NOTE = re.compile(r"\bjob ([0-9a-f]{32})\b")
JOB_IN_PATH = re.compile(r"/jobs/([0-9a-f]{32})(?![0-9a-f])")
BATCH = 5000


def upgrade() -> None:
    """Create the table and fill it from the entries written so far."""
    subjects = op.create_table(
        "activity_subjects",
        sa.Column("subject", sa.String(64), primary_key=True),
        sa.Column("entry_id", sa.Integer, primary_key=True),
    )
    op.create_index("activity_subjects_by_entry", "activity_subjects", ["entry_id"])
    activity = sa.table("activity", sa.column("id", sa.Integer), sa.column("path"), sa.column("note"))
    conn, after = op.get_bind(), -1
    while True:
        query = sa.select(activity).where(activity.c.id > after).order_by(activity.c.id).limit(BATCH)
        rows = conn.execute(query).all()
        if not rows:
            return
        named = [
            {"subject": subject, "entry_id": row.id}
            for row in rows
            for subject in {
                *IMAGE_ID.findall(row.path),
                *IMAGE_ID.findall(row.note),
                *JOB_IN_NOTE.findall(row.note),
                *JOB_IN_PATH.findall(row.path),
            }
        ]
        if named:
            conn.execute(subjects.insert(), named)
        after = rows[-1].id


def downgrade() -> None:
    """Drop the table: a history scans the log again."""
    op.drop_index("activity_subjects_by_entry", table_name="activity_subjects")
    op.drop_table("activity_subjects")
