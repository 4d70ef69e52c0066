"""The webhooks' unit tests use the events' database fixtures: a migrated database on SQLite
and on PostgreSQL, emptied of events, deliveries, subscriptions and jobs per test."""

from __future__ import annotations

from tests.unit.events.conftest import db_engine, engine

__all__ = ["db_engine", "engine"]
