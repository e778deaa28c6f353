"""Schemas of the duplicates resource."""

import marshmallow as ma

from webapp.api.common import Album, BoundedList, ImageId, UrlFor
from webapp.api.images.schemas import ImageEntrySchema
from webapp.services.duplicates import MAX_RESOLVED


class DuplicateArgsSchema(ma.Schema):
    """Narrow the groups to an album."""

    album = Album(description="Only groups with an image in this album (or its sub-albums).")


class MemberSchema(ImageEntrySchema):
    """An image of a group."""

    similarity = ma.fields.Float(metadata={"description": "Cosine similarity to the group's suggested keeper."})
    keeper = ma.fields.Boolean(metadata={"description": "True for the image the scan suggests keeping."})
    bytes = ma.fields.Integer(allow_none=True, metadata={"description": "Size of the original file in bytes."})
    same_layout = ma.fields.Boolean(
        allow_none=True,
        metadata={
            "description": "True if it is laid out as the keeper is: as it is, turned a quarter, or at its centre "
            "(their fingerprints at most 12 bits apart). A copy even where the similarity is below the threshold. "
            "Null if either has no fingerprint yet."
        },
    )


class GroupSchema(ma.Schema):
    """Images that look alike: the suggested keeper (most pixels, then camera metadata, then largest file) first."""

    id = ma.fields.Integer(metadata={"description": "The group's id (until the next scan)."})
    size = ma.fields.Integer(metadata={"description": "How many images the group holds."})
    best = ma.fields.Float(metadata={"description": "The highest similarity of an image to the keeper."})
    members = ma.fields.List(
        ma.fields.Nested(MemberSchema), metadata={"description": "The keeper first, then by similarity (up to 50)."}
    )
    url = UrlFor("duplicates.DuplicateGroup", "group_id", metadata={"description": "The group in the API."})
    page_url = UrlFor("pages.duplicate_group_page", "group_id", metadata={"description": "The group's review page."})


class ResolveSchema(ma.Schema):
    """Which image of a group to keep; the others are deleted."""

    keep = ImageId(required=True, metadata={"description": "The id of the image to keep."})
    delete = BoundedList(
        ImageId(),
        max_items=MAX_RESOLVED,
        metadata={
            "description": "Optional: the ids of the images you expect to be deleted (the group's others, as you "
            "saw them). If the group holds any other image (a newer scan reused its number), nothing is deleted: 409."
        },
    )


class KeepAllSchema(ma.Schema):
    """Keep every image of a group: they are not duplicates."""

    shown = BoundedList(
        ImageId(),
        max_items=MAX_RESOLVED,
        metadata={
            "description": "Optional: the ids of the group's images as you saw them. If the group holds any other "
            "(a newer scan reused its number), nothing is kept apart: 409."
        },
    )


class KeptAllSchema(ma.Schema):
    """What keeping every image of a group did."""

    kept = ma.fields.List(
        ma.fields.String(),
        metadata={"description": "The ids of the group's images, all kept: no later scan groups any two of them."},
    )


class TakeOutSchema(ma.Schema):
    """Take one image out of a group: it is not a copy of the others."""

    image = ImageId(required=True, metadata={"description": "The id of the image to take out."})
    shown = BoundedList(
        ImageId(),
        max_items=MAX_RESOLVED,
        metadata={"description": "Optional: the ids of the group's images as you saw them (as for keep-all)."},
    )


class TakenOutSchema(ma.Schema):
    """What taking an image out of a group did."""

    taken_out = ma.fields.String(metadata={"description": "The id of the image taken out."})
    group = ma.fields.Nested(
        GroupSchema,
        allow_none=True,
        metadata={"description": "The group left (its keeper chosen again if the keeper went), or null."},
    )


class KeptApartSchema(ma.Schema):
    """The pairs of images kept apart by keeping groups whole."""

    pairs = ma.fields.Integer(metadata={"description": "How many pairs of images no scan groups together."})


class ResolvedSchema(ma.Schema):
    """What resolving a group did."""

    kept = ma.fields.String(metadata={"description": "The id of the image kept."})
    deleted = ma.fields.List(ma.fields.String(), metadata={"description": "The ids of the images deleted."})
