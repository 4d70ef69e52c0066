"""Blob driver on a local folder: temp file, fsync, atomic rename.

Layout (documented here and nowhere else):
    ROOT/blobs/<algorithm>/<first two hex chars>/<hex>   immutable blob content
    ROOT/uploads/<upload id>                              partial data of an upload session
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from trustyard.errors import DigestInvalid
from trustyard.oci.digest import Digest, parse_digest
from trustyard.storage.interfaces import ContentMissing, UploadBusy, UploadMissing, UploadMoved

_UPLOAD_ID_RE = re.compile(r"[a-f0-9]{32}")  # fullmatch: `$` lets "\n" through

# A request that hung up may hold an upload's lock for a moment while it notices that the
# session moved on; a follow-up request waits that long before it reports the upload busy.
_UPLOAD_LOCK_PATIENCE = 2.0


def _lock_within(fd: int, patience: float) -> bool:
    """Take an exclusive lock on `fd`, polling for up to `patience` seconds."""
    deadline = time.monotonic() + patience
    pause = 0.005
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            if time.monotonic() >= deadline:
                return False
            time.sleep(pause)
            pause = min(pause * 2, 0.1)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class FileUploadWriter:
    """Unbuffered appends to an upload file, held under an exclusive lock."""

    def __init__(self, fd: int, size: int, fsync: bool) -> None:
        self._fd = fd
        self._size = size
        self._fsync = fsync

    @property
    def size(self) -> int:
        return self._size

    def write(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            written = os.write(self._fd, view)
            view = view[written:]
            self._size += written

    def sync(self) -> None:
        if self._fsync:
            os.fsync(self._fd)

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)  # closing releases the flock
            self._fd = -1


class FilesystemDriver:
    def __init__(
        self, root: Path, fsync: bool = True, lock_patience: float = _UPLOAD_LOCK_PATIENCE
    ) -> None:
        self.root = root
        self.fsync = fsync
        self.lock_patience = lock_patience
        self._blobs = root / "blobs"
        self._uploads = root / "uploads"
        for folder in (self._blobs, self._uploads):
            folder.mkdir(parents=True, exist_ok=True)

    # --- paths -------------------------------------------------------------------------------
    def blob_path(self, digest: Digest) -> Path:
        return self._blobs / digest.algorithm / digest.hex[:2] / digest.hex

    def _upload_path(self, upload_id: str) -> Path:
        if not _UPLOAD_ID_RE.fullmatch(upload_id):
            raise UploadMissing(upload_id)
        return self._uploads / upload_id

    # --- blobs -------------------------------------------------------------------------------
    def stat(self, digest: Digest) -> int | None:
        try:
            return self.blob_path(digest).stat().st_size
        except FileNotFoundError:
            return None

    def read(
        self, digest: Digest, offset: int = 0, length: int | None = None, chunk: int = 1 << 20
    ) -> Iterator[bytes]:
        return _read_file(self.blob_path(digest), offset, length, chunk)

    def local_path(self, digest: Digest) -> Path | None:
        return self.blob_path(digest)

    def delete(self, digest: Digest) -> bool:
        try:
            self.blob_path(digest).unlink()
        except FileNotFoundError:
            return False
        return True

    def iter_blobs(self) -> Iterator[Digest]:
        # Anything that is not a blob at its own path (a stray file, a temp file) is skipped.
        for algorithm_dir in sorted(self._blobs.iterdir()):
            if not algorithm_dir.is_dir():
                continue
            for prefix in sorted(algorithm_dir.iterdir()):
                if not prefix.is_dir():
                    continue
                for blob in sorted(prefix.iterdir()):
                    try:
                        digest = parse_digest(f"{algorithm_dir.name}:{blob.name}")
                    except DigestInvalid:
                        continue
                    if blob.is_file() and self.blob_path(digest) == blob:
                        yield digest

    # --- uploads -----------------------------------------------------------------------------
    def open_upload(
        self, upload_id: str, offset: int, confirm: Callable[[], bool] | None = None
    ) -> FileUploadWriter:
        path = self._upload_path(upload_id)
        flags = os.O_WRONLY | (os.O_CREAT if offset == 0 else 0)
        try:
            fd = os.open(path, flags, 0o640)
        except FileNotFoundError:
            raise UploadMissing(upload_id) from None
        if not _lock_within(fd, self.lock_patience):
            os.close(fd)
            raise UploadBusy(upload_id)
        if confirm is not None and not confirm():
            os.close(fd)
            raise UploadMoved(upload_id)
        size = os.fstat(fd).st_size
        if size < offset:
            os.close(fd)
            raise UploadMissing(f"{upload_id}: {size} bytes stored, {offset} expected")
        if size > offset:  # a chunk that was never acknowledged
            os.ftruncate(fd, offset)
        os.lseek(fd, offset, os.SEEK_SET)
        return FileUploadWriter(fd, offset, self.fsync)

    def read_upload(self, upload_id: str, length: int, chunk: int = 1 << 20) -> Iterator[bytes]:
        return _read_file(self._upload_path(upload_id), 0, length, chunk)

    def upload_size(self, upload_id: str) -> int | None:
        try:
            return self._upload_path(upload_id).stat().st_size
        except (FileNotFoundError, UploadMissing):
            return None

    def commit_upload(self, upload_id: str, length: int, digest: Digest) -> None:
        source = self._upload_path(upload_id)
        target = self.blob_path(digest)
        if target.exists():  # deduplicated: identical content is already stored
            source.unlink(missing_ok=True)
            return
        try:
            handle = open(source, "r+b")  # noqa: SIM115 - closed by the with below
        except FileNotFoundError:
            raise UploadMissing(upload_id) from None
        with handle:
            stored = os.fstat(handle.fileno()).st_size
            if stored < length:  # truncate() would pad the blob with zeros
                raise UploadMissing(f"{upload_id}: {stored} bytes stored, {length} to publish")
            if stored > length:
                handle.truncate(length)
            if self.fsync:
                os.fsync(handle.fileno())
        target.parent.mkdir(parents=True, exist_ok=True)
        os.rename(source, target)
        if self.fsync:
            _fsync_dir(target.parent)

    def delete_upload(self, upload_id: str) -> None:
        with contextlib.suppress(UploadMissing):
            self._upload_path(upload_id).unlink(missing_ok=True)

    def iter_uploads(self) -> Iterator[str]:
        for path in sorted(self._uploads.iterdir()):
            if _UPLOAD_ID_RE.fullmatch(path.name):
                yield path.name


def _read_file(path: Path, offset: int, length: int | None, chunk: int) -> Iterator[bytes]:
    try:
        handle = open(path, "rb", buffering=0)  # noqa: SIM115 - closed by the generator
    except FileNotFoundError:
        raise ContentMissing(path.name) from None

    def generate() -> Iterator[bytes]:
        with handle:
            handle.seek(offset)
            remaining = length
            while remaining is None or remaining > 0:
                want = chunk if remaining is None else min(chunk, remaining)
                data = handle.read(want)
                if not data:
                    return
                if remaining is not None:
                    remaining -= len(data)
                yield data

    return generate()
