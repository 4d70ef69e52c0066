"""What the OCI client is built from, what it answers, and the errors it raises.

Every failure is a `RemoteError` with a diagnosis in words (never a credential, never a raw
exception text that could hold one) and whether trying again later may help (`retryable`):
mirroring records the diagnosis per policy and item, and retries only what may succeed.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Protocol

from trustyard.errors import DomainError

# --- configuration ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RemoteEndpoint:
    """One remote registry as the client needs it. `password` is the opened secret (a
    password, a robot's or personal access token): never logged, never in `repr`."""

    url: str  # scheme://host[:port], no path (https unless explicitly http)
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    tls_verify: bool = True
    ca_certificate: str | None = field(default=None, repr=False)  # PEM, added to the trust
    max_concurrency: int = 4  # requests in flight to this remote, per process
    key: str = ""  # what per-remote limits are shared by (the remote's id); url when empty

    @property
    def limit_key(self) -> str:
        return self.key or self.url


@dataclass(frozen=True, slots=True)
class ClientLimits:
    """Bounds of every exchange with a remote (from settings.mirroring)."""

    connect_timeout: float = 10.0  # seconds
    read_timeout: float = 60.0  # seconds without a byte: a hanging remote fails, never sticks
    max_manifest_bytes: int = 4 * 1024 * 1024
    max_json_bytes: int = 8 * 1024 * 1024  # tag lists, referrers, token answers
    max_attempts: int = 5  # per request, retryable failures only
    backoff_base: float = 0.5  # seconds, doubled per attempt, with jitter
    backoff_max: float = 30.0
    max_retry_after: float = 120.0  # a longer Retry-After fails the request as rate limited
    chunk_bytes: int = 16 * 1024 * 1024  # one PATCH of a chunked upload


# --- answers -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RemoteManifest:
    digest: str  # of the exact bytes (checked against Docker-Content-Digest when sent)
    media_type: str
    body: bytes


@dataclass(frozen=True, slots=True)
class RemoteDescriptor:
    """What a HEAD of a manifest answers, or a referrer of the referrers API."""

    digest: str
    media_type: str
    size: int
    artifact_type: str | None = None


@dataclass(frozen=True, slots=True)
class BlobSent:
    """How a blob reached the remote: already there (HEAD), mounted from another repository
    of the remote, or uploaded (bytes sent this time; fewer than its size when an upload was
    resumed)."""

    digest: str
    how: str  # present | mounted | uploaded
    bytes_sent: int


class UploadCheckpoints(Protocol):
    """Where the client keeps the state of a chunked upload in progress so that another
    attempt, or another worker process after a crash, resumes it instead of starting over
    (mirroring stores them in its `mirror_uploads` table). Keys are (endpoint key, remote
    repository, digest)."""

    def load(self, key: str, repository: str, digest: str) -> str | None:
        """The upload's location URL, or None."""

    def save(self, key: str, repository: str, digest: str, location: str) -> None: ...

    def drop(self, key: str, repository: str, digest: str) -> None: ...


class Progress(Protocol):
    """Told of the bytes a blob transfer moves (for the run's "current transfer")."""

    def started(self, digest: str, size: int) -> None: ...

    def advanced(self, digest: str, done: int) -> None:
        """`done` bytes of the blob are now on the other side (from its start)."""


BlobStream = Iterator[bytes]


# --- errors ------------------------------------------------------------------------------------


class RemoteError(DomainError):
    """A remote registry could not do what was asked. `message` is a diagnosis a user can act
    on, free of credentials; `retryable` says whether trying again later may help."""

    retryable = True
    kind = "error"

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message, {"remoteStatus": status} if status is not None else None)
        self.status = status


class RemoteUnreachable(RemoteError):
    """No connection (refused, DNS, reset) or no answer within the timeouts."""

    kind = "unreachable"


class RemoteTimeout(RemoteUnreachable):
    kind = "timeout"


class RemoteTLSError(RemoteError):
    """The TLS handshake failed: an unknown CA, a wrong host name, an expired certificate."""

    retryable = False
    kind = "tls"


class RemoteAuthFailed(RemoteError):
    """The remote refused the credentials (401 after the token flow, or the token service
    refused them)."""

    retryable = False
    kind = "authentication"


class RemoteDenied(RemoteError):
    """Authenticated, but not allowed (403, or a token without the asked scope)."""

    retryable = False
    kind = "denied"


class RemoteRateLimited(RemoteError):
    """429 (or 503 with Retry-After) still after the retries, or a Retry-After too long."""

    kind = "rate-limited"

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message, status=429)
        self.retry_after = retry_after


class RemoteProtocolError(RemoteError):
    """The remote answered something that is not the distribution API (garbage, HTML, a
    body over its limit, a digest that does not match the bytes)."""

    retryable = False
    kind = "protocol"


class RemoteNotFound(RemoteError):
    """The repository, manifest, tag or blob does not exist on the remote."""

    retryable = False
    kind = "not-found"


class RemoteRefused(RemoteError):
    """Any other 4xx: the remote understood and refused (an invalid manifest, an immutable
    tag, a quota)."""

    retryable = False
    kind = "refused"
