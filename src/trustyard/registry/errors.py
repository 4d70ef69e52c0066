"""The OCI distribution error codes as one table, the exception that carries them, and the
one mapping from domain errors (`trustyard.errors`) onto them."""

from __future__ import annotations

import enum
import json
from typing import Any

from trustyard import errors


class ErrorCode(enum.Enum):
    """Each code with the HTTP status the spec pairs it with and a default message."""

    BLOB_UNKNOWN = (404, "blob unknown to registry")
    BLOB_UPLOAD_INVALID = (400, "blob upload invalid")
    BLOB_UPLOAD_UNKNOWN = (404, "blob upload unknown to registry")
    DIGEST_INVALID = (400, "provided digest did not match uploaded content")
    MANIFEST_BLOB_UNKNOWN = (400, "manifest references a manifest or blob unknown to registry")
    MANIFEST_INVALID = (400, "manifest invalid")
    MANIFEST_UNKNOWN = (404, "manifest unknown to registry")
    NAME_INVALID = (400, "invalid repository name")
    NAME_UNKNOWN = (404, "repository name not known to registry")
    SIZE_INVALID = (400, "provided length did not match content length")
    UNAUTHORIZED = (401, "authentication required")
    DENIED = (403, "requested access to the resource is denied")
    UNSUPPORTED = (415, "the operation is unsupported")
    TOOMANYREQUESTS = (429, "too many requests")
    RANGE_INVALID = (416, "invalid content range")
    TAG_INVALID = (400, "invalid tag")
    PAGINATION_NUMBER_INVALID = (400, "invalid number of results requested")
    UNAVAILABLE = (503, "service unavailable")
    UNKNOWN = (500, "unknown error")

    @property
    def status(self) -> int:
        return self.value[0]

    @property
    def default_message(self) -> str:
        return self.value[1]


class OciError(Exception):
    """A failure that maps onto one OCI error code."""

    def __init__(
        self,
        code: ErrorCode,
        message: str | None = None,
        detail: Any = None,
        status: int | None = None,
    ) -> None:
        self.code = code
        self.message = message or code.default_message
        self.detail = detail
        self.status = status or code.status
        super().__init__(f"{code.name}: {self.message}")


def error_body(errors: list[OciError]) -> bytes:
    """Render the OCI error envelope: {"errors": [{"code", "message", "detail"}]}."""
    items = []
    for err in errors:
        item: dict[str, Any] = {"code": err.code.name, "message": err.message}
        if err.detail is not None:
            item["detail"] = err.detail
        items.append(item)
    return json.dumps({"errors": items}).encode()


# Each domain error /v2 answers, with its OCI code and, when the spec's status does not fit, its
# own. A class not listed answers as its nearest listed parent; the generic account errors
# (NotFound, Invalid, Conflict) are not listed: /v2 never shows accounts, one that escapes is
# an internal error.
CODES: dict[type[errors.DomainError], tuple[ErrorCode, int | None]] = {
    errors.NameUnknown: (ErrorCode.NAME_UNKNOWN, None),
    errors.ManifestUnknown: (ErrorCode.MANIFEST_UNKNOWN, None),
    errors.BlobUnknown: (ErrorCode.BLOB_UNKNOWN, None),
    errors.BlobUploadUnknown: (ErrorCode.BLOB_UPLOAD_UNKNOWN, None),
    errors.NameInvalid: (ErrorCode.NAME_INVALID, None),
    errors.TagInvalid: (ErrorCode.TAG_INVALID, None),
    errors.DigestInvalid: (ErrorCode.DIGEST_INVALID, None),
    errors.SizeInvalid: (ErrorCode.SIZE_INVALID, None),
    errors.RangeInvalid: (ErrorCode.RANGE_INVALID, None),
    errors.ManifestInvalid: (ErrorCode.MANIFEST_INVALID, None),
    errors.ManifestTooLarge: (ErrorCode.MANIFEST_INVALID, 413),
    errors.ManifestBlobUnknown: (ErrorCode.MANIFEST_BLOB_UNKNOWN, None),
    errors.Denied: (ErrorCode.DENIED, None),
    errors.Unauthenticated: (ErrorCode.UNAUTHORIZED, None),
    errors.Throttled: (ErrorCode.TOOMANYREQUESTS, None),
    errors.Unavailable: (ErrorCode.UNAVAILABLE, None),
}


def _row(error: errors.DomainError) -> tuple[ErrorCode, int | None] | None:
    for kind in type(error).__mro__:
        found = CODES.get(kind)
        if found is not None:
            return found
    return None


def answered(error: errors.DomainError) -> bool:
    """Whether /v2 has an answer for this error (if not, it is an internal error)."""
    return _row(error) is not None


def oci_error(error: errors.DomainError) -> OciError:
    """The OCI error a domain error answers as: its code (or its nearest listed parent's)
    with the error's message and detail; UNKNOWN, saying nothing more, if none is listed."""
    found = _row(error)
    if found is None:
        return OciError(ErrorCode.UNKNOWN, "internal error")
    code, status = found
    return OciError(code, error.message, error.detail, status)


def oci_headers(error: errors.DomainError) -> list[tuple[bytes, bytes]]:
    """The headers that go with it: Retry-After for a refusal that says when to retry."""
    if isinstance(error, errors.Throttled):
        return [(b"retry-after", str(error.retry_after).encode())]
    return []
