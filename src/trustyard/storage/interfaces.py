"""The contract every blob driver fulfils (filesystem today, S3 later).

Blobs are content-addressed and immutable. Uploads are named byte streams that can be appended
to across requests and processes and are published atomically as a blob once verified.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Protocol

from trustyard.oci.digest import Digest


class UploadBusy(Exception):
    """Another request is writing to this upload right now."""


class UploadMoved(Exception):
    """The upload advanced while this writer waited for it: its view of the offset is stale."""


class ContentMissing(Exception):
    """Bytes the metadata says exist are not in storage."""


class UploadMissing(ContentMissing):
    """The upload's data is gone, or shorter than the recorded offset."""


class UploadWriter(Protocol):
    """Appends to an upload. `sync` makes what was written durable; `close` keeps it."""

    @property
    def size(self) -> int: ...

    def write(self, data: bytes) -> None: ...

    def sync(self) -> None: ...

    def close(self) -> None: ...


class BlobDriver(Protocol):
    # Blobs
    def stat(self, digest: Digest) -> int | None:
        """Size of a stored blob, or None when absent."""
        ...

    def read(
        self, digest: Digest, offset: int = 0, length: int | None = None, chunk: int = 1 << 20
    ) -> Iterator[bytes]:
        """Stream a stored blob (or part of it)."""
        ...

    def local_path(self, digest: Digest) -> Path | None:
        """A local file holding the blob, for zero-copy sending; None if the driver has none."""
        ...

    def delete(self, digest: Digest) -> bool: ...

    def iter_blobs(self) -> Iterator[Digest]: ...

    # Uploads
    def open_upload(
        self, upload_id: str, offset: int, confirm: Callable[[], bool] | None = None
    ) -> UploadWriter:
        """Open an upload for appending at `offset` (creating it when offset is 0).

        Once the writer holds the upload exclusively, and before anything changes, `confirm`
        is asked whether `offset` is still current; False raises UploadMoved. Data past
        `offset` (left by a crash mid-chunk) is then dropped. Raises UploadMissing when fewer
        than `offset` bytes exist and UploadBusy when another writer holds it.
        """
        ...

    def read_upload(self, upload_id: str, length: int, chunk: int = 1 << 20) -> Iterator[bytes]:
        """Stream the first `length` bytes of an upload (to rebuild its hash state)."""
        ...

    def upload_size(self, upload_id: str) -> int | None: ...

    def commit_upload(self, upload_id: str, length: int, digest: Digest) -> None:
        """Atomically publish the first `length` bytes of an upload as blob `digest`."""
        ...

    def delete_upload(self, upload_id: str) -> None: ...

    def iter_uploads(self) -> Iterator[str]: ...
