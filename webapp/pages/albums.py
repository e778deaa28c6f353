"""The albums page: the library's folders as a tree, one level at a time, each album with its cover."""

from __future__ import annotations

from flask import redirect, render_template
from werkzeug.wrappers import Response

from webapp.auth import requires
from webapp.pages.blueprint import Pager, album_arg, blp
from webapp.runtime import library
from webapp.services.roles import Role

ALBUMS_PER_PAGE = 48


@blp.get("/albums")
@requires(Role.VIEWER)
def albums_page() -> str | Response:
    """Show the albums directly below one (the top level by default), a page at a time, with their covers."""
    lib, name = library(), album_arg()
    album, below = lib.album(name)
    pager = Pager.from_request(ALBUMS_PER_PAGE).keeping(album=name).counted(len(below))
    if pager.beyond_end:
        return redirect(pager.url(pager.pages))
    shown = lib.covered(below[pager.offset : pager.offset + pager.per_page])
    return render_template(
        "albums.html",
        album=album,
        albums=shown,
        pager=pager,
        loose=album.count - sum(entry.count for entry in below),
    )
