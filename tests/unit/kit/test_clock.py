"""kit/clock.py: the one clock and the one reading of stored times."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from trustyard.kit.clock import utc, utc_now, utc_or_none


def test_the_clock_is_aware_utc() -> None:
    assert utc_now().tzinfo is UTC


def test_a_naive_stored_time_is_read_as_utc() -> None:
    # SQLite hands times back without a zone; every stored time was written in UTC.
    assert utc(datetime(2026, 1, 2, 3, 4, 5)) == datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


def test_an_aware_time_keeps_its_instant_and_becomes_utc() -> None:
    # PostgreSQL hands times back in the session's zone.
    local = datetime(2026, 1, 2, 5, 4, 5, tzinfo=timezone(timedelta(hours=2)))
    read = utc(local)
    assert read == local
    assert (read.tzinfo, read.hour) == (UTC, 3)


def test_a_missing_time_stays_missing() -> None:
    assert utc_or_none(None) is None
    assert utc_or_none(datetime(2026, 1, 2)) == datetime(2026, 1, 2, tzinfo=UTC)
