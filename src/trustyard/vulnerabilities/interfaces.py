"""What the vulnerability database answers and refuses: the import's report, the database's
status, and the domain errors of a bundle (each names the rule, the entry and, for a record,
the record and its field)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from trustyard.errors import Invalid, StateConflict
from trustyard.vulnerabilities.components import Target

Package = tuple[str, str]  # (OSV ecosystem, name in the ecosystem's normal form)


class BundleInvalid(Invalid):
    """A bundle that cannot be imported: unreadable (truncated, not a zip or tar.gz), over a
    limit (`rule` and `value`: entries, entry_bytes, total_bytes, ratio, name), or a digest
    that does not match. Nothing of it was made visible."""

    def __init__(self, bundle: str, rule: str, message: str, entry: str | None = None) -> None:
        where = f"{bundle}" + (f", entry {entry}" if entry is not None else "")
        super().__init__(
            f"vulnerability bundle {where}: {message}",
            {"bundle": bundle, "rule": rule, **({"entry": entry} if entry else {})},
        )
        self.bundle = bundle
        self.rule = rule
        self.entry = entry


class BundleRecordInvalid(BundleInvalid):
    """One record of the bundle is not a valid OSV record (strict import): the entry, the
    record id (when it has one) and the field say which and why."""

    def __init__(self, bundle: str, entry: str, record_id: str, field: str, reason: str) -> None:
        super().__init__(bundle, "record", f"record {record_id}: {field}: {reason}", entry)
        assert self.detail is not None
        self.detail.update({"record": record_id, "field": field, "reason": reason})
        self.record_id = record_id
        self.field = field
        self.reason = reason


class ImportConflict(StateConflict):
    """Another import of the same source is being written (or took this one's claim over)."""


@dataclass(frozen=True, slots=True)
class ImportReport:
    """What one import did. `changed_packages` are the (ecosystem, name) pairs whose records
    were added, changed or removed (withdrawn included): the components to match again."""

    source: str
    generation: int
    bundle_sha256: str | None
    records: int  # in the new generation
    added: int
    changed: int
    unchanged: int
    removed: int  # in the old generation, not in the new one (withdrawn ones included)
    withdrawn: int  # withdrawn records of the bundle, left out
    skipped_entries: int  # entries that are not .json files
    warnings: tuple[str, ...]  # per record (versions a scheme cannot read...), the first ones
    warning_count: int
    changed_packages: frozenset[Package]
    seconds: float


@dataclass(frozen=True, slots=True)
class SourceStatus:
    name: str
    url: str | None
    generation: int | None  # None: never imported
    records: int
    bundle_sha256: str | None
    updated_at: datetime | None  # the last successful import
    failed_at: datetime | None  # the last failed one (kept after later successes)
    error: str | None
    importing: bool  # an import is being written


@dataclass(frozen=True, slots=True)
class DatabaseStatus:
    version: int  # moves on every import that switched a source
    updated_at: datetime | None
    sources: tuple[SourceStatus, ...]

    @property
    def records(self) -> int:
        return sum(s.records for s in self.sources)


# --- the vulnerabilities of images ---------------------------------------------------------


class TriageStatus(StrEnum):
    """OpenVEX's statuses; DTR's override is `not_affected` with the reason as statement."""

    NOT_AFFECTED = "not_affected"
    AFFECTED = "affected"
    FIXED = "fixed"
    UNDER_INVESTIGATION = "under_investigation"


# Triage that takes a finding out of counts, exports' open lists and policies.
SUPPRESSING = frozenset({TriageStatus.NOT_AFFECTED, TriageStatus.FIXED})


@dataclass(frozen=True, slots=True)
class ImageComponent:
    """One BOM component of a matched image, with what it was looked up as."""

    platform: str
    ecosystem: str  # the BOM's (deb, pypi...)
    name: str
    version: str
    purl: str
    layer: str  # the digest of the layer that brought it
    target: Target


@dataclass(frozen=True, slots=True)
class Triage:
    """The decision that applies to a finding (the narrowest scope wins: image, then
    repository, then organization; among equals the newest)."""

    id: int
    scope: str  # image | repository | organization
    status: TriageStatus
    justification: str | None
    statement: str | None
    source: str  # override | vex
    expires_at: datetime | None
    created_by: str | None
    created_at: datetime


@dataclass(frozen=True, slots=True)
class ImageFinding:
    """One vulnerability of one component of an image."""

    component: ImageComponent
    vuln_id: str
    record_ids: tuple[str, ...]
    aliases: tuple[str, ...]
    bucket: str  # critical | major | minor | unknown
    score: float | None
    vector: str | None
    fixed: str | None
    found_at: datetime | None = None
    triage: Triage | None = None

    @property
    def names(self) -> frozenset[str]:
        """Every name of the vulnerability (a VEX statement may use any of them)."""
        return frozenset((self.vuln_id, *self.record_ids, *self.aliases))

    @property
    def suppressed(self) -> bool:
        return self.triage is not None and self.triage.status in SUPPRESSING


@dataclass(frozen=True, slots=True)
class Counts:
    critical: int = 0
    major: int = 0
    minor: int = 0
    unknown: int = 0

    @property
    def total(self) -> int:
        return self.critical + self.major + self.minor + self.unknown

    @classmethod
    def of(cls, findings: Iterable[ImageFinding]) -> Counts:
        """DTR's counts: one per (component, vulnerability), triaged-away ones left out."""
        tally = {"critical": 0, "major": 0, "minor": 0, "unknown": 0}
        for finding in findings:
            if not finding.suppressed:
                tally[finding.bucket if finding.bucket in tally else "unknown"] += 1
        return cls(**tally)


@dataclass(frozen=True, slots=True)
class ImageVulnerabilities:
    """The vulnerabilities of one image (every platform of an index): `status` pending (its
    scan is not finished or not matched yet), matched, failed, or not_scanned."""

    repository: str
    manifest_digest: str
    status: str
    scan_id: int | None
    database_version: int | None
    matched_at: datetime | None
    error: str | None
    findings: tuple[ImageFinding, ...] = ()

    @property
    def counts(self) -> Counts:
        return Counts.of(self.findings)
