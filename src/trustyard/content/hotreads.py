"""Fast answers for the hottest read requests: manifest by tag or digest, blob size.

Two implementations of one Protocol:
- `StoreHotReads` asks the database every time (any dialect, e.g. PostgreSQL).
- `SqliteHotReads` keeps answers in process memory and checks SQLite's `PRAGMA data_version`
  (which changes whenever any other connection commits) before each use, so a tag moved by
  another worker or process is never served stale. It runs the same statements as ContentStore,
  compiled once to SQL for the standard-library driver, on one long-lived connection.
"""

from __future__ import annotations

import bisect
import sqlite3
from typing import Any, Protocol

from sqlalchemy import Engine
from sqlalchemy.dialects import sqlite as sqlite_dialect
from sqlalchemy.sql import Select

from trustyard.content import queries
from trustyard.content.interfaces import ManifestRecord, Page
from trustyard.content.stores import ContentStore
from trustyard.db.engine import read_tx


class HotReads(Protocol):
    def manifest(
        self, repository: str, reference: str, by_digest: bool
    ) -> ManifestRecord | None: ...

    def blob_size(self, repository: str, digest: str) -> int | None: ...

    def tag_page(self, repository: str, limit: int | None, last: str | None) -> Page | None:
        """Tags in lexical order after `last`, at most `limit`; None: no such repository."""
        ...


class StoreHotReads:
    def __init__(self, engine: Engine, store: ContentStore) -> None:
        self.engine = engine
        self.store = store

    def manifest(self, repository: str, reference: str, by_digest: bool) -> ManifestRecord | None:
        with read_tx(self.engine) as conn:
            if by_digest:
                return self.store.get_manifest(conn, repository, reference)
            return self.store.resolve_tag(conn, repository, reference)

    def blob_size(self, repository: str, digest: str) -> int | None:
        with read_tx(self.engine) as conn:
            return self.store.repository_blob_size(conn, repository, digest)

    def tag_page(self, repository: str, limit: int | None, last: str | None) -> Page | None:
        with read_tx(self.engine) as conn:
            repository_id = self.store.repository_id(conn, repository)
            if repository_id is None:
                return None
            return self.store.list_tags(conn, repository_id, limit, last)


def _compile(statement: Select[Any]) -> tuple[str, list[str]]:
    compiled = statement.compile(dialect=sqlite_dialect.dialect())
    return str(compiled), list(compiled.positiontup or [])


_MISSING = object()


class SqliteHotReads:
    """Per-process cache over a dedicated read-only SQLite connection (event-loop thread only)."""

    def __init__(self, path: str, max_entries: int = 50_000, max_bytes: int = 64 << 20) -> None:
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA busy_timeout=15000")
        self._db.execute("PRAGMA query_only=ON")
        self._sql = {
            "digest": _compile(queries.MANIFEST_BY_DIGEST),
            "tag": _compile(queries.MANIFEST_BY_TAG),
            "blob": _compile(queries.REPOSITORY_BLOB_SIZE),
            "repository": _compile(queries.REPOSITORY_ID),
            "tags": _compile(queries.TAG_NAMES),
        }
        self._version: int | None = None
        self._cache: dict[tuple[str, str, str], Any] = {}
        self._bytes = 0
        self._max_entries = max_entries
        self._max_bytes = max_bytes

    def _query(self, kind: str, repository: str, ref: str = "") -> Any:
        version = self._db.execute("PRAGMA data_version").fetchone()[0]
        if version != self._version:
            self._cache.clear()
            self._bytes = 0
            self._version = version
        key = (kind, repository, ref)
        found = self._cache.get(key, _MISSING)
        if found is not _MISSING:
            return found
        sql, order = self._sql[kind]
        values = {"repository": repository, "ref": ref}
        cursor = self._db.execute(sql, [values[name] for name in order])
        row: Any = sorted(r[0] for r in cursor) if kind == "tags" else cursor.fetchone()
        if len(self._cache) >= self._max_entries or self._bytes >= self._max_bytes:
            self._cache.clear()
            self._bytes = 0
        self._cache[key] = row
        if row is not None and kind in ("digest", "tag"):
            self._bytes += len(row[2])
        elif kind == "tags":
            self._bytes += sum(len(name) + 56 for name in row)
        return row

    def manifest(self, repository: str, reference: str, by_digest: bool) -> ManifestRecord | None:
        row = self._query("digest" if by_digest else "tag", repository, reference)
        return ManifestRecord(*row) if row is not None else None

    def blob_size(self, repository: str, digest: str) -> int | None:
        row = self._query("blob", repository, digest)
        return int(row[0]) if row is not None else None

    def tag_page(self, repository: str, limit: int | None, last: str | None) -> Page | None:
        if self._query("repository", repository) is None:
            return None
        names: list[str] = self._query("tags", repository)
        start = bisect.bisect_right(names, last) if last else 0
        end = len(names) if limit is None else min(start + limit, len(names))
        return Page(names[start:end], end < len(names))
