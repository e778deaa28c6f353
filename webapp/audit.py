"""Which requests the activity log records (services/activity.py), and what views add to an entry.

A request is recorded when it changed something: a POST, PUT, PATCH or DELETE that needs the
editor or admin role (``@requires``) and succeeded, whoever sent it; and, for people's
credentials, a token created or revoked, a sign-in (refused ones too) and a sign-out. Searches,
which are POSTs a viewer may send, are not; nor are other reads, but for the downloads that take
images out in bulk (a zip), which a view marks with ``taken_out``. A view says in words what its request did with
``note`` (the images a resolution deleted, a job's id), and a page that answers a refusal with a
redirect and a message says so with ``refused``. The entry is written after the view: if the
database cannot take it, the change stands and the log says so in a warning. A ``flask`` command
that changed something records itself with ``command``.
"""

from __future__ import annotations

import getpass
import logging
import os
import shlex
import socket
import time

import click
from flask import Flask, current_app, g, request
from werkzeug.wrappers import Response

from webapp.auth import ANONYMOUS, SAFE_METHODS, required_role, view_of
from webapp.errors import WebappError
from webapp.logs import request_id
from webapp.services.activity import Entry
from webapp.services.jobs import Job
from webapp.services.records import Record
from webapp.services.roles import Role

log = logging.getLogger(__name__)

# Views open to viewers (or to anyone) whose successful POSTs change credentials or sessions.
CREDENTIALS = {
    "pages.create_token",
    "pages.revoke_token",
    "pages.login_submit",
    "pages.logout",
    "pages.change_password",
    "pages.end_other_sessions",
}
COMMAND = "CLI"  # the method of an entry a command wrote; its endpoint is the command's name ("users create")


def actor() -> str:
    """Return the name of the account this request acts for ("" with access control off)."""
    return (g.get("principal") or ANONYMOUS).name


def note(text: str) -> None:
    """Say, in words, what this request did; the activity log's entry keeps it."""
    g.activity_note = text


def refused(text: str) -> None:
    """Say that this request changed nothing, though its answer is a redirect (a page's message)."""
    g.activity_refused = text


def acting_as(name: str, via: str) -> None:
    """Record this request as ``name``'s (a sign-in: the session opens during the request)."""
    g.activity_actor = (name, via)


def always() -> None:
    """Record this request even though it failed (a sign-in refused)."""
    g.activity_always = True


def taken_out(text: str) -> None:
    """Record this read, if it succeeds, saying what it sent in words: a download of many images,
    which a team wants to tell who made, though it changes nothing."""
    g.activity_taken_out = True
    note(text)


def added(record: Record, created: bool) -> str:
    """Return the note of an upload."""
    return f"{record.filename} ({record.sha256}) {'added' if created else 'was in the library already'}"


def resolution(kept: str, deleted: list[Record]) -> str:
    """Return the note of a duplicate group resolved: what was deleted, by name and id."""
    return f"kept {kept}; deleted {len(deleted)}: " + ", ".join(f"{r.filename} ({r.sha256})" for r in deleted)


def started(job: Job) -> str:
    """Return the note of a request that started a job."""
    return f"job {job.id} ({job.kind}: {job.source})"


def adding_new(job: Job, check_id: str) -> str:
    """Return the note of a load of the files a check found new."""
    return f"{started(job)}: the new files of the check {check_id}"


def discarding(check_id: str, count: int) -> str:
    """Return the note of a check's kept files removed on request."""
    return f"job {check_id}: the {count} new file{'' if count == 1 else 's'} it kept removed"


def moving(job: Job, album: str, to: str) -> str:
    """Return the note of an album's move, a job."""
    return f"job {job.id}: album {album!r} to {to!r}"


def covered(album: str, sha256: str | None) -> str:
    """Return the note of an album's cover chosen (None: its newest image again)."""
    return f"album {album!r}: cover {sha256}" if sha256 else f"album {album!r}: cover its newest image"


def moved(count: int, album: str) -> str:
    """Return the note of images put in an album."""
    return f"{count} images moved to album {album!r}"


def deleted(record: Record) -> str:
    """Return the note of one image deleted."""
    return f"{record.filename} ({record.sha256}) deleted"


def deleted_many(records: list[Record]) -> str:
    """Return the note of images deleted at once (cut to the log's length; the history of each
    image finds it all the same, services/activity.py)."""
    return f"{len(records)} deleted: " + ", ".join(f"{r.filename} ({r.sha256})" for r in records)


def restored(records: list[Record]) -> str:
    """Return the note of images restored from the trash."""
    return f"{len(records)} restored: " + ", ".join(f"{r.filename} ({r.sha256})" for r in records[:100])


def trash_emptied(count: int) -> str:
    """Return the note of the trash emptied."""
    return f"the trash emptied: {count} images removed for good"


def removed(records: list[Record]) -> str:
    """Return the note of images removed from the trash for good."""
    return f"{len(records)} removed for good: " + ", ".join(f"{r.filename} ({r.sha256})" for r in records[:100])


def zip_of_album(album: str, added_by: str | None, count: int) -> str:
    """Return the note of an album's zip (``""``: the library's), of what ``added_by`` added if given."""
    what = f"the album {album!r} and below" if album else "the library"
    whose = "" if added_by is None else f", what {added_by!r} added" if added_by else ", the images that name nobody"
    return f"a zip of {what}{whose}: {count} image{'' if count == 1 else 's'}"


def zip_of_images(records: list[Record]) -> str:
    """Return the note of chosen images sent as a zip (each named: it is in their histories)."""
    names = ", ".join(f"{r.filename} ({r.sha256})" for r in records)
    return f"a zip of {len(records)} image{'' if len(records) == 1 else 's'}: {names}"


def emptied(count: int) -> str:
    """Return the note of the library emptied."""
    return f"the library emptied: {count} images deleted"


def kept(records: list[Record]) -> str:
    """Return the note of a group kept whole."""
    return "kept " + ", ".join(f"{r.filename} ({r.sha256})" for r in records)


def forgotten(pairs: int) -> str:
    """Return the note of the pairs kept apart forgotten."""
    return f"{pairs} pairs forgotten"


def action(endpoint: str, method: str) -> str:
    """Return what an endpoint's method does, in words: the first line of its view's docstring
    (of a command: its short help)."""
    if method == COMMAND:
        found: object = current_app.cli
        for word in endpoint.split():
            found = getattr(found, "commands", {}).get(word)
        return found.get_short_help_str(limit=200).rstrip(".") if isinstance(found, click.Command) else ""
    view = view_of(endpoint, method) if endpoint else None
    lines = (getattr(view, "__doc__", None) or "").strip().splitlines()
    return lines[0].rstrip(".") if lines else ""


def recorded(response: Response) -> bool:
    """Tell whether the activity log keeps this request."""
    if request.endpoint is None:
        return False
    if g.get("activity_taken_out"):  # a HEAD sends no zip
        return response.status_code < 400 and request.method != "HEAD"
    if request.method in SAFE_METHODS:
        return False
    if g.get("activity_always"):
        return True
    if response.status_code >= 400 or g.get("activity_refused"):
        return False
    if request.endpoint in CREDENTIALS:  # when the view says what it did: with access control off, nothing
        signed_in = (g.get("principal") or ANONYMOUS).signed_in
        return bool(g.get("activity_note")) and (request.endpoint != "pages.logout" or signed_in)
    return required_role(request.endpoint, request.method) in (Role.EDITOR, Role.ADMIN)


def entry(response: Response) -> Entry:
    """Return the activity log's entry of this request."""
    principal = g.get("principal") or ANONYMOUS
    actor, via = g.get("activity_actor") or (principal.name, principal.via)
    return Entry(
        at=time.time(),
        actor=actor,
        via=via,
        address=request.remote_addr or "",
        method=request.method,
        path=request.full_path.removesuffix("?"),
        endpoint=request.endpoint or "",
        status=response.status_code,
        request_id=request_id(),
        note=g.get("activity_note", ""),
    )


def record(response: Response) -> Response:
    """Write this request to the activity log if it changed something (an ``after_request`` hook)."""
    if not recorded(response):
        return response
    from webapp.runtime import runtime

    try:
        runtime().activity.record(entry(response))
    except WebappError as exc:  # the database went away after the change: the change stands
        log.warning("the activity log could not record %s %s: %s", request.method, request.path, exc.message)
    return response


def command(what: str, status: int = 0) -> None:
    """Write the running ``flask`` command to the activity log: ``what`` it changed, in words, and
    its exit ``status``.

    A command acts for no account: its entry names the login that ran it (``via`` is ``command``)
    and, as its address, the machine. Its path is the command line without options, so a token
    given with ``--token`` is never written. If the database cannot take the entry, the change
    stands and a warning says so, as for a request.
    """
    ctx, words = click.get_current_context(), list[str]()
    arguments = [p.name for p in ctx.command.params if isinstance(p, click.Argument) and p.name]
    values = [ctx.params[name] for name in arguments if ctx.params.get(name) is not None]
    while ctx.parent is not None:  # the program's own name (flask, python -m flask) left out
        words.insert(0, ctx.info_name or "")
        ctx = ctx.parent
    shown = [shlex.quote(str(v)) for value in values for v in (value if isinstance(value, tuple) else [value])]
    entry = Entry(
        at=time.time(),
        actor=login(),
        via="command",
        address=socket.gethostname(),
        method=COMMAND,
        path=" ".join(["flask", *words, *shown]),
        endpoint=" ".join(words),
        status=status,
        note=what,
    )
    from webapp.runtime import runtime

    try:
        runtime().activity.record(entry)
    except WebappError as exc:
        log.warning("the activity log could not record %s: %s", entry.path, exc.message)


def login() -> str:
    """Return the name of the login running this process."""
    try:
        return getpass.getuser()
    except (OSError, KeyError):  # a container's user without a name
        return f"uid {os.getuid()}"


def init_app(app: Flask) -> None:
    """Record every request that changed something."""
    app.after_request(record)
