"""Command line: ``flask --app wsgi ingest``, ``migrate``, ``check``, ``reindex`` and ``trash`` (the library and its
store)."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import click
import requests
from flask import Flask
from flask.cli import with_appcontext
from tqdm import tqdm

from webapp import accounts_cli, audit, evaluation_cli, worker
from webapp.auth import EXPIRY_HEADER
from webapp.errors import ModelMismatch, ModelMissing, StoreUnavailable, WebappError
from webapp.models import MODELS
from webapp.pages.blueprint import timestamp
from webapp.runtime import runtime
from webapp.services import consistency
from webapp.services.accounts import EXPIRES_SOON
from webapp.services.binding import ModelBinding
from webapp.services.job_states import NEW
from webapp.services.jobs import Job, local_owner
from webapp.services.sources import Folder

UPLOAD_CHUNK = 64  # files per job when sending the work to a server
EXPIRY_WARNING = timedelta(seconds=EXPIRES_SOON)  # a token expiring sooner is worth a line on the terminal
_warned: set[str] = set()


def summarise(total: int, counts: Counter[str], failures: list[tuple[str, str]]) -> None:
    """Print what an ingestion did, and fail when nothing could be indexed."""
    click.echo(f"{total} files: {counts['added']} added, {counts['duplicates']} duplicates, {counts['failed']} failed")
    for name, reason in failures:
        click.echo(f"  failed: {name}: {reason}", err=True)
    if total == 0:
        raise click.ClickException("no image files found")
    if counts["added"] + counts["duplicates"] == 0:
        raise click.ClickException("nothing could be indexed")


def open_library(instead: str, reindexing: bool = False) -> None:
    """Open the model and the store now; if another process holds them, say to run ``instead``.

    A library refused for its model (rebuilt or missing file) is left for a reindex to move, when ``reindexing``.
    """
    try:
        runtime().library  # noqa: B018
    except StoreUnavailable as exc:
        raise click.ClickException(
            f"{exc.message}.\nStop the server first, or send the work to it:\n  flask --app wsgi {instead}"
        ) from exc
    except WebappError as exc:
        if not (reindexing and isinstance(exc, ModelMismatch | ModelMissing)):
            raise click.ClickException(exc.message) from exc


@contextmanager
def job_bar(desc: str) -> Iterator[Callable[[Job], None]]:
    """Yield a callback that shows a job's progress as a bar."""
    with tqdm(desc=desc, unit="img") as bar:

        def progress(state: Job) -> None:
            bar.total = state.total
            bar.update(state.processed - bar.n)
            bar.set_postfix(added=state.added, dup=state.duplicates, failed=state.failed)

        yield progress


def ingest_locally(path: Path, only: list[str] | None = None) -> None:
    """Index a folder in this process, against the configured store (``only`` these of its files)."""
    rt = runtime()
    open_library(f"ingest {path} --server http://127.0.0.1:8000")
    with job_bar("indexing") as progress:
        final = rt.ingestion.run_here(path, local_owner(), progress, by=audit.login(), only=only)
    counts = Counter(added=final.added, duplicates=final.duplicates, failed=final.failed)
    done = ", ".join(f"{n} {what}" for what, n in counts.items())
    audit.command(f"{audit.started(final)} {final.status}: {done}", 0 if final.status == "done" else 1)
    if final.status == "failed":
        raise click.ClickException(f"the job failed: {final.error}")
    summarise(final.total or 0, counts, [(f.name, f.reason) for f in rt.ingestion.failures(final.id)])


def check_locally(path: Path, new_only: bool = False) -> None:
    """Compare a folder with the library in this process, adding nothing; with ``new_only``, then
    load the files it found new."""
    rt = runtime()
    flag = "--new-only" if new_only else "--check"
    open_library(f"ingest {path} {flag} --server http://127.0.0.1:8000")
    with job_bar("checking") as progress:
        final = rt.ingestion.run_here(path, local_owner(), progress, by=audit.login(), check=True)
    if final.status == "failed":
        raise click.ClickException(f"the check failed: {final.error}")
    found = []
    for f in rt.ingestion.all_checked(final.id):
        shown = f.shown
        record = (f.records or {}).get(shown[0]) if shown else None
        image = f"{record.album + '/' if record and record.album else ''}{record.filename if record else '?'}"
        found.append((f.name, f.state, f.reason, image, shown[1] if shown else 0.0))
    report_check(final.total or 0, found)
    if new_only and (new := [name for name, verdict, *_ in found if verdict == NEW]):
        click.echo(f"loading the {len(new)} new file{'' if len(new) == 1 else 's'}")
        ingest_locally(path, new)


def check_via_server(path: Path, server: str, token: str = "", new_only: bool = False) -> None:
    """Send a folder's images to a running app to compare with its library, in chunks, adding
    nothing; with ``new_only``, then have it load the files of each chunk it found new (the server
    keeps them: services/ingestion.py ``load_new``)."""
    names = Folder(path, limit=2**63).names()
    api = server.rstrip("/") + "/api/v1/jobs"
    found = []
    checks: list[str] = []  # the checks that found new files
    with tqdm(total=len(names), desc="checking", unit="img") as bar:
        for start in range(0, len(names), UPLOAD_CHUNK):
            chunk = names[start : start + UPLOAD_CHUNK]
            files = [("files", (name, (path / name).read_bytes())) for name in chunk]
            job = _call("post", api, token, files=files, data={"check": "true"})
            while job["status"] in ("queued", "running"):
                time.sleep(0.5)
                job = _call("get", f"{api}/{job['id']}", token)
            if job["status"] != "done":
                raise click.ClickException(f"job {job['id']} ended {job['status']}: {job.get('error')}")
            bar.update(len(chunk))
            for f in _call("get", f"{api}/{job['id']}/matches", token, params={"page_size": UPLOAD_CHUNK}):
                shown = next((m for m in f["matches"] if m["same_picture"]), f["matches"][0] if f["matches"] else None)
                image = shown["image"] if shown else None
                label = f"{image['album'] + '/' if image['album'] else ''}{image['filename']}" if image else "?"
                score = shown["score"] if shown else 0.0
                found.append((chunk_name(chunk, f["name"]), f["verdict"], f["reason"], label, score))
            if job["compared"]["new"]:
                checks.append(job["id"])
    report_check(len(names), found)
    if new_only and checks:
        new = sum(1 for _, verdict, *_ in found if verdict == NEW)
        click.echo(f"loading the {new} new file{'' if new == 1 else 's'}")
        counts: Counter[str] = Counter()
        failures: list[tuple[str, str]] = []
        for check in checks:
            job = _call("post", f"{api}/{check}/add-new", token, json={})
            while job["status"] in ("queued", "running"):
                time.sleep(0.5)
                job = _call("get", f"{api}/{job['id']}", token)
            if job["status"] != "done":
                raise click.ClickException(f"job {job['id']} ended {job['status']}: {job.get('error')}")
            counts.update(added=job["added"], duplicates=job["duplicates"], failed=job["failed"])
            failures += [(f["name"], f["reason"]) for f in job["failures"]]
        summarise(new, counts, failures)


def report_check(total: int, files: list[tuple[str, str, str, str, float]]) -> None:
    """Print what a check found: the counts, then each file the library holds (or holds the same
    picture of) with that image and how alike; fail when no file could be read."""
    counts = Counter(verdict for _, verdict, *_ in files)
    click.echo(
        f"{total} files: {counts['in_library']} in the library, {counts['similar']} the same picture, "
        f"{counts['new']} new, {counts['failed']} failed"
    )
    for name, verdict, reason, image, score in files:
        if verdict == "failed":
            click.echo(f"  failed: {name}: {reason}", err=True)
        elif verdict != "new":
            what = "in the library" if verdict == "in_library" else "the same picture"
            click.echo(f"  {what}: {name} as {image} ({score:.0%} alike)")
    if total == 0:
        raise click.ClickException("no image files found")
    if counts["failed"] == total:
        raise click.ClickException("no file could be read")


def ingest_via_server(path: Path, server: str, token: str = "") -> None:
    """Upload a folder's images to a running app in chunks, following each job to its end."""
    names = Folder(path, limit=2**63).names()
    api = server.rstrip("/") + "/api/v1/jobs"
    counts: Counter[str] = Counter()
    failures: list[tuple[str, str]] = []
    with tqdm(total=len(names), desc="indexing", unit="img") as bar:
        for start in range(0, len(names), UPLOAD_CHUNK):
            chunk = names[start : start + UPLOAD_CHUNK]
            files = [("files", (name, (path / name).read_bytes())) for name in chunk]
            job = _call("post", api, token, files=files)
            done = 0
            while job["status"] in ("queued", "running"):
                time.sleep(0.5)
                job = _call("get", f"{api}/{job['id']}", token)
                bar.update(job["processed"] - done)
                done = job["processed"]
            if job["status"] != "done":
                raise click.ClickException(f"job {job['id']} ended {job['status']}: {job.get('error')}")
            job = _call("get", f"{api}/{job['id']}", token)
            bar.update(job["processed"] - done)
            counts.update(added=job["added"], duplicates=job["duplicates"], failed=job["failed"])
            failures += [(chunk_name(chunk, f["name"]), f["reason"]) for f in job["failures"]]
    summarise(len(names), counts, failures)


def chunk_name(chunk: list[str], uploaded: str) -> str:
    """Map an uploaded file's name back to its path under the folder."""
    return next((name for name in chunk if name.rsplit("/", 1)[-1] == uploaded), uploaded)


def _call(method: str, url: str, token: str = "", **kwargs: Any) -> Any:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        response = requests.request(method, url, timeout=300, headers=headers, **kwargs)
    except requests.RequestException as exc:
        raise click.ClickException(f"cannot reach {url}: {exc}") from exc
    if response.status_code >= 400:
        message = response.json().get("message") if response.headers.get("content-type") == "application/json" else ""
        raise click.ClickException(f"{url} answered {response.status_code}: {message or response.reason}")
    expiry = response.headers.get(EXPIRY_HEADER)
    if expiry and expiry not in _warned and (warning := expiry_warning(expiry, datetime.now(UTC))):
        _warned.add(expiry)
        click.echo(warning, err=True)
    return response.json()


def expiry_warning(header: str, now: datetime) -> str | None:
    """Say that the token expires soon, from the server's X-Token-Expires; None if not soon (or unreadable)."""
    try:
        expires = datetime.strptime(header, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    except ValueError:
        return None
    left = expires - now
    if left > EXPIRY_WARNING:
        return None
    days = f"in {left.days} day{'' if left.days == 1 else 's'}" if left.days >= 1 else "within a day"
    return f"warning: this token expires {days} ({header}): make a new one (Account page, or flask tokens create)"


@click.command("ingest")
@click.argument("path", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--server", metavar="URL", help="Send the work to a running app (e.g. http://127.0.0.1:8000).")
@click.option(
    "--token", envvar="WEBAPP_API_TOKEN", default="", help="An editor's API token for --server (or WEBAPP_API_TOKEN)."
)
@click.option(
    "--check", is_flag=True, help="Add nothing: say which files the library holds, or holds the same picture of."
)
@click.option(
    "--new-only",
    is_flag=True,
    help="Check first, then load only the files the library holds neither the bytes nor the same picture of.",
)
@with_appcontext
def ingest_command(path: Path, server: str | None, token: str, check: bool, new_only: bool) -> None:
    """Index every image under PATH (recursively), with a progress bar and a summary."""
    if check and new_only:
        raise click.UsageError("--check adds nothing and --new-only adds the new files: give one of them")
    if (check or new_only) and server:
        check_via_server(path, server, token, new_only)
    elif check or new_only:
        check_locally(path, new_only)
    elif server:
        ingest_via_server(path, server, token)
    else:
        ingest_locally(path)


@click.command("migrate")
@click.option(
    "--to", "target_uri", required=True, metavar="URI", help="Milvus server (http://host:19530) or Lite file."
)
@click.option("--token", default="", help="Token of the target server, if it needs one.")
@click.option("--collection", default=None, help="Target collection (default: the same name).")
@with_appcontext
def migrate_command(target_uri: str, token: str, collection: str | None) -> None:
    """Copy every vector and its metadata from the configured store to another one."""
    rt = runtime()
    try:
        source = rt.vectors
        if collection:  # a new library name: its vectors are the source's, of the same model
            ModelBinding(rt.database).bind(collection, rt.embedder.identity)
        target = rt.store_at(target_uri, collection or source.collection, token)
    except WebappError as exc:
        raise click.ClickException(exc.message) from exc
    total = source.count()
    with tqdm(total=total, desc="copying", unit="img") as bar:
        for batch in source.export():
            target.upsert(batch)
            bar.update(len(batch))
    target.flush()
    copied = target.count()
    click.echo(f"{total} images in {source.uri}; {copied} now in {target.uri} ({target.collection})")
    if copied < total:
        raise click.ClickException("the target has fewer images than the source")
    click.echo(f"Point the app at it: WEBAPP_MILVUS_URI={target_uri} WEBAPP_COLLECTION={target.collection}")
    target.close()


@click.command("check")
@click.option("--repair", is_flag=True, help="Make the files, the vectors and the catalogue agree.")
@with_appcontext
def check_command(repair: bool) -> None:
    """Report (and with --repair, fix) files, vectors and catalogue entries that disagree."""
    try:
        report = consistency.check(runtime().library, repair=repair)
    except WebappError as exc:
        raise click.ClickException(exc.message) from exc
    click.echo(f"{report.files} image files, {report.vectors} vectors")
    problems = {
        "vectors without their file": report.vector_without_file,
        "files without their vector": report.file_without_vector,
        "missing from the catalogue": report.missing_from_catalogue,
        "stale in the catalogue": report.stale_in_catalogue,
        "albums the catalogue names otherwise": report.album_differs,
        "temporary files left by a crash": [path.name for path in report.leftover_files],
        "images in the trash without their original": report.lost_from_trash,
    }
    for label, ids in problems.items():
        click.echo(f"{label}: {len(ids)}" + (f" ({', '.join(i[:12] for i in ids[:5])}...)" if ids else ""))
    if report.consistent:
        click.echo("consistent")
    elif repair:
        repaired = (
            f"repaired: {report.reindexed} files embedded again, {len(report.vector_without_file)} vectors removed, "
            f"{len(report.album_differs)} albums set as stored with the vectors, "
            f"{len(report.leftover_files)} temporary files removed, "
            f"{len(report.lost_from_trash)} images without their original removed from the trash"
        )
        audit.command(repaired)
        click.echo(repaired)
        for sha in report.unreadable:
            click.echo(f"  unreadable file left in place: {sha}", err=True)
    else:
        raise click.ClickException("inconsistent: run `flask --app wsgi check --repair`")


@click.command("reindex")
@click.option("--model", type=click.Choice(sorted(MODELS)), required=True, help="The model to re-embed with.")
@click.option("--server", metavar="URL", help="Ask a running app to do it (e.g. http://127.0.0.1:8000).")
@click.option("--token", envvar="WEBAPP_API_TOKEN", default="", help="An admin's API token for --server.")
@with_appcontext
def reindex_command(model: str, server: str | None, token: str) -> None:
    """Re-embed every image with MODEL into a new collection, then switch the library over.

    Searches keep answering from the old collection until the new one is complete. Stopped, it
    continues where it left off when run again.
    """
    if server:
        job = _call("post", server.rstrip("/") + "/api/v1/library/reindex", token, json={"model": model})
        with tqdm(total=job["total"], desc=f"re-embedding with {model}", unit="img") as bar:
            while job["status"] in ("queued", "running"):
                time.sleep(1)
                job = _call("get", server.rstrip("/") + job["url"], token)
                bar.update(job["processed"] - bar.n)
    else:
        open_library(f"reindex --model {model} --server http://127.0.0.1:8000 --token ...", reindexing=True)
        try:
            with job_bar(f"re-embedding with {model}") as progress:
                job = asdict(runtime().reindex(model, progress, by=audit.login()))
        except WebappError as exc:
            raise click.ClickException(exc.message) from exc
    if job["status"] != "done":
        raise click.ClickException(f"the reindex ended {job['status']}: {job.get('error') or ''}")
    if not server:  # through a server, the server's log has the request
        audit.command(f"job {job['id']}: {job['processed']} images re-embedded with {model}; the library switched over")
    click.echo(f"{job['processed']} images re-embedded with {model}; the library searches them now.")
    click.echo(
        f"Processes with WEBAPP_MODEL unset follow the library; where it is set, set WEBAPP_MODEL={model} "
        "before they next start."
    )


@click.command("trash")
@click.option("--restore", "ids", multiple=True, metavar="ID", help="Restore this image (repeat for more).")
@click.option("--limit", default=50, show_default=True, type=click.IntRange(1, 10_000), help="How many to list.")
@with_appcontext
def trash_command(ids: tuple[str, ...], limit: int) -> None:
    """Print the trash, the latest deleted first (when, by whom, id, name, album, when it goes for
    good), or restore images from it with --restore."""
    rt = runtime()
    trash = rt.trash
    if trash is None:
        raise click.ClickException("deletions are final here: the trash is off (WEBAPP_TRASH_DAYS is 0)")
    if not ids:
        for item in trash.items(0, limit)[0]:
            rec = item.record
            line = (
                timestamp(item.deleted_at),
                item.deleted_by or "-",
                rec.sha256,
                rec.filename,
                rec.album,
                timestamp(item.expires_at),
            )
            click.echo("\t".join(line))
        return
    try:
        library = rt.library
    except WebappError as exc:
        raise click.ClickException(
            f"{exc.message}.\nStop the server first, or restore through it: the Trash page, or "
            "POST /api/v1/trash/restore with the ids"
        ) from exc
    results = trash.restore(library, ids)
    for item, outcome in results:
        click.echo(f"{'restored' if outcome.record else 'stays in the trash'}\t{item.sha256}\t{item.record.filename}")
        if outcome.record is None:
            click.echo(f"  {item.record.filename}: {outcome.reason}", err=True)
    found = {item.sha256 for item, _ in results}
    for sha in dict.fromkeys(ids):
        if sha not in found:
            click.echo(f"not in the trash: {sha}", err=True)
    failed = len(found) < len(set(ids)) or any(outcome.record is None for _, outcome in results)
    if back := [outcome.record for _, outcome in results if outcome.record is not None]:
        audit.command(audit.restored(back), int(failed))
    if failed:
        raise SystemExit(1)


def init_app(app: Flask) -> None:
    """Register the commands."""
    app.cli.add_command(ingest_command)
    app.cli.add_command(migrate_command)
    app.cli.add_command(check_command)
    app.cli.add_command(reindex_command)
    app.cli.add_command(trash_command)
    worker.init_app(app)
    accounts_cli.init_app(app)
    evaluation_cli.init_app(app)
