"""SQL helpers every store shares: byte-wise name order and keyset pages."""

from __future__ import annotations

from typing import Any, TypeVar

from sqlalchemy import Connection, Select
from sqlalchemy.sql.elements import ColumnElement

K = TypeVar("K")
S = TypeVar("S", bound=Select[Any])


def bytewise(conn: Connection, column: ColumnElement[str]) -> ColumnElement[str]:
    """Compare and sort names byte by byte (OCI lexical order) whatever the database's locale:
    SQLite compares bytes already, PostgreSQL does under the "C" collation."""
    return column.collate("C") if conn.dialect.name == "postgresql" else column


def keyset(
    query: S,
    key: ColumnElement[K],
    after: K | None,
    limit: int | None = None,
    *,
    descending: bool = False,
) -> S:
    """One page of `query` by `key`: ordered by it, past `after` (greater, or smaller when
    `descending`) when given, at most `limit` rows when given."""
    query = query.order_by(key.desc() if descending else key)
    if after is not None:
        query = query.where(key < after if descending else key > after)
    return query if limit is None else query.limit(limit)
