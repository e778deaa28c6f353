"""The activity log's page and its download: who changed what, and when (admins only)."""

from __future__ import annotations

import csv
import io
import itertools
import time
from collections.abc import Iterator
from typing import Any

import marshmallow as ma
from flask import redirect, render_template, request, stream_with_context
from werkzeug.exceptions import BadRequest
from werkzeug.wrappers import Response

from webapp.api.activity.schemas import NARROWING, ActivityArgsSchema
from webapp.audit import action
from webapp.auth import requires
from webapp.pages.blueprint import Pager, blp, isotime
from webapp.runtime import runtime
from webapp.services.activity import Entry
from webapp.services.roles import Role

ENTRIES_PER_PAGE = 50
MAX_DOWNLOAD = 100_000  # entries in one download: a few seconds of a worker's thread; narrow by dates for more
ARGS = ActivityArgsSchema(unknown=ma.EXCLUDE)
COLUMNS = ("id", "at", "actor", "via", "address", "method", "path", "status", "request_id", "what", "note")


def _narrowing() -> tuple[dict[str, Any], dict[str, str]]:
    """Load the page's filters through the API's schema (400 saying which is wrong); return them,
    and as given (for the form and the links). A field left empty does not narrow."""
    given = {name: value for name, value in request.args.items() if name in NARROWING and value}
    try:
        loaded = ARGS.load(given)
    except ma.ValidationError as exc:
        wrong = "; ".join(f"{name}: {' '.join(map(str, m))}" for name, m in exc.normalized_messages().items())
        raise BadRequest(f"These filters are not right: {wrong}") from exc
    return {name: loaded.get(name) for name in NARROWING}, given


@blp.get("/activity")
@requires(Role.ADMIN)
def activity_page() -> str | Response:
    """List the requests that changed the library or its accounts, newest first (of one account,
    naming one image, between two dates, if asked)."""
    narrowing, given = _narrowing()
    pager = Pager.from_request(ENTRIES_PER_PAGE)
    entries, total = runtime().activity.entries(pager.offset, pager.per_page, **narrowing)
    pager = pager.keeping(**given).counted(total)
    if pager.beyond_end:
        return redirect(pager.url(pager.pages))
    actions = {(e.endpoint, e.method): action(e.endpoint, e.method) for e in entries}
    return render_template(
        "activity.html",
        entries=entries,
        actions=actions,
        pager=pager,
        given=given,
        actor=narrowing["actor"],
        image=narrowing["image"],
        max_download=MAX_DOWNLOAD,
    )


@blp.get("/activity.csv")
@requires(Role.ADMIN)
def activity_download() -> Response:
    """Download the entries the page shows (the newest MAX_DOWNLOAD of them) as a CSV file."""
    narrowing, _ = _narrowing()
    entries = runtime().activity.export(MAX_DOWNLOAD, **narrowing)
    # The first batch is read here: a filter the database refuses is a 400, not a download cut short.
    first = list(itertools.islice(entries, 1))
    name = time.strftime("activity-%Y%m%d-%H%M%S.csv", time.gmtime())
    headers = {"Content-Disposition": f'attachment; filename="{name}"'}
    body = stream_with_context(_csv(itertools.chain(first, entries)))
    return Response(body, mimetype="text/csv", headers=headers)


def _csv(entries: Iterator[Entry]) -> Iterator[str]:
    """Yield the CSV lines of ``entries``, a header first."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(COLUMNS)
    for e in entries:
        what = action(e.endpoint, e.method) or e.endpoint
        row = (e.id, isotime(e.at), e.actor, e.via, e.address, e.method, e.path, e.status, e.request_id, what, e.note)
        writer.writerow([_cell(value) for value in row])
        if out.tell() > 65536:
            yield out.getvalue()
            out.seek(0)
            out.truncate()
    yield out.getvalue()


def _cell(value: object) -> object:
    """Keep a spreadsheet from reading text as a formula: a name tried at sign-in is anyone's text."""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value
