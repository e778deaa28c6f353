"""What the trash's images look like in the API."""

from __future__ import annotations

import marshmallow as ma

from webapp.api.common import BoundedList, ImageId, Timestamp, UrlFor
from webapp.api.images.schemas import ImageEntrySchema, ImageSchema
from webapp.services.trash import MAX_RESTORED


class TrashedSchema(ImageEntrySchema):
    """A deleted image in the trash: its record as it was, who deleted it, when it goes for good.

    Its ``url``, ``thumbnail_url`` and ``page_url`` are where it will be once restored.
    """

    deleted_at = Timestamp(metadata={"description": "When it was deleted (UTC)."})
    deleted_by = ma.fields.String(
        metadata={"description": "The account that deleted it; empty with access control off."}
    )
    expires_at = Timestamp(metadata={"description": "When it leaves the trash for good (UTC), unless restored first."})
    deleted_in = ma.fields.String(
        allow_none=True,
        metadata={
            "description": "The deletion job that deleted it (an album's deletion, or a load undone), whose undo "
            "restores it; null if it was deleted by hand."
        },
    )
    restorable = ma.fields.Function(
        lambda item: not item.lost,
        metadata={
            "description": "False if its original is gone from the trash's storage (a disk or a backup lost it): "
            "it can only be removed (`flask check --repair` removes such images)."
        },
    )
    trash_url = UrlFor("trash.TrashedImage", "image_id", "sha256", metadata={"description": "Its path in the trash."})
    trash_thumbnail_url = UrlFor(
        "trash.TrashedThumbnail", "image_id", "sha256", metadata={"description": "Its JPEG thumbnail in the trash."}
    )


class RestoreSchema(ma.Schema):
    """Deleted images to put back in the library."""

    ids = BoundedList(
        ImageId(),
        max_items=MAX_RESTORED,
        min_items=1,
        required=True,
        metadata={"description": f"The ids of the images to restore (1-{MAX_RESTORED})."},
    )


class FailedSchema(ma.Schema):
    """An image that could not be restored, and why."""

    id = ma.fields.String(metadata={"description": "Its id."})
    reason = ma.fields.String(metadata={"description": "Why it could not be added; it stays in the trash."})


class RestoredSchema(ma.Schema):
    """What restoring images did."""

    images = ma.fields.List(
        ma.fields.Nested(ImageSchema),
        metadata={"description": "The images in the library again (or added again meanwhile)."},
    )
    missing = ma.fields.List(
        ma.fields.String(), metadata={"description": "Ids not in the trash (restored, removed or expired)."}
    )
    failed = ma.fields.List(ma.fields.Nested(FailedSchema), metadata={"description": "Images that stay in the trash."})


class EmptyArgsSchema(ma.Schema):
    """The confirmation needed to empty the trash."""

    confirm = ma.fields.Integer(
        required=True,
        metadata={"description": "The current number of images in the trash, as a deliberate confirmation."},
    )


class EmptiedSchema(ma.Schema):
    """What emptying the trash removed."""

    removed = ma.fields.Integer(metadata={"description": "How many images left the trash for good."})
