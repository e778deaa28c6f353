"""Library pages: the thumbnail grid, one image with "more like this", moving images between albums,
deleting one, a selection or all."""

from __future__ import annotations

import marshmallow as ma
from flask import flash, g, redirect, render_template, request, url_for
from werkzeug.exceptions import BadRequest
from werkzeug.wrappers import Response

from webapp import audit
from webapp.api.images.schemas import ImageIdsSchema
from webapp.auth import ANONYMOUS, requires
from webapp.downloads import zip_response
from webapp.errors import Conflict, NotFound
from webapp.pages.blueprint import Pager, album_arg, blp, timestamp, typed_count
from webapp.pages.trash import offer_undo, trash_note
from webapp.runtime import library, runtime
from webapp.security import local_path
from webapp.services.albums import MAX_MOVED, children, parse_album
from webapp.services.exports import ZipExport
from webapp.services.roles import Role

LIBRARY_PER_PAGE = 48
SIMILAR_COUNT = 12
SELECTION = ImageIdsSchema()  # a library page's selection, loaded as the API loads a script's


@blp.get("/library")
@requires(Role.VIEWER)
def library_page() -> str | Response:
    """Show the indexed images as a grid of thumbnails, newest first, a page at a time."""
    lib, album, by = library(), album_arg(), request.args.get("added_by") or None
    if by is not None and len(by) > 64:
        raise BadRequest("No account name is longer than 64 characters.")
    pager = Pager.from_request(LIBRARY_PER_PAGE).keeping(album=album, added_by=by or "")
    pager = pager.counted(lib.listed(album, by))
    if pager.beyond_end:
        return redirect(pager.url(pager.pages))
    images = lib.newest(pager.offset, pager.per_page, album, by)
    albums = lib.albums(kept=True)
    return render_template(
        "library.html",
        images=images,
        pager=pager,
        album=album,
        added_by=by,
        albums=albums,
        sub_albums=len(children(albums, album)),
        trash_on=lib.trash is not None,
    )


@blp.post("/library/move")
@requires(Role.EDITOR)
def move_album() -> Response:
    """Move or rename an album with its sub-albums (a job), and show its progress."""
    album, to = album_arg(request.form), parse_album(request.form.get("to") or "")
    rt = runtime()
    job = rt.album_moves.start(album, to, rt.queue.send, audit.actor())
    audit.note(audit.moving(job, album, to))
    return redirect(url_for("pages.job_page", job_id=job.id), 303)


@blp.post("/library/move-images")
@requires(Role.EDITOR)
def move_images() -> Response:
    """Put the images selected on a library page in an album, and show that page again."""
    ids = _selection("move", "moved")
    album = album_arg(request.form)
    moved = runtime().album_moves.move_images(ids, album)
    audit.note(audit.moved(len(moved), album))
    where = f"the album {album}" if album else "no album"
    flash(f"Moved {len(moved)} image{'' if len(moved) == 1 else 's'} to {where}.", "success")
    return _back_to_selection()


@blp.post("/library/delete-images")
@requires(Role.EDITOR)
def delete_images() -> Response:
    """Move the images selected on a library page to the trash, and show that page again."""
    ids, lib = _selection("delete", "deleted"), library()
    if lib.trash is None:  # the page offers this only with a trash: a selection is not confirmed one by one
        raise Conflict("The trash is off (WEBAPP_TRASH_DAYS is 0): delete images one at a time. Nothing was deleted.")
    deleted = lib.delete_many(ids, audit.actor())
    audit.note(audit.deleted_many(deleted))
    count = f"{len(deleted)} image{'' if len(deleted) == 1 else 's'}"
    stays = "it stays" if len(deleted) == 1 else "they stay"
    flash(f"Moved {count} to the trash, where {stays} {lib.trash.kept_for}.", "success")
    offer_undo(deleted)
    return _back_to_selection()


@blp.post("/library/download-images")
@requires(Role.VIEWER)
def download_images() -> Response:
    """Send the images selected on a library page as a zip of their originals."""
    export = ZipExport.of_images(library(), _selection("download", "sent"))
    response = zip_response(export, "images.zip", "None of the selected images is in the library any more.")
    audit.taken_out(audit.zip_of_images(export.first_batch))
    return response


def _selection(verb: str, done: str) -> list[str]:
    """Return the ids selected on a library page, each once; 400 saying what is wrong, if anything."""
    ids = list(dict.fromkeys(request.form.getlist("ids")))
    if not ids:
        raise BadRequest(f"Select at least one image to {verb}. Nothing was {done}.")
    try:
        return list(SELECTION.load({"ids": ids})["ids"])
    except ma.ValidationError:
        raise BadRequest(
            f"The selection holds something that is not an image id, or more than {MAX_MOVED} "
            f"images. Nothing was {done}."
        ) from None


def _back_to_selection() -> Response:
    """Go back to the library page the selection was made on (on this site), or its first."""
    back = local_path(request.form.get("back"))
    return redirect(url_for("pages.library_page") if back == "/" else back, 303)


@blp.get("/library/delete-album")
@requires(Role.ADMIN)
def delete_album_form() -> str:
    """Ask for the number of an album's images before deleting it with its sub-albums."""
    album, lib = album_arg(), library()
    if not album:
        raise BadRequest("Name the album to delete.")
    count = lib.listed(album)
    return render_template(
        "confirm_job.html",
        heading=f"Delete the album {album}?",
        lead=f"This deletes the {count} image{'' if count == 1 else 's'} of the album {album} and its sub-albums, "
        "in the background: searches stop finding them as they go.",
        note=trash_note(lib.trash),
        count=count,
        action=url_for("pages.delete_album"),
        hidden={"album": album},
        button="Delete the album",
        danger=True,
        back=url_for("pages.library_page", album=album),
        nothing=f"The album {album} has no images.",
    )


@blp.post("/library/delete-album")
@requires(Role.ADMIN)
def delete_album() -> Response:
    """Start deleting an album with its sub-albums (a job), if the number typed matches its size."""
    album = album_arg(request.form)
    if not album:
        raise BadRequest("Name the album to delete. Nothing was deleted.")
    typed, count = typed_count(f"the album {album}", "deleted"), library().listed(album)
    if typed != count:
        raise Conflict(f"You typed {typed}, but the album {album} has {count} images. Nothing was deleted.")
    rt = runtime()
    job = rt.deletions.start_album(album, rt.queue.send, audit.actor())
    audit.note(audit.started(job))
    flash("The deletion has started: this page follows its progress.", "success")
    return redirect(url_for("pages.job_page", job_id=job.id), 303)


@blp.get("/library/clear")
@requires(Role.ADMIN)
def clear_library_form() -> str:
    """Explain what emptying the library does and ask for the number of images to confirm."""
    lib = library()
    return render_template("library_clear.html", count=lib.count(), trash_on=lib.trash is not None)


@blp.post("/library/clear")
@requires(Role.ADMIN)
def clear_library() -> Response:
    """Delete every image, if the number typed matches the library's size."""
    typed = typed_count("the library", "deleted")
    lib = library()
    count = lib.count()
    if typed != count:
        raise Conflict(f"You typed {typed}, but the library has {count} images. Nothing was deleted.")
    deleted = runtime().ingestion.empty_library()
    audit.note(audit.emptied(deleted))
    flash(f"Deleted all {deleted} image{'' if deleted == 1 else 's'} from the library.", "success")
    return redirect(url_for("pages.library_page"), 303)


@blp.get("/images/<sha256:image_id>")
@requires(Role.VIEWER)
def image_page(image_id: str) -> str:
    """Show one indexed image, its details and the images most like it."""
    lib, album = library(), album_arg()
    try:
        image = lib.get(image_id)
    except NotFound as exc:
        raise (_where_it_went(image_id) or exc) from None
    similar = lib.similar(image_id, SIMILAR_COUNT, album)
    same = runtime().duplicates.same_as(image_id, similar)  # its copies, as a scan would group them
    albums, added_by = lib.albums(kept=True), lib.added_by(image_id)
    job = runtime().ingestion.job_that_added(image)
    return render_template(
        "image.html",
        image=image,
        similar=similar,
        same=same,
        album=album,
        albums=albums,
        added_by=added_by,
        job=job,
        cover_of=lib.covers.of_image(image_id),
    )


def _where_it_went(image_id: str) -> NotFound | None:
    """Return the 404 of an image in the trash that says so, to someone who may restore it; else None."""
    trash, role = runtime().trash, (g.get("principal") or ANONYMOUS).role
    if trash is None or role is None or not role.allows(Role.EDITOR):
        return None
    try:
        item = trash.get(image_id)
    except NotFound:
        return None
    by = f" by {item.deleted_by}" if item.deleted_by else ""
    return NotFound(
        f"{item.record.filename} was deleted {timestamp(item.deleted_at)}{by}. It is in the trash until "
        f"{timestamp(item.expires_at)}: restore it there (Library, then Trash)."
    )


@blp.post("/images/<sha256:image_id>/album")
@requires(Role.EDITOR)
def move_image(image_id: str) -> Response:
    """Put an image in another album and show its page again."""
    record = runtime().album_moves.move_image(image_id, album_arg(request.form))
    audit.note(f"{record.filename} to album {record.album!r}")
    flash(
        f"{record.filename} is in the album {record.album}." if record.album else f"{record.filename} is in no album.",
        "success",
    )
    return redirect(url_for("pages.image_page", image_id=image_id), 303)


@blp.post("/images/<sha256:image_id>/cover")
@requires(Role.EDITOR)
def choose_cover(image_id: str) -> Response:
    """Make an image the cover of one of the albums it is in (or, with ``newest``, let that album
    show its newest image again), and show its page again."""
    lib, newest = library(), bool(request.form.get("newest"))
    record = lib.get(image_id)
    album = lib.set_cover(album_arg(request.form), None if newest else image_id, audit.actor()).name
    audit.note(audit.covered(album, None if newest else image_id))
    if newest:
        flash(f"The album {album} shows its newest image again.", "success")
    else:
        flash(f"{record.filename} is the cover of the album {album}.", "success")
    return redirect(url_for("pages.image_page", image_id=image_id), 303)


@blp.get("/images/<sha256:image_id>/delete")
@requires(Role.EDITOR)
def delete_image_form(image_id: str) -> str:
    """Ask for confirmation before deleting an image."""
    lib = library()
    return render_template("image_delete.html", image=lib.get(image_id), trash=lib.trash)


@blp.post("/images/<sha256:image_id>/delete")
@requires(Role.EDITOR)
def delete_image(image_id: str) -> Response:
    """Delete an image (into the trash, if there is one) and go back to the library."""
    lib = library()
    record = lib.delete(image_id, audit.actor())
    audit.note(audit.deleted(record))
    if lib.trash is None:
        flash(f"Deleted {record.filename} from the library.", "success")
    else:
        flash(f"Moved {record.filename} to the trash, where it stays {lib.trash.kept_for}.", "success")
        offer_undo([record])
    return redirect(url_for("pages.library_page"), 303)
