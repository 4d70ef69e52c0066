"""A migrated metadata database on SQLite and on PostgreSQL, emptied of jobs before each test,
and a clock the tests move by hand (leases, backoff and schedules without waiting)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine, delete

from tests.support.postgres import PostgresCluster
from trustyard.db import migrate
from trustyard.db.engine import make_engine, write_tx
from trustyard.db.tables import job_attempts, job_schedules, jobs
from trustyard.jobs.testkinds import ensure_table, test_job_runs

T0 = datetime(2030, 1, 1, 12, 0, 0, tzinfo=UTC)


class FakeClock:
    def __init__(self, start: datetime = T0) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> datetime:
        self.now += timedelta(seconds=seconds)
        return self.now


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def db_engine(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Engine]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('jobs') / 'meta.db'}"
    else:
        cluster: PostgresCluster = request.getfixturevalue("pg_cluster")
        url = cluster.create_database(f"j_{uuid.uuid4().hex[:12]}")
    engine = make_engine(url, pool_size=10)
    migrate.upgrade(engine)
    ensure_table(engine)
    try:
        yield engine
    finally:
        engine.dispose()


@pytest.fixture
def engine(db_engine: Engine) -> Engine:
    with write_tx(db_engine) as conn:
        for table in (job_attempts, jobs, job_schedules, test_job_runs):
            conn.execute(delete(table))
    return db_engine


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()
