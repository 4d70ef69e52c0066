"""What the vulnerability database answers and refuses: the import's report, the database's
status, and the domain errors of a bundle (each names the rule, the entry and, for a record,
the record and its field)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from trustyard.errors import Invalid, StateConflict

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
