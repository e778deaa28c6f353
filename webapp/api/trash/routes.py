"""The trash resource: list, restore, remove for good, empty."""

from __future__ import annotations

from typing import Any

from flask import Response
from flask.views import MethodView

from webapp import audit
from webapp.api.common import Blueprint
from webapp.api.images.routes import send_stored
from webapp.api.images.schemas import AddedImageSchema
from webapp.api.trash.schemas import EmptiedSchema, EmptyArgsSchema, RestoredSchema, RestoreSchema, TrashedSchema
from webapp.auth import requires
from webapp.errors import Conflict, NotFound
from webapp.runtime import library, runtime
from webapp.services.records import Added
from webapp.services.roles import Role
from webapp.services.trash import Trash, Trashed

blp = Blueprint(
    "trash",
    __name__,
    url_prefix="/trash",
    description="Deleted images, kept WEBAPP_TRASH_DAYS (30 by default): editors restore them, "
    "admins remove them for good.",
)


def trash() -> Trash:
    """Return the trash, or answer 404 if deletions are final here (TRASH_DAYS is 0)."""
    found = runtime().trash
    if found is None:
        raise NotFound("deletions are final here: the trash is off (WEBAPP_TRASH_DAYS is 0)")
    return found


@blp.route("")
class TrashList(MethodView):
    """The deleted images in the trash."""

    @blp.response(200, TrashedSchema(many=True))
    @blp.paginate()
    @requires(Role.EDITOR)
    def get(self, pagination_parameters: Any) -> list[Trashed]:
        """List the deleted images in the trash, the latest deleted first."""
        p = pagination_parameters
        items, p.item_count = trash().items((p.page - 1) * p.page_size, p.page_size)
        return items

    @blp.arguments(EmptyArgsSchema(), location="query")
    @blp.response(200, EmptiedSchema)
    @blp.alt_response(409, description="confirm did not match the current number of images in the trash.")
    @requires(Role.ADMIN)
    def delete(self, args: dict[str, int]) -> dict[str, int]:
        """Empty the trash: its images go for good. Pass confirm=<its current count> to show you mean it."""
        bin_ = trash()
        count = bin_.count()
        if args["confirm"] != count:
            raise Conflict(f"to remove all {count} images in the trash for good, pass confirm={count}")
        removed = bin_.empty()
        audit.note(audit.trash_emptied(removed))
        return {"removed": removed}


@blp.route("/<sha256:image_id>")
class TrashedImage(MethodView):
    """One deleted image in the trash."""

    @blp.response(200, TrashedSchema)
    @blp.alt_response(404, description="No image with that id in the trash.")
    @requires(Role.EDITOR)
    def get(self, image_id: str) -> Trashed:
        """Return a deleted image in the trash."""
        return trash().get(image_id)

    @blp.response(204)
    @blp.alt_response(404, description="No image with that id in the trash.")
    @requires(Role.ADMIN)
    def delete(self, image_id: str) -> None:
        """Remove a deleted image from the trash for good."""
        gone = trash().remove([image_id])
        if not gone:
            raise NotFound(f"no image with id {image_id} in the trash")
        audit.note(audit.removed([item.record for item in gone]))


@blp.route("/<sha256:image_id>/restore")
class Restore(MethodView):
    """Restoring a deleted image."""

    @blp.response(201, AddedImageSchema, description="The image is in the library again.")
    @blp.alt_response(200, schema=AddedImageSchema, description="Its bytes were added again meanwhile.")
    @blp.alt_response(404, description="No image with that id in the trash.")
    @blp.alt_response(409, description="Its original is gone from the trash's storage: it cannot be restored.")
    @requires(Role.EDITOR)
    def post(self, image_id: str) -> tuple[Added, int]:
        """Put a deleted image back in the library, in its album and at its place in time."""
        outcome = trash().restore_one(library(), image_id)
        assert outcome.record is not None
        created = outcome.status == "added"
        audit.note(audit.restored([outcome.record]))
        return Added(outcome.record, duplicate=not created), 201 if created else 200


@blp.route("/restore")
class RestoreMany(MethodView):
    """Restoring several deleted images at once."""

    @blp.arguments(RestoreSchema())
    @blp.response(200, RestoredSchema)
    @requires(Role.EDITOR)
    def post(self, args: dict[str, Any]) -> dict[str, Any]:
        """Put deleted images back in the library at once (a resolution undone, say). Ids not in the
        trash are listed in ``missing``; an image that could not be added stays in the trash, in ``failed``."""
        ids = list(dict.fromkeys(args["ids"]))
        results = trash().restore(library(), ids)
        images = [outcome.record for _, outcome in results if outcome.record is not None]
        failed = [{"id": item.sha256, "reason": outcome.reason} for item, outcome in results if outcome.record is None]
        found = {item.sha256 for item, _ in results}
        audit.note(audit.restored(images))
        return {"images": images, "missing": [sha for sha in ids if sha not in found], "failed": failed}


@blp.route("/<sha256:image_id>/thumbnail")
class TrashedThumbnail(MethodView):
    """The thumbnail of a deleted image."""

    @blp.response(200, description="A JPEG thumbnail.")
    @blp.alt_response(404, description="No image with that id in the trash.")
    @requires(Role.EDITOR)
    def get(self, image_id: str) -> Response:
        """Return the JPEG thumbnail of a deleted image in the trash."""
        trash().get(image_id)
        return send_stored(library().trashed_thumbnail(image_id), image_id, "the trash", max_age=0)
