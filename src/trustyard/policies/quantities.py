"""The quantities a rule's values write: durations (`90d`, `1d12h`), sizes (`500MB`, `1.5GiB`)
and times (RFC 3339). Each parser answers the value or raises ValueError with words a user
reads; rules.py turns that into PolicyInvalid pointing at the value.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal

MAX_DURATION = timedelta(days=36525)  # a century: older than that is older than any image
MAX_SIZE = 2**63  # bytes; more than any image and than the size column holds

_DURATION = re.compile(
    r"(?:(\d{1,7})w)?(?:(\d{1,9})d)?(?:(\d{1,10})h)?(?:(\d{1,12})m)?(?:(\d{1,14})s)?", re.I
)
_UNITS = (("w", 7 * 86400), ("d", 86400), ("h", 3600), ("m", 60), ("s", 1))

_SIZE = re.compile(r"(\d{1,20}(?:\.\d{1,9})?|\.\d{1,9})\s?([A-Za-z]{0,3})")
_SIZE_UNITS: dict[str, int] = {"": 1, "b": 1}
for _power, _letter in enumerate("kmgtpe", start=1):
    _SIZE_UNITS[_letter] = _SIZE_UNITS[f"{_letter}b"] = 1000**_power
    _SIZE_UNITS[f"{_letter}i"] = _SIZE_UNITS[f"{_letter}ib"] = 1024**_power

_TIME = re.compile(
    r"(\d{4}-\d{2}-\d{2})(?:[Tt ](\d{2}:\d{2}:\d{2})(?:\.(\d{1,9}))?([Zz]|[+-]\d{2}:\d{2}))?"
)


def parse_duration(text: str) -> timedelta:
    """`90d`, `12h`, `30m`, `2w`, `45s`, or several units largest first (`1d12h`)."""
    match = _DURATION.fullmatch(text.strip())
    if not match or not any(match.groups()):
        raise ValueError(
            f"{text[:80]!r} is not a duration: a number and a unit, w d h m or s, largest "
            "first (90d, 12h, 1d12h)"
        )
    seconds = sum(
        int(number) * size
        for number, (_, size) in zip(match.groups(), _UNITS, strict=True)
        if number
    )
    if seconds > MAX_DURATION.total_seconds():
        raise ValueError(f"{text[:80]!r} is longer than {MAX_DURATION.days} days")
    return timedelta(seconds=seconds)


def format_duration(value: timedelta) -> str:
    """The shortest duration text of whole seconds (`1w2d`, `0s`), which parse_duration reads
    back as `value`."""
    rest = int(value.total_seconds())
    out: list[str] = []
    for unit, size in _UNITS:
        count, rest = divmod(rest, size)
        if count:
            out.append(f"{count}{unit}")
    return "".join(out) or "0s"


def parse_size(text: str) -> Decimal:
    """Bytes: `1048576`, `500MB` (10^6), `1.5GiB` (2^30), `10kB`; units are read
    case-insensitively (k, M, G, T, P, E powers of 1000; Ki, Mi... of 1024; B optional)."""
    match = _SIZE.fullmatch(text.strip())
    unit = _SIZE_UNITS.get(match.group(2).lower()) if match else None
    if match is None or unit is None:
        raise ValueError(
            f"{text[:80]!r} is not a size: bytes, or a number with a unit (500MB, 1.5GiB, 10kB)"
        )
    size = Decimal(match.group(1)) * unit
    if size > MAX_SIZE:
        raise ValueError(f"{text[:80]!r} is larger than any image")
    return size


def parse_time(text: str) -> datetime:
    """An RFC 3339 time with its offset (`2026-01-31T12:00:00Z`, `...+01:00`), or a date
    (`2026-01-31`: its midnight in UTC); answered in UTC."""
    match = _TIME.fullmatch(text.strip())
    if not match:
        raise ValueError(
            f"{text[:80]!r} is not an RFC 3339 time such as 2026-01-31T12:00:00Z (or a date, "
            "2026-01-31)"
        )
    day, clock, fraction, offset = match.groups()
    if clock is None:
        iso = f"{day}T00:00:00+00:00"
    else:
        micro = f".{(fraction or '')[:6].ljust(6, '0')}"
        iso = f"{day}T{clock}{micro}{'+00:00' if offset in ('Z', 'z') else offset}"
    try:
        return datetime.fromisoformat(iso).astimezone(UTC)
    except (ValueError, OverflowError):
        raise ValueError(f"{text[:80]!r} is not a real time (a day or hour out of range)") from None


def format_time(value: datetime) -> str:
    """RFC 3339 in UTC with `Z`, for reasons."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")
