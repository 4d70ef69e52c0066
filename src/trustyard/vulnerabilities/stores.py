"""All SQL of the vulnerability database: sources and their generations, the records of each
generation with the packages they name, and the lookup of the current records of a set of
packages. Functions take the caller's connection; none commits.

Generations: every import takes the next number of the one-row `vuln_database` counter, so a
generation names one source's records alone; a source's `generation` is the one readers see,
its `pending_generation` the one an import is writing. Readers join `vuln_affected` on the
sources' current generations in one statement, which sees one snapshot: the old generation
or the new one, never a mix.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from itertools import islice
from typing import Any

from sqlalchemy import Connection, and_, delete, func, insert, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite

from trustyard.db.tables import vuln_affected, vuln_database, vuln_records, vuln_sources
from trustyard.kit.clock import utc_or_none
from trustyard.vulnerabilities.interfaces import (
    DatabaseStatus,
    ImportConflict,
    Package,
    SourceStatus,
)

ECOSYSTEM_CHARS = 128  # vuln_affected.ecosystem
NAME_CHARS = 1024  # vuln_affected.name
SOURCE_CHARS = 128  # vuln_sources.name
SEVERITY_CHARS = 32  # vuln_records.severity
IN_BATCH = 500  # ids per IN (...) list


@dataclass(frozen=True, slots=True)
class NewRecord:
    osv_id: str
    modified: datetime
    sha256: str  # of the record's JSON as imported
    severity: str | None
    aliases: tuple[str, ...]
    data: bytes  # the JSON, zlib-compressed
    packages: frozenset[Package]


@dataclass(frozen=True, slots=True)
class Claim:
    source_id: int
    source: str
    generation: int  # the one this import writes
    current: int | None  # the one readers see now
    stale: int | None  # a pending generation taken over from an import that stopped


@dataclass(frozen=True, slots=True)
class Origin:
    url: str | None
    etag: str | None
    last_modified: str | None


@dataclass(frozen=True, slots=True)
class StoredRecord:
    sha256: str
    data: bytes


_INSERT_RECORDS = insert(vuln_records).returning(vuln_records.c.id, sort_by_parameter_order=True)
_INSERT_AFFECTED = insert(vuln_affected)
_SOURCE_BY_NAME = select(
    vuln_sources.c.id,
    vuln_sources.c.generation,
    vuln_sources.c.pending_generation,
    vuln_sources.c.pending_since,
)


def _batches(items: Iterable[int], size: int = IN_BATCH) -> Iterable[list[int]]:
    it = iter(items)
    while batch := list(islice(it, size)):
        yield batch


class VulnStore:
    # --- an import's claim, switch and end ------------------------------------------------
    def claim(self, conn: Connection, name: str, now: datetime, stale_before: datetime) -> Claim:
        """Take the next generation for source `name` (made if new) and mark it pending;
        `ImportConflict` while another import of the source renewed its claim after
        `stale_before`. Call in a write transaction."""
        dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
        conn.execute(
            dialect.insert(vuln_sources)
            .values(name=name, created_at=now, records=0)
            .on_conflict_do_nothing(index_elements=["name"])
        )
        row = conn.execute(
            _SOURCE_BY_NAME.where(vuln_sources.c.name == name).with_for_update()
        ).one()
        stale = row.pending_generation
        since = utc_or_none(row.pending_since)
        if stale is not None and since is not None and since >= stale_before:
            raise ImportConflict(
                f"an import of vulnerability source {name!r} is running (its last batch at "
                f"{since.isoformat(timespec='seconds')}); try again when it ends"
            )
        generation = conn.scalar(
            update(vuln_database)
            .where(vuln_database.c.id == 1)
            .values(generation=vuln_database.c.generation + 1)
            .returning(vuln_database.c.generation)
        )
        assert generation is not None, "vuln_database has its row from migration 0009"
        conn.execute(
            update(vuln_sources)
            .where(vuln_sources.c.id == row.id)
            .values(pending_generation=generation, pending_since=now)
        )
        return Claim(row.id, name, int(generation), row.generation, stale)

    def renew(self, conn: Connection, claim: Claim, now: datetime) -> None:
        """Keep the claim alive (each batch does); `ImportConflict` if it was taken over."""
        renewed = conn.execute(
            update(vuln_sources)
            .where(
                vuln_sources.c.id == claim.source_id,
                vuln_sources.c.pending_generation == claim.generation,
            )
            .values(pending_since=now)
        ).rowcount
        if renewed != 1:
            raise ImportConflict(
                f"the import of vulnerability source {claim.source!r} lost its claim: another "
                "import took it over after this one stalled"
            )

    def switch(
        self,
        conn: Connection,
        claim: Claim,
        now: datetime,
        *,
        records: int,
        bundle_sha256: str | None,
        url: str | None,
    ) -> None:
        """Make the claim's generation the one readers see, and move the database version:
        one small transaction."""
        self.renew(conn, claim, now)
        conn.execute(
            update(vuln_sources)
            .where(vuln_sources.c.id == claim.source_id)
            .values(
                generation=claim.generation,
                pending_generation=None,
                pending_since=None,
                records=records,
                bundle_sha256=bundle_sha256,
                url=url,
                # Validators describe a download: whoever imported this bundle sets them
                # again (`record_origin`), so an offline import is never taken for a 304.
                etag=None,
                last_modified=None,
                updated_at=now,
            )
        )
        conn.execute(
            update(vuln_database)
            .where(vuln_database.c.id == 1)
            .values(version=vuln_database.c.version + 1, updated_at=now)
        )

    def fail(self, conn: Connection, claim: Claim, now: datetime, error: str) -> None:
        """Record why the import failed; its claim (if it still holds it) ends."""
        conn.execute(
            update(vuln_sources)
            .where(vuln_sources.c.id == claim.source_id)
            .values(failed_at=now, error=error[:4000])
        )
        conn.execute(
            update(vuln_sources)
            .where(
                vuln_sources.c.id == claim.source_id,
                vuln_sources.c.pending_generation == claim.generation,
            )
            .values(pending_generation=None, pending_since=None)
        )

    # --- where an online source comes from ----------------------------------------------------
    def origin(self, conn: Connection, name: str) -> Origin | None:
        """The URL and HTTP validators of the source's last successful download, if any."""
        row = conn.execute(
            select(vuln_sources.c.url, vuln_sources.c.etag, vuln_sources.c.last_modified).where(
                vuln_sources.c.name == name
            )
        ).one_or_none()
        return None if row is None else Origin(row.url, row.etag, row.last_modified)

    def record_origin(
        self, conn: Connection, name: str, url: str, etag: str | None, last_modified: str | None
    ) -> None:
        """After a downloaded bundle was imported: its URL and validators (what the next
        update asks with)."""
        conn.execute(
            update(vuln_sources)
            .where(vuln_sources.c.name == name)
            .values(
                url=url,
                etag=etag and etag[:512],
                last_modified=last_modified and last_modified[:128],
            )
        )

    def record_failure(
        self, conn: Connection, name: str, url: str | None, now: datetime, error: str
    ) -> None:
        """A failure before any import (a download), on the source (made if new); its
        records and validators stay."""
        dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
        conn.execute(
            dialect.insert(vuln_sources)
            .values(name=name, url=url, created_at=now, records=0)
            .on_conflict_do_nothing(index_elements=["name"])
        )
        conn.execute(
            update(vuln_sources)
            .where(vuln_sources.c.name == name)
            .values(failed_at=now, error=error[:4000])
        )

    def reword_error(self, conn: Connection, name: str, old: str, new: str) -> None:
        """Replace `old` by `new` in the source's last error (an upload's temporary path by
        what the admin sent: the status is read by every account)."""
        conn.execute(
            update(vuln_sources)
            .where(vuln_sources.c.name == name, vuln_sources.c.error.is_not(None))
            .values(error=func.replace(vuln_sources.c.error, old, new))
        )

    # --- the rows of a generation -------------------------------------------------------------
    def insert_records(self, conn: Connection, claim: Claim, records: Sequence[NewRecord]) -> None:
        if not records:
            return
        ids = conn.execute(
            _INSERT_RECORDS,
            [
                {
                    "source_id": claim.source_id,
                    "generation": claim.generation,
                    "osv_id": r.osv_id,
                    "modified": r.modified,
                    "sha256": r.sha256,
                    "severity": r.severity,
                    "aliases": json.dumps(list(r.aliases), separators=(",", ":")),
                    "data": r.data,
                }
                for r in records
            ],
        ).scalars()
        affected = [
            {"record_id": record_id, "ecosystem": eco, "name": name, "generation": claim.generation}
            for record_id, record in zip(ids, records, strict=True)
            for eco, name in sorted(record.packages)
        ]
        if affected:
            conn.execute(_INSERT_AFFECTED, affected)

    def fingerprints(
        self, conn: Connection, source_id: int, generation: int
    ) -> dict[str, tuple[str, int]]:
        """OSV id -> (sha256, row id) of every record of a generation."""
        query = select(vuln_records.c.osv_id, vuln_records.c.sha256, vuln_records.c.id).where(
            vuln_records.c.source_id == source_id, vuln_records.c.generation == generation
        )
        return {row.osv_id: (row.sha256, row.id) for row in conn.execute(query)}

    def packages_of(self, conn: Connection, record_ids: Iterable[int]) -> set[Package]:
        """The (ecosystem, name) pairs the records name."""
        found: set[Package] = set()
        for batch in _batches(record_ids):
            query = select(vuln_affected.c.ecosystem, vuln_affected.c.name).where(
                vuln_affected.c.record_id.in_(batch)
            )
            found.update((row.ecosystem, row.name) for row in conn.execute(query))
        return found

    def generations(self, conn: Connection, source_id: int) -> set[int]:
        """Every generation of the source that has rows."""
        query = (
            select(vuln_records.c.generation)
            .where(vuln_records.c.source_id == source_id)
            .distinct()
        )
        return set(conn.scalars(query))

    def delete_batch(self, conn: Connection, source_id: int, generation: int, limit: int) -> int:
        """Delete up to `limit` records of a generation with their package rows; how many."""
        ids = list(
            conn.scalars(
                select(vuln_records.c.id)
                .where(
                    vuln_records.c.source_id == source_id,
                    vuln_records.c.generation == generation,
                )
                .limit(limit)
            )
        )
        if ids:
            conn.execute(delete(vuln_affected).where(vuln_affected.c.record_id.in_(ids)))
            conn.execute(delete(vuln_records).where(vuln_records.c.id.in_(ids)))
        return len(ids)

    # --- reads --------------------------------------------------------------------------------
    def current_records(
        self, conn: Connection, packages: Mapping[str, Collection[str]]
    ) -> list[StoredRecord]:
        """The records of the current generations that name one of `packages` (ecosystem ->
        names in normal form): one statement."""
        if not any(packages.values()):
            return []
        wanted = or_(
            *(
                and_(vuln_affected.c.ecosystem == ecosystem, vuln_affected.c.name.in_(list(names)))
                for ecosystem, names in packages.items()
                if names
            )
        )
        current = (
            select(vuln_affected.c.record_id)
            .join(vuln_sources, vuln_sources.c.generation == vuln_affected.c.generation)
            .where(wanted)
        )
        query = select(vuln_records.c.sha256, vuln_records.c.data).where(
            vuln_records.c.id.in_(current)
        )
        return [StoredRecord(row.sha256, row.data) for row in conn.execute(query)]

    def status(self, conn: Connection) -> DatabaseStatus:
        database = conn.execute(select(vuln_database).where(vuln_database.c.id == 1)).one()
        rows = conn.execute(select(vuln_sources).order_by(vuln_sources.c.name)).all()
        return DatabaseStatus(
            version=database.version,
            updated_at=utc_or_none(database.updated_at),
            sources=tuple(_source(row) for row in rows),
        )

    def version(self, conn: Connection) -> int:
        """The database version (moves on every switch): one tiny read."""
        return int(conn.scalar(select(vuln_database.c.version).where(vuln_database.c.id == 1)) or 0)


def _source(row: Any) -> SourceStatus:
    return SourceStatus(
        name=row.name,
        url=row.url,
        generation=row.generation,
        records=row.records,
        bundle_sha256=row.bundle_sha256,
        updated_at=utc_or_none(row.updated_at),
        failed_at=utc_or_none(row.failed_at),
        error=row.error,
        importing=row.pending_generation is not None,
    )
