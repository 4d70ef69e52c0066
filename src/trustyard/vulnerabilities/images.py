"""The vulnerabilities of stored images: `ImageStore` (all SQL of vuln_image_matches,
vuln_image_packages and vuln_findings; functions take the caller's connection, none commits)
and `ImageMatcher` (a scan's BOMs -> its stored findings, through findings.py, the one
matching path).

Reading (what /api/v1 and the exports use):

- `ImageStore.image_vulnerabilities(conn, repository_id, repository_name, digest)` ->
  `ImageVulnerabilities`. `status` comes from the manifest's latest scan: `not_scanned` (no
  scan), `pending` (the scan is queued or running, or it succeeded and is not matched yet),
  `failed` (the scan failed: its error; or matching it failed: that error, a retry job is
  queued), `matched`. The findings are those of the manifest's latest *matched* scan
  (`scan_id`, `database_version`, `matched_at` name it), so a rescan in progress does not
  blank an image's results; ordered by platform, component (ecosystem, name, version, purl)
  and vulnerability id. Triage is NOT applied here (`ImageFinding.triage` is None): the
  triage module's `apply_triage` does that.
- `ImageStore.counts_for(conn, repository_id, digests)` -> {digest: Counts}: the raw counts
  (no triage applied) of each manifest's latest matched scan, in one query, for tag lists;
  a digest never matched is absent. They equal `Counts.of(image_vulnerabilities(...).findings)`
  before triage.

Scans are read through `ScanSource` (scanning's `ScanStore` is one; the composition root
hands it in): feature domains do not import each other.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from itertools import islice
from typing import Any, Protocol

from sqlalchemy import Connection, and_, delete, func, insert, or_, select, text, update
from sqlalchemy.orm import aliased

from trustyard.content.reads import REPOSITORY_NAME, join_manifest, join_repository
from trustyard.db.tables import vuln_findings, vuln_image_matches, vuln_image_packages
from trustyard.kit.clock import utc_now, utc_or_none
from trustyard.vulnerabilities.components import Target, Via
from trustyard.vulnerabilities.findings import image_components, match, packages
from trustyard.vulnerabilities.interfaces import (
    Counts,
    ImageComponent,
    ImageFinding,
    ImageVulnerabilities,
    Package,
)
from trustyard.vulnerabilities.matching import package_key
from trustyard.vulnerabilities.service import VulnerabilityService

NOT_SCANNED, PENDING, MATCHED, FAILED = "not_scanned", "pending", "matched", "failed"
BATCH = 1000  # rows per INSERT, ids per IN (...)
_SCAN_SUCCEEDED, _SCAN_FAILED = "succeeded", "failed"

# What the varchar columns hold at most (PostgreSQL refuses longer values).
_PACKAGE_LIMITS = {
    "platform": 64,
    "ecosystem": 32,
    "name": 512,
    "version": 255,
    "purl": 1024,
    "layer_digest": 200,
    "target_ecosystem": 64,
    "target_name": 512,
    "target_version": 255,
}


class ScanView(Protocol):
    """What matching reads of a scan (scanning's `ScanRecord` is one)."""

    @property
    def id(self) -> int: ...
    @property
    def repository_id(self) -> int: ...
    @property
    def manifest_digest(self) -> str: ...
    @property
    def status(self) -> str: ...  # queued | running | succeeded | failed
    @property
    def error(self) -> str | None: ...


class ScanSource(Protocol):
    """Scans and their BOMs (scanning's `ScanStore`)."""

    def get(self, conn: Connection, scan_id: int) -> ScanView | None: ...
    def latest(self, conn: Connection, repository_id: int, digest: str) -> ScanView | None: ...
    def boms(self, conn: Connection, scan_id: int) -> list[dict[str, Any]]: ...


@dataclass(frozen=True, slots=True)
class MatchRow:
    scan_id: int
    status: str
    database_version: int
    components: int
    matched_at: datetime
    error: str | None


@dataclass(frozen=True, slots=True)
class StoredFinding:
    """A vuln_findings row as re-matching compares it."""

    id: int
    package_id: int
    vuln_id: str
    record_ids: tuple[str, ...]
    aliases: tuple[str, ...]
    bucket: str
    score: float | None
    vector: str | None
    fixed: str | None
    found_at: datetime


@dataclass(frozen=True, slots=True)
class TouchedScan:
    """A matched scan holding components of packages an update touched."""

    scan_id: int
    repository_id: int
    repository: str
    manifest_digest: str


def _fit(value: str, limit: int) -> str:
    return value if len(value) <= limit else value[:limit]


def _chunks(items: Iterable[Any], size: int = BATCH) -> Iterator[list[Any]]:
    iterator = iter(items)
    while chunk := list(islice(iterator, size)):
        yield chunk


def _component(row: Any) -> ImageComponent:
    return ImageComponent(
        platform=row.platform,
        ecosystem=row.ecosystem,
        name=row.name,
        version=row.version,
        purl=row.purl,
        layer=row.layer_digest,
        target=Target(row.target_ecosystem, row.target_name, row.target_version, Via(row.via)),
    )


def _finding_values(scan_id: int, package_id: int, finding: ImageFinding) -> dict[str, Any]:
    return {
        "package_id": package_id,
        "scan_id": scan_id,
        "vuln_id": _fit(finding.vuln_id, 128),
        "record_ids": json.dumps(list(finding.record_ids)),
        "aliases": json.dumps(list(finding.aliases)),
        "bucket": _fit(finding.bucket, 16),
        "score": finding.score,
        "vector": _fit(finding.vector, 512) if finding.vector is not None else None,
        "fixed": _fit(finding.fixed, 255) if finding.fixed is not None else None,
        "found_at": finding.found_at or utc_now(),
    }


_PACKAGE_COLUMNS = (
    vuln_image_packages.c.id,
    vuln_image_packages.c.scan_id,
    vuln_image_packages.c.platform,
    vuln_image_packages.c.ecosystem,
    vuln_image_packages.c.name,
    vuln_image_packages.c.version,
    vuln_image_packages.c.purl,
    vuln_image_packages.c.layer_digest,
    vuln_image_packages.c.target_ecosystem,
    vuln_image_packages.c.target_name,
    vuln_image_packages.c.target_version,
    vuln_image_packages.c.via,
)
_FINDINGS = (
    select(
        *_PACKAGE_COLUMNS,
        vuln_findings.c.vuln_id,
        vuln_findings.c.record_ids,
        vuln_findings.c.aliases,
        vuln_findings.c.bucket,
        vuln_findings.c.score,
        vuln_findings.c.vector,
        vuln_findings.c.fixed,
        vuln_findings.c.found_at,
    )
    .select_from(
        vuln_findings.join(
            vuln_image_packages, vuln_image_packages.c.id == vuln_findings.c.package_id
        )
    )
    .order_by(
        vuln_image_packages.c.platform,
        vuln_image_packages.c.ecosystem,
        vuln_image_packages.c.name,
        vuln_image_packages.c.version,
        vuln_image_packages.c.purl,
        vuln_image_packages.c.id,
        vuln_findings.c.vuln_id,
    )
)
_INSERT_PACKAGES = insert(vuln_image_packages).returning(
    vuln_image_packages.c.id, sort_by_parameter_order=True
)


class ImageStore:
    def __init__(self, scans: ScanSource) -> None:
        self.scans = scans

    # --- reads (the API) ---------------------------------------------------------------------
    def image_vulnerabilities(
        self, conn: Connection, repository_id: int, repository_name: str, manifest_digest: str
    ) -> ImageVulnerabilities:
        """The state and findings of one image (every platform of an index): see the module's
        docstring. Three small queries; triage not applied."""
        scan = self.scans.latest(conn, repository_id, manifest_digest)
        latest = self._latest_match(conn, repository_id, manifest_digest, matched_only=False)
        shown = latest
        if latest is not None and latest.status != MATCHED:
            shown = self._latest_match(conn, repository_id, manifest_digest, matched_only=True)
        status, error = self._status(scan, latest)
        findings: tuple[ImageFinding, ...] = ()
        if shown is not None:
            rows = conn.execute(_FINDINGS.where(vuln_findings.c.scan_id == shown.scan_id))
            findings = tuple(_image_finding(row) for row in rows)
        return ImageVulnerabilities(
            repository=repository_name,
            manifest_digest=manifest_digest,
            status=status,
            scan_id=shown.scan_id if shown is not None else None,
            database_version=shown.database_version if shown is not None else None,
            matched_at=shown.matched_at if shown is not None else None,
            error=error,
            findings=findings,
        )

    @staticmethod
    def _status(scan: ScanView | None, latest: MatchRow | None) -> tuple[str, str | None]:
        if scan is None:
            return NOT_SCANNED, None
        if scan.status == _SCAN_FAILED:
            return FAILED, scan.error
        if scan.status != _SCAN_SUCCEEDED or latest is None or latest.scan_id != scan.id:
            return PENDING, None
        if latest.status == FAILED:
            return FAILED, latest.error
        return MATCHED, None

    def _latest_match(
        self, conn: Connection, repository_id: int, digest: str, *, matched_only: bool
    ) -> MatchRow | None:
        query = select(
            vuln_image_matches.c.scan_id,
            vuln_image_matches.c.status,
            vuln_image_matches.c.database_version,
            vuln_image_matches.c.components,
            vuln_image_matches.c.matched_at,
            vuln_image_matches.c.error,
        ).where(
            vuln_image_matches.c.repository_id == repository_id,
            vuln_image_matches.c.manifest_digest == digest,
        )
        if matched_only:
            query = query.where(vuln_image_matches.c.status == MATCHED)
        row = conn.execute(query.order_by(vuln_image_matches.c.scan_id.desc()).limit(1)).first()
        if row is None:
            return None
        return MatchRow(
            scan_id=row.scan_id,
            status=row.status,
            database_version=row.database_version,
            components=row.components,
            matched_at=utc_or_none(row.matched_at) or utc_now(),
            error=row.error,
        )

    def counts_for(
        self, conn: Connection, repository_id: int, digests: Iterable[str]
    ) -> dict[str, Counts]:
        """Raw counts (triage NOT applied) of each manifest's latest matched scan, one query
        (per 1,000 digests); a digest never matched is absent."""
        found: dict[str, dict[str, int]] = {}
        newer = aliased(vuln_image_matches)
        for chunk in _chunks(sorted(set(digests))):
            latest = (
                select(func.max(newer.c.scan_id))
                .where(
                    newer.c.repository_id == vuln_image_matches.c.repository_id,
                    newer.c.manifest_digest == vuln_image_matches.c.manifest_digest,
                    newer.c.status == MATCHED,
                )
                .scalar_subquery()
            )
            query = (
                select(
                    vuln_image_matches.c.manifest_digest,
                    vuln_findings.c.bucket,
                    func.count(vuln_findings.c.id).label("n"),
                )
                .select_from(
                    vuln_image_matches.outerjoin(
                        vuln_findings, vuln_findings.c.scan_id == vuln_image_matches.c.scan_id
                    )
                )
                .where(
                    vuln_image_matches.c.repository_id == repository_id,
                    vuln_image_matches.c.manifest_digest.in_(chunk),
                    vuln_image_matches.c.status == MATCHED,
                    vuln_image_matches.c.scan_id == latest,
                )
                .group_by(vuln_image_matches.c.manifest_digest, vuln_findings.c.bucket)
            )
            for row in conn.execute(query):
                tally = found.setdefault(row.manifest_digest, {})
                if row.bucket is not None:
                    bucket = (
                        row.bucket if row.bucket in ("critical", "major", "minor") else "unknown"
                    )
                    tally[bucket] = tally.get(bucket, 0) + row.n
        return {digest: Counts(**tally) for digest, tally in found.items()}

    def latest_matched(
        self, conn: Connection, repository_id: int, digests: Iterable[str]
    ) -> dict[str, int]:
        """The scan id of each manifest's latest matched scan (never matched: absent), one
        query per 1,000 digests."""
        found: dict[str, int] = {}
        for chunk in _chunks(sorted(set(digests))):
            query = (
                select(
                    vuln_image_matches.c.manifest_digest,
                    func.max(vuln_image_matches.c.scan_id).label("scan_id"),
                )
                .where(
                    vuln_image_matches.c.repository_id == repository_id,
                    vuln_image_matches.c.manifest_digest.in_(chunk),
                    vuln_image_matches.c.status == MATCHED,
                )
                .group_by(vuln_image_matches.c.manifest_digest)
            )
            found.update((row.manifest_digest, row.scan_id) for row in conn.execute(query))
        return found

    def counts_of_scans(self, conn: Connection, scan_ids: Iterable[int]) -> dict[int, Counts]:
        """Raw counts (triage NOT applied) of each scan's findings, one grouped query per
        1,000 scans (by the findings' scan index); a scan without findings is absent."""
        found: dict[int, dict[str, int]] = {}
        for chunk in _chunks(sorted(set(scan_ids))):
            query = (
                select(
                    vuln_findings.c.scan_id,
                    vuln_findings.c.bucket,
                    func.count(vuln_findings.c.id).label("n"),
                )
                .where(vuln_findings.c.scan_id.in_(chunk))
                .group_by(vuln_findings.c.scan_id, vuln_findings.c.bucket)
            )
            for row in conn.execute(query):
                tally = found.setdefault(row.scan_id, {})
                bucket = row.bucket if row.bucket in ("critical", "major", "minor") else "unknown"
                tally[bucket] = tally.get(bucket, 0) + row.n
        return {scan_id: Counts(**tally) for scan_id, tally in found.items()}

    def findings_of_scans(
        self, conn: Connection, scan_ids: Iterable[int]
    ) -> dict[int, tuple[ImageFinding, ...]]:
        """The findings (triage not applied) of each scan, in the order of
        `image_vulnerabilities`, one query per 1,000 scans."""
        found: dict[int, list[ImageFinding]] = {}
        for chunk in _chunks(sorted(set(scan_ids))):
            for row in conn.execute(_FINDINGS.where(vuln_findings.c.scan_id.in_(chunk))):
                found.setdefault(row.scan_id, []).append(_image_finding(row))
        return {scan_id: tuple(findings) for scan_id, findings in found.items()}

    # --- writes of a match -------------------------------------------------------------------
    def replace(
        self,
        conn: Connection,
        scan: ScanView,
        components: Sequence[ImageComponent],
        findings: Sequence[ImageFinding],
        database_version: int,
    ) -> None:
        """Make `components` and `findings` the scan's (its earlier rows go), matched at
        `database_version`; inserted a batch at a time."""
        self.clear(conn, scan.id)
        now = utc_now()
        ids: dict[int, int] = {}  # id(component) -> its row id
        for chunk in _chunks(components):
            rows = [
                {
                    "scan_id": scan.id,
                    "repository_id": scan.repository_id,
                    "manifest_digest": scan.manifest_digest,
                    **{
                        key: _fit(value, _PACKAGE_LIMITS[key])
                        for key, value in (
                            ("platform", c.platform),
                            ("ecosystem", c.ecosystem),
                            ("name", c.name),
                            ("version", c.version),
                            ("purl", c.purl),
                            ("layer_digest", c.layer),
                            ("target_ecosystem", c.target.ecosystem),
                            # the lookup key: the name in its ecosystem's normal form
                            ("target_name", package_key(c.target.ecosystem, c.target.name)[1]),
                            ("target_version", c.target.version),
                        )
                    },
                    "via": str(c.target.via),
                }
                for c in chunk
            ]
            made = conn.execute(_INSERT_PACKAGES, rows).scalars().all()
            ids.update((id(c), row_id) for c, row_id in zip(chunk, made, strict=True))
        seen: set[tuple[int, str]] = set()
        values = []
        for finding in findings:
            package_id = ids[id(finding.component)]
            key = (package_id, _fit(finding.vuln_id, 128))
            if key in seen:
                continue
            seen.add(key)
            values.append(_finding_values(scan.id, package_id, finding))
        for chunk in _chunks(values):
            conn.execute(insert(vuln_findings), chunk)
        _record_match(conn, scan, MATCHED, database_version, len(components), now)

    def first_seen(self, conn: Connection, scan: ScanView) -> dict[tuple[str, str, str], datetime]:
        """When each (platform, purl, vulnerability) of the manifest's latest matched scan
        before `scan` was found (empty: none)."""
        earlier = conn.scalar(
            select(func.max(vuln_image_matches.c.scan_id)).where(
                vuln_image_matches.c.repository_id == scan.repository_id,
                vuln_image_matches.c.manifest_digest == scan.manifest_digest,
                vuln_image_matches.c.status == MATCHED,
                vuln_image_matches.c.scan_id < scan.id,
            )
        )
        if earlier is None:
            return {}
        rows = conn.execute(
            select(
                vuln_image_packages.c.platform,
                vuln_image_packages.c.purl,
                vuln_findings.c.vuln_id,
                vuln_findings.c.found_at,
            )
            .select_from(
                vuln_findings.join(
                    vuln_image_packages, vuln_image_packages.c.id == vuln_findings.c.package_id
                )
            )
            .where(vuln_findings.c.scan_id == earlier)
        )
        found: dict[tuple[str, str, str], datetime] = {}
        for row in rows:
            moment = utc_or_none(row.found_at)
            key = (row.platform, row.purl, row.vuln_id)
            if moment is not None and (key not in found or moment < found[key]):
                found[key] = moment
        return found

    def clear(self, conn: Connection, scan_id: int) -> None:
        conn.execute(delete(vuln_findings).where(vuln_findings.c.scan_id == scan_id))
        conn.execute(delete(vuln_image_packages).where(vuln_image_packages.c.scan_id == scan_id))
        conn.execute(delete(vuln_image_matches).where(vuln_image_matches.c.scan_id == scan_id))

    def mark_failed(
        self, conn: Connection, scan: ScanView, database_version: int, error: str
    ) -> None:
        """Matching the scan failed (a retry is queued): its earlier rows go, the image says
        failed with `error` until a match succeeds."""
        self.clear(conn, scan.id)
        _record_match(conn, scan, FAILED, database_version, 0, utc_now(), error[:4000])

    # --- re-matching ---------------------------------------------------------------------------
    def touched_scans(self, conn: Connection, packages: Iterable[Package]) -> list[int]:
        """The matched scans holding a component of `packages` ((target ecosystem, normalised
        name)), each manifest's latest matched scan only, in id order."""
        found: set[int] = set()
        newer = aliased(vuln_image_matches)
        for wanted in _package_filters(packages):
            query = (
                select(vuln_image_packages.c.scan_id)
                .distinct()
                .select_from(
                    vuln_image_packages.join(
                        vuln_image_matches,
                        vuln_image_matches.c.scan_id == vuln_image_packages.c.scan_id,
                    )
                )
                .where(
                    wanted,
                    vuln_image_matches.c.status == MATCHED,
                    ~select(newer.c.id)
                    .where(
                        newer.c.repository_id == vuln_image_matches.c.repository_id,
                        newer.c.manifest_digest == vuln_image_matches.c.manifest_digest,
                        newer.c.scan_id > vuln_image_matches.c.scan_id,
                    )
                    .exists(),
                )
            )
            found.update(conn.scalars(query))
        return sorted(found)

    def touched_components(
        self, conn: Connection, scan_ids: Sequence[int], packages: Iterable[Package]
    ) -> list[tuple[int, int, ImageComponent]]:
        """(row id, scan id, component) of the scans' components of `packages`."""
        result = []
        for wanted in _package_filters(packages):
            query = (
                select(*_PACKAGE_COLUMNS)
                .where(vuln_image_packages.c.scan_id.in_(list(scan_ids)), wanted)
                .order_by(vuln_image_packages.c.id)
            )
            result += [(row.id, row.scan_id, _component(row)) for row in conn.execute(query)]
        return result

    def findings_of(self, conn: Connection, package_ids: Sequence[int]) -> list[StoredFinding]:
        result = []
        for chunk in _chunks(package_ids):
            rows = conn.execute(select(vuln_findings).where(vuln_findings.c.package_id.in_(chunk)))
            result += [
                StoredFinding(
                    id=row.id,
                    package_id=row.package_id,
                    vuln_id=row.vuln_id,
                    record_ids=tuple(json.loads(row.record_ids)),
                    aliases=tuple(json.loads(row.aliases)),
                    bucket=row.bucket,
                    score=row.score,
                    vector=row.vector,
                    fixed=row.fixed,
                    found_at=utc_or_none(row.found_at) or utc_now(),
                )
                for row in rows
            ]
        return result

    def delete_findings(self, conn: Connection, ids: Sequence[int]) -> None:
        for chunk in _chunks(ids):
            conn.execute(delete(vuln_findings).where(vuln_findings.c.id.in_(chunk)))

    def insert_findings(
        self, conn: Connection, rows: Sequence[tuple[int, int, ImageFinding]]
    ) -> None:
        """(scan id, package row id, finding) rows."""
        values = [_finding_values(scan_id, package_id, f) for scan_id, package_id, f in rows]
        for chunk in _chunks(values):
            conn.execute(insert(vuln_findings), chunk)

    def describe(self, conn: Connection, scan_ids: Sequence[int]) -> list[TouchedScan]:
        """The repository (name too) and digest of matched scans whose manifest still exists."""
        result = []
        for chunk in _chunks(sorted(set(scan_ids))):
            source = join_manifest(
                join_repository(vuln_image_matches, vuln_image_matches.c.repository_id),
                vuln_image_matches.c.repository_id,
                vuln_image_matches.c.manifest_digest,
            )
            query = (
                select(
                    vuln_image_matches.c.scan_id,
                    vuln_image_matches.c.repository_id,
                    REPOSITORY_NAME.label("repository"),
                    vuln_image_matches.c.manifest_digest,
                )
                .select_from(source)
                .where(vuln_image_matches.c.scan_id.in_(chunk))
                .order_by(vuln_image_matches.c.scan_id)
            )
            result += [TouchedScan(*row) for row in conn.execute(query)]
        return result

    def stamp(self, conn: Connection, database_version: int) -> int:
        """Every matched scan now reflects `database_version` (a re-match after an update
        looked at every component the update touched); returns how many rows moved."""
        return conn.execute(
            update(vuln_image_matches)
            .where(
                vuln_image_matches.c.status == MATCHED,
                vuln_image_matches.c.database_version < database_version,
            )
            .values(database_version=database_version)
        ).rowcount


def _package_filters(packages: Iterable[Package]) -> Iterator[Any]:
    """WHERE clauses over (target_ecosystem, target_name), each naming at most BATCH names."""
    by_ecosystem: dict[str, list[str]] = {}
    for ecosystem, name in packages:
        by_ecosystem.setdefault(ecosystem, []).append(name)
    clauses = []
    count = 0
    for ecosystem, names in sorted(by_ecosystem.items()):
        for chunk in _chunks(sorted(set(names))):
            clauses.append(
                and_(
                    vuln_image_packages.c.target_ecosystem == ecosystem,
                    vuln_image_packages.c.target_name.in_(chunk),
                )
            )
            count += len(chunk)
            if count >= BATCH:
                yield or_(*clauses)
                clauses, count = [], 0
    if clauses:
        yield or_(*clauses)


def _image_finding(row: Any) -> ImageFinding:
    return ImageFinding(
        component=_component(row),
        vuln_id=row.vuln_id,
        record_ids=tuple(json.loads(row.record_ids)),
        aliases=tuple(json.loads(row.aliases)),
        bucket=row.bucket,
        score=row.score,
        vector=row.vector,
        fixed=row.fixed,
        found_at=utc_or_none(row.found_at),
    )


# --- matching a scan ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Matched:
    scan_id: int
    components: int
    findings: int
    left_out: int
    database_version: int


class ImageMatcher:
    """A scan's BOMs -> its stored findings (`findings.image_components`, one `index_for`,
    `findings.match`: the same path as `trustyard scan --vulns`)."""

    def __init__(self, store: ImageStore, service: VulnerabilityService) -> None:
        self.store = store
        self.service = service

    def match_scan(self, conn: Connection, scan_id: int) -> Matched | None:
        """Match the scan and replace its rows, in the caller's transaction. None when the
        scan is gone or did not succeed (nothing to match)."""
        scan = self.store.scans.get(conn, scan_id)
        if scan is None or scan.status != _SCAN_SUCCEEDED:
            return None
        hold_matching(conn)
        version = self.service.version(conn)
        components, left_out = image_components(self.store.scans.boms(conn, scan_id))
        index = self.service.index_for(conn, packages(components))
        found = match(index, components)
        earlier = self.store.first_seen(conn, scan)
        if earlier:  # a rescan: what the manifest had already keeps the time it was found
            found = [
                replace(
                    f, found_at=earlier.get((f.component.platform, f.component.purl, f.vuln_id))
                )
                for f in found
            ]
        self.store.replace(conn, scan, components, found, version)
        return Matched(scan_id, len(components), len(found), len(left_out), version)


# PostgreSQL advisory lock between matching a scan (shared) and switching the database to a
# new generation (exclusive, `hold_switch`): a switch waits for the matches that read the old
# generation to commit, so the re-match it enqueues sees their rows; a match that starts
# after it reads the new generation. SQLite runs one writer at a time already. "tyvm".
_MATCH_LOCK = 0x7479766D


def hold_matching(conn: Connection) -> None:
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock_shared(:key)"), {"key": _MATCH_LOCK})


def hold_switch(conn: Connection) -> None:
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _MATCH_LOCK})


def _record_match(
    conn: Connection,
    scan: ScanView,
    status: str,
    database_version: int,
    components: int,
    at: datetime,
    error: str | None = None,
) -> None:
    """The scan's one vuln_image_matches row: how its matching went, against which version."""
    conn.execute(
        insert(vuln_image_matches).values(
            scan_id=scan.id,
            repository_id=scan.repository_id,
            manifest_digest=scan.manifest_digest,
            status=status,
            database_version=database_version,
            components=components,
            matched_at=at,
            error=error,
        )
    )
