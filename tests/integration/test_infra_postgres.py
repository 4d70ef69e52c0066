"""The throw-away PostgreSQL cluster used by integration tests really works."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import sqlalchemy as sa

from tests.support.postgres import PostgresCluster, find_pg_bin


@pytest.fixture
def cluster() -> Iterator[PostgresCluster]:
    with PostgresCluster() as pg:
        yield pg


def _write_and_read(url: str, value: str) -> list[str]:
    engine = sa.create_engine(url)
    try:
        with engine.begin() as conn:
            conn.execute(sa.text("CREATE TABLE notes (id serial PRIMARY KEY, body text)"))
            conn.execute(sa.text("INSERT INTO notes (body) VALUES (:body)"), {"body": value})
        with engine.connect() as conn:
            return list(conn.execute(sa.text("SELECT body FROM notes ORDER BY id")).scalars())
    finally:
        engine.dispose()


def _tables(url: str) -> set[str]:
    engine = sa.create_engine(url)
    try:
        return set(sa.inspect(engine).get_table_names())
    finally:
        engine.dispose()


@pytest.mark.integration
def test_cluster_databases_are_isolated(cluster: PostgresCluster) -> None:
    assert find_pg_bin() is not None
    url_a = cluster.create_database("infra_a")
    url_b = cluster.create_database("infra_b")
    assert url_a == f"postgresql+psycopg://postgres@127.0.0.1:{cluster.port}/infra_a"

    assert _write_and_read(url_a, "only in a") == ["only in a"]
    assert _write_and_read(url_b, "only in b") == ["only in b"]

    engine_a = sa.create_engine(url_a)
    try:
        with engine_a.begin() as conn:
            conn.execute(sa.text("CREATE TABLE a_private (id int)"))
    finally:
        engine_a.dispose()
    assert _tables(url_a) == {"notes", "a_private"}
    assert _tables(url_b) == {"notes"}
