"""What the policy engine reads of scans, as plain values (features never import each other:
the composition root turns them into the engine's facts).

- `ScanComponents.latest(conn, repository_id, digests)` -> {digest: scan id} of each
  manifest's latest succeeded scan (one query);
- `ScanComponents.components(conn, scan_ids, make)` -> {scan id: components}, each component
  of the image BOMs (every platform of an index, each component once) made by
  `make(ecosystem, name, version, licences, purl)` (`as_tuple`, or the caller's record type:
  no second pass over many components), the licences being the identifiers of its SPDX
  expression;
- `ScanComponents.request(conn, repository_id, digest)`: queue a scan of an image that was
  never scanned (nothing for an artifact, or when a scan is queued, running or finished).
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Callable, Iterable, Sequence
from functools import lru_cache
from typing import TypeVar

import msgspec
from sqlalchemy import Connection

from trustyard.content.reads import ContentReads
from trustyard.oci.manifest import parse_manifest, scannable
from trustyard.scanning.service import ScanService
from trustyard.scanning.stores import ScanStore

# (ecosystem, name, version, licences, purl)
ComponentTuple = tuple[str, str, str, tuple[str, ...], str]
T = TypeVar("T")

_TOKENS = re.compile(r"[()\s]+")
_OPERATORS = frozenset({"AND", "OR"})
MAX_EXPRESSION = 4096  # characters of a licence expression read


def license_ids(expression: object) -> tuple[str, ...]:
    """The licence identifiers of an SPDX expression (`MIT OR (Apache-2.0 AND BSD-3-Clause)`
    -> MIT, Apache-2.0, BSD-3-Clause; an exception after WITH is no licence)."""
    if not isinstance(expression, str) or not expression:
        return ()
    return _license_ids(expression[:MAX_EXPRESSION])


@lru_cache(maxsize=4096)  # images repeat a few expressions over and over
def _license_ids(expression: str) -> tuple[str, ...]:
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


class _Component(msgspec.Struct, gc=False):
    """What policies read of a BOM component (scanning.model.Component.to_json writes these
    as strings); every other field is skipped unread."""

    ecosystem: str = ""
    name: str = ""
    version: str = ""
    purl: str = ""
    licenses: str | None = None


class _Bom(msgspec.Struct, gc=False):
    components: list[_Component] = []


# Typed decoding of a stored BOM list: only the fields above become Python objects (the
# locations, detectors, layer lists... are skipped in C), about 8x faster than json.loads of
# the whole document (bench/policy_eval.py).
_DECODE_BOMS = msgspec.json.Decoder(list[_Bom])


def decode_boms(data: bytes) -> list[_Bom]:
    """The BOM list of a scan as stored (JSON); a malformed one (a field of another type
    than the scanner writes) reads as no BOM."""
    try:
        return _DECODE_BOMS.decode(data)
    except (msgspec.DecodeError, msgspec.ValidationError):
        return []


def bom_components(
    boms: Sequence[_Bom], make: Callable[[str, str, str, tuple[str, ...], str], T]
) -> list[T]:
    """Each component of the image BOMs, made by `make(ecosystem, name, version, licences,
    purl)`; once over several platforms (an index's share most of theirs)."""
    result: list[T] = []
    seen: set[ComponentTuple] | None = set() if len(boms) > 1 else None
    for bom in boms:
        for item in bom.components:
            licenses = license_ids(item.licenses) if item.licenses else ()
            if seen is not None:
                key = (item.ecosystem, item.name, item.version, licenses, item.purl)
                if key in seen:
                    continue
                seen.add(key)
            result.append(make(item.ecosystem, item.name, item.version, licenses, item.purl))
    return result


def as_tuple(
    ecosystem: str, name: str, version: str, licenses: tuple[str, ...], purl: str
) -> ComponentTuple:
    return (ecosystem, name, version, licenses, purl)


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
        make: Callable[[str, str, str, tuple[str, ...], str], T],
    ) -> dict[int, list[T]]:
        """The components of each scan's BOMs, each made by `make` (`as_tuple`, or the
        caller's own record type)."""
        result: dict[int, list[T]] = {}
        for scan_id, packed in self.store.packed_boms_of(conn, scan_ids).items():
            try:
                boms = decode_boms(zlib.decompress(packed))
            except zlib.error:
                boms = []
            result[scan_id] = bom_components(boms, make)
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
