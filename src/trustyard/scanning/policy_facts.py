"""What the policy engine reads of scans, as plain values (features never import each other:
the composition root turns them into the engine's facts).

- `ScanComponents.latest(conn, repository_id, digests)` -> {digest: scan id} of each
  manifest's latest succeeded scan (one query);
- `ScanComponents.components(conn, scan_ids)` -> {scan id: components}, each component a
  tuple (ecosystem, name, version, licences, purl) of the image BOMs (every platform of an
  index, each component once), the licences being the identifiers of its SPDX expression;
- `ScanComponents.request(conn, repository_id, digest)`: queue a scan of an image that was
  never scanned (nothing for an artifact, or when a scan is queued, running or finished).
"""

from __future__ import annotations

import json
import re
import zlib
from collections.abc import Iterable, Mapping
from typing import Any

from sqlalchemy import Connection

from trustyard.content.reads import ContentReads
from trustyard.oci.manifest import parse_manifest, scannable
from trustyard.scanning.service import ScanService
from trustyard.scanning.stores import ScanStore

# (ecosystem, name, version, licences, purl)
ComponentTuple = tuple[str, str, str, tuple[str, ...], str]

_TOKENS = re.compile(r"[()\s]+")
_OPERATORS = frozenset({"AND", "OR"})


def license_ids(expression: object) -> tuple[str, ...]:
    """The licence identifiers of an SPDX expression (`MIT OR (Apache-2.0 AND BSD-3-Clause)`
    -> MIT, Apache-2.0, BSD-3-Clause; an exception after WITH is no licence)."""
    if not isinstance(expression, str) or not expression:
        return ()
    found: list[str] = []
    skip = False
    for token in _TOKENS.split(expression):
        if not token:
            continue
        if skip:
            skip = False
        elif token.upper() == "WITH":
            skip = True
        elif token.upper() not in _OPERATORS and token not in found:
            found.append(token)
    return tuple(found)


def bom_components(boms: Iterable[Mapping[str, Any]]) -> list[ComponentTuple]:
    """Each component of the image BOMs once (an index's platforms share most of theirs)."""
    seen: set[ComponentTuple] = set()
    result: list[ComponentTuple] = []
    for bom in boms:
        listed = bom.get("components")
        if not isinstance(listed, list):
            continue
        for item in listed:
            if not isinstance(item, dict):
                continue
            component: ComponentTuple = (
                str(item.get("ecosystem", "")),
                str(item.get("name", "")),
                str(item.get("version", "")),
                license_ids(item.get("licenses")),
                str(item.get("purl", "")),
            )
            if component not in seen:
                seen.add(component)
                result.append(component)
    return result


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
        self, conn: Connection, scan_ids: Iterable[int]
    ) -> dict[int, list[ComponentTuple]]:
        result: dict[int, list[ComponentTuple]] = {}
        for scan_id, packed in self.store.packed_boms_of(conn, scan_ids).items():
            try:
                boms = json.loads(zlib.decompress(packed))
            except (zlib.error, ValueError):
                boms = []
            result[scan_id] = bom_components(b for b in boms if isinstance(b, dict))
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
