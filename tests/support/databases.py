"""Migrated metadata databases for unit tests that need real SQL, on SQLite and PostgreSQL."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Iterator
from contextlib import ExitStack, contextmanager

import pytest
from sqlalchemy import Engine, Table, delete

from tests.support.postgres import PostgresCluster
from trustyard.db import migrate
from trustyard.db.engine import make_engine, write_tx


@contextmanager
def migrated_engine(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, backend: str
) -> Iterator[Engine]:
    if backend == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('meta') / 'meta.db'}"
    else:
        cluster: PostgresCluster = request.getfixturevalue("pg_cluster")
        url = cluster.create_database(f"u_{uuid.uuid4().hex[:12]}")
    engine = make_engine(url, pool_size=10)
    migrate.upgrade(engine)
    try:
        yield engine
    finally:
        engine.dispose()


def empty(engine: Engine, tables: Iterable[Table]) -> Engine:
    """Delete every row of `tables` (children first)."""
    with write_tx(engine) as conn:
        for table in tables:
            conn.execute(delete(table))
    return engine


class LazyEngines:
    """Migrated databases by backend name, each made when a test first asks for it (so a run
    with `-k sqlite` starts no PostgreSQL), all disposed when `stack` closes."""

    def __init__(
        self, request: pytest.FixtureRequest, factory: pytest.TempPathFactory, stack: ExitStack
    ) -> None:
        self._request, self._factory, self._stack = request, factory, stack
        self._made: dict[str, Engine] = {}

    def __getitem__(self, backend: str) -> Engine:
        if backend not in self._made:
            self._made[backend] = self._stack.enter_context(
                migrated_engine(self._request, self._factory, backend)
            )
        return self._made[backend]
