"""Blob upload sessions: resumable, verified at the end, published atomically.

The offset of an upload lives in the database, its bytes in the blob driver. The running hash
is kept in process memory as an optimisation only: a process that lacks it (after a restart, or
because another replica took the previous chunk) rebuilds it from the stored bytes.
"""

from __future__ import annotations

import re
import uuid
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from sqlalchemy import Connection

from trustyard.content.interfaces import UploadRecord
from trustyard.content.stores import ContentStore
from trustyard.errors import BlobUploadUnknown, DigestMismatch, RangeMismatch
from trustyard.events import model as events
from trustyard.events.model import Event
from trustyard.oci.digest import DEFAULT_ALGORITHM, Digest, Hasher, new_hasher
from trustyard.storage.interfaces import (
    BlobDriver,
    UploadBusy,
    UploadMissing,
    UploadMoved,
    UploadWriter,
)

# The shape of the ids `start` hands out; anything else is unknown without asking the database.
_UPLOAD_ID_RE = re.compile(r"[a-f0-9]{32}")


class HashStates:
    """A bounded per-process memory of running upload hashes, keyed by upload id."""

    def __init__(self, capacity: int = 256) -> None:
        self._capacity = capacity
        self._states: OrderedDict[str, tuple[int, str, Hasher]] = OrderedDict()

    def take(self, upload_id: str, offset: int, algorithm: str) -> Hasher | None:
        state = self._states.pop(upload_id, None)
        if state is None or state[0] != offset or state[1] != algorithm:
            return None
        return state[2]

    def keep(self, upload_id: str, offset: int, algorithm: str, hasher: Hasher) -> None:
        self._states[upload_id] = (offset, algorithm, hasher)
        while len(self._states) > self._capacity:
            self._states.popitem(last=False)

    def forget(self, upload_id: str) -> None:
        self._states.pop(upload_id, None)


@dataclass
class ChunkWriter:
    """Appends request bytes to an upload and feeds them to the running hash."""

    upload: UploadRecord
    writer: UploadWriter
    hasher: Hasher
    algorithm: str

    @property
    def size(self) -> int:
        return self.writer.size

    def write(self, data: bytes) -> None:
        self.writer.write(data)
        self.hasher.update(data)


class UploadService:
    def __init__(self, store: ContentStore, driver: BlobDriver, hashes: HashStates) -> None:
        self.store = store
        self.driver = driver
        self.hashes = hashes

    def start(self, conn: Connection, repository: str) -> UploadRecord:
        upload_id = uuid.uuid4().hex
        self.store.create_upload(conn, upload_id, repository)
        return UploadRecord(upload_id, repository, 0)

    def get(self, conn: Connection, repository: str, upload_id: str) -> UploadRecord:
        record = (
            self.store.get_upload(conn, upload_id) if _UPLOAD_ID_RE.fullmatch(upload_id) else None
        )
        if record is None or record.repository != repository:
            raise BlobUploadUnknown(
                upload_id, "upload session not found or expired", {"uuid": upload_id[:64]}
            )
        return record

    def open_chunk(
        self,
        upload: UploadRecord,
        start: int | None,
        algorithm: str = DEFAULT_ALGORITHM,
        confirm: Callable[[], bool] | None = None,
    ) -> ChunkWriter:
        """Open the upload for a chunk that must begin at `start` (None: wherever it is).

        `confirm` re-checks, under the upload's lock, that `upload.offset` is still the
        recorded one, so a request that waited behind another can never overwrite bytes that
        were acknowledged meanwhile. Blocking (it may re-read the stored bytes to rebuild the
        hash): call it off the event loop.
        """
        if start is not None and start != upload.offset:
            raise RangeMismatch(
                f"chunk starts at {start} but the upload holds {upload.offset} bytes",
                upload.offset,
            )
        try:
            writer = self.driver.open_upload(upload.id, upload.offset, confirm)
        except UploadMoved:
            raise RangeMismatch(
                "the upload advanced concurrently; ask for its status and resume from there"
            ) from None
        except UploadBusy:
            raise RangeMismatch("another request is writing to this upload") from None
        except UploadMissing:
            raise BlobUploadUnknown(
                upload.id, "the upload's stored data is missing; restart it"
            ) from None
        try:
            hasher = self.hashes.take(upload.id, upload.offset, algorithm)
            if hasher is None:
                hasher = new_hasher(algorithm)
                for block in self.driver.read_upload(upload.id, upload.offset):
                    hasher.update(block)
        except BaseException:
            writer.close()
            raise
        return ChunkWriter(upload, writer, hasher, algorithm)

    def still_at(self, conn: Connection, upload: UploadRecord) -> bool:
        current = self.store.get_upload(conn, upload.id)
        return current is not None and current.offset == upload.offset

    def record_chunk(self, conn: Connection, chunk: ChunkWriter) -> UploadRecord:
        """Persist the new offset (after the data was synced) and remember the hash state."""
        if not self.store.advance_upload(conn, chunk.upload.id, chunk.upload.offset, chunk.size):
            raise RangeMismatch("the upload moved on concurrently")
        self.hashes.keep(chunk.upload.id, chunk.size, chunk.algorithm, chunk.hasher)
        return UploadRecord(chunk.upload.id, chunk.upload.repository, chunk.size)

    def verify(self, chunk: ChunkWriter, expected: Digest) -> None:
        """Check the bytes against the digest the client claims (blocking for a new algorithm)."""
        if expected.algorithm == chunk.algorithm:
            actual = chunk.hasher.hexdigest()
        else:
            hasher = new_hasher(expected.algorithm)
            for block in self.driver.read_upload(chunk.upload.id, chunk.size):
                hasher.update(block)
            actual = hasher.hexdigest()
        if actual != expected.hex:
            raise DigestMismatch(
                f"uploaded content has digest {expected.algorithm}:{actual}, not {expected}",
                {"expected": str(expected), "actual": f"{expected.algorithm}:{actual}"},
            )

    def publish(self, chunk: ChunkWriter, digest: Digest) -> None:
        """Make the verified bytes the blob `digest` in storage (blocking: fsync, rename)."""
        chunk.writer.close()
        self.driver.commit_upload(chunk.upload.id, chunk.size, digest)

    def complete(
        self,
        conn: Connection,
        upload: UploadRecord,
        digest: Digest,
        size: int,
        actor: str | None = None,
    ) -> tuple[Event, ...]:
        """Record the published blob, link it into the repository and end the session; the
        events it implies (the repository's creation, if this created it)."""
        repository_id, created = self.store.claim_repository(conn, upload.repository)
        self.store.record_blob(conn, str(digest), size)
        self.store.link_blob(conn, repository_id, str(digest))
        self.store.delete_upload(conn, upload.id)
        self.hashes.forget(upload.id)
        return _created(upload.repository, actor) if created else ()

    def mount(
        self, conn: Connection, repository: str, digest: str, actor: str | None = None
    ) -> tuple[Event, ...] | None:
        """Link a stored blob into `repository` (a cross-repository mount); None when the
        blob is not stored (any more), else the events it implies."""
        if self.store.blob_size(conn, digest) is None:
            return None
        repository_id, created = self.store.claim_repository(conn, repository)
        self.store.link_blob(conn, repository_id, digest)
        return _created(repository, actor) if created else ()

    def cancel(self, conn: Connection, upload: UploadRecord) -> None:
        self.store.delete_upload(conn, upload.id)
        self.driver.delete_upload(upload.id)
        self.hashes.forget(upload.id)

    def write_blob(
        self, chunks: Iterable[bytes], algorithm: str = DEFAULT_ALGORITHM
    ) -> tuple[Digest, int]:
        """Store the blob made of `chunks` without a session (a blob the registry writes itself,
        such as an attached SBOM): hashed as its chunks come, synced, then published under its
        digest (an identical blob already stored is kept); its digest and size. Blocking, no
        database; when `chunks` fails nothing is left behind. Record it with `ContentStore`."""
        upload = UploadRecord(uuid.uuid4().hex, "", 0)
        chunk = self.open_chunk(upload, 0, algorithm)
        try:
            for data in chunks:
                chunk.write(data)
            chunk.writer.sync()
        except BaseException:
            chunk.writer.close()
            self.driver.delete_upload(upload.id)
            raise
        digest = Digest(algorithm, chunk.hasher.hexdigest())
        self.publish(chunk, digest)
        return digest, chunk.size


def _created(repository: str, actor: str | None) -> tuple[Event, ...]:
    return (events.repository_created(repository, "private", "push", actor),)
