"""A migrated database on SQLite and on PostgreSQL, emptied of events and jobs per test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import Engine

from tests.support.databases import empty, migrated_engine
from trustyard.db.tables import (
    event_outbox,
    job_attempts,
    jobs,
    webhook_attempts,
    webhook_deliveries,
    webhook_subscriptions,
)

TABLES = (
    webhook_attempts,
    webhook_deliveries,
    webhook_subscriptions,
    event_outbox,
    job_attempts,
    jobs,
)


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def db_engine(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Engine]:
    with migrated_engine(request, tmp_path_factory, request.param) as engine:
        yield engine


@pytest.fixture
def engine(db_engine: Engine) -> Engine:
    return empty(db_engine, TABLES)
