"""Domain errors: what a domain refuses, in words a client may read, free of any transport.

Domains raise these; each edge maps them once, through one table: `registry/errors.py` to
the OCI error codes of /v2, `api/errors.py` to problem+json. A new refusal subclasses the
nearest generic error (NotFound, Invalid, Conflict, Denied...) so that an edge that does not
know it yet still answers it as its parent. `detail` holds structured facts (a name, a digest,
an offset) that an edge may pass on as they are.
"""

from __future__ import annotations

from collections.abc import Mapping


class DomainError(Exception):
    """Base of every domain error: a message and, optionally, structured detail."""

    def __init__(self, message: str, detail: Mapping[str, object] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.detail: dict[str, object] | None = dict(detail) if detail is not None else None


# --- generic ------------------------------------------------------------------------------


class NotFound(DomainError):
    """An object of `kind` named `name` does not exist (or may not be seen)."""

    def __init__(
        self,
        kind: str,
        name: str,
        message: str | None = None,
        detail: Mapping[str, object] | None = None,
    ) -> None:
        super().__init__(message or f"{kind} {name!r} does not exist", detail)
        self.kind = kind
        self.name = name


class Conflict(DomainError):
    """An object of `kind` named `name` already exists."""

    def __init__(self, kind: str, name: str) -> None:
        super().__init__(f"{kind} {name!r} already exists")
        self.kind = kind
        self.name = name


class Invalid(DomainError):
    """A value breaks a rule (a name's grammar, the password policy, a digest's shape...)."""


class StateConflict(Invalid):
    """The request is well formed but the state of an object does not allow it now (the last
    owner, a scan still running, a job that is not failed): the edges answer 409."""


class Denied(DomainError):
    """The caller may not do this."""


class Unauthenticated(DomainError):
    """Credentials that are wrong, malformed, expired or revoked."""


class Throttled(DomainError):
    """Too many attempts: retry after `retry_after` seconds."""

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message, {"retryAfter": retry_after})
        self.retry_after = retry_after


class Unavailable(DomainError):
    """Something the answer depends on (the LDAP directory, the database) does not answer."""


# What a login may fail with: wrong credentials, the login back-off, a directory that does not
# answer. Both edges answer these with a challenge, whatever the request was for.
LOGIN_FAILURES = (Unauthenticated, Throttled, Unavailable)


# --- content (the registry model) -------------------------------------------------------


class NameUnknown(NotFound):
    def __init__(self, name: str) -> None:
        super().__init__(
            "repository", name, "repository name not known to registry", {"name": name}
        )


class ManifestUnknown(NotFound):
    def __init__(
        self,
        reference: str,
        message: str = "manifest unknown to registry",
        detail: Mapping[str, object] | None = None,
    ) -> None:
        facts = detail if detail is not None else {"reference": reference[:200]}
        super().__init__("manifest", reference, message, facts)


class BlobUnknown(NotFound):
    def __init__(self, digest: str, message: str = "blob unknown to registry") -> None:
        super().__init__("blob", digest, message, {"digest": digest[:200]})


class BlobUploadUnknown(NotFound):
    def __init__(
        self, upload_id: str, message: str, detail: Mapping[str, object] | None = None
    ) -> None:
        super().__init__("upload", upload_id, message, detail)


class NameInvalid(Invalid):
    pass


class TagInvalid(Invalid):
    pass


class DigestInvalid(Invalid):
    """A digest that is malformed or of an unsupported algorithm."""


class DigestMismatch(DigestInvalid):
    """Content whose digest is not the one the client claimed."""


class SizeInvalid(Invalid):
    """A declared length that does not match the content."""


class RangeInvalid(Invalid):
    """A byte range that is malformed or does not fit."""


class RangeMismatch(RangeInvalid):
    """A chunk that does not start where the upload stands (`offset`, when known), or an
    upload that moved on concurrently."""

    def __init__(self, message: str, offset: int | None = None) -> None:
        super().__init__(message, {"offset": offset} if offset is not None else None)
        self.offset = offset


class ManifestInvalid(Invalid):
    pass


class ManifestTooLarge(ManifestInvalid):
    pass


class ManifestBlobUnknown(ManifestInvalid):
    """A manifest that references a blob or manifest the repository does not hold."""

    def __init__(self, digest: str, message: str) -> None:
        super().__init__(message, {"digest": digest})
        self.digest = digest
