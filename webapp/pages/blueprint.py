"""The pages blueprint and what its views share: paging through long lists, number formats."""

from __future__ import annotations

import math
import unicodedata
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from flask import Blueprint, request, url_for
from werkzeug.exceptions import BadRequest

from webapp.services.albums import lineage, parse_album, shallowest
from webapp.services.imaging import SHOWN_BY_BROWSERS
from webapp.services.job_states import OF_ALBUM, OF_JOB
from webapp.urls import image_url

blp = Blueprint("pages", __name__)
blp.add_app_template_global(image_url)
blp.add_app_template_filter(shallowest)
blp.add_app_template_filter(lineage, "album_path")


@blp.app_template_test("shown_by_browsers")
def shown_by_browsers(mime: str) -> bool:
    """Tell whether browsers show images of this type (``image.mime is shown_by_browsers``); else a
    page shows the image's JPEG preview."""
    return mime in SHOWN_BY_BROWSERS


MAX_PER_PAGE = 100
JOB_KINDS = {
    "files": "Uploaded files",
    "archive": "Zip archive",
    "folder": "Server folder",
    "cli": "Command line",
    "reindex": "Re-embedding",
    "duplicates": "Duplicate scan",
    "move": "Album move",
    "delete": "Deletion",
    "restore": "Restore",
    "check-files": "Check of uploaded files",
    "check-archive": "Check of a zip archive",
    "check-folder": "Check of a server folder",
    "check-cli": "Check from the command line",
}


def album_arg(source: Any = None) -> str:
    """Return the ``album`` a page was asked for ("" for the whole library); 422 for a bad name.

    Composed (NFC), as the album lists spell it (services/catalog.py, ``Catalog.albums``), so a
    menu shows the album a link in a Mac's spelling asked for; a filter finds either spelling.
    """
    return unicodedata.normalize(
        "NFC", parse_album((source if source is not None else request.args).get("album") or "")
    )


def typed_count(what: str, nothing: str) -> int:
    """Return the number typed in a confirmation form's ``confirm`` field, or answer 400.

    ASCII digits only, and no longer than any count: ``isdigit`` also takes "²" and other
    digits ``int`` refuses, and ``int`` refuses more than 4,300 digits (each was a 500).
    """
    typed = request.form.get("confirm", "").strip()
    if not (typed.isascii() and typed.isdigit() and len(typed) <= 18):
        raise BadRequest(f"Type the number of images in {what} to confirm. Nothing was {nothing}.")
    return int(typed)


def _positive(name: str, default: int) -> int:
    value = request.args.get(name, str(default)).strip()
    if not (value.isascii() and value.isdigit()) or int(value[:18]) < 1:  # 4,301 digits: int() refuses them
        raise BadRequest(f"{name} must be a whole number of at least 1.")
    return int(value[:18])


@dataclass(frozen=True)
class Pager:
    """Which slice of a long list a page shows (``?page=``, ``?per_page=``), and links to the others."""

    endpoint: str
    page: int
    per_page: int
    default_per_page: int
    total: int = 0
    keep: tuple[tuple[str, str], ...] = ()  # other query parameters every page link keeps (a filter)

    @classmethod
    def from_request(cls, default_per_page: int) -> Pager:
        """Read the page number and page size from the query string (the size is capped)."""
        per_page = min(_positive("per_page", default_per_page), MAX_PER_PAGE)
        return cls(str(request.endpoint), _positive("page", 1), per_page, default_per_page)

    def keeping(self, **params: str) -> Pager:
        """Return this pager with query parameters its links keep (empty values are left out)."""
        return replace(self, keep=tuple((k, v) for k, v in params.items() if v))

    def counted(self, total: int) -> Pager:
        """Return this pager knowing how many items there are in all."""
        return replace(self, total=total)

    @property
    def offset(self) -> int:
        """Return how many items come before this page."""
        return (self.page - 1) * self.per_page

    @property
    def pages(self) -> int:
        """Return the number of pages (at least one, even for an empty list)."""
        return max(1, math.ceil(self.total / self.per_page))

    @property
    def beyond_end(self) -> bool:
        """Tell whether the page asked for lies past the last one."""
        return self.page > self.pages

    def url(self, page: int) -> str:
        """Return the URL of another page of the same list, keeping a non-default page size."""
        per_page = None if self.per_page == self.default_per_page else self.per_page
        params: dict[str, Any] = {"page": page, "per_page": per_page, **dict(self.keep)}
        return url_for(self.endpoint, **params)


@blp.app_template_filter("duration")
def duration(seconds: float | None) -> str:
    """Format seconds as "42 s", "3 min 05 s" or "2 h 07 min"; an em dash when unknown."""
    if seconds is None:
        return "—"
    total = round(seconds)
    if total < 60:
        return f"{total} s"
    minutes, secs = divmod(total, 60)
    if minutes < 60:
        return f"{minutes} min {secs:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


@blp.app_template_filter("rate")
def rate(per_second: float | None) -> str:
    """Format an ingestion rate as "12.3 images/s"; an em dash when unknown."""
    return "—" if not per_second else f"{per_second:.1f} images/s"


@blp.app_template_filter("job_kind")
def job_kind(kind: str) -> str:
    """Name a job's kind of source for people."""
    return JOB_KINDS.get(kind, kind)


@blp.app_template_filter("job_source")
def job_source(job: Any) -> str:
    """Say what a job works on: a load's folder or upload, a move's albums (``a/b to c``), what a
    deletion deletes."""
    if job.kind == "move":
        return f"{job.source} to {job.album or 'the top level'}"
    if job.kind == "delete" and job.source.startswith(OF_ALBUM):
        return f"the album {job.source.removeprefix(OF_ALBUM)} and its sub-albums"
    if job.kind == "delete" and job.source.startswith(OF_JOB):
        return f"what the load {job.source.removeprefix(OF_JOB)[:8]} added"
    if job.kind == "restore":
        return f"what the deletion {job.source.removeprefix(OF_JOB)[:8]} deleted"
    return str(job.source)


@blp.app_template_filter("timestamp")
def timestamp(seconds: float | None, precise: bool = False) -> str:
    """Format a Unix time as "2026-11-30 14:05 UTC" ("14:05:09" if ``precise``); an em dash when unknown."""
    if seconds is None:
        return "—"
    return datetime.fromtimestamp(seconds, tz=UTC).strftime(
        "%Y-%m-%d %H:%M:%S UTC" if precise else "%Y-%m-%d %H:%M UTC"
    )


@blp.app_template_filter("isotime")
def isotime(seconds: float) -> str:
    """Format a Unix time in ISO 8601, in UTC (a <time> element's datetime)."""
    return datetime.fromtimestamp(seconds, tz=UTC).isoformat()


@blp.app_context_processor
def _model_label() -> dict[str, str]:
    """Name the model the library is embedded with (the footer)."""
    from webapp.errors import WebappError
    from webapp.models import MODELS
    from webapp.runtime import runtime

    try:
        name = runtime().model
    except WebappError:  # the database is down: the page says so itself
        return {"model_label": ""}
    return {"model_label": MODELS[name].label if name in MODELS else name}
