"""The one clock and the one reading of stored times.

Every stored time is UTC. SQLite hands datetimes back naive, PostgreSQL aware (in the session's
zone): `utc` makes either an aware UTC datetime.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


def utc(value: datetime) -> datetime:
    """A stored time as an aware UTC datetime (naive ones are UTC already)."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def utc_or_none(value: datetime | None) -> datetime | None:
    return None if value is None else utc(value)
