"""A person's review of the near-duplicate groups a scan found (services/duplicates.py): keep one
image of a group and delete the others, keep them all (not copies), or take one out (not a copy).

Each action takes the group out of the list first (services/group_claims.py), so one request at a
time acts on it, and puts back what is left if it fails. The pairs a person says are not copies
are kept apart (services/distinct_pairs.py): no later scan groups them again, until they are
forgotten.
"""

from __future__ import annotations

from collections.abc import Collection

from webapp.errors import Conflict, InvalidInput
from webapp.services import distinct_pairs
from webapp.services.duplicates import Duplicates, Group
from webapp.services.group_claims import Claim, put_back, take
from webapp.services.records import Record


class Review:
    """What a person decides about the groups of the last scan."""

    def __init__(self, finder: Duplicates) -> None:
        self.finder = finder
        self.db = finder.db

    def kept_apart(self) -> int:
        """Return how many pairs of images were kept apart (``keep_all``, ``take_out``)."""
        return distinct_pairs.count(self.db)

    def group_again(self) -> int:
        """Forget every pair kept apart, so that the next scan groups them again; return how many."""
        return distinct_pairs.forget(self.db)

    def resolve(self, group_id: int, keep: str, shown: Collection[str] | None = None, by: str = "") -> list[Record]:
        """Keep one image of a group and delete the others (into the trash, deleted ``by`` an account).

        ``shown``, if given, are the images the person was shown as the ones to delete: if the
        group holds another (a newer scan reused the group's number), nothing is deleted.
        """
        group = self.finder.whole(group_id)
        if keep not in {m.record.sha256 for m in group.members}:
            raise InvalidInput(f"image {keep} is not in duplicate group {group_id}")
        others = [m.record for m in group.members if m.record.sha256 != keep]
        if shown is not None and any(r.sha256 not in shown for r in others):
            raise _changed(group_id)
        claim = self._take(group_id, {m.record.sha256 for m in group.members})
        try:
            return self.finder.library.delete_keeping(keep, others, by)
        except BaseException:
            put_back(self.db, claim)
            raise

    def keep_all(self, group_id: int, shown: Collection[str] | None = None) -> list[Record]:
        """Keep every image of a group: mark each pair of them as not duplicates, so that no later scan
        groups them again, and take the group out of the list; return its images.

        ``shown``, if given, are the images the person was shown: if the group holds others (a
        newer scan reused its number), nothing is marked.
        """
        members = [m.record for m in self.finder.whole(group_id).members]
        if shown is not None and {r.sha256 for r in members} - set(shown):
            raise _changed(group_id)
        claim = self._take(group_id, {r.sha256 for r in members})
        try:
            distinct_pairs.mark(self.db, distinct_pairs.every_pair(row["sha256"] for row in claim.members))
        except BaseException:
            put_back(self.db, claim)
            raise
        return members

    def take_out(self, group_id: int, image: str, shown: Collection[str] | None = None) -> Group | None:
        """Take one image out of a group: it is not a copy of the others, and no later scan groups
        it with any of them. Return the group left, re-ranked (a new keeper if the keeper went), or
        None if one image is left. ``shown`` as for ``keep_all``.
        """
        members = {m.record.sha256 for m in self.finder.whole(group_id).members}
        if image not in members:
            raise InvalidInput(f"image {image} is not in duplicate group {group_id}")
        if shown is not None and members - set(shown):
            raise _changed(group_id)
        claim = self._take(group_id, members)
        left = {row["sha256"] for row in claim.members} - {image}
        try:
            distinct_pairs.mark(self.db, ((image, other) for other in left))
            ranked = self.finder.rank([left], self.finder.library.vectors) if len(left) > 1 else []
        except BaseException:
            put_back(self.db, claim)
            raise
        if not ranked:
            return None
        order, sims = ranked[0]
        rows = [
            {"group_id": group_id, "sha256": sha, "similarity": sim, "keeper": i == 0}
            for i, (sha, sim) in enumerate(zip(order, sims, strict=True))
        ]
        return self.finder.group(group_id) if put_back(self.db, claim, rows) else None

    def _take(self, group_id: int, members: set[str]) -> Claim:
        """Take a group out of the list (group_claims), or raise Conflict if another request did, or
        a newer scan put other images under its number."""
        claim = take(self.db, group_id)
        if claim is None:
            raise Conflict(f"duplicate group {group_id} is being resolved by another request, or was just resolved")
        if {row["sha256"] for row in claim.members} - members:
            put_back(self.db, claim)
            raise Conflict(f"duplicate group {group_id} changed as it was resolved (a newer scan): review it again")
        return claim


def _changed(group_id: int) -> Conflict:
    return Conflict(f"duplicate group {group_id} changed since it was shown (a newer scan): review it again")
