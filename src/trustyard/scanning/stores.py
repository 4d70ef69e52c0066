"""All SQL of the scanning domain: the layer cache, scans with their progress and BOMs, and
the component index of the latest scan of every manifest. Functions take the caller's
connection; none commits."""

from __future__ import annotations

import json
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from itertools import islice
from typing import Any

from sqlalchemy import (
    Connection,
    bindparam,
    case,
    delete,
    exists,
    func,
    insert,
    null,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import aliased

from trustyard.content.reads import REPOSITORY_NAME, join_manifest, join_repository
from trustyard.db.sql import keyset
from trustyard.db.tables import jobs, scan_components, scan_layers, scans
from trustyard.kit.clock import utc_now, utc_or_none
from trustyard.scanning.compact import compact_boms
from trustyard.scanning.model import OS_ECOSYSTEMS, LayerScan

QUEUED, RUNNING, SUCCEEDED, FAILED = "queued", "running", "succeeded", "failed"
LIVE = (QUEUED, RUNNING)

# What the varchar columns hold at most (PostgreSQL refuses longer values).
_LIMITS = {"ecosystem": 32, "name": 512, "version": 255, "purl": 1024, "platform": 64}


def pack(document: Any) -> bytes:
    """JSON, zlib-compressed: BOMs and layer results repeat themselves a lot."""
    return pack_text(json.dumps(document, separators=(",", ":")))


def pack_text(text: str) -> bytes:
    """JSON text already made, compressed as `pack` does."""
    return zlib.compress(text.encode(), 6)


def unpack(data: bytes) -> Any:
    return json.loads(zlib.decompress(data))


@dataclass(frozen=True, slots=True)
class ScanRecord:
    id: int
    repository_id: int
    repository: str
    manifest_digest: str
    job_id: int | None
    status: str
    trigger: str
    force: bool
    requested_by: str | None
    bytes_done: int
    bytes_total: int
    layers_done: int
    layers_total: int
    error: str | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None

    @property
    def finished(self) -> bool:
        return self.status in (SUCCEEDED, FAILED)


@dataclass(frozen=True, slots=True)
class ComponentRow:
    """One component of one platform of a manifest's latest scan (a search result)."""

    id: int
    repository: str
    repository_id: int
    manifest_digest: str
    platform: str
    ecosystem: str
    name: str
    version: str
    purl: str
    layer_digest: str
    location: str


@dataclass(frozen=True, slots=True)
class LayerRow:
    digest: str
    scanner_version: str
    status: str
    error: str | None
    scanned_at: datetime
    duration_seconds: float


_SCAN_COLUMNS = (
    scans.c.id,
    scans.c.repository_id,
    REPOSITORY_NAME.label("repository"),
    scans.c.manifest_digest,
    scans.c.job_id,
    scans.c.status,
    scans.c.trigger,
    scans.c.force,
    scans.c.requested_by,
    scans.c.bytes_done,
    scans.c.bytes_total,
    scans.c.layers_done,
    scans.c.layers_total,
    scans.c.error,
    scans.c.created_at,
    scans.c.started_at,
    scans.c.finished_at,
    jobs.c.state.label("job_state"),
)
_SCANS = select(*_SCAN_COLUMNS).select_from(
    join_repository(scans, scans.c.repository_id).outerjoin(jobs, jobs.c.id == scans.c.job_id)
)
_INSERT_SCAN = insert(scans)
_SCAN_BY_JOB = _SCANS.where(scans.c.job_id == bindparam("job_id")).order_by(scans.c.id.desc())


def _record(row: Any) -> ScanRecord:
    status, error = row.status, row.error
    if status in LIVE and row.job_state not in LIVE:
        # The job gave up (dead after its last attempt, cancelled by an admin, pruned) without
        # the handler recording an end: the scan is over, and says so.
        status = FAILED
        ended = row.job_state or "removed"
        error = f"the scan's job ended ({ended}) before the scan finished; ask for a new scan"
    return ScanRecord(
        id=row.id,
        repository_id=row.repository_id,
        repository=row.repository,
        manifest_digest=row.manifest_digest,
        job_id=row.job_id,
        status=status,
        trigger=row.trigger,
        force=bool(row.force),
        requested_by=row.requested_by,
        bytes_done=row.bytes_done,
        bytes_total=row.bytes_total,
        layers_done=row.layers_done,
        layers_total=row.layers_total,
        error=error,
        created_at=utc_or_none(row.created_at) or utc_now(),
        started_at=utc_or_none(row.started_at),
        finished_at=utc_or_none(row.finished_at),
    )


PRUNE_BATCH = 500
COMPONENT_BATCH = 1000  # search-index rows per INSERT: a large BOM is not one huge statement


class ScanStore:
    # --- retention -----------------------------------------------------------------------
    def prune(
        self, conn: Connection, cutoff: datetime, current_version: str, batch: int = PRUNE_BATCH
    ) -> int:
        """One batch of what nobody reads any more: cached layer results made by another
        scanner version (never read again), and scans that finished before `cutoff` and
        have a newer scan of the same manifest (with their component rows). A manifest's
        latest scan is kept whatever its age. Returns how many rows went."""
        stale = conn.scalars(
            select(scan_layers.c.digest)
            .where(scan_layers.c.scanner_version != current_version)
            .limit(batch)
        ).all()
        if stale:
            conn.execute(delete(scan_layers).where(scan_layers.c.digest.in_(stale)))
        newer = aliased(scans)
        superseded = conn.scalars(
            select(scans.c.id)
            .where(
                scans.c.finished_at < cutoff,
                exists().where(
                    newer.c.repository_id == scans.c.repository_id,
                    newer.c.manifest_digest == scans.c.manifest_digest,
                    newer.c.id > scans.c.id,
                ),
            )
            .limit(batch)
        ).all()
        if superseded:
            conn.execute(delete(scan_components).where(scan_components.c.scan_id.in_(superseded)))
            conn.execute(delete(scans).where(scans.c.id.in_(superseded)))
        return len(stale) + len(superseded)

    # --- the layer cache ---------------------------------------------------------------------
    def cached_layer(self, conn: Connection, digest: str, version: str) -> LayerScan | None:
        """The result of a layer scanned by this scanner version, if any."""
        row = conn.execute(
            select(scan_layers.c.result).where(
                scan_layers.c.digest == digest,
                scan_layers.c.scanner_version == version,
                scan_layers.c.status == SUCCEEDED,
            )
        ).first()
        if row is None or row.result is None:
            return None
        return LayerScan.from_json(unpack(row.result))

    def put_layer(
        self,
        conn: Connection,
        digest: str,
        version: str,
        *,
        scan: LayerScan | None,
        error: str | None = None,
        duration: float = 0.0,
    ) -> None:
        """Record a layer's result (or, without `scan`, why it was refused): one upsert."""
        values = {
            "digest": digest,
            "scanner_version": version,
            "status": SUCCEEDED if scan is not None else FAILED,
            "result": pack(scan.to_json()) if scan is not None else None,
            "error": error,
            "scanned_at": utc_now(),
            "duration_seconds": duration,
        }
        dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
        upsert = dialect.insert(scan_layers)
        changed = {k: getattr(upsert.excluded, k) for k in values if k != "digest"}
        conn.execute(upsert.on_conflict_do_update(index_elements=["digest"], set_=changed), values)

    def layer_row(self, conn: Connection, digest: str) -> LayerRow | None:
        row = conn.execute(select(scan_layers).where(scan_layers.c.digest == digest)).first()
        if row is None:
            return None
        return LayerRow(
            row.digest,
            row.scanner_version,
            row.status,
            row.error,
            utc_or_none(row.scanned_at) or utc_now(),
            row.duration_seconds,
        )

    # --- scans -------------------------------------------------------------------------------
    def create_scan(
        self,
        conn: Connection,
        repository_id: int,
        digest: str,
        *,
        job_id: int | None,
        trigger: str,
        force: bool,
        requested_by: str | None,
    ) -> int:
        values = {
            "repository_id": repository_id,
            "manifest_digest": digest,
            "job_id": job_id,
            "status": QUEUED,
            "trigger": trigger,
            "force": force,
            "requested_by": requested_by,
            "created_at": utc_now(),
        }
        result = conn.execute(_INSERT_SCAN, values)
        return int(result.inserted_primary_key[0])  # type: ignore[index]

    def get(self, conn: Connection, scan_id: int) -> ScanRecord | None:
        row = conn.execute(_SCANS.where(scans.c.id == scan_id)).first()
        return _record(row) if row else None

    def by_job(self, conn: Connection, job_id: int) -> ScanRecord | None:
        row = conn.execute(_SCAN_BY_JOB, {"job_id": job_id}).first()
        return _record(row) if row else None

    def latest(
        self, conn: Connection, repository_id: int, digest: str, *, succeeded: bool = False
    ) -> ScanRecord | None:
        """The manifest's most recent scan (of any status, or the latest succeeded one)."""
        query = _SCANS.where(
            scans.c.repository_id == repository_id, scans.c.manifest_digest == digest
        )
        if succeeded:
            query = query.where(scans.c.status == SUCCEEDED)
        row = conn.execute(query.order_by(scans.c.id.desc()).limit(1)).first()
        return _record(row) if row else None

    def latest_statuses(
        self, conn: Connection, repository_id: int, digests: Iterable[str]
    ) -> dict[str, str]:
        """The status of each manifest's most recent scan (manifests never scanned are left
        out), read in one query."""
        wanted = list(set(digests))
        if not wanted:
            return {}
        query = _SCANS.where(
            scans.c.repository_id == repository_id, scans.c.manifest_digest.in_(wanted)
        ).order_by(scans.c.id)
        return {row.manifest_digest: _record(row).status for row in conn.execute(query)}

    def latest_succeeded(
        self, conn: Connection, repository_id: int, digests: Iterable[str]
    ) -> dict[str, int]:
        """The id of each manifest's latest succeeded scan (manifests without one are left
        out), one query per 500 digests."""
        found: dict[str, int] = {}
        wanted = sorted(set(digests))
        for start in range(0, len(wanted), 500):
            query = (
                select(scans.c.manifest_digest, func.max(scans.c.id).label("id"))
                .where(
                    scans.c.repository_id == repository_id,
                    scans.c.manifest_digest.in_(wanted[start : start + 500]),
                    scans.c.status == SUCCEEDED,
                )
                .group_by(scans.c.manifest_digest)
            )
            found.update((row.manifest_digest, row.id) for row in conn.execute(query))
        return found

    def compact_components_of(
        self, conn: Connection, scan_ids: Iterable[int]
    ) -> dict[int, tuple[bytes | None, bytes | None]]:
        """{scan id: (compact component list, None)} of many scans, or (None, packed BOMs)
        for a scan stored before the list existed (scans without BOMs left out); one query
        per 500."""
        found: dict[int, tuple[bytes | None, bytes | None]] = {}
        wanted = sorted(set(scan_ids))
        fallback = case((scans.c.components.is_(None), scans.c.boms), else_=null())
        for start in range(0, len(wanted), 500):
            query = select(scans.c.id, scans.c.components, fallback.label("boms")).where(
                scans.c.id.in_(wanted[start : start + 500]), scans.c.boms.is_not(None)
            )
            found.update(
                (row.id, (_bytes(row.components), _bytes(row.boms))) for row in conn.execute(query)
            )
        return found

    def boms(self, conn: Connection, scan_id: int) -> list[dict[str, Any]]:
        data = self.packed_boms(conn, scan_id)
        return list(unpack(data)) if data else []

    def packed_boms(self, conn: Connection, scan_id: int) -> bytes | None:
        """The BOMs as stored: a JSON list, zlib-compressed (`pack`)."""
        data: bytes | None = conn.scalar(select(scans.c.boms).where(scans.c.id == scan_id))
        return data

    def start(
        self,
        conn: Connection,
        scan_id: int,
        started_at: datetime | None = None,
        bytes_total: int = 0,
        layers_total: int = 0,
    ) -> None:
        """Running, with nothing done yet of `bytes_total` in `layers_total` layers."""
        conn.execute(
            update(scans)
            .where(scans.c.id == scan_id)
            .values(
                status=RUNNING,
                started_at=started_at or utc_now(),
                error=None,
                bytes_done=0,
                bytes_total=bytes_total,
                layers_done=0,
                layers_total=layers_total,
            )
        )

    def progress(
        self,
        conn: Connection,
        scan_id: int,
        bytes_done: int,
        bytes_total: int,
        layers_done: int,
        layers_total: int,
    ) -> None:
        conn.execute(
            update(scans)
            .where(scans.c.id == scan_id, scans.c.status == RUNNING)
            .values(
                bytes_done=bytes_done,
                bytes_total=bytes_total,
                layers_done=layers_done,
                layers_total=layers_total,
            )
        )

    def requeue(self, conn: Connection, scan_id: int, error: str | None) -> None:
        """Back to queued (its job will run again): the error of the attempt that failed."""
        conn.execute(update(scans).where(scans.c.id == scan_id).values(status=QUEUED, error=error))

    def remove(self, conn: Connection, scan_id: int) -> None:
        """Drop a scan that never ran (its manifest is gone), with any component rows."""
        conn.execute(delete(scan_components).where(scan_components.c.scan_id == scan_id))
        conn.execute(delete(scans).where(scans.c.id == scan_id))

    def fail(self, conn: Connection, scan_id: int, error: str) -> None:
        conn.execute(
            update(scans)
            .where(scans.c.id == scan_id)
            .values(status=FAILED, error=error[:4000], finished_at=utc_now())
        )

    def succeed(
        self,
        conn: Connection,
        scan: ScanRecord,
        boms: Sequence[dict[str, Any]] | bytes,
        components: Iterable[dict[str, str]],
        *,
        listed: bytes | None = None,
        started_at: datetime | None = None,
        bytes_total: int | None = None,
        layers_total: int | None = None,
    ) -> bool:
        """Store the image BOMs (or their `pack`ed bytes), and make this scan's components the
        manifest's in the search index (those of its earlier scans go), inserted a batch at a
        time. False when the scan no longer exists. A scan that never said it was running (all
        its layers were in the cache) gets its start time and totals here. `listed` is the
        compact component list policies read (`compact.compact`), made from the BOMs when
        not given."""
        packed = boms if isinstance(boms, bytes) else pack(list(boms))
        progress: dict[str, Any] = {
            "bytes_done": scans.c.bytes_total if bytes_total is None else bytes_total,
            "layers_done": scans.c.layers_total if layers_total is None else layers_total,
        }
        if bytes_total is not None:
            progress["bytes_total"] = bytes_total
        if layers_total is not None:
            progress["layers_total"] = layers_total
        if started_at is not None:
            progress["started_at"] = started_at
        updated = conn.execute(
            update(scans)
            .where(scans.c.id == scan.id)
            .values(
                status=SUCCEEDED,
                boms=packed,
                components=compact_boms(zlib.decompress(packed)) if listed is None else listed,
                error=None,
                finished_at=utc_now(),
                **progress,
            )
        )
        if updated.rowcount != 1:
            return False
        conn.execute(
            delete(scan_components).where(
                scan_components.c.repository_id == scan.repository_id,
                scan_components.c.manifest_digest == scan.manifest_digest,
            )
        )
        rows = (
            {
                "scan_id": scan.id,
                "repository_id": scan.repository_id,
                "manifest_digest": scan.manifest_digest,
                **{key: _fit(key, value) for key, value in component.items()},
            }
            for component in components
        )
        while batch := list(islice(rows, COMPONENT_BATCH)):
            conn.execute(insert(scan_components), batch)
        return True

    # --- the component search ----------------------------------------------------------------
    def search(
        self,
        conn: Connection,
        *,
        name: str | None,
        version: str | None,
        ecosystem: str | None,
        purl: str | None,
        after: int,
        limit: int,
    ) -> list[ComponentRow]:
        """Components matching every given filter, in row order after the id `after`."""
        query = select(
            scan_components.c.id,
            REPOSITORY_NAME.label("repository"),
            scan_components.c.repository_id,
            scan_components.c.manifest_digest,
            scan_components.c.platform,
            scan_components.c.ecosystem,
            scan_components.c.name,
            scan_components.c.version,
            scan_components.c.purl,
            scan_components.c.layer_digest,
            scan_components.c.location,
        ).select_from(
            join_manifest(  # only manifests that still exist
                join_repository(scan_components, scan_components.c.repository_id),
                scan_components.c.repository_id,
                scan_components.c.manifest_digest,
            )
        )
        if name is not None:
            query = query.where(scan_components.c.name == name)
        if version is not None:
            query = query.where(scan_components.c.version == version)
        if ecosystem is not None:
            query = query.where(scan_components.c.ecosystem == ecosystem)
        if purl is not None:
            query = query.where(scan_components.c.purl == purl)
        rows = conn.execute(keyset(query, scan_components.c.id, after, limit))
        return [ComponentRow(*row) for row in rows]

    # --- what the registry has seen ------------------------------------------------------
    def ecosystems_seen(self, conn: Connection) -> set[tuple[str, str]]:
        """Every (ecosystem, namespace) of the component index: the namespace is the purl's
        (`pkg:deb/debian/...` -> `debian`) for OS packages, whose advisories are per
        distribution, and "" for the rest. One statement (a scan of the index, done once
        per online update of the vulnerability database)."""
        purl = scan_components.c.purl
        if conn.dialect.name == "postgresql":
            namespace = func.split_part(purl, "/", 2)
        else:  # SQLite: between the first '/' and the next
            rest = func.substr(purl, func.instr(purl, "/") + 1)
            namespace = func.substr(rest, 1, func.instr(rest, "/") - 1)
        query = select(
            scan_components.c.ecosystem,
            case(
                (scan_components.c.ecosystem.in_(sorted(OS_ECOSYSTEMS)), func.lower(namespace)),
                else_="",
            ).label("namespace"),
        ).distinct()
        return {(row.ecosystem, row.namespace or "") for row in conn.execute(query)}


def _fit(key: str, value: str) -> str:
    limit = _LIMITS.get(key)
    return value[:limit] if limit is not None else value


def _bytes(value: bytes | memoryview | None) -> bytes | None:
    """A binary column's value as bytes (PostgreSQL's driver hands a memoryview)."""
    return None if value is None else bytes(value)
