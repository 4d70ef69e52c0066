"""An `ImageSource` over the registry's own content: manifests from the metadata database (a
repository's), configs and layers from the blob driver. The job handler scans pushed images
through it, exactly as the CLI scans an OCI layout through `sources.open_path`."""

from __future__ import annotations

import io
from collections.abc import Iterator
from typing import BinaryIO

from sqlalchemy import Engine

from trustyard.content.reads import ContentReads
from trustyard.db.engine import read_tx
from trustyard.oci.digest import Digest, parse_digest
from trustyard.scanning.model import ScanRefused
from trustyard.scanning.sources import MAX_DOCUMENT_BYTES, ImageRef, images_from_manifest
from trustyard.storage.interfaces import BlobDriver


class _ChunkReader(io.RawIOBase):
    """A read-only stream over a driver's chunk iterator (for drivers without local files)."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._chunks = chunks
        self._left = b""

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        while not self._left:
            try:
                self._left = next(self._chunks)
            except StopIteration:
                return 0
        count = min(len(buffer), len(self._left))
        buffer[:count] = self._left[:count]
        self._left = self._left[count:]
        return count


class RegistrySource:
    """The images of one manifest of one repository (an index: one per platform)."""

    def __init__(
        self,
        engine: Engine,
        driver: BlobDriver,
        repository_id: int,
        digest: str,
        payload: bytes,
        content: ContentReads | None = None,
    ) -> None:
        self.engine = engine
        self.driver = driver
        self.repository_id = repository_id
        self.digest = digest
        self.payload = payload
        self.content = content or ContentReads()

    def images(self) -> list[ImageRef]:
        return images_from_manifest(self._read_document, self.digest, self.payload)

    def open_blob(self, digest: str) -> BinaryIO:
        parsed = self._digest(digest)
        if self.driver.stat(parsed) is None:
            raise ScanRefused(f"blob {digest} is not in the registry's storage")
        path = self.driver.local_path(parsed)
        if path is not None:
            try:
                return open(path, "rb")  # the scanner closes it
            except FileNotFoundError:
                raise ScanRefused(f"blob {digest} is not in the registry's storage") from None
        return io.BufferedReader(_ChunkReader(self.driver.read(parsed)), 1 << 20)

    def has_blob(self, digest: str) -> bool:
        try:
            return self.driver.stat(parse_digest(digest)) is not None
        except Exception:  # a malformed digest in a manifest names no blob here
            return False

    def _read_document(self, digest: str) -> bytes:
        """A child manifest of an index (from this repository) or a config blob."""
        with read_tx(self.engine) as conn:
            payload = self.content.manifest_payload(conn, self.repository_id, digest)
        if payload is not None:
            return payload
        parsed = self._digest(digest)
        size = self.driver.stat(parsed)
        if size is None:
            raise ScanRefused(f"{digest} is neither a manifest of this repository nor a blob")
        if size > MAX_DOCUMENT_BYTES:
            raise ScanRefused(f"{digest} is {size} bytes: more than a config or manifest may be")
        return b"".join(self.driver.read(parsed))

    @staticmethod
    def _digest(digest: str) -> Digest:
        try:
            return parse_digest(digest)
        except Exception:
            raise ScanRefused(f"invalid digest {digest[:100]!r}") from None
