"""Where a job's files come from: uploaded files, a zip archive, or a folder on the server."""

from __future__ import annotations

import os
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path, PurePosixPath
from typing import Any, Protocol

from webapp.errors import Forbidden, InvalidInput, WebappError
from webapp.services.library import Entry, clean_filename

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".jpe", ".png", ".gif", ".webp", ".bmp", ".tif", ".tiff"}


class Source(Protocol):
    """The files of one job: listed once, then read one by one (by position and name)."""

    def names(self) -> list[str]: ...
    def read(self, seq: int, name: str) -> Entry: ...


def is_candidate(name: str) -> bool:
    """Tell whether a file in a folder or archive should be indexed (image suffix, not hidden)."""
    parts = PurePosixPath(name.replace("\\", "/")).parts
    if not parts or any(p.startswith(".") or p == "__MACOSX" for p in parts):
        return False
    return PurePosixPath(parts[-1]).suffix.lower() in IMAGE_SUFFIXES


def _too_large(size: int, limit: int) -> WebappError | None:
    if size > limit:
        return InvalidInput(f"the file is too large ({size} bytes; the limit is {limit} bytes)")
    return None


class UploadedFiles:
    """Files uploaded with the job, spooled as ``<spool>/<seq>``."""

    def __init__(self, spool: Path, limit: int) -> None:
        self.spool = spool
        self.limit = limit

    def names(self) -> list[str]:
        raise AssertionError("uploaded jobs list their items when they are created")

    def read(self, seq: int, name: str) -> Entry:
        path = self.spool / f"{seq:06d}"
        try:
            error = _too_large(path.stat().st_size, self.limit)
            return Entry(clean_filename(name), error or path.read_bytes())
        except FileNotFoundError:
            return Entry(clean_filename(name), InvalidInput("the uploaded file is gone (spool was removed)"))


class ZipArchive:
    """Image entries of a zip file; nothing is extracted to disk, so no entry can escape."""

    def __init__(self, path: Path, limit: int) -> None:
        self.limit = limit
        try:
            self.zip = zipfile.ZipFile(path)
        except (zipfile.BadZipFile, OSError) as exc:
            raise InvalidInput(f"the archive is not a readable zip file ({exc})") from exc

    def names(self) -> list[str]:
        return [i.filename for i in self.zip.infolist() if not i.is_dir() and is_candidate(i.filename)]

    def read(self, seq: int, name: str) -> Entry:
        try:
            info = self.zip.getinfo(name)
            error = _too_large(info.file_size, self.limit)
            if error:
                return Entry(clean_filename(name), error)
            with self.zip.open(info) as member:
                data = member.read(self.limit + 1)  # never trust the declared size alone
            return Entry(clean_filename(name), _too_large(len(data), self.limit) or data)
        except (zipfile.BadZipFile, OSError, KeyError, RuntimeError, EOFError) as exc:
            return Entry(clean_filename(name), InvalidInput(f"the archive entry is damaged ({exc})"))

    def close(self) -> None:
        self.zip.close()


class Folder:
    """Image files under a folder, recursively, never following a link out of it."""

    def __init__(self, path: Path, limit: int) -> None:
        self.root = path.resolve()
        self.limit = limit
        if not self.root.is_dir():
            raise InvalidInput(f"{path} is not a folder")

    def _inside(self, path: Path) -> bool:
        return path.resolve().is_relative_to(self.root)

    def names(self) -> list[str]:
        found = []
        for folder, dirs, files in os.walk(self.root):
            dirs[:] = sorted(d for d in dirs if not d.startswith("."))
            for name in sorted(files):
                path = Path(folder) / name
                rel = path.relative_to(self.root).as_posix()
                if is_candidate(rel) and self._inside(path):
                    found.append(rel)
        return found

    def read(self, seq: int, name: str) -> Entry:
        path = self.root / name
        try:
            if not self._inside(path):
                return Entry(clean_filename(name), Forbidden("the file links outside the folder"))
            error = _too_large(path.stat().st_size, self.limit)
            return Entry(clean_filename(name), error or path.read_bytes())
        except OSError as exc:
            return Entry(clean_filename(name), InvalidInput(f"cannot read the file ({exc.strerror})"))


def allowed_folder(folder: str, roots: list[str]) -> Path:
    """Return the resolved folder if it lies under one of ``roots``, else refuse."""
    path = Path(folder).expanduser()
    if not path.is_absolute():
        raise InvalidInput("give the folder as an absolute path")
    resolved = path.resolve()
    allowed = [Path(r).resolve() for r in roots]
    if not any(resolved.is_relative_to(root) for root in allowed):
        listed = ", ".join(str(r) for r in allowed) or "none"
        raise Forbidden(
            f"{folder} is not under an allowed import folder (allowed: {listed}); set WEBAPP_IMPORT_ROOTS to allow more"
        )
    if not resolved.is_dir():
        raise InvalidInput(f"{folder} is not a folder")
    return resolved


@contextmanager
def open_source(kind: str, source: str, spool: Path, settings: dict[str, Any]) -> Iterator[Source]:
    """Open a job's source; folders from the API are checked against the allowed roots again."""
    limit = int(settings["MAX_FILE_BYTES"])
    if kind == "files":
        yield UploadedFiles(spool, limit)
    elif kind == "archive":
        archive = ZipArchive(spool / "archive.zip", limit)
        try:
            yield archive
        finally:
            archive.close()
    elif kind == "folder":
        yield Folder(allowed_folder(source, settings["IMPORT_ROOTS"]), limit)
    elif kind == "cli":  # the operator's own command line: no roots apply
        yield Folder(Path(source), limit)
    else:
        raise InvalidInput(f"unknown job kind {kind}")
