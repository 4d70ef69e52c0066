"""db/sql.py: byte-wise name order and keyset pages, on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack

import pytest
from sqlalchemy import Column, Engine, Integer, MetaData, String, Table, insert, select

from tests.support.databases import LazyEngines
from trustyard.db.engine import read_tx, write_tx
from trustyard.db.sql import bytewise, keyset

# Byte order differs from any locale's order: capitals before small letters, "_" between them,
# a non-ASCII letter after all of them.
NAMES = ["b", "B", "a/z", "a_b", "A", "ä", "a-b", "a", "Z", "_x"]
ROWS = Table(
    "sql_helpers",
    MetaData(),
    Column("id", Integer, primary_key=True),
    Column("name", String(64), nullable=False),
)


@pytest.fixture(scope="module")
def engines(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LazyEngines]:
    with ExitStack() as stack:
        yield LazyEngines(request, tmp_path_factory, stack)


# On PostgreSQL the column sorts by a locale (ICU's root collation: "a" before "B"), as a
# database created with a locale would; the test cluster itself is created with --locale=C.
LOCALE_ROWS = Table(
    "sql_helpers",
    MetaData(),
    Column("id", Integer, primary_key=True),
    Column("name", String(64, collation="und-x-icu"), nullable=False),
)


@pytest.fixture(params=["sqlite", "postgres"])
def engine(request: pytest.FixtureRequest, engines: LazyEngines) -> Engine:
    engine = engines[request.param]
    table = LOCALE_ROWS if request.param == "postgres" else ROWS
    table.drop(engine, checkfirst=True)
    table.create(engine)
    with write_tx(engine) as conn:
        conn.execute(insert(ROWS), [{"id": i + 1, "name": name} for i, name in enumerate(NAMES)])
    return engine


def test_names_page_in_byte_order_whatever_the_locale(engine: Engine) -> None:
    found: list[str] = []
    after: str | None = None
    with read_tx(engine) as conn:
        while True:
            name = bytewise(conn, ROWS.c.name)
            page = list(conn.scalars(keyset(select(ROWS.c.name), name, after, 3)))
            if not page:
                break
            assert len(page) <= 3
            found += page
            after = page[-1]
    assert found == sorted(NAMES, key=lambda each: each.encode())


def test_without_a_key_or_limit_every_row_comes_in_order(engine: Engine) -> None:
    with read_tx(engine) as conn:
        ids = list(conn.scalars(keyset(select(ROWS.c.id), ROWS.c.id, None)))
    assert ids == list(range(1, len(NAMES) + 1))


def test_a_descending_page_starts_below_the_key(engine: Engine) -> None:
    with read_tx(engine) as conn:
        newest = list(conn.scalars(keyset(select(ROWS.c.id), ROWS.c.id, None, 3, descending=True)))
        older = list(conn.scalars(keyset(select(ROWS.c.id), ROWS.c.id, 8, 3, descending=True)))
    assert (newest, older) == ([10, 9, 8], [7, 6, 5])


def test_a_page_keeps_the_query_s_own_conditions(engine: Engine) -> None:
    query = select(ROWS.c.name).where(ROWS.c.name.like("a%"))
    with read_tx(engine) as conn:
        names = list(conn.scalars(keyset(query, bytewise(conn, ROWS.c.name), "a-b", 2)))
    assert names == ["a/z", "a_b"]
