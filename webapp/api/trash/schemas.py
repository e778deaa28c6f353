"""What the trash's images look like in the API."""

from __future__ import annotations

import marshmallow as ma

from webapp.api.common import Timestamp, UrlFor
from webapp.api.images.schemas import ImageEntrySchema


class TrashedSchema(ImageEntrySchema):
    """A deleted image in the trash: its record as it was, who deleted it, when it goes for good.

    Its ``url``, ``thumbnail_url`` and ``page_url`` are where it will be once restored.
    """

    deleted_at = Timestamp(metadata={"description": "When it was deleted (UTC)."})
    deleted_by = ma.fields.String(
        metadata={"description": "The account that deleted it; empty with access control off."}
    )
    expires_at = Timestamp(metadata={"description": "When it leaves the trash for good (UTC), unless restored first."})
    trash_url = UrlFor("trash.TrashedImage", "image_id", "sha256", metadata={"description": "Its path in the trash."})
    trash_thumbnail_url = UrlFor(
        "trash.TrashedThumbnail", "image_id", "sha256", metadata={"description": "Its JPEG thumbnail in the trash."}
    )


class EmptyArgsSchema(ma.Schema):
    """The confirmation needed to empty the trash."""

    confirm = ma.fields.Integer(
        required=True,
        metadata={"description": "The current number of images in the trash, as a deliberate confirmation."},
    )


class EmptiedSchema(ma.Schema):
    """What emptying the trash removed."""

    removed = ma.fields.Integer(metadata={"description": "How many images left the trash for good."})
