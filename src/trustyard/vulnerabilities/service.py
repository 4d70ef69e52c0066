"""Reading the vulnerability database: the records of a set of packages as an `Index` (one
query, then matching in memory), and the database's status. Functions take the caller's
connection; nothing here commits.

Parsed records and their compiled matchers are kept in a bounded LRU cache keyed by the
sha256 of the record's JSON: a record's bytes never change under its digest, so the cache is
never stale, and matching a BOM again (after an update, for another image) costs the query
and the evaluation, not the parsing. Matchers are compiled before they enter the cache, so
threads share them only once they are complete.
"""

from __future__ import annotations

import logging
import threading
import zlib
from collections import OrderedDict, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Connection

from trustyard.jobs.queue import SqlJobQueue
from trustyard.vulnerabilities.importer import Importer
from trustyard.vulnerabilities.index import Index
from trustyard.vulnerabilities.interfaces import DatabaseStatus, Package
from trustyard.vulnerabilities.matching import AffectedMatcher, package_key
from trustyard.vulnerabilities.osv import (
    DEFAULT_LIMITS,
    Limits,
    Record,
    RecordInvalid,
    parse_record,
)
from trustyard.vulnerabilities.stores import StoredRecord, VulnStore

log = logging.getLogger(__name__)

Entries = tuple[tuple[Package, AffectedMatcher], ...]
LOOKUP_PACKAGES = 5000  # packages per query (SQLite's bound parameters stay far below its limit)


class PackageIndex(Index):
    """An `Index` of the records that name some packages, holding only those packages'
    entries (asking it for another package answers nothing)."""

    def add_entries(
        self, record: Record, entries: Iterable[tuple[Package, AffectedMatcher]], *, new: bool
    ) -> None:
        """Add matchers built already; `new`: the record was not added before (counted)."""
        self.records += new
        for key, matcher in entries:
            self._by_package[key].append((record, matcher))


class RecordCache:
    """Parsed records with their compiled matchers, by the sha256 of their JSON (LRU)."""

    def __init__(self, size: int = 4096, limits: Limits = DEFAULT_LIMITS) -> None:
        self.size = size
        self.limits = limits
        self._items: OrderedDict[str, tuple[Record, Entries]] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def get(self, stored: StoredRecord) -> tuple[Record, Entries] | None:
        with self._lock:
            found = self._items.get(stored.sha256)
            if found is not None:
                self._items.move_to_end(stored.sha256)
                self.hits += 1
                return found
            self.misses += 1
        try:
            record = parse_record(zlib.decompress(stored.data), self.limits)
        except (RecordInvalid, zlib.error) as e:  # imported under other limits, or damaged
            log.warning("a stored OSV record (sha256 %s) is left out: %s", stored.sha256, e)
            return None
        entries = []
        for affected in record.affected:
            if affected.package is not None:
                matcher = AffectedMatcher(affected)
                matcher.compile()
                entries.append(
                    (package_key(affected.package.ecosystem, affected.package.name), matcher)
                )
        parsed = (record, tuple(entries))
        with self._lock:
            self._items[stored.sha256] = parsed
            while len(self._items) > self.size:
                self._items.popitem(last=False)
        return parsed


class VulnerabilityService:
    def __init__(self, store: VulnStore | None = None, cache: RecordCache | None = None) -> None:
        self.store = store or VulnStore()
        self.cache = cache if cache is not None else RecordCache()

    def index_for(self, conn: Connection, packages: Iterable[tuple[str, str]]) -> PackageIndex:
        """The current records of `packages` ((ecosystem, name) as a BOM names them; names
        are normalised here), ready for `findings(ecosystem, name, version)`: one query per
        `LOOKUP_PACKAGES` packages."""
        wanted = sorted({package_key(ecosystem, name) for ecosystem, name in packages})
        index = PackageIndex()
        seen: set[str] = set()
        for start in range(0, len(wanted), LOOKUP_PACKAGES):
            chunk = wanted[start : start + LOOKUP_PACKAGES]
            by_ecosystem: defaultdict[str, list[str]] = defaultdict(list)
            for ecosystem, name in chunk:
                by_ecosystem[ecosystem].append(name)
            keys = set(chunk)
            for stored in self.store.current_records(conn, by_ecosystem):
                parsed = self.cache.get(stored)
                if parsed is None:
                    continue
                record, entries = parsed
                # A record comes back once per chunk naming its packages (and once per
                # source holding it): each time with the entries of that chunk.
                mine = [(key, m) for key, m in entries if key in keys]
                index.add_entries(record, mine, new=record.id not in seen)
                seen.add(record.id)
        return index

    def status(self, conn: Connection) -> DatabaseStatus:
        return self.store.status(conn)

    def version(self, conn: Connection) -> int:
        return self.store.version(conn)


@dataclass(frozen=True)
class VulnDbTools:
    """What /api/v1/vulndb works with: the importer of uploads (bounded by
    `max_upload_bytes`, written under `uploads`), the queue updates are asked through, and
    the read service."""

    importer: Importer
    queue: SqlJobQueue
    service: VulnerabilityService
    uploads: Path
    max_upload_bytes: int
