"""Resolving a near-duplicate group takes it out of the list first, so one request resolves it.

Two people who each keep a different image of the same group at the same moment would otherwise
each delete the image the other kept, and the whole group would be gone (it happened: two
concurrent requests, both answered 200). Taking the group is one conditional delete of its row in
the database, so it holds across threads, processes and machines: the second request finds no
row and is refused. If the resolution then fails part way (a store unavailable), what is left of
the group is put back, unless a newer scan has replaced the groups meanwhile.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, func, select

from webapp.services.database import Database, duplicate_groups, duplicate_members, images


@dataclass(frozen=True)
class Claim:
    """A group taken out of the list to be resolved: its row and its members' rows, to put back."""

    group: dict[str, Any]
    members: list[dict[str, Any]]


def take(db: Database, group_id: int) -> Claim | None:
    """Take a group out of the list; return None if another request took it first (or it is gone)."""
    with db.connect() as conn:
        head = conn.execute(select(duplicate_groups).where(duplicate_groups.c.id == group_id)).mappings().first()
        members = conn.execute(select(duplicate_members).where(duplicate_members.c.group_id == group_id)).mappings()
        rows = [dict(row) for row in members]
        conn.execute(delete(duplicate_members).where(duplicate_members.c.group_id == group_id))
        taken = conn.execute(delete(duplicate_groups).where(duplicate_groups.c.id == group_id)).rowcount
    return Claim(dict(head), rows) if head is not None and taken == 1 else None


def put_back(db: Database, claim: Claim, members: list[dict[str, Any]] | None = None) -> bool:
    """Return what is left of a group whose resolution failed to the list, or the group ``members``
    make now (one image taken out of it); tell whether it went back.

    Only its images still in the catalogue go back, and only while the groups are still those of
    the scan that found it, with its id free: a group of fewer than two images is no group.
    """
    group = claim.group
    with db.connect() as conn:
        newer = select(func.count()).where(duplicate_groups.c.job_id != group["job_id"])
        if conn.scalar(newer) or conn.scalar(select(func.count()).where(duplicate_groups.c.id == group["id"])):
            return False
        rows = claim.members if members is None else members
        shas = [row["sha256"] for row in rows]
        present = set(conn.scalars(select(images.c.sha256).where(images.c.sha256.in_(shas))))
        left = [row for row in rows if row["sha256"] in present]
        if len(left) < 2:
            return False
        best = max((row["similarity"] for row in left if not row["keeper"]), default=group["best"])
        conn.execute(duplicate_groups.insert(), [{**group, "size": len(left), "best": best}])
        conn.execute(duplicate_members.insert(), left)
    return True
