"""The offline import of an OSV bundle into the metadata database, atomic by generation.

1. The bundle's SHA-256 is checked when one is given (before anything is written).
2. One small transaction claims the source's next generation (an import of the same source
   that is still writing is refused; one that stopped is taken over, its rows dropped).
3. Each record is parsed strictly (`osv.parse_record`), withdrawn ones are left out, and the
   rest is written a batch at a time, each batch its own short write transaction (on SQLite
   other writers, pushes among them, go in between).
4. One small transaction switches the source to the new generation and moves the database
   version: readers see the old records up to it and the new ones from it, never a mix.
5. The old generation's rows are deleted a batch at a time.

A bundle that is corrupt, truncated, over a limit, or holds a record that is not valid OSV
never reaches step 4: its rows are deleted, the source records the failure, and the error
(`BundleInvalid`, `BundleRecordInvalid`) says which entry and which record. An import that
dies half-way leaves a pending generation that the next import of the source removes.

Unlike a service, the importer owns its transactions (it takes the engine): an import is
many transactions by design, so no caller's transaction could hold it.
"""

from __future__ import annotations

import hashlib
import logging
import re
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from pathlib import Path

from sqlalchemy import Connection, Engine
from sqlalchemy.exc import SQLAlchemyError

from trustyard.db.engine import read_tx, write_tx
from trustyard.errors import DomainError, Invalid
from trustyard.kit.clock import utc_now
from trustyard.vulnerabilities.bundles import (
    DEFAULT_BUNDLE_LIMITS,
    BundleLimits,
    Tally,
    file_sha256,
    kind_of,
    read_bundle,
)
from trustyard.vulnerabilities.interfaces import (
    BundleInvalid,
    BundleRecordInvalid,
    ImportReport,
    Package,
)
from trustyard.vulnerabilities.matching import AffectedMatcher, package_key
from trustyard.vulnerabilities.osv import (
    DEFAULT_LIMITS,
    Limits,
    Record,
    RecordInvalid,
    parse_record,
)
from trustyard.vulnerabilities.stores import (
    ECOSYSTEM_CHARS,
    SEVERITY_CHARS,
    SOURCE_CHARS,
    Claim,
    NewRecord,
    VulnStore,
)

log = logging.getLogger(__name__)

# Called in the transaction that switches a source (name) to its new generation, with the
# (ecosystem, name) packages whose records changed: what stored images to re-match.
SwitchHook = Callable[[Connection, str, frozenset[Package]], None]

_SUFFIXES = (".tar.gz", ".tgz", ".tar", ".zip")
_SHA256 = re.compile(r"[0-9a-f]{64}")


def source_name(path: Path) -> str:
    """A bundle's default source name: its file name without the archive suffix, or its
    folder's name for osv.dev's `<Ecosystem>/all.zip`."""
    name = path.name
    for suffix in _SUFFIXES:
        if name.lower().endswith(suffix):
            name = name[: -len(suffix)]
            break
    if name in ("", "all") and path.resolve().parent.name:
        name = path.resolve().parent.name
    return name


@dataclass(slots=True)
class _Load:
    """What the record pass found."""

    old: dict[str, tuple[str, int]]
    kept: set[str] = field(default_factory=set)
    batch: list[NewRecord] = field(default_factory=list)
    batch_bytes: int = 0
    added: int = 0
    changed: int = 0
    unchanged: int = 0
    withdrawn: int = 0
    old_touched: list[int] = field(default_factory=list)  # row ids: changed records
    packages: set[Package] = field(default_factory=set)
    warnings: list[str] = field(default_factory=list)
    warning_count: int = 0


class Importer:
    def __init__(
        self,
        engine: Engine,
        store: VulnStore | None = None,
        *,
        limits: BundleLimits = DEFAULT_BUNDLE_LIMITS,
        record_limits: Limits = DEFAULT_LIMITS,
        batch_records: int = 500,
        batch_bytes: int = 4 * 1024 * 1024,
        delete_batch: int = 1000,
        stale_after: timedelta = timedelta(minutes=10),
        warnings_kept: int = 100,
        clock: Callable[[], datetime] = utc_now,
        on_switch: SwitchHook | None = None,
    ) -> None:
        self.engine = engine
        self.store = store or VulnStore()
        self.limits = limits
        self.record_limits = record_limits
        self.batch_records = batch_records
        self.batch_bytes = batch_bytes
        self.delete_batch = delete_batch
        self.stale_after = stale_after
        self.warnings_kept = warnings_kept
        self.clock = clock
        self.on_switch = on_switch

    def import_bundle(
        self, path: Path, *, source: str | None = None, sha256: str | None = None
    ) -> ImportReport:
        """Import the bundle at `path` as the whole of source `source` (by default named after
        the bundle): its records replace the source's. `sha256`: the bundle's expected digest
        (hex). Raises `BundleInvalid` (and its `BundleRecordInvalid`) or `ImportConflict`;
        the database then answers as before."""
        started = time.monotonic()
        kind = kind_of(path)
        digest = None if kind == "folder" else file_sha256(path)
        if sha256 is not None:
            expected = sha256.strip().lower()
            if not _SHA256.fullmatch(expected):
                raise BundleInvalid(
                    str(path), "sha256", "the expected SHA-256 is not 64 hex digits"
                )
            if digest is None:
                raise BundleInvalid(str(path), "sha256", "a folder has no single SHA-256")
            if digest != expected:
                raise BundleInvalid(
                    str(path), "sha256", f"its SHA-256 is {digest}, not the expected {expected}"
                )
        name = source if source is not None else source_name(path)
        if not name.strip() or len(name) > SOURCE_CHARS:
            raise Invalid(f"a source name has 1 to {SOURCE_CHARS} characters, not {name[:40]!r}")
        now = self.clock()
        with write_tx(self.engine) as conn:
            claim = self.store.claim(conn, name, now, now - self.stale_after)
        try:
            self._drop_generations(claim, keep={claim.current, claim.generation})
            with read_tx(self.engine) as conn:
                old = (
                    {}
                    if claim.current is None
                    else self.store.fingerprints(conn, claim.source_id, claim.current)
                )
            load = _Load(old)
            tally = Tally()
            entries = 0
            for entry in read_bundle(path, self.limits, tally):
                entries += 1
                self._add(load, claim, str(path), entry.name, entry.data)
            if entries == 0:
                raise BundleInvalid(str(path), "empty", "no .json entry: not an OSV bundle")
            self._flush(load, claim)
            removed = [row_id for osv_id, (_, row_id) in old.items() if osv_id not in load.kept]
            with read_tx(self.engine) as conn:
                load.packages |= self.store.packages_of(conn, load.old_touched + removed)
            url = path.resolve().as_uri()
            with write_tx(self.engine) as conn:
                self.store.switch(
                    conn, claim, self.clock(), records=len(load.kept), bundle_sha256=digest, url=url
                )
                if self.on_switch is not None:  # re-matching, committed with the switch
                    self.on_switch(conn, name, frozenset(load.packages))
        except BaseException as e:
            self._abandon(claim, e)
            raise
        if claim.current is not None:
            try:  # only the old generation: another import may have claimed the next one
                self._drop(claim.source_id, claim.current)
            except SQLAlchemyError as e:  # the import stands; the next one removes them
                load.warnings.append(f"the old records stay until the next import: {e}")
                load.warning_count += 1
        return ImportReport(
            source=name,
            generation=claim.generation,
            bundle_sha256=digest,
            records=len(load.kept),
            added=load.added,
            changed=load.changed,
            unchanged=load.unchanged,
            removed=len(removed),
            withdrawn=load.withdrawn,
            skipped_entries=tally.skipped,
            warnings=tuple(load.warnings),
            warning_count=load.warning_count,
            changed_packages=frozenset(load.packages),
            seconds=time.monotonic() - started,
        )

    # --- the record pass ----------------------------------------------------------------------
    def _add(self, load: _Load, claim: Claim, bundle: str, entry: str, data: bytes) -> None:
        try:
            record = parse_record(data, self.record_limits)
        except RecordInvalid as e:
            raise BundleRecordInvalid(bundle, entry, e.record_id, e.field, e.reason) from None
        if record.withdrawn is not None:
            load.withdrawn += 1
            return
        if record.id in load.kept:
            raise BundleRecordInvalid(bundle, entry, record.id, "id", "a second record of this id")
        load.kept.add(record.id)
        packages = self._packages(record, bundle, entry)
        self._warn(load, record)
        digest = hashlib.sha256(data).hexdigest()
        prior = load.old.get(record.id)
        if prior is None:
            load.added += 1
            load.packages |= packages
        elif prior[0] != digest:
            load.changed += 1
            load.packages |= packages
            load.old_touched.append(prior[1])
        else:
            load.unchanged += 1
        label = record.severity_label
        packed = zlib.compress(data, 6)
        load.batch.append(
            NewRecord(
                osv_id=record.id,
                modified=record.modified,
                sha256=digest,
                severity=label[:SEVERITY_CHARS] if label else None,
                aliases=record.aliases,
                data=packed,
                packages=packages,
            )
        )
        load.batch_bytes += len(packed)
        if len(load.batch) >= self.batch_records or load.batch_bytes >= self.batch_bytes:
            self._flush(load, claim)

    def _packages(self, record: Record, bundle: str, entry: str) -> frozenset[Package]:
        found = set()
        for i, affected in enumerate(record.affected):
            if affected.package is None:
                continue
            if len(affected.package.ecosystem) > ECOSYSTEM_CHARS:
                raise BundleRecordInvalid(
                    bundle,
                    entry,
                    record.id,
                    f"affected[{i}].package.ecosystem",
                    f"over {ECOSYSTEM_CHARS} characters",
                )
            found.add(package_key(affected.package.ecosystem, affected.package.name))
        return frozenset(found)

    def _warn(self, load: _Load, record: Record) -> None:
        """Ranges matching will leave out (a version its ecosystem's order cannot read, an
        ecosystem without an order), said once per record at import."""
        for i, affected in enumerate(record.affected):
            if affected.package is None or not affected.ranges:
                continue
            matcher = AffectedMatcher(replace(affected, versions=()))  # the ranges alone
            matcher.compile()
            for warning in matcher.warnings:
                load.warning_count += 1
                if len(load.warnings) < self.warnings_kept:
                    load.warnings.append(f"{record.id}: affected[{i}].{warning}")

    def _flush(self, load: _Load, claim: Claim) -> None:
        if not load.batch:
            return
        with write_tx(self.engine) as conn:
            self.store.renew(conn, claim, self.clock())
            self.store.insert_records(conn, claim, load.batch)
        load.batch = []
        load.batch_bytes = 0

    # --- cleaning up --------------------------------------------------------------------------
    def _drop_generations(self, claim: Claim, keep: set[int | None]) -> None:
        """Delete the source's rows of every generation but `keep`, a batch per transaction."""
        with read_tx(self.engine) as conn:
            doomed = self.store.generations(conn, claim.source_id) - keep
        for generation in sorted(doomed):
            self._drop(claim.source_id, generation)

    def _drop(self, source_id: int, generation: int) -> None:
        while True:
            with write_tx(self.engine) as conn:
                deleted = self.store.delete_batch(conn, source_id, generation, self.delete_batch)
            if deleted < self.delete_batch:
                return

    def _abandon(self, claim: Claim, error: BaseException) -> None:
        """The import failed: its rows go, the source says why. Best effort: what is left
        behind is removed by the source's next import."""
        message = (
            error.message if isinstance(error, DomainError) else f"{type(error).__name__}: {error}"
        )
        try:
            self._drop(claim.source_id, claim.generation)
            with write_tx(self.engine) as conn:
                self.store.fail(conn, claim, self.clock(), message)
        except Exception:
            log.exception("cleaning up the failed import of source %s", claim.source)
