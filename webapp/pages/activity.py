"""The activity log's page: who changed what, and when (admins only)."""

from __future__ import annotations

import re

from flask import redirect, render_template, request
from werkzeug.exceptions import BadRequest
from werkzeug.wrappers import Response

from webapp.audit import action
from webapp.auth import requires
from webapp.pages.blueprint import Pager, blp
from webapp.runtime import runtime
from webapp.services.roles import Role

ENTRIES_PER_PAGE = 50


@blp.get("/activity")
@requires(Role.ADMIN)
def activity_page() -> str | Response:
    """List the requests that changed the library or its accounts, newest first (of one account, or
    naming one image, if asked)."""
    actor, image = request.args.get("actor"), request.args.get("image") or None
    if actor is not None and len(actor) > 64:
        raise BadRequest("No account name is longer than 64 characters.")
    if image is not None and not re.fullmatch("[0-9a-f]{64}", image):
        raise BadRequest("An image's id is 64 lowercase hexadecimal characters.")
    pager = Pager.from_request(ENTRIES_PER_PAGE)
    entries, total = runtime().activity.entries(pager.offset, pager.per_page, actor, image)
    pager = pager.keeping(actor=actor or "", image=image or "").counted(total)
    if pager.beyond_end:
        return redirect(pager.url(pager.pages))
    actions = {(e.endpoint, e.method): action(e.endpoint, e.method) for e in entries}
    return render_template("activity.html", entries=entries, actions=actions, pager=pager, actor=actor, image=image)
