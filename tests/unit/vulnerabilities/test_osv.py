"""parse_record: typed OSV records, bounded, and one typed error for anything else."""

from __future__ import annotations

import contextlib
import copy
import json
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.unit.vulnerabilities.fixture_db import record_paths
from trustyard.errors import Invalid
from trustyard.vulnerabilities.osv import (
    UNKNOWN_ID,
    EventKind,
    Limits,
    RangeType,
    RecordInvalid,
    parse_record,
)

RECORD: dict[str, Any] = {
    "schema_version": "1.6.0",
    "id": "GHSA-aaaa-bbbb-cccc",
    "modified": "2024-01-02T03:04:05.123Z",
    "published": "2023-12-01T00:00:00Z",
    "aliases": ["CVE-2023-0001"],
    "summary": "Prototype pollution",
    "details": "Long text.",
    "severity": [{"type": "CVSS_V3", "score": "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"}],
    "affected": [
        {
            "package": {"ecosystem": "npm", "name": "lodash", "purl": "pkg:npm/lodash"},
            "ranges": [
                {
                    "type": "ECOSYSTEM",
                    "events": [{"introduced": "0"}, {"fixed": "4.17.12"}],
                },
                {
                    "type": "GIT",
                    "repo": "https://example.invalid/lodash.git",
                    "events": [{"introduced": "abc123"}, {"limit": "def456"}],
                },
            ],
            "versions": ["4.17.11"],
            "database_specific": {"source": "x"},
        }
    ],
    "database_specific": {"severity": "high", "cwe_ids": ["CWE-1321"]},
}


def test_a_record_becomes_typed_values() -> None:
    record = parse_record(json.dumps(RECORD).encode())
    assert record.id == "GHSA-aaaa-bbbb-cccc"
    assert record.aliases == ("CVE-2023-0001",)
    assert record.modified == datetime(2024, 1, 2, 3, 4, 5, 123000, tzinfo=UTC)
    assert record.withdrawn is None
    assert record.severity_label == "HIGH"
    assert record.severity[0].type == "CVSS_V3"
    (affected,) = record.affected
    assert affected.package is not None
    assert (affected.package.ecosystem, affected.package.name) == ("npm", "lodash")
    assert affected.package.purl == "pkg:npm/lodash"
    assert affected.versions == ("4.17.11",)
    eco, git = affected.ranges
    assert eco.type is RangeType.ECOSYSTEM
    assert [(e.kind, e.version) for e in eco.events] == [
        (EventKind.INTRODUCED, "0"),
        (EventKind.FIXED, "4.17.12"),
    ]
    assert git.type is RangeType.GIT
    assert git.repo == "https://example.invalid/lodash.git"
    assert git.events[1].kind is EventKind.LIMIT
    assert affected.database_specific == {"source": "x"}


def test_withdrawn_and_last_affected() -> None:
    raw = copy.deepcopy(RECORD)
    raw["withdrawn"] = "2024-02-01T00:00:00+02:00"
    raw["affected"][0]["ranges"][0]["events"][1] = {"last_affected": "4.17.11"}
    record = parse_record(raw)
    assert record.withdrawn == datetime(2024, 1, 31, 22, 0, tzinfo=UTC)
    assert record.affected[0].ranges[0].events[1].kind is EventKind.LAST_AFFECTED


def test_the_typed_error_is_an_invalid() -> None:
    assert issubclass(RecordInvalid, Invalid)


def _broken(path: tuple[str | int, ...], value: object) -> dict[str, Any]:
    raw = copy.deepcopy(RECORD)
    target: Any = raw
    for step in path[:-1]:
        target = target[step]
    if value is _DELETE:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return raw


_DELETE = object()


@pytest.mark.parametrize(
    ("path", "value", "field"),
    [
        (("modified",), _DELETE, "modified"),
        (("modified",), "yesterday", "modified"),
        (("modified",), "2024-01-02T03:04:05", "modified"),  # no time zone
        (("withdrawn",), "0001-01-01T00:00:00+01:00", "withdrawn"),
        (("aliases",), "CVE-1", "aliases"),
        (("aliases",), [""], "aliases[0]"),
        (("affected",), {}, "affected"),
        (("affected", 0, "package", "name"), 3, "affected[0].package.name"),
        (("affected", 0, "package", "ecosystem"), _DELETE, "affected[0].package.ecosystem"),
        (("affected", 0, "ranges", 0, "type"), "SEMVERISH", "affected[0].ranges[0].type"),
        (("affected", 0, "ranges", 0, "events"), [], "affected[0].ranges[0].events"),
        (("affected", 0, "ranges", 1, "repo"), _DELETE, "affected[0].ranges[1].repo"),
        (
            ("affected", 0, "ranges", 0, "events", 1),
            {"fixed": "1", "introduced": "0"},
            "affected[0].ranges[0].events[1]",
        ),
        (
            ("affected", 0, "ranges", 0, "events", 1),
            {"patched": "1"},
            "affected[0].ranges[0].events[1]",
        ),
        (("affected", 0, "versions"), ["1.0", None], "affected[0].versions[1]"),
        (("severity", 0, "score"), _DELETE, "severity[0].score"),
        (("database_specific",), [], "database_specific"),
    ],
)
def test_a_bad_field_is_named(path: tuple[str | int, ...], value: object, field: str) -> None:
    with pytest.raises(RecordInvalid) as caught:
        parse_record(_broken(path, value))
    assert caught.value.record_id == "GHSA-aaaa-bbbb-cccc"
    assert caught.value.field == field
    assert "GHSA-aaaa-bbbb-cccc" in caught.value.message
    assert field in caught.value.message


@pytest.mark.parametrize("bad_id", [None, "", "has space", "../etc/passwd", "x" * 200, 7])
def test_a_bad_id_is_refused(bad_id: object) -> None:
    with pytest.raises(RecordInvalid) as caught:
        parse_record(_broken(("id",), bad_id))
    assert (caught.value.record_id, caught.value.field) == (UNKNOWN_ID, "id")


@pytest.mark.parametrize(
    "text", [b"", b"{", b"[]", b"\xff\xfe", b"null", b"[" * 100_000 + b"]" * 100_000, b"1" * 5000]
)
def test_text_that_is_not_a_record(text: bytes) -> None:
    with pytest.raises(RecordInvalid) as caught:
        parse_record(text)
    assert caught.value.record_id == UNKNOWN_ID


def test_limits() -> None:
    small = Limits(record_bytes=10_000, affected=1, ranges=1, events=1, versions=1, aliases=0)
    with pytest.raises(RecordInvalid, match="bytes, over 10000"):
        parse_record(b" " * 10_001, small)
    cases = [
        (Limits(aliases=0), "aliases"),
        (Limits(affected=0), "affected"),
        (Limits(ranges=1), "affected[0].ranges"),
        (Limits(events=1), "affected[0].ranges[0].events"),
        (Limits(versions=0), "affected[0].versions"),
        (Limits(severities=0), "severity"),
        (Limits(string_chars=10), "aliases[0]"),
    ]
    for limits, field in cases:
        with pytest.raises(RecordInvalid) as caught:
            parse_record(RECORD, limits)
        assert caught.value.field == field, limits


def test_every_fixture_record_parses() -> None:
    withdrawn = 0
    count = 0
    for path in record_paths():
        record = parse_record(path.read_bytes())
        assert record.id == path.stem
        count += 1
        withdrawn += record.withdrawn is not None
    assert count > 6900
    assert withdrawn == 27


# --- never anything but RecordInvalid -----------------------------------------------------

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4)
    ),
    max_leaves=30,
)


@settings(max_examples=200, deadline=None)
@given(JSON)
def test_arbitrary_json_is_a_record_or_the_typed_error(value: object) -> None:
    with contextlib.suppress(RecordInvalid):
        parse_record(json.dumps(value))


def _paths(value: object, prefix: tuple[str | int, ...] = ()) -> list[tuple[str | int, ...]]:
    out = [prefix] if prefix else []
    if isinstance(value, dict):
        for key, child in value.items():
            out += _paths(child, (*prefix, key))
    elif isinstance(value, list):
        for i, child in enumerate(value):
            out += _paths(child, (*prefix, i))
    return out


PATHS = _paths(RECORD)


@settings(max_examples=400, deadline=None)
@given(st.sampled_from(PATHS), JSON)
def test_a_record_with_any_field_replaced_is_a_record_or_the_typed_error(
    path: tuple[str | int, ...], value: object
) -> None:
    raw = _broken(path, value)
    try:
        record = parse_record(raw)
    except RecordInvalid as e:
        error = e
    else:
        assert record.id == raw["id"]
        return
    assert error.record_id == (RECORD["id"] if raw.get("id") == RECORD["id"] else UNKNOWN_ID)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=200))
def test_arbitrary_bytes_are_the_typed_error(blob: bytes) -> None:
    with contextlib.suppress(RecordInvalid):
        parse_record(blob)
