"""What pages show of an image besides its original: its thumbnail and a preview a browser can show,
each made from the original at its first view and kept; and a picture of a photo not in the library."""

from __future__ import annotations

from pathlib import Path

from webapp.errors import NotFound, StoreUnavailable, WebappError
from webapp.services.images import ImageStore
from webapp.services.imaging import PREVIEW_SIZE, decode, thumbnail
from webapp.services.priority import PRIORITY


class Renditions:
    """Makes thumbnails and previews from the originals of an image store, as they are first asked for."""

    def __init__(self, images: ImageStore, max_pixels: int, thumbnail_size: int) -> None:
        self.images = images
        self.max_pixels = max_pixels
        self.thumbnail_size = thumbnail_size

    def thumbnail(self, sha256: str, store: ImageStore | None = None) -> Path | None:
        """Return the path of an image's thumbnail (in ``store``, the library's by default), made
        from its original if not yet made; None if neither exists.

        A bulk load leaves JPEGs' thumbnails to their first view: one cost 1.4 ms of the load's CPU
        per image, a seventh of a job (README, Measured), and most are never looked at.
        """
        return self._made("thumbnails", sha256, self.thumbnail_size, store or self.images)

    def preview(self, sha256: str) -> Path | None:
        """Return the path of a JPEG of the image up to PREVIEW_SIZE a side, made from its original
        at its first view; None if there is no original.

        For an image's page when the original is one browsers cannot show (SHOWN_BY_BROWSERS).
        """
        return self._made("previews", sha256, PREVIEW_SIZE, self.images)

    def picture(self, data: bytes) -> tuple[bytes, int, int]:
        """Return a JPEG of an image that need not be in the library, at most PREVIEW_SIZE a side,
        and the image's upright width and height: what a page shows of a photo its browser cannot
        (a HEIC in Chromium), to draw a region on. Nothing is stored."""
        with PRIORITY.interactive():
            decoded = decode(data, self.max_pixels, draft=PREVIEW_SIZE)
            return thumbnail(decoded.image, PREVIEW_SIZE), decoded.width, decoded.height

    def _made(self, kind: str, sha256: str, size: int, store: ImageStore) -> Path | None:
        """Return the path of ``kind`` of an image in ``store``, made now from its original if need be."""
        path = store.made(kind, sha256)
        original = None if path is not None else store.original(sha256)
        if original is None:
            return path
        what = kind.removesuffix("s")
        with PRIORITY.interactive():  # someone is looking at a page: a bulk load steps aside
            try:
                decoded = decode(original.read_bytes(), self.max_pixels, draft=size)
            except (OSError, WebappError) as exc:  # stored, so it was readable once: damaged since
                message = exc.message if isinstance(exc, WebappError) else str(exc)
                raise NotFound(f"the {what} of {sha256} cannot be made from its original: {message}") from exc
            try:
                return store.put_made(kind, sha256, thumbnail(decoded.image, size))
            except OSError as exc:  # a full disk, a read-only mount: say so, with 503
                raise StoreUnavailable(f"the {what} of {sha256} could not be stored: {exc}") from exc
