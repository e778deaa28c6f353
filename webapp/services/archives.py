"""Zip archives a job may open: whole-archive limits read from the end record, and entries refused by name or size.

Nothing here extracts anything: services/sources.py reads the entries allowed, in memory.
"""

from __future__ import annotations

import os
import stat
import struct
import zipfile
import zlib
from pathlib import Path, PurePosixPath

from webapp.errors import Forbidden, InvalidInput, WebappError

ARCHIVE_SUFFIXES = {".zip", ".tar", ".gz", ".tgz", ".bz2", ".xz", ".7z", ".rar", ".zst"}


UTF8_NAME = 0x800  # general purpose bit 11: the entry's name is in UTF-8
UNICODE_PATH = 0x7075  # Info-ZIP's Unicode Path extra field: the name in UTF-8, beside a legacy one


def entry_name(info: zipfile.ZipInfo) -> str:
    """Return an entry's name as the archive's maker meant it.

    Without bit 11 the format says a name is in code page 437, and zipfile decodes it so. But
    macOS's Archive Utility, Info-ZIP's ``zip`` on Linux and many Windows tools write UTF-8 without
    setting the bit: a folder "Öland" read as "├ûland", and so named its album. Such a name is taken
    from Info-ZIP's Unicode Path field when one matches it, else as UTF-8 when its bytes are valid
    UTF-8 (a code page 437 name with letters past ASCII almost never is: each would have to be a
    box-drawing character followed by an accented one), else as code page 437.
    """
    if info.flag_bits & UTF8_NAME:
        return info.filename
    try:
        raw = info.orig_filename.encode("cp437")  # the name's bytes, as zipfile decoded them
    except UnicodeEncodeError:
        return info.filename
    name = _unicode_path(info.extra, raw)
    if name is None:
        if raw.isascii():
            return info.filename
        try:
            name = raw.decode("utf-8")
        except UnicodeDecodeError:
            return info.filename
    return name.split("\x00", 1)[0]  # as zipfile cuts a name at a NUL


def _unicode_path(extra: bytes, raw: bytes) -> str | None:
    """Return the UTF-8 name of Info-ZIP's Unicode Path field, if there is one written for ``raw``."""
    at = 0
    while at + 4 <= len(extra):
        kind, size = struct.unpack("<HH", extra[at : at + 4])
        field = extra[at + 4 : at + 4 + size]
        at += 4 + size
        # Version 1, then the CRC-32 of the name it stands for (a tool that renamed the entry
        # without updating the field leaves it stale), then the name.
        if kind == UNICODE_PATH and len(field) >= 5 and field[0] == 1:
            if struct.unpack("<I", field[1:5])[0] == zlib.crc32(raw):
                try:
                    return field[5:].decode("utf-8")
                except UnicodeDecodeError:
                    return None
    return None


def refusal(info: zipfile.ZipInfo, limit: int) -> WebappError | None:
    """Say why an archive entry must not be read, or None if it may be."""
    name = info.filename.replace("\\", "/")
    parts = PurePosixPath(name).parts
    if name.startswith("/") or (parts and parts[0].endswith(":")) or ".." in parts:
        return Forbidden("refused: the entry's path leads outside the archive")
    if stat.S_ISLNK(info.external_attr >> 16):
        return Forbidden("refused: the entry is a symbolic link")
    if PurePosixPath(name).suffix.lower() in ARCHIVE_SUFFIXES:
        return InvalidInput("refused: archives inside the archive are not opened")
    # No limit on how far an entry expands: a scanned page as TIFF or BMP compresses about 400:1
    # (bench/large_files.py), as a zip bomb does. An entry is read up to the file limit whatever it
    # declares, and a job reads at most units.BATCH_BYTES a step: a bomb costs what a file at the
    # limit costs.
    if info.file_size > limit:
        return InvalidInput(f"the file is too large ({info.file_size} bytes; the limit is {limit} bytes)")
    return None


EOCD = b"PK\x05\x06"  # end of central directory record
ZIP64_LOCATOR = b"PK\x06\x07"
ZIP64_EOCD = b"PK\x06\x06"
MAX_DIRECTORY_BYTES_PER_ENTRY = 512  # 46 bytes of header, a long name and some extra fields


def directory_size(path: Path) -> tuple[int, int] | None:
    """Return (entries, bytes) the archive's end record declares, read from its tail alone."""
    with open(path, "rb") as archive:
        archive.seek(0, os.SEEK_END)
        size = archive.tell()
        archive.seek(max(0, size - 65_557))  # the record (22 bytes) and a comment of at most 65,535
        tail = archive.read()
        at = tail.rfind(EOCD)
        if at < 0 or len(tail) < at + 22:
            return None
        entries, directory = struct.unpack("<HI", tail[at + 10 : at + 16])
        locator = tail.rfind(ZIP64_LOCATOR, 0, at)
        if (entries == 0xFFFF or directory == 0xFFFFFFFF) and locator >= 0:
            (offset,) = struct.unpack("<Q", tail[locator + 8 : locator + 16])
            archive.seek(offset)
            record = archive.read(56)
            if record[:4] == ZIP64_EOCD and len(record) == 56:
                entries, directory = struct.unpack("<QQ", record[32:48])
        return entries, directory


def check_archive(path: Path, max_entries: int, max_expanded: int) -> None:
    """Refuse a whole archive that is not a zip, has too many entries or would expand too far.

    The entry count and directory size are read from the archive's end record first, so an
    archive of a million entries is refused before its directory is parsed into memory.
    """
    try:
        declared = directory_size(path)
    except OSError as exc:
        raise InvalidInput("the archive cannot be read") from exc
    if declared is not None:
        entries, directory = declared
        if entries > max_entries or directory > max_entries * MAX_DIRECTORY_BYTES_PER_ENTRY:
            shown = f"{entries} entries" if entries > max_entries else f"a {directory}-byte directory"
            raise InvalidInput(f"the archive has {shown}; the limit is {max_entries} entries")
    try:
        with zipfile.ZipFile(path) as archive:
            infos = archive.infolist()
    except (zipfile.BadZipFile, OSError) as exc:
        raise InvalidInput("the archive is not a zip file") from exc
    if len(infos) > max_entries:
        raise InvalidInput(f"the archive has {len(infos)} entries; the limit is {max_entries}")
    expanded = sum(info.file_size for info in infos)
    if expanded > max_expanded:
        raise InvalidInput(f"the archive would expand to {expanded} bytes; the limit is {max_expanded}")


def damage(exc: Exception) -> str:
    """Say in words what is wrong with an archive entry (zipfile's messages quote Python reprs)."""
    text = str(exc)
    if "CRC" in text:
        return "its checksum does not match its bytes"
    if "encrypted" in text or "password" in text:
        return "it is encrypted"
    if isinstance(exc, NotImplementedError) or "compression method" in text:
        return "it uses a compression method this app cannot read"
    if isinstance(exc, EOFError) or "truncated" in text.lower():
        return "it ends early"
    return "it cannot be read"
