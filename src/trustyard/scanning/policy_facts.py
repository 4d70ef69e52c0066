"""What the policy engine reads of scans, as plain values (features never import each other:
the composition root turns them into the engine's facts).

- `ScanComponents.latest(conn, repository_id, digests)` -> {digest: scan id} of each
  manifest's latest succeeded scan (one query);
- `ScanComponents.components(conn, scan_ids, make)` -> {scan id: components}, each component
  of the image BOMs (every platform of an index, each component once) made by `make` from
  its `(ecosystem, name, version, licences, purl)` tuple (the identity, or the caller's
  record type), the licences being the identifiers of its SPDX expression. Read from the
  scan's compact list (`compact.py`), or from its BOMs for a scan stored before that list
  existed;
- `ScanComponents.request(conn, repository_id, digest)`: queue a scan of an image that was
  never scanned (nothing for an artifact, or when a scan is queued, running or finished).
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Iterable
from typing import TypeVar

from sqlalchemy import Connection

from trustyard.content.reads import ContentReads
from trustyard.oci.manifest import parse_manifest, scannable
from trustyard.scanning.compact import ComponentTuple, compact_boms, read_compact
from trustyard.scanning.service import ScanService
from trustyard.scanning.stores import ScanStore

T = TypeVar("T")


class ScanComponents:
    """See the module's docstring. Takes the caller's connection; never commits."""

    def __init__(self, service: ScanService, store: ScanStore | None = None) -> None:
        self.service = service
        self.store = store or service.store
        self.reads = ContentReads()

    def latest(
        self, conn: Connection, repository_id: int, digests: Iterable[str]
    ) -> dict[str, int]:
        return self.store.latest_succeeded(conn, repository_id, digests)

    def components(
        self,
        conn: Connection,
        scan_ids: Iterable[int],
        make: Callable[[ComponentTuple], T],
    ) -> dict[int, list[T]]:
        """The components of each scan's BOMs, each made by `make` from its tuple."""
        result: dict[int, list[T]] = {}
        for scan_id, (stored, packed) in self.store.compact_components_of(conn, scan_ids).items():
            listed = stored if stored is not None else _from_boms(packed)
            result[scan_id] = [make(item) for item in read_compact(listed)] if listed else []
        return result

    def request(
        self, conn: Connection, repository_id: int, digest: str, requested_by: str | None = None
    ) -> bool:
        """Queue a scan of the image unless it is an artifact, scanning is off, or a scan of
        it is queued, running or finished (a failed one too: asking again would fail the
        same way; a user may rescan); True when one was queued."""
        if not self.service.enabled or self.store.latest(conn, repository_id, digest) is not None:
            return False
        media_type = self.reads.manifest_media_type(conn, repository_id, digest)
        payload = self.reads.manifest_payload(conn, repository_id, digest)
        if media_type is None or payload is None:
            return False
        try:
            parsed = parse_manifest(payload, media_type)
        except Exception:  # a stored manifest that no longer parses: nothing to scan
            return False
        if not scannable(parsed):
            return False
        self.service.enqueue_scan(conn, repository_id, digest, requested_by=requested_by)
        return True


def _from_boms(packed: bytes | None) -> bytes:
    """The compact list of a scan stored before it existed, from its packed BOMs."""
    try:
        return compact_boms(zlib.decompress(packed)) if packed else b""
    except zlib.error:
        return b""
