"""Where a job's files come from: uploaded files, a zip archive, or a folder on the server."""

from __future__ import annotations

import os
import re
import stat
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path, PurePosixPath
from typing import Protocol

from webapp.errors import Forbidden, InvalidInput, WebappError
from webapp.services.adding import Entry
from webapp.services.archives import damage, entry_name, refusal

# Files named as images are loaded, whatever their content turns out to be. JPEGs go by two more
# names: .jfif (as Windows saved them from browsers) and .mpo (a 3D camera's two pictures in one file).
IMAGE_SUFFIXES = {
    *(".jpg", ".jpeg", ".jpe", ".jfif", ".mpo"),
    *(".png", ".gif", ".webp", ".avif", ".bmp", ".tif", ".tiff", ".heic", ".heif"),
}


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


# A file name that is not UTF-8 on disk (Latin-1 from an old NAS, what unzip made of an old Windows
# zip) comes from os.walk with lone surrogates, which neither a database nor JSON can hold: one such
# file crashed the listing of its whole job. It is listed with each byte that is not UTF-8 written as
# \xNN, as Python prints it, and read back from those bytes.
ESCAPED_BYTE = re.compile(rb"\\x([0-9a-f]{2})")


def _listed_name(name: str) -> str:
    try:
        name.encode("utf-8")
        return name
    except UnicodeEncodeError:
        return os.fsencode(name).decode("utf-8", "backslashreplace")


def _path_of(root: Path, name: str) -> Path:
    """Return the file a listed name stands for (a literal \\xNN in a name on disk is found first)."""
    path = root / name
    if "\\x" in name and not os.path.lexists(path):
        path = root / os.fsdecode(ESCAPED_BYTE.sub(lambda m: bytes([int(m[1], 16)]), name.encode()))
    return path


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
            return Entry.at(name, error or path.read_bytes())
        except FileNotFoundError:
            return Entry.at(name, InvalidInput("the uploaded file is gone (spool was removed)"))


class ZipArchive:
    """Entries of a zip file, read in memory: nothing is ever extracted to disk by its name."""

    def __init__(self, path: Path, limit: int) -> None:
        self.limit = limit
        self._listed: list[zipfile.ZipInfo] | None = None
        self._by_name: dict[str, zipfile.ZipInfo] = {}
        try:
            self.zip = zipfile.ZipFile(path)
        except (zipfile.BadZipFile, OSError) as exc:
            raise InvalidInput(f"the archive is not a readable zip file ({exc})") from exc

    def _entries(self) -> list[zipfile.ZipInfo]:
        if self._listed is None:
            for info in self.zip.infolist():
                # zipfile opens an entry by its orig_filename, which stays as it was read.
                info.filename = entry_name(info)
            self._listed = [
                info
                for info in self.zip.infolist()
                if not info.is_dir() and (is_candidate(info.filename) or refusal(info, self.limit) is not None)
            ]
            self._by_name = {info.filename: info for info in self._listed}  # the last of a name, as getinfo()
        return self._listed

    def names(self) -> list[str]:
        """Image entries, and entries that must be refused (so the job reports them)."""
        return [info.filename for info in self._entries()]

    def read(self, seq: int, name: str) -> Entry:
        try:
            # By position: two entries may have the same name, and getinfo() finds only the last.
            entries = self._entries()
            info = entries[seq] if seq < len(entries) and entries[seq].filename == name else self._by_name[name]
            refused = refusal(info, self.limit)
            if refused is not None:
                return Entry.at(name, refused)
            with self.zip.open(info) as member:
                data = member.read(self.limit + 1)  # never trust the declared size alone
            return Entry.at(name, _too_large(len(data), self.limit) or data)
        except (zipfile.BadZipFile, OSError, KeyError, RuntimeError, EOFError) as exc:  # incl. unsupported methods
            return Entry.at(name, InvalidInput(f"the archive entry is damaged: {damage(exc)}"))

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
        try:
            return path.resolve().is_relative_to(self.root)
        except (OSError, RuntimeError):  # a link loop: listed, then reported as that file's failure
            return True

    def names(self) -> list[str]:
        """Image files, and folders that could not be listed (each reported as one failure).

        os.walk passes over a folder it cannot list (no permission, as for a folder of another
        user on a NAS): its photos were left out without a word, and the job ended done.
        """
        found = []

        def unreadable(exc: OSError) -> None:
            path = Path(exc.filename) if exc.filename else self.root
            if path == self.root:
                raise InvalidInput(f"the folder cannot be read ({_reason(exc)})") from exc
            found.append(_listed_name(path.relative_to(self.root).as_posix()) + "/")

        for folder, dirs, files in os.walk(self.root, onerror=unreadable):
            dirs[:] = sorted(d for d in dirs if not d.startswith("."))
            for name in sorted(files):
                path = Path(folder) / name
                rel = path.relative_to(self.root).as_posix()
                if is_candidate(rel) and self._inside(path):
                    found.append(_listed_name(rel))
        return found

    def read(self, seq: int, name: str) -> Entry:
        path = _path_of(self.root, name)
        if name.endswith("/"):
            return Entry.at(name, _unlisted(path), posix=True)
        try:
            if not self._inside(path):
                return Entry.at(name, Forbidden("the file links outside the folder"), posix=True)
            info = path.stat()
            if not stat.S_ISREG(info.st_mode):  # a FIFO or a device would block or never end
                return Entry.at(name, InvalidInput("not a regular file"), posix=True)
            error = _too_large(info.st_size, self.limit)
            return Entry.at(name, error or path.read_bytes(), posix=True)
        except (OSError, RuntimeError) as exc:
            return Entry.at(name, InvalidInput(f"cannot read the file ({_reason(exc)})"), posix=True)


def _unlisted(folder: Path) -> InvalidInput:
    """Say why a folder the job's listing could not enter was left out."""
    try:
        with os.scandir(folder):
            pass
    except OSError as exc:
        return InvalidInput(f"the folder cannot be read ({_reason(exc)}): its files were not loaded")
    return InvalidInput("the folder could not be read when the job listed its files: load it again")


def allowed_folder(folder: str, roots: list[str]) -> Path:
    """Return the resolved folder if it lies under one of ``roots``, else refuse.

    A relative path is taken under the first root (as the bootcamp demo took it under its working
    folder); ``..`` may not lead out of it.
    """
    if "\x00" in folder or not folder.isprintable() or folder != folder.encode("utf-8", "replace").decode():
        raise InvalidInput("the folder path has control characters or invalid Unicode")
    path = Path(folder).expanduser()
    if not path.is_absolute():
        if not roots:
            raise InvalidInput("give the folder as an absolute path (no import folder to take it under)")
        path = Path(roots[0]) / path
    try:
        resolved = path.resolve()
        allowed = [Path(r).resolve() for r in roots]
        if not any(resolved.is_relative_to(root) for root in allowed):
            listed = ", ".join(str(r) for r in allowed) or "none"
            raise Forbidden(
                f"{folder} is not under an allowed import folder (allowed: {listed}); "
                "set WEBAPP_IMPORT_ROOTS to allow more"
            )
        if not resolved.is_dir():
            raise InvalidInput(f"{folder} is not a folder")
    except (OSError, RuntimeError) as exc:  # a name too long, a symbolic link loop, no permission
        raise InvalidInput(f"the folder cannot be opened ({_reason(exc)})") from exc
    return resolved


def _reason(exc: Exception) -> str:
    """Say why a path failed in words, without a Python repr."""
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror.lower()
    return "it leads to a loop of symbolic links" if isinstance(exc, RuntimeError) else type(exc).__name__


@contextmanager
def open_source(kind: str, source: str, spool: Path, limit: int, import_roots: list[str]) -> Iterator[Source]:
    """Open a job's source (files up to ``limit`` bytes); API folders are checked against the roots again."""
    if kind == "files":
        yield UploadedFiles(spool, limit)
    elif kind == "archive":
        archive = ZipArchive(spool / "archive.zip", limit)
        try:
            yield archive
        finally:
            archive.close()
    elif kind == "folder":
        yield Folder(allowed_folder(source, import_roots), limit)
    elif kind == "cli":  # the operator's own command line: no roots apply
        yield Folder(Path(source), limit)
    else:
        raise InvalidInput(f"unknown job kind {kind}")
