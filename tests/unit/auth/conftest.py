"""A migrated metadata database on SQLite and on PostgreSQL; each test runs in a transaction
that is rolled back, the way the edge would run it but without committing."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime

import pytest
from argon2 import PasswordHasher
from sqlalchemy import Connection, Engine, insert

from tests.support.postgres import PostgresCluster
from trustyard.db import migrate
from trustyard.db.engine import make_engine
from trustyard.db.tables import repositories

# Cheap argon2id parameters: the tests check behaviour, not the cost.
CHEAP_HASHER = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def db_engine(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Engine]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('auth') / 'meta.db'}"
    else:
        cluster: PostgresCluster = request.getfixturevalue("pg_cluster")
        url = cluster.create_database(f"a_{uuid.uuid4().hex[:12]}")
    engine = make_engine(url)
    migrate.upgrade(engine)
    try:
        yield engine
    finally:
        engine.dispose()


@pytest.fixture
def conn(db_engine: Engine) -> Iterator[Connection]:
    with db_engine.connect() as connection:
        transaction = connection.begin()
        try:
            yield connection
        finally:
            transaction.rollback()


MakeRepository = Callable[..., int]


@pytest.fixture
def make_repository(conn: Connection) -> MakeRepository:
    """Insert a repository row (as a push would) with the given visibility."""

    def make(name: str, visibility: str = "private") -> int:
        result = conn.execute(
            insert(repositories).values(
                name=name, created_at=datetime.now(UTC), visibility=visibility
            )
        )
        key = result.inserted_primary_key
        assert key is not None
        return int(key[0])

    return make
