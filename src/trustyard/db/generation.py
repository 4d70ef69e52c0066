"""The access generation: a counter the database moves (by triggers, migration 0004) whenever
anything an access decision depends on changes. Reading it is one tiny query, so a worker can
keep its decisions until it moves instead of re-reading accounts and grants per request.

The credential generation (migration 0008) works the same way for remembered logins: it moves
when a token is revoked or deleted, a password changes, an account is deactivated or deleted.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable

from sqlalchemy import Engine, Table, select

from trustyard.db.engine import is_sqlite
from trustyard.db.tables import access_generation, credential_generation


def access_generation_reader(engine: Engine) -> Callable[[], int]:
    """A function returning the current access generation."""
    return _reader(engine, access_generation)


def credential_generation_reader(engine: Engine) -> Callable[[], int]:
    """A function returning the current credential generation."""
    return _reader(engine, credential_generation)


def _reader(engine: Engine, table: Table) -> Callable[[], int]:
    """A function returning the counter of `table` (row id 1). On SQLite it uses its own
    read-only connection (no pool, no SQLAlchemy: microseconds); elsewhere one pooled query."""
    if is_sqlite(engine) and engine.url.database:
        db = sqlite3.connect(engine.url.database, isolation_level=None, check_same_thread=False)
        db.execute("PRAGMA busy_timeout=15000")
        db.execute("PRAGMA query_only=ON")
        sql = f"SELECT value FROM {table.name} WHERE id = 1"

        def read_sqlite() -> int:
            row = db.execute(sql).fetchone()
            return int(row[0]) if row else 0

        return read_sqlite

    query = select(table.c.value).where(table.c.id == 1)

    def read() -> int:
        with engine.connect() as conn:
            return int(conn.scalar(query) or 0)

    return read
