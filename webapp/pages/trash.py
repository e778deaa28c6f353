"""The trash's page: deleted images, restorable until they expire (editors); removable for good (admins)."""

from __future__ import annotations

import marshmallow as ma
from flask import flash, redirect, render_template, request, url_for
from werkzeug.exceptions import BadRequest
from werkzeug.wrappers import Response

from webapp import audit
from webapp.api.trash.schemas import RestoreSchema
from webapp.auth import requires
from webapp.errors import Conflict, NotFound
from webapp.pages.blueprint import Pager, blp, typed_count
from webapp.runtime import library, runtime
from webapp.security import local_path
from webapp.services.records import Record
from webapp.services.roles import Role
from webapp.services.trash import MAX_RESTORED, Trash

TRASH_PER_PAGE = 48
RESTORE_ARGS = RestoreSchema()
# Ids in the session cookie's flashed messages, of the 4 KB a browser keeps: a library page at its
# size (48) made the cookie 2.7 KB; 64 would make it 3.5 KB, and 100, 5.3 KB.
UNDO_AT_MOST = 48


def _trash() -> Trash:
    found = runtime().trash
    if found is None:
        raise NotFound("Deletions are final here: the trash is off (WEBAPP_TRASH_DAYS is 0).")
    return found


def trash_note(trash: Trash | None) -> str:
    """Say where the images a job deletes go: to the trash for a while, or for good."""
    if trash is None:
        return "The trash is off (WEBAPP_TRASH_DAYS is 0): this cannot be undone."
    return f"They wait in the trash {trash.kept_for}, and undoing the job (its page) brings them all back."


def offer_undo(records: list[Record]) -> None:
    """Show, with the next page's messages, a button that restores the images just deleted.

    The ids travel in the session's flashed messages, a cookie: up to UNDO_AT_MOST of them; more
    are restored from the trash's page.
    """
    if runtime().trash is not None and 0 < len(records) <= UNDO_AT_MOST:
        flash(",".join(r.sha256 for r in records), "undo")


def _back() -> Response:
    """Go back to the trash's page the form was sent from (on this site), or its first."""
    back = local_path(request.form.get("back"))
    return redirect(url_for("pages.trash_page") if back == "/" else back, 303)


@blp.get("/trash")
@requires(Role.EDITOR)
def trash_page() -> str | Response:
    """Show the deleted images in the trash, the latest deleted first, each with who deleted it and when."""
    trash = runtime().trash
    if trash is None:
        return render_template("trash.html", items=[], pager=None, trash=None)
    pager = Pager.from_request(TRASH_PER_PAGE)
    items, total = trash.items(pager.offset, pager.per_page)
    pager = pager.counted(total)
    if pager.beyond_end:
        return redirect(pager.url(pager.pages))
    return render_template("trash.html", items=items, pager=pager, trash=trash)


@blp.post("/trash/<sha256:image_id>/restore")
@requires(Role.EDITOR)
def restore_image(image_id: str) -> Response:
    """Put a deleted image back in the library and show the trash again."""
    outcome = _trash().restore_one(library(), image_id)
    record = outcome.record
    assert record is not None
    audit.note(audit.restored([record]))
    if outcome.status == "added":
        where = f" (album {record.album})" if record.album else ""
        flash(f"Restored {record.filename} to the library{where}.", "success")
    else:
        flash(f"{record.filename} was in the library again already; it left the trash.", "success")
    return _back()


@blp.post("/trash/restore")
@requires(Role.EDITOR)
def restore_images() -> Response:
    """Put the images selected on a trash page back in the library and show the trash again."""
    try:  # through the API's schema: 1 to MAX_RESTORED ids
        ids = list(dict.fromkeys(RESTORE_ARGS.load({"ids": request.form.getlist("ids")})["ids"]))
    except ma.ValidationError as exc:
        raise BadRequest(f"Select 1 to {MAX_RESTORED} images of the trash. Nothing was restored.") from exc
    results = _trash().restore(library(), ids)
    records = [outcome.record for _, outcome in results if outcome.record is not None]
    audit.note(audit.restored(records))
    flash(f"Restored {len(records)} image{'' if len(records) == 1 else 's'} to the library.", "success")
    if stayed := [item.record.filename for item, outcome in results if outcome.record is None]:
        flash(f"These stay in the trash, as they could not be added: {', '.join(stayed)}.", "error")
    return _back()


@blp.post("/trash/<sha256:image_id>/remove")
@requires(Role.ADMIN)
def remove_image(image_id: str) -> Response:
    """Remove a deleted image from the trash for good and show the trash again."""
    gone = _trash().remove([image_id])
    if not gone:
        raise NotFound(f"No image with id {image_id} in the trash: restored or removed meanwhile.")
    audit.note(audit.removed([item.record for item in gone]))
    flash(f"Removed {gone[0].record.filename} for good.", "success")
    return _back()


@blp.get("/trash/empty")
@requires(Role.ADMIN)
def empty_trash_form() -> str:
    """Explain what emptying the trash does and ask for the number of images to confirm."""
    return render_template("trash_empty.html", count=_trash().count())


@blp.post("/trash/empty")
@requires(Role.ADMIN)
def empty_trash() -> Response:
    """Remove every image in the trash for good, if the number typed matches its count."""
    typed = typed_count("the trash", "removed")
    trash = _trash()
    count = trash.count()
    if typed != count:
        raise Conflict(f"You typed {typed}, but the trash holds {count} images. Nothing was removed.")
    removed = trash.empty()
    audit.note(audit.trash_emptied(removed))
    flash(f"Removed all {removed} image{'' if removed == 1 else 's'} in the trash for good.", "success")
    return redirect(url_for("pages.trash_page"), 303)
