"""policies/quantities.py: durations, sizes and RFC 3339 times as rules write them, read back
exactly (hypothesis), and a ValueError in words for anything else."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from trustyard.policies.quantities import (
    MAX_DURATION,
    format_duration,
    format_time,
    parse_duration,
    parse_size,
    parse_time,
)

_UNIT_SECONDS = {"w": 604800, "d": 86400, "h": 3600, "m": 60, "s": 1}


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("90d", 90 * 86400), ("12h", 43200), ("30m", 1800), ("2w", 1209600), ("45s", 45),
     ("1d12h", 129600), ("1W2D3H4M5S", 1 * 604800 + 2 * 86400 + 3 * 3600 + 4 * 60 + 5),
     (" 7d ", 7 * 86400), ("0s", 0)],
)  # fmt: skip
def test_durations(text: str, seconds: int) -> None:
    assert parse_duration(text) == timedelta(seconds=seconds)


@pytest.mark.parametrize("text", ["", "d", "90", "3 days", "1.5d", "12h1d", "1d1d", "-1d", "1y"])
def test_what_is_no_duration(text: str) -> None:
    with pytest.raises(ValueError, match="is not a duration"):
        parse_duration(text)


@given(st.integers(0, int(MAX_DURATION.total_seconds())))
def test_a_duration_reads_back_as_itself(seconds: int) -> None:
    value = timedelta(seconds=seconds)
    assert parse_duration(format_duration(value)) == value


@given(
    st.lists(st.tuples(st.sampled_from("wdhms"), st.integers(0, 400)), min_size=1, max_size=5).map(
        lambda parts: sorted(dict(parts).items(), key=lambda p: -_UNIT_SECONDS[p[0]])
    )
)
def test_a_written_duration_counts_every_unit(parts: list[tuple[str, int]]) -> None:
    text = "".join(f"{n}{u}" for u, n in parts)
    seconds = sum(n * _UNIT_SECONDS[u] for u, n in parts)
    assert parse_duration(text) == timedelta(seconds=seconds)
    assert parse_duration(format_duration(parse_duration(text))) == parse_duration(text)


def test_a_duration_past_a_century_is_refused() -> None:
    assert parse_duration("36525d") == MAX_DURATION
    with pytest.raises(ValueError, match="longer than 36525 days"):
        parse_duration("36525d1s")


@pytest.mark.parametrize(
    ("text", "size"),
    [("0", 0), ("1048576", 1048576), ("500MB", 500 * 10**6), ("500mb", 500 * 10**6),
     ("1.5GiB", 3 * 2**29), ("10kB", 10000), ("10KB", 10000), ("10K", 10000), ("10Ki", 10240),
     ("2 MiB", 2 * 2**20), ("7B", 7), (".5kB", 500), ("1TB", 10**12), ("1PiB", 2**50)],
)  # fmt: skip
def test_sizes(text: str, size: int) -> None:
    assert parse_size(text) == size


@pytest.mark.parametrize("text", ["", "MB", "-1", "1e6", "5 parsecs", "1,5MB", "1.MB", "1  MB"])
def test_what_is_no_size(text: str) -> None:
    with pytest.raises(ValueError, match="is not a size"):
        parse_size(text)


_UNITS = {"": 1, "B": 1}
for _i, _p in enumerate("KMGTPE", start=1):
    _UNITS |= {_p: 1000**_i, f"{_p}B": 1000**_i, f"{_p}i": 1024**_i, f"{_p}iB": 1024**_i}


@given(
    st.integers(0, 10**6),
    st.none() | st.integers(0, 999),
    st.sampled_from(sorted(_UNITS)),
    st.booleans(),
    st.booleans(),
)
def test_a_size_is_its_number_times_its_unit(
    whole: int, fraction: int | None, unit: str, lower: bool, space: bool
) -> None:
    number = f"{whole}" + (f".{fraction:03d}" if fraction is not None else "")
    text = number + (" " if space else "") + (unit.lower() if lower else unit)
    expected = Decimal(number) * _UNITS[unit]
    if expected > 2**63:
        with pytest.raises(ValueError, match="larger than any image"):
            parse_size(text)
    else:
        assert parse_size(text) == expected


@pytest.mark.parametrize(
    ("text", "moment"),
    [("2026-01-31T12:00:00Z", datetime(2026, 1, 31, 12, tzinfo=UTC)),
     ("2026-01-31t12:00:00z", datetime(2026, 1, 31, 12, tzinfo=UTC)),
     ("2026-01-31 12:00:00+01:00", datetime(2026, 1, 31, 11, tzinfo=UTC)),
     ("2026-01-31T12:00:00.123456789-02:30", datetime(2026, 1, 31, 14, 30, 0, 123456, UTC)),
     ("2026-01-31", datetime(2026, 1, 31, tzinfo=UTC))],
)  # fmt: skip
def test_times(text: str, moment: datetime) -> None:
    parsed = parse_time(text)
    assert parsed == moment
    assert parsed.tzinfo is UTC


@pytest.mark.parametrize(
    "text", ["", "now", "2026-01-31T12:00:00", "2026-1-31", "2026-01-31T12:00Z", "31/01/2026"]
)
def test_what_is_no_time(text: str) -> None:
    with pytest.raises(ValueError, match="is not an RFC 3339 time"):
        parse_time(text)


@pytest.mark.parametrize("text", ["2026-02-30", "2026-13-01T00:00:00Z", "2026-01-01T25:00:00Z",
                                  "0001-01-01T00:00:00+01:00"])  # fmt: skip
def test_an_impossible_time_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match="is not a real time"):
        parse_time(text)


@given(
    st.datetimes(min_value=datetime(1900, 1, 2), max_value=datetime(9999, 12, 30)),
    st.integers(-14 * 60, 14 * 60),
)
def test_a_time_reads_back_as_the_same_instant(local: datetime, offset_minutes: int) -> None:
    moment = local.replace(tzinfo=timezone(timedelta(minutes=offset_minutes)))
    assert parse_time(moment.isoformat()) == moment
    assert parse_time(format_time(moment)) == moment
