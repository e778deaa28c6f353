"""Duplicate pages: the near-duplicate groups side by side, a scan, and keeping one image of a group."""

from __future__ import annotations

from flask import flash, redirect, render_template, request, url_for
from werkzeug.exceptions import BadRequest, NotFound
from werkzeug.wrappers import Response

from webapp import audit
from webapp.auth import requires
from webapp.pages.blueprint import Pager, album_arg, blp
from webapp.pages.trash import offer_undo
from webapp.runtime import library, runtime
from webapp.services.fingerprints import FLOOR, LOW_FLOOR
from webapp.services.keepers import facts
from webapp.services.roles import Role

GROUPS_PER_PAGE = 10


@blp.get("/duplicates")
@requires(Role.VIEWER)
def duplicates_page() -> str | Response:
    """Show the near-duplicate groups of the last scan, the largest and most alike first."""
    album = album_arg()
    finder = runtime().duplicates
    pager = Pager.from_request(GROUPS_PER_PAGE).keeping(album=album)
    groups, total = finder.groups(pager.offset, pager.per_page, album)
    pager = pager.counted(total)
    if pager.beyond_end:
        return redirect(pager.url(pager.pages))
    return render_template(
        "duplicates.html",
        groups=groups,
        pager=pager,
        album=album,
        albums=library().albums(kept=True),
        scan=finder.last_scan(),
        threshold=finder.threshold,
        kept_apart=runtime().review.kept_apart(),
        floor=FLOOR,
        low_floor=LOW_FLOOR,
    )


@blp.post("/duplicates/scan")
@requires(Role.EDITOR)
def scan_duplicates() -> Response:
    """Start a scan of the whole library and follow it on its job page."""
    rt = runtime()
    job = rt.duplicates.start(lambda job_id: rt.queue.send("duplicates", job_id), audit.actor())
    audit.note(audit.started(job))
    flash("The scan has started: its groups replace the last ones when it is done.", "success")
    return redirect(url_for("pages.job_page", job_id=job.id), 303)


@blp.get("/duplicates/<int:group_id>")
@requires(Role.VIEWER)
def duplicate_group_page(group_id: int) -> str:
    """Show one group with every image in it."""
    return render_template("duplicate_group.html", group=runtime().duplicates.group(group_id))


@blp.get("/duplicates/<int:group_id>/compare")
@requires(Role.VIEWER)
def compare_page(group_id: int) -> str:
    """Show an image of a group beside the suggested keeper (or the image ``beside``), large, to tell them apart."""
    finder = runtime().duplicates
    group = finder.group(group_id)
    members = {m.record.sha256: m for m in group.members}
    image = members.get(request.args.get("image", ""))
    if image is None:
        raise NotFound("That image is not in this group (or the group is too large to show whole).")
    keeper = next((m for m in group.members if m.keeper), group.members[0])
    beside = members.get(request.args.get("beside", ""), keeper)
    if beside is image:
        beside = next(m for m in group.members if m is not image)
    others = [m for m in group.members if m is not beside]
    at = others.index(image)
    return render_template(
        "duplicate_compare.html",
        group=group,
        left=beside,
        right=image,
        facts={m.record.sha256: facts(finder.copy(m.record)) for m in (beside, image)},
        position=(at + 1, len(others)),
        previous=others[at - 1] if at > 0 else None,
        following=others[at + 1] if at + 1 < len(others) else None,
    )


def _keep() -> str:
    keep = (request.values.get("keep") or "").strip()
    if len(keep) != 64 or any(c not in "0123456789abcdef" for c in keep):
        raise BadRequest("Choose the image to keep first.")
    return keep


@blp.get("/duplicates/<int:group_id>/resolve")
@requires(Role.EDITOR)
def resolve_form(group_id: int) -> str:
    """Show what keeping the chosen image deletes, and ask for confirmation."""
    group, keep = runtime().duplicates.group(group_id), _keep()
    kept = next((m for m in group.members if m.record.sha256 == keep), None)
    if kept is None:
        raise BadRequest("That image is not in this group.")
    doomed = [m for m in group.members if m is not kept]
    trash = runtime().trash
    return render_template("duplicate_resolve.html", group=group, kept=kept, doomed=doomed, trash=trash)


@blp.post("/duplicates/<int:group_id>/resolve")
@requires(Role.EDITOR)
def resolve_group(group_id: int) -> Response:
    """Keep the chosen image of a group and delete the others."""
    deleted = runtime().review.resolve(group_id, _keep(), request.form.getlist("delete"), audit.actor())
    audit.note(audit.resolution(_keep(), deleted))
    n = len(deleted)
    trash = runtime().trash
    where = f"; {'it waits' if n == 1 else 'they wait'} in the trash {trash.kept_for}" if trash and n else ""
    flash(f"Kept one image and deleted {n} other{'' if n == 1 else 's'} of the group{where}.", "success")
    offer_undo(deleted)
    return redirect(url_for("pages.duplicates_page"), 303)


@blp.post("/duplicates/<int:group_id>/keep-all")
@requires(Role.EDITOR)
def keep_all_of_group(group_id: int) -> Response:
    """Keep every image of a group: they are not duplicates, and no later scan groups them again."""
    kept = runtime().review.keep_all(group_id, request.form.getlist("shown"))
    audit.note(audit.kept(kept))
    flash(f"Kept all {len(kept)} images of the group: no later scan groups any two of them again.", "success")
    return redirect(url_for("pages.duplicates_page"), 303)


@blp.post("/duplicates/kept-apart/forget")
@requires(Role.EDITOR)
def group_again() -> Response:
    """Forget every pair of images kept apart: the next scan groups them again."""
    n = runtime().review.group_again()
    audit.note(audit.forgotten(n))
    flash(f"Forgot {n} pair{'' if n == 1 else 's'} of images kept apart: the next scan groups them again.", "success")
    return redirect(url_for("pages.duplicates_page"), 303)


@blp.post("/duplicates/<int:group_id>/take-out")
@requires(Role.EDITOR)
def take_out_of_group(group_id: int) -> Response:
    """Take one image out of a group: it is not a copy of the others."""
    finder, image = runtime().duplicates, (request.form.get("image") or "").strip()
    named = next((m.record.filename for m in finder.group(group_id).members if m.record.sha256 == image), None)
    if named is None:
        raise BadRequest("That image is not in this group.")
    left = runtime().review.take_out(group_id, image, request.form.getlist("shown"))
    audit.note(f"took out {named} ({image})")
    flash(f"Took {named} out of the group: no later scan groups it with those images.", "success")
    back = request.form.get("back")
    if left is not None and back == "compare":  # on to the next image beside the same one
        ids = {m.record.sha256 for m in left.members}
        following, beside = request.form.get("next", ""), request.form.get("beside", "")
        if following in ids and beside in ids and following != beside:
            return redirect(url_for("pages.compare_page", group_id=group_id, image=following, beside=beside), 303)
    if left is not None and back in ("group", "compare"):
        return redirect(url_for("pages.duplicate_group_page", group_id=group_id), 303)
    return redirect(url_for("pages.duplicates_page"), 303)
