"""The albums page: the library's folders as a tree, one level at a time, each album with its cover."""

from __future__ import annotations

from flask import redirect, render_template, request
from werkzeug.exceptions import BadRequest
from werkzeug.wrappers import Response

from webapp.auth import requires
from webapp.pages.blueprint import Pager, album_arg, blp
from webapp.runtime import library
from webapp.services.albums import MAX_LENGTH, ORDERS
from webapp.services.roles import Role

ALBUMS_PER_PAGE = 48


@blp.get("/albums")
@requires(Role.VIEWER)
def albums_page() -> str | Response:
    """Show the albums directly below one (the top level by default), or those below it whose name
    holds ``find``, a page at a time, with their covers."""
    lib, name, find = library(), album_arg(), (request.args.get("find") or "").strip()
    order = request.args.get("order") or "name"
    if len(find) > MAX_LENGTH:
        raise BadRequest(f"No album's name is longer than {MAX_LENGTH} characters: nothing to find.")
    if order not in ORDERS:
        raise BadRequest(f"Albums are sorted by {', '.join(ORDERS)}: not by {order[:40]!r}.")
    album, below = lib.album(name, find, order)
    kept = {"album": name, "find": find, "order": "" if order == "name" else order}
    pager = Pager.from_request(ALBUMS_PER_PAGE).keeping(**kept).counted(len(below))
    if pager.beyond_end:
        return redirect(pager.url(pager.pages))
    shown = lib.covered(below[pager.offset : pager.offset + pager.per_page])
    loose = 0 if find else album.count - sum(entry.count for entry in below)
    return render_template("albums.html", album=album, albums=shown, pager=pager, find=find, order=order, loose=loose)
