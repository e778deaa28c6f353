"""Domain errors raised by the services; the web layer maps each to one HTTP status."""

from __future__ import annotations


class WebappError(Exception):
    """Base class of the errors a client or operator can be told about."""

    status = 500

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidImage(WebappError):
    """The bytes are not an image this app can read."""

    status = 422


class ImageTooLarge(WebappError):
    """The image has more pixels than allowed (decompression bomb guard)."""

    status = 413


class InvalidInput(WebappError):
    """A request or a file that cannot be used as it is."""

    status = 422


class Forbidden(WebappError):
    """The request names something this app may not touch (e.g. a folder outside the roots)."""

    status = 403


class Conflict(WebappError):
    """The request does not fit the current state (e.g. resuming a finished job)."""

    status = 409


class NotFound(WebappError):
    """No image with that id is indexed."""

    status = 404


class StoreUnavailable(WebappError):
    """The vector store cannot be reached or refused the operation."""

    status = 503


class ModelMissing(WebappError):
    """The ONNX model file has not been built yet."""

    status = 503


class Unauthenticated(WebappError):
    """The operation needs credentials and the request has none (or a token that no longer works)."""

    status = 401
    headers = {"WWW-Authenticate": 'Bearer realm="image search"'}


class TooManyAttempts(WebappError):
    """Too many failed logins for one account or from one address, recently."""

    status = 429

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class TooBusy(WebappError):
    """This server process does as many of these at once as it may (a download of an album); try again soon."""

    status = 429
    retry_after = 30


class ModelMismatch(WebappError):
    """The configured model is not the one the library's vectors were made with."""

    status = 503
