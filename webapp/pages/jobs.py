"""Adding many images: the Add images forms, and the pages that follow the jobs they start."""

from __future__ import annotations

import csv
import io
import itertools
from collections.abc import Iterable, Iterator

from flask import current_app, flash, redirect, render_template, request, stream_with_context, url_for
from werkzeug.exceptions import BadRequest
from werkzeug.wrappers import Response

from webapp import audit
from webapp.auth import requires
from webapp.errors import Conflict, NotFound
from webapp.extensions import csrf, rate_limited
from webapp.pages.blueprint import Pager, album_arg, blp, typed_count
from webapp.pages.trash import trash_note
from webapp.runtime import library, runtime
from webapp.services.deletions import KIND as DELETION
from webapp.services.deletions import RESTORE
from webapp.services.ingestion import Ingestion, Upload
from webapp.services.job_states import CHECKS, IN_LIBRARY, LOADS, NEW, OF_JOB, SIMILAR, WHOLE_JOBS, CheckedFile
from webapp.services.jobs import ACTIVE, RESUMABLE, DuplicateFile, Job, JobStatus
from webapp.services.roles import Role

JOBS_PER_PAGE = 20
CHECKED_SHOWN = 100  # files a check's page lists, of those the library holds or holds the same picture of
FOUND = (IN_LIBRARY, SIMILAR)
UNDOING = (DELETION, RESTORE)  # the kinds of job that can undo another (whose source is OF_JOB + its id)


def _start_job(ingestion: Ingestion, source: str) -> Job:
    """Start a job from the form that was sent (a load, or a check: the Check images page's), or
    answer 400 saying what is missing."""
    album, check = album_arg(request.form), request.form.get("check") == "1"
    if source == "folder":
        folder = request.form.get("folder", "").strip()
        if not folder:
            raise BadRequest("Type the path of a folder on the server first.")
        return ingestion.start_folder(folder, album=album, by=audit.actor(), check=check)
    if source == "archive":
        archive = request.files.get("archive")
        if archive is None or not archive.filename:
            raise BadRequest("Choose a .zip archive first.")
        return ingestion.start_archive(archive, album=album, by=audit.actor(), check=check)
    if source == "files":
        uploads: list[Upload] = [f for f in request.files.getlist("files") if f.filename]
        if not uploads:
            raise BadRequest("Choose one or more image files first.")
        return ingestion.start_files(uploads, album=album, by=audit.actor(), check=check)
    raise BadRequest("Send one of the forms of the Add images page.")


@blp.get("/add")
@requires(Role.EDITOR)
def add_page() -> str:
    """Offer the three ways to add many images: files, a zip archive, a folder on the server (into
    the album ``?album=`` names, if given: an album page's link)."""
    albums = library().albums(kept=True)  # the album fields suggest them
    return render_template(
        "add.html", roots=current_app.config["IMPORT_ROOTS"], albums=albums, album=album_arg(), check=False
    )


@blp.get("/check")
@requires(Role.EDITOR)
def check_page() -> str:
    """Offer to compare many images with the library, adding none, from the same three sources."""
    albums = library().albums(kept=True)
    return render_template(
        "add.html", roots=current_app.config["IMPORT_ROOTS"], albums=albums, album=album_arg(), check=True
    )


@blp.post("/add")
@rate_limited
@csrf.exempt  # checked in the view, once the job's larger upload limit applies: the check reads the form
@requires(Role.EDITOR)
def start_job() -> Response:
    """Start a background job from one of the Add images forms and show its page."""
    request.max_content_length = current_app.config["MAX_JOB_UPLOAD_BYTES"]
    csrf.protect()
    job = _start_job(runtime().ingestion, request.form.get("source", ""))
    audit.note(audit.started(job))
    flash("The job has started: this page follows its progress.", "success")
    return redirect(url_for("pages.job_page", job_id=job.id), 303)


@blp.get("/jobs")
@requires(Role.VIEWER)
def jobs_page() -> str | Response:
    """List the jobs, newest first, a page at a time."""
    pager = Pager.from_request(JOBS_PER_PAGE)
    jobs, total = runtime().ingestion.recent(pager.offset, pager.per_page)
    pager = pager.counted(total)
    if pager.beyond_end:
        return redirect(pager.url(pager.pages))
    compared = {job.id: runtime().ingestion.compared(job.id) for job in jobs if job.kind in CHECKS}
    return render_template("jobs.html", jobs=jobs, pager=pager, whole_jobs=WHOLE_JOBS, checks=CHECKS, compared=compared)


@blp.get("/jobs/<job_id:job_id>")
@requires(Role.VIEWER)
def job_page(job_id: str) -> str:
    """Show a job's progress, counts, rate, ETA and failed files (updated live by app.js); for a
    check, the files it found in the library and those it found new (as they were when the page
    was made)."""
    rt = runtime()
    job = rt.ingestion.get(job_id)
    failures = rt.ingestion.failures(job_id)
    duplicates = rt.ingestion.duplicates(job_id) if job.kind in LOADS else []
    check = job.kind in CHECKS
    found = rt.ingestion.checked(job_id, CHECKED_SHOWN, states=FOUND) if check else []
    new = rt.ingestion.checked(job_id, CHECKED_SHOWN, states=(NEW,)) if check else []
    standing = rt.deletions.standing_undo(job)  # None: it may be undone (again)
    undo = standing if standing is not None else rt.deletions.undone_by(job)
    return render_template(
        "job.html",
        job=job,
        failures=failures,
        duplicates=duplicates,
        check=check,
        found=found,
        new=new,
        compared=rt.ingestion.compared(job_id) if check else None,
        kept_until=rt.ingestion.kept_until(job),
        albums=library().albums(kept=True) if check and job.status == JobStatus.DONE else [],
        undo=undo,
        undoable=standing is None and _undone_count(job) > 0,
        undoes=job.source.removeprefix(OF_JOB) if job.kind in UNDOING and job.source.startswith(OF_JOB) else None,
        active=ACTIVE,
        resumable=() if undo is not None and job.kind in LOADS else RESUMABLE,
        whole_jobs=WHOLE_JOBS,
    )


@blp.get("/jobs/<job_id:job_id>/failures.csv")
@requires(Role.VIEWER)
def job_failures_csv(job_id: str) -> Response:
    """Send every file a job could not index, with its reason, as CSV (the page shows the first 1000)."""
    ingestion = runtime().ingestion
    job = ingestion.get(job_id)  # 404 before the download starts
    rows = ([failure.name, failure.reason] for failure in ingestion.all_failures(job.id))
    return _csv(f"job-{job.id[:8]}-failed-files.csv", ["file", "reason"], rows)


@blp.get("/jobs/<job_id:job_id>/matches.csv")
@requires(Role.VIEWER)
def job_matches_csv(job_id: str) -> Response:
    """Send every file a check compared with the library, with its verdict and its closest image, as
    CSV (the page shows the first 100 the library holds, or holds the same picture of)."""
    ingestion = runtime().ingestion
    job = ingestion.get(job_id)  # 404 before the download starts
    if job.kind not in CHECKS:
        raise NotFound("Only a check compares files with the library: this job is not one.")
    rows = (_checked_row(checked) for checked in ingestion.all_checked(job.id))
    header = ["file", "verdict", "reason", "image_id", "image_filename", "image_album", "similarity", "same_picture"]
    return _csv(f"job-{job.id[:8]}-matches.csv", header, rows)


def _checked_row(checked: CheckedFile) -> list[str]:
    """Say what a check found of a file: its verdict, and its closest image (the same picture first)."""
    head = [checked.name, checked.state, checked.reason]
    if checked.shown is None:
        return [*head, "", "", "", "", ""]
    sha, score, same = checked.shown
    record = (checked.records or {}).get(sha)
    where = [record.filename, record.album] if record is not None else ["(deleted since)", ""]
    return [*head, sha, *where, f"{score:.4f}", "yes" if same else "no"]


@blp.get("/jobs/<job_id:job_id>/duplicates.csv")
@requires(Role.VIEWER)
def job_duplicates_csv(job_id: str) -> Response:
    """Send every file a job found already in the library, with the image it matched, as CSV (the
    page shows the first 100)."""
    ingestion = runtime().ingestion
    job = ingestion.get(job_id)  # 404 before the download starts
    rows = (_duplicate_row(found) for found in ingestion.all_duplicates(job.id))
    header = ["file", "image_id", "image_filename", "image_album", "in_library"]
    return _csv(f"job-{job.id[:8]}-duplicate-files.csv", header, rows)


def _duplicate_row(found: DuplicateFile) -> list[str]:
    """Say which file of a job matched which image, and whether the library still holds it."""
    if found.record is None:
        return [found.name, found.sha256, "", "", "no (deleted since)"]
    return [found.name, found.sha256, found.record.filename, found.record.album, "yes"]


def _csv(filename: str, header: list[str], rows: Iterable[list[str]]) -> Response:
    """Stream ``rows`` under ``header`` as a CSV download, every cell kept from reading as a formula."""

    rows = iter(rows)
    first = list(itertools.islice(rows, 1))  # reads the first page now: a store's error is a 503, not a cut download

    def chunks() -> Iterator[str]:
        out = io.StringIO()
        writer = csv.writer(out)
        writer.writerow(header)
        for row in itertools.chain(first, rows):
            writer.writerow([_inert(cell) for cell in row])
            if out.tell() > 64 * 1024:
                yield out.getvalue()
                out.seek(0)
                out.truncate()
        yield out.getvalue()

    headers = {"Content-Disposition": f'attachment; filename="{filename}"'}
    return Response(stream_with_context(chunks()), mimetype="text/csv", headers=headers)


def _inert(value: str) -> str:
    """Keep a spreadsheet from reading a file name as a formula (=, +, -, @ first: CSV injection)."""
    return f"'{value}" if value[:1] in ("=", "+", "-", "@", "\t", "\r") else value


@blp.get("/jobs/<job_id:job_id>/undo")
@requires(Role.ADMIN)
def undo_job_form(job_id: str) -> str:
    """Ask for the number of images undoing a load (or a deletion) takes before starting it."""
    job, trash = runtime().ingestion.get(job_id), library().trash
    back = url_for("pages.job_page", job_id=job.id)
    common = {"count": _undone_count(job), "action": url_for("pages.undo_job", job_id=job.id), "hidden": {}}
    if job.kind == DELETION:
        return render_template(
            "confirm_job.html",
            heading="Undo this deletion?",
            lead=f"This restores the {common['count']} images this deletion put in the trash that it still holds, "
            "in the background: each is embedded again and searches find it as it comes back.",
            note="",
            button="Restore them",
            danger=False,
            back=back,
            nothing="Nothing this deletion deleted is in the trash any more.",
            **common,
        )
    return render_template(
        "confirm_job.html",
        heading="Undo this load?",
        lead=f"This deletes the {common['count']} images this load added ({job.source}), those still in the "
        "library as it added them, in the background: searches stop finding them as they go.",
        note=trash_note(trash),
        button="Undo the load",
        danger=True,
        back=back,
        nothing="This load has nothing to undo.",
        **common,
    )


def _undone_count(job: Job) -> int:
    """Return how many images undoing ``job`` takes, to type: what a load added, or what a deletion
    put in the trash that it still holds (0: nothing to undo)."""
    if job.status in ACTIVE:
        return 0
    if job.kind == DELETION:
        trash = library().trash
        return 0 if trash is None else trash.count_deleted_in(job.id)
    return job.added if job.kind in LOADS else 0


@blp.post("/jobs/<job_id:job_id>/undo")
@requires(Role.ADMIN)
def undo_job(job_id: str) -> Response:
    """Start undoing a load or a deletion (a job), if the number typed matches how many images it takes."""
    rt = runtime()
    count, typed = _undone_count(rt.ingestion.get(job_id)), typed_count("the job", "changed")
    if typed != count:
        raise Conflict(f"You typed {typed}, but undoing the job takes {count} images. Nothing was changed.")
    job = rt.deletions.undo(job_id, rt.queue.send, audit.actor())
    audit.note(audit.started(job))
    doing = "restore" if job.kind == RESTORE else "deletion"
    flash(f"The {doing} has started: this page follows its progress.", "success")
    return redirect(url_for("pages.job_page", job_id=job.id), 303)


@blp.post("/jobs/<job_id:job_id>/cancel")
@requires(Role.EDITOR)
def cancel_job(job_id: str) -> Response:
    """Cancel a queued job, or ask a running one to stop after its current batch."""
    job = runtime().ingestion.cancel(job_id)
    if job.status == JobStatus.CANCELLED:
        flash("The job is cancelled. What it had already indexed stays in the library.", "info")
    else:
        flash("The job will stop after its current batch.", "info")
    return redirect(url_for("pages.job_page", job_id=job_id), 303)


@blp.post("/jobs/<job_id:job_id>/add-new")
@requires(Role.EDITOR)
def add_new_files(job_id: str) -> Response:
    """Load the files a check found new, and show the load's progress."""
    job = runtime().ingestion.load_new(job_id, album_arg(request.form), audit.actor())
    audit.note(audit.adding_new(job, job_id))
    flash("Loading the files the check found new: this page follows its progress.", "success")
    return redirect(url_for("pages.job_page", job_id=job.id), 303)


@blp.post("/jobs/<job_id:job_id>/discard-kept")
@requires(Role.EDITOR)
def discard_kept_files(job_id: str) -> Response:
    """Remove the files a check of uploads kept to add, before its retention is over."""
    count = runtime().ingestion.discard_kept(job_id)
    audit.note(audit.discarding(job_id, count))
    flash(
        f"The {count} new file{'' if count == 1 else 's'} the check kept {'is' if count == 1 else 'are'} removed.",
        "success",
    )
    return redirect(url_for("pages.job_page", job_id=job_id), 303)


@blp.post("/jobs/<job_id:job_id>/resume")
@requires(Role.EDITOR)
def resume_job(job_id: str) -> Response:
    """Queue a stopped job again; it skips the files it already processed."""
    runtime().ingestion.resume(job_id)
    flash("The job has resumed where it stopped.", "success")
    return redirect(url_for("pages.job_page", job_id=job_id), 303)
