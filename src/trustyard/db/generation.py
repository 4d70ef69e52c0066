"""The access generation: a counter the database moves (by triggers, migration 0004) whenever
anything an access decision depends on changes. Reading it is one tiny query, so a worker can
keep its decisions until it moves instead of re-reading accounts and grants per request.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable

from sqlalchemy import Engine, select

from trustyard.db.engine import is_sqlite
from trustyard.db.tables import access_generation

_QUERY = select(access_generation.c.value).where(access_generation.c.id == 1)
_SQL = "SELECT value FROM access_generation WHERE id = 1"


def access_generation_reader(engine: Engine) -> Callable[[], int]:
    """A function returning the current access generation. On SQLite it uses its own
    read-only connection (no pool, no SQLAlchemy: microseconds); elsewhere one pooled query."""
    if is_sqlite(engine) and engine.url.database:
        db = sqlite3.connect(engine.url.database, isolation_level=None, check_same_thread=False)
        db.execute("PRAGMA busy_timeout=15000")
        db.execute("PRAGMA query_only=ON")

        def read_sqlite() -> int:
            row = db.execute(_SQL).fetchone()
            return int(row[0]) if row else 0

        return read_sqlite

    def read() -> int:
        with engine.connect() as conn:
            return int(conn.scalar(_QUERY) or 0)

    return read
