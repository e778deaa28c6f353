"""The images resource: add one image, read its record, file and thumbnail."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from flask import Response, send_file
from flask.views import MethodView

from webapp import audit
from webapp.api.common import Blueprint, JudgedHit, judged_hits
from webapp.api.images.schemas import (
    AddedImageSchema,
    AlbumCoverSchema,
    AlbumDeleteSchema,
    AlbumMoveSchema,
    AlbumNameSchema,
    AlbumsArgsSchema,
    AlbumSchema,
    ClearArgsSchema,
    ClearedSchema,
    ImageChangeSchema,
    ImageDetailSchema,
    ImageIdsSchema,
    ImagesArgsSchema,
    ImageSchema,
    ImagesDeletedSchema,
    ImagesMovedSchema,
    ImagesMoveSchema,
    ImageUploadSchema,
    SimilarArgsSchema,
)
from webapp.api.jobs.schemas import JobSchema
from webapp.api.search.schemas import SearchResponseSchema
from webapp.auth import requires
from webapp.downloads import export_names, zip_response
from webapp.errors import Conflict, NotFound
from webapp.extensions import rate_limited
from webapp.runtime import library, runtime
from webapp.services.albums import AlbumEntry, children, named, tree
from webapp.services.exports import MAX_AT_ONCE, ZipExport
from webapp.services.images import mime_of
from webapp.services.imaging import PREVIEW_SIZE
from webapp.services.jobs import Job
from webapp.services.records import Added, Detailed, Hit, Record
from webapp.services.roles import Role

blp = Blueprint("images", __name__, url_prefix="/images", description="Add and read indexed images.")


@blp.route("")
class Images(MethodView):
    """The collection of indexed images."""

    decorators = [rate_limited]

    @blp.arguments(ImageUploadSchema(), location="multipart")
    @blp.response(201, AddedImageSchema, description="The image was added.")
    @blp.alt_response(200, schema=AddedImageSchema, description="Those bytes were already indexed.")
    @blp.alt_response(413, description="The upload or the image is too large.")
    @requires(Role.EDITOR)
    def post(self, args: dict[str, Any]) -> tuple[Added, int]:
        """Add one image to the library (idempotent: the same bytes are never indexed twice)."""
        upload = args["image"]
        record, created = library().add(upload.read(), upload.filename, album=args["album"], by=audit.actor())
        audit.note(audit.added(record, created))
        return Added(record, duplicate=not created), 201 if created else 200

    @blp.arguments(ImagesArgsSchema(), location="query")
    @blp.response(200, ImageDetailSchema(many=True))
    @blp.paginate()
    @requires(Role.VIEWER)
    def get(self, args: dict[str, str], pagination_parameters: Any) -> list[Detailed]:
        """List indexed images, newest first (in one album and its sub-albums, if ``album`` is given,
        and added by one account, if ``added_by`` is)."""
        p, lib, by = pagination_parameters, library(), args.get("added_by")
        p.item_count = lib.listed(args["album"], by)
        records = lib.newest((p.page - 1) * p.page_size, p.page_size, args["album"], by)
        adders = lib.adders(r.sha256 for r in records)
        return [Detailed(r, adders.get(r.sha256, "")) for r in records]

    @blp.arguments(ClearArgsSchema(), location="query")
    @blp.response(200, ClearedSchema)
    @blp.alt_response(409, description="confirm did not match the current number of images.")
    @requires(Role.ADMIN)
    def delete(self, args: dict[str, int]) -> dict[str, int]:
        """Empty the whole library: pass confirm=<current image count> to show you mean it."""
        lib = library()
        count = lib.count()
        if args["confirm"] != count:
            raise Conflict(f"to delete all {count} images, pass confirm={count}")
        deleted = runtime().ingestion.empty_library()
        audit.note(audit.emptied(deleted))
        return {"deleted": deleted}


@blp.route("/albums")
class Albums(MethodView):
    """The albums of the library."""

    @blp.arguments(AlbumsArgsSchema(), location="query")
    @blp.response(200, AlbumSchema(many=True))
    @blp.alt_response(404, description="parent names no album of the library.")
    @requires(Role.VIEWER)
    def get(self, args: dict[str, Any]) -> list[AlbumEntry]:
        """List the albums (sub-albums too) with how many images each holds, by name.

        ``contains`` and ``limit`` make it a name field's suggestions: the pages' album fields
        ask for the first 20 names holding what was typed, once a library has too many albums
        for a menu. Such a list may be as old as a page's (a few seconds); the whole list is made
        afresh. ``parent`` lists one level of the tree, each album with its cover (the Albums page).
        """
        lib, parent, contains, limit = library(), args["parent"], args["contains"], args["limit"]
        if parent is not None:
            below = lib.album(parent, order=args["order"])[1]
            wanted = {name for name, _ in named(((e.name, e.count) for e in below), contains, limit)}
            return lib.covered([entry for entry in below if entry.name in wanted])
        if not contains and limit is None:
            return tree(lib.albums())
        albums = lib.albums(kept=True)  # a field's suggestions, as you type
        return [AlbumEntry(name, n, len(children(albums, name))) for name, n in named(albums, contains, limit)]


@blp.route("/move")
class ImagesMove(MethodView):
    """Moving several images to an album."""

    @blp.arguments(ImagesMoveSchema())
    @blp.response(200, ImagesMovedSchema)
    @blp.alt_response(409, description="A reindex is under way.")
    @requires(Role.EDITOR)
    def post(self, args: dict[str, Any]) -> dict[str, Any]:
        """Put images in an album at once (their vectors stay; searches' filters follow at once).
        Ids not in the library are listed in ``missing``; a whole album moves with /albums/move."""
        ids = list(dict.fromkeys(args["ids"]))
        moved = runtime().album_moves.move_images(ids, args["album"])
        found = {rec.sha256 for rec in moved}
        audit.note(audit.moved(len(found), args["album"]))
        return {"images": moved, "missing": [sha for sha in ids if sha not in found]}


@blp.route("/delete")
class ImagesDelete(MethodView):
    """Deleting several images at once."""

    @blp.arguments(ImageIdsSchema())
    @blp.response(200, ImagesDeletedSchema)
    @requires(Role.EDITOR)
    def post(self, args: dict[str, Any]) -> dict[str, Any]:
        """Delete images at once: out of the library and its searches, into the trash for TRASH_DAYS.
        Ids not in the library are listed in ``missing``."""
        ids = list(dict.fromkeys(args["ids"]))
        deleted = library().delete_many(ids, audit.actor())
        audit.note(audit.deleted_many(deleted))
        found = {rec.sha256 for rec in deleted}
        return {"deleted": deleted, "missing": [sha for sha in ids if sha not in found]}


@blp.route("/albums/move")
class AlbumMove(MethodView):
    """Moving or renaming an album."""

    @blp.arguments(AlbumMoveSchema())
    @blp.response(202, JobSchema, description="The move was queued; follow the job.")
    @blp.alt_response(404, description="The album has no images.")
    @blp.alt_response(409, description="Another move, or a reindex, is under way.")
    @requires(Role.EDITOR)
    def post(self, args: dict[str, str]) -> Job:
        """Move an album and its sub-albums under a new name (a/b to c puts a/b/x in c/x), in the
        background: searches' filters, the pages and the counts follow each image as it moves."""
        rt = runtime()
        job = rt.album_moves.start(args["album"], args["to"], rt.queue.send, audit.actor())
        audit.note(audit.moving(job, args["album"], args["to"]))
        return job


@blp.route("/albums/cover")
class AlbumCover(MethodView):
    """The image an album shows on the Albums page."""

    @blp.arguments(AlbumCoverSchema())
    @blp.response(200, AlbumSchema)
    @blp.alt_response(404, description="No such album.")
    @blp.alt_response(422, description="The image is not in the album or below it.")
    @requires(Role.EDITOR)
    def put(self, args: dict[str, str]) -> AlbumEntry:
        """Make an image the album's cover, instead of its newest (while it stays in the album)."""
        album = library().set_cover(args["album"], args["image"], audit.actor())
        audit.note(audit.covered(album.name, args["image"]))
        return album

    @blp.arguments(AlbumNameSchema(), location="query")
    @blp.response(200, AlbumSchema)
    @blp.alt_response(404, description="No such album.")
    @requires(Role.EDITOR)
    def delete(self, args: dict[str, str]) -> AlbumEntry:
        """Let the album show its newest image again."""
        album = library().set_cover(args["album"], None)
        audit.note(audit.covered(album.name, None))
        return album


@blp.route("/albums/delete")
class AlbumDelete(MethodView):
    """Deleting an album."""

    @blp.arguments(AlbumDeleteSchema())
    @blp.response(202, JobSchema, description="The deletion was queued; follow the job.")
    @blp.alt_response(404, description="The album has no images.")
    @blp.alt_response(409, description="Another deletion is under way.")
    @requires(Role.ADMIN)
    def post(self, args: dict[str, str]) -> Job:
        """Delete an album's images and its sub-albums' (into the trash for TRASH_DAYS), in the
        background, a batch at a time: searches stop finding each batch as it goes."""
        rt = runtime()
        job = rt.deletions.start_album(args["album"], rt.queue.send, audit.actor())
        audit.note(audit.started(job))
        return job


@blp.route("/export")
class ImagesExport(MethodView):
    """The originals of an album, of the whole library or of chosen images, as one zip."""

    @blp.arguments(ImagesArgsSchema(), location="query")
    @blp.response(
        200,
        description="A zip (application/zip) of the originals as they were added, each under its album's "
        "path below the album asked for and with its name (a second of one name in a folder gets ' (2)'), "
        "sent as it is written. Uploaded again as a zip archive into that album, it brings them back.",
    )
    @blp.alt_response(404, description="The album (or the library) has no images (that the account added).")
    @blp.alt_response(429, description=f"{MAX_AT_ONCE} downloads are under way from this server process.")
    @requires(Role.VIEWER)
    def get(self, args: dict[str, str]) -> Response:
        """Download an album with its sub-albums, or the whole library, as a zip of the originals.

        Only the images one account added, if ``added_by`` is given. The activity log records it.
        """
        album, by, lib = args["album"], args.get("added_by"), library()
        count = lib.listed(album, by)  # before the download takes its place: nothing to give back if it fails
        response = zip_response(ZipExport.of_album(lib, album, by), *export_names(album, by))
        audit.taken_out(audit.zip_of_album(album, by, count))
        return response

    @blp.arguments(ImageIdsSchema())
    @blp.response(200, description="A zip (application/zip) of those images' originals, each under its album's path.")
    @blp.alt_response(404, description="None of the images is in the library.")
    @blp.alt_response(429, description=f"{MAX_AT_ONCE} downloads are under way from this server process.")
    @requires(Role.VIEWER)
    def post(self, args: dict[str, list[str]]) -> Response:
        """Download chosen images (1-500) as a zip of their originals.

        Those not in the library are left out. The activity log records it, naming each image.
        """
        export = ZipExport.of_images(library(), args["ids"])
        response = zip_response(export, "images.zip", "none of the images is in the library")
        audit.taken_out(audit.zip_of_images(export.first_batch))
        return response


@blp.route("/<sha256:image_id>")
class Image(MethodView):
    """One indexed image."""

    @blp.response(200, ImageDetailSchema)
    @blp.alt_response(404, description="No image with that id.")
    @requires(Role.VIEWER)
    def get(self, image_id: str) -> Detailed:
        """Return an image's record, with who added it."""
        lib = library()
        return Detailed(lib.get(image_id), lib.added_by(image_id))

    @blp.arguments(ImageChangeSchema())
    @blp.response(200, ImageSchema)
    @blp.alt_response(404, description="No image with that id.")
    @blp.alt_response(409, description="A reindex is under way.")
    @requires(Role.EDITOR)
    def patch(self, args: dict[str, str], image_id: str) -> Record:
        """Put an image in another album (its vector stays; searches' filters follow at once)."""
        audit.note(f"to album {args['album']!r}")
        return runtime().album_moves.move_image(image_id, args["album"])

    @blp.response(204)
    @blp.alt_response(404, description="No image with that id.")
    @requires(Role.EDITOR)
    def delete(self, image_id: str) -> None:
        """Delete an image: out of the library and its searches, into the trash for TRASH_DAYS."""
        audit.note(audit.deleted(library().delete(image_id, audit.actor())))


@blp.route("/<sha256:image_id>/similar")
class ImageSimilar(MethodView):
    """Images like an indexed one."""

    @blp.arguments(SimilarArgsSchema(), location="query")
    @blp.response(200, SearchResponseSchema)
    @blp.alt_response(404, description="No image with that id.")
    @requires(Role.VIEWER)
    def get(self, args: dict[str, Any], image_id: str) -> dict[str, Any]:
        """Return the images most similar to an indexed one ("more like this"), itself excluded."""
        start = time.perf_counter()
        similar = library().similar(image_id, args["top_k"], args["album"])
        hits: list[Hit] | list[JudgedHit] = similar
        if args["same_picture"]:  # as the image's page marks them (less pairs a person kept apart)
            hits = judged_hits(similar, runtime().duplicates.same_as(image_id, similar))
        return {
            "results": hits,
            "top_k": args["top_k"],
            "took_ms": (time.perf_counter() - start) * 1000,
        }


@blp.route("/<sha256:image_id>/file")
class ImageFile(MethodView):
    """The original file of an image."""

    @blp.response(200, description="The original bytes, with their content type.")
    @blp.alt_response(404, description="No image with that id.")
    @requires(Role.VIEWER)
    def get(self, image_id: str) -> Response:
        """Return the original file, exactly as uploaded."""
        return send_stored(library().original(image_id), image_id)


@blp.route("/<sha256:image_id>/thumbnail")
class ImageThumbnail(MethodView):
    """The thumbnail of an image."""

    @blp.response(200, description="A JPEG thumbnail.")
    @blp.alt_response(404, description="No image with that id.")
    @requires(Role.VIEWER)
    def get(self, image_id: str) -> Response:
        """Return the JPEG thumbnail."""
        return send_stored(library().thumbnail(image_id), image_id)


@blp.route("/<sha256:image_id>/preview")
class ImagePreview(MethodView):
    """A JPEG of an image for a browser."""

    @blp.response(200, description=f"A JPEG of the image, at most {PREVIEW_SIZE} pixels a side.")
    @blp.alt_response(404, description="No image with that id.")
    @requires(Role.VIEWER)
    def get(self, image_id: str) -> Response:
        """Return a JPEG of the image for a browser, made at its first request: what an image's page
        shows when most browsers cannot show its original, such as TIFF or HEIC."""
        return send_stored(library().preview(image_id), image_id)


def send_stored(path: Path | None, image_id: str, where: str = "the library", max_age: int = 31536000) -> Response:
    """Send a stored file with its content type; content-addressed, so cacheable for a year (``max_age``)."""
    if path is None:
        raise NotFound(f"no image with id {image_id} in {where}")
    response = send_file(path, mimetype=mime_of(path), max_age=max_age)
    # Its name on disk is the id: without the header, a page's download link names it as uploaded.
    del response.headers["Content-Disposition"]
    return response
