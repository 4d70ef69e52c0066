"""One OSV record (https://ossf.github.io/osv-schema/) as typed, frozen values.

`parse_record` reads the JSON of one record and keeps what matching, severity and reports use:
the id, aliases, the withdrawn and modified times, the affected packages with their ranges and
explicit versions, the severity vectors and the database's own severity label. Everything a
record may hold is bounded (`Limits`); a record that breaks the schema or a bound raises
`RecordInvalid`, which names the record and the field, so an import can say which record of a
bundle failed and why. Versions stay strings here: their order belongs to the ecosystem
(`versions.py`), and a record whose versions one ecosystem cannot read is still a record.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from types import MappingProxyType

from trustyard.errors import Invalid

UNKNOWN_ID = "<unknown>"
_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:+-]{0,127}")


class RecordInvalid(Invalid):
    """An OSV record that breaks the schema or a size limit: `record_id` and `field` (a path
    such as `affected[2].ranges[0].events[1]`) say where."""

    def __init__(self, record_id: str, field: str, reason: str) -> None:
        super().__init__(
            f"OSV record {record_id}: {field}: {reason}",
            {"record": record_id, "field": field, "reason": reason},
        )
        self.record_id = record_id
        self.field = field
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Limits:
    """What one record may hold. Real records stay far below these (the largest record of
    the test fixture is 25 KB with 1,132 explicit versions)."""

    record_bytes: int = 4 * 1024 * 1024
    affected: int = 2000
    ranges: int = 100  # per affected entry
    events: int = 1000  # per range
    versions: int = 50_000  # explicit versions per affected entry
    aliases: int = 1000
    severities: int = 20
    string_chars: int = 1024  # a name, a version, a purl, a vector


DEFAULT_LIMITS = Limits()


class RangeType(StrEnum):
    SEMVER = "SEMVER"
    ECOSYSTEM = "ECOSYSTEM"
    GIT = "GIT"


class EventKind(StrEnum):
    INTRODUCED = "introduced"
    FIXED = "fixed"
    LAST_AFFECTED = "last_affected"
    LIMIT = "limit"


@dataclass(frozen=True, slots=True)
class Event:
    kind: EventKind
    version: str  # a version of the range's scheme, a commit hash for GIT; "0" for "all before"


@dataclass(frozen=True, slots=True)
class Range:
    type: RangeType
    events: tuple[Event, ...]
    repo: str | None = None  # GIT ranges only


@dataclass(frozen=True, slots=True)
class Package:
    ecosystem: str  # "PyPI", "npm", "Go", "Debian:12", "Alpine:v3.19"...
    name: str
    purl: str | None = None


@dataclass(frozen=True, slots=True)
class Severity:
    type: str  # CVSS_V2, CVSS_V3, CVSS_V4, Ubuntu
    score: str  # the vector (or the label for Ubuntu)


def _empty() -> Mapping[str, object]:
    return MappingProxyType({})


@dataclass(frozen=True, slots=True)
class Affected:
    package: Package | None  # None: a GIT-only entry, which matches no package
    ranges: tuple[Range, ...] = ()
    versions: tuple[str, ...] = ()
    severity: tuple[Severity, ...] = ()
    ecosystem_specific: Mapping[str, object] = field(default_factory=_empty)
    database_specific: Mapping[str, object] = field(default_factory=_empty)


@dataclass(frozen=True, slots=True)
class Record:
    id: str
    modified: datetime
    published: datetime | None = None
    withdrawn: datetime | None = None
    aliases: tuple[str, ...] = ()
    related: tuple[str, ...] = ()
    upstream: tuple[str, ...] = ()
    summary: str = ""
    details: str = ""
    affected: tuple[Affected, ...] = ()
    severity: tuple[Severity, ...] = ()
    severity_label: str | None = None  # database_specific.severity: "HIGH", "MODERATE"...


def parse_record(
    data: bytes | str | Mapping[str, object], limits: Limits = DEFAULT_LIMITS
) -> Record:
    """The record in `data` (JSON text or the decoded object); `RecordInvalid` if it is not
    a well-formed OSV record within `limits`."""
    if isinstance(data, bytes | str):
        size = len(data.encode() if isinstance(data, str) else data)
        if size > limits.record_bytes:
            raise RecordInvalid(UNKNOWN_ID, "(record)", f"{size} bytes, over {limits.record_bytes}")
        try:
            obj = json.loads(data)
        except (ValueError, RecursionError) as e:  # JSONDecodeError, bad UTF-8, huge numbers
            raise RecordInvalid(UNKNOWN_ID, "(record)", f"not JSON: {str(e)[:200]}") from None
    else:
        obj = data
    return _Parser(obj, limits).record()


class _Parser:
    def __init__(self, obj: object, limits: Limits) -> None:
        self.obj = obj
        self.limits = limits
        self.id = UNKNOWN_ID
        if isinstance(obj, Mapping):
            raw = obj.get("id")
            if isinstance(raw, str) and _ID.fullmatch(raw):
                self.id = raw

    def fail(self, field: str, reason: str) -> RecordInvalid:
        return RecordInvalid(self.id, field, reason)

    # --- JSON shapes ------------------------------------------------------------------

    def mapping(self, value: object, field: str) -> Mapping[str, object]:
        if type(value) is dict:  # what JSON gives: skip the slower ABC check
            return value
        if not isinstance(value, Mapping):
            raise self.fail(field, "must be an object")
        return value

    def items(self, value: object, field: str, limit: int) -> list[object]:
        if value is None:
            return []
        if not isinstance(value, list):
            raise self.fail(field, "must be an array")
        if len(value) > limit:
            raise self.fail(field, f"{len(value)} entries, over {limit}")
        return value

    def text(self, value: object, field: str, *, limit: int | None = None) -> str:
        if not isinstance(value, str):
            raise self.fail(field, "must be a string")
        bound = self.limits.string_chars if limit is None else limit
        if len(value) > bound:
            raise self.fail(field, f"{len(value)} characters, over {bound}")
        return value

    def name(self, value: object, field: str) -> str:
        text = self.text(value, field)
        if not text.strip():
            raise self.fail(field, "must not be empty")
        return text

    def optional_text(self, obj: Mapping[str, object], key: str, field: str) -> str | None:
        value = obj.get(key)
        return None if value is None else self.text(value, field)

    def texts(self, value: object, field: str, limit: int) -> tuple[str, ...]:
        items = self.items(value, field, limit)
        bound = self.limits.string_chars
        # The common case in one pass (explicit versions run to thousands); the slow path
        # below only finds and names the bad entry.
        if all(type(v) is str and 0 < len(v) <= bound and not v.isspace() for v in items):
            return tuple(items)  # type: ignore[arg-type]
        return tuple(self.name(v, f"{field}[{i}]") for i, v in enumerate(items))

    def time(self, value: object, field: str) -> datetime:
        text = self.text(value, field, limit=64)
        try:
            when = datetime.fromisoformat(text)
        except ValueError:
            raise self.fail(field, f"not an RFC 3339 time: {text!r}") from None
        if when.tzinfo is None:  # RFC 3339 always has an offset; OSV writes Z
            raise self.fail(field, f"no time zone: {text!r}")
        try:
            return when.astimezone(UTC)
        except OverflowError:  # 0001-01-01T00:00:00+01:00 has no UTC time
            raise self.fail(field, f"out of range: {text!r}") from None

    def optional_time(self, obj: Mapping[str, object], key: str) -> datetime | None:
        value = obj.get(key)
        return None if value is None else self.time(value, key)

    def json_object(self, value: object, field: str) -> Mapping[str, object]:
        if value is None:
            return MappingProxyType({})
        return MappingProxyType(dict(self.mapping(value, field)))

    # --- the record ---------------------------------------------------------------------

    def record(self) -> Record:
        obj = self.mapping(self.obj, "(record)")
        raw_id = obj.get("id")
        if not isinstance(raw_id, str) or not _ID.fullmatch(raw_id):
            raise self.fail("id", "missing, or not an id like PYSEC-2021-1 or GHSA-xxxx-xxxx-xxxx")
        if "modified" not in obj:
            raise self.fail("modified", "missing")
        limits = self.limits
        database_specific = self.json_object(obj.get("database_specific"), "database_specific")
        label = database_specific.get("severity")
        return Record(
            id=raw_id,
            modified=self.time(obj["modified"], "modified"),
            published=self.optional_time(obj, "published"),
            withdrawn=self.optional_time(obj, "withdrawn"),
            aliases=self.texts(obj.get("aliases"), "aliases", limits.aliases),
            related=self.texts(obj.get("related"), "related", limits.aliases),
            upstream=self.texts(obj.get("upstream"), "upstream", limits.aliases),
            summary=self.optional_text(obj, "summary", "summary") or "",
            details=self.text(obj.get("details", ""), "details", limit=limits.record_bytes),
            affected=tuple(
                self.affected(a, f"affected[{i}]")
                for i, a in enumerate(self.items(obj.get("affected"), "affected", limits.affected))
            ),
            severity=self.severities(obj.get("severity"), "severity"),
            severity_label=label.upper() if isinstance(label, str) and label.strip() else None,
        )

    def severities(self, value: object, field: str) -> tuple[Severity, ...]:
        out = []
        for i, raw in enumerate(self.items(value, field, self.limits.severities)):
            at = f"{field}[{i}]"
            obj = self.mapping(raw, at)
            out.append(
                Severity(
                    type=self.name(obj.get("type"), f"{at}.type"),
                    score=self.name(obj.get("score"), f"{at}.score"),
                )
            )
        return tuple(out)

    def affected(self, raw: object, field: str) -> Affected:
        obj = self.mapping(raw, field)
        package = None
        if obj.get("package") is not None:
            package = self.package(obj["package"], f"{field}.package")
        ranges = tuple(
            self.range(r, f"{field}.ranges[{i}]")
            for i, r in enumerate(
                self.items(obj.get("ranges"), f"{field}.ranges", self.limits.ranges)
            )
        )
        versions = self.texts(obj.get("versions"), f"{field}.versions", self.limits.versions)
        return Affected(
            package=package,
            ranges=ranges,
            versions=versions,
            severity=self.severities(obj.get("severity"), f"{field}.severity"),
            ecosystem_specific=self.json_object(
                obj.get("ecosystem_specific"), f"{field}.ecosystem_specific"
            ),
            database_specific=self.json_object(
                obj.get("database_specific"), f"{field}.database_specific"
            ),
        )

    def package(self, raw: object, field: str) -> Package:
        obj = self.mapping(raw, field)
        return Package(
            ecosystem=self.name(obj.get("ecosystem"), f"{field}.ecosystem"),
            name=self.name(obj.get("name"), f"{field}.name"),
            purl=self.optional_text(obj, "purl", f"{field}.purl"),
        )

    def range(self, raw: object, field: str) -> Range:
        obj = self.mapping(raw, field)
        kind = obj.get("type")
        try:
            range_type = RangeType(kind) if isinstance(kind, str) else None
        except ValueError:
            range_type = None
        if range_type is None:
            raise self.fail(f"{field}.type", f"must be SEMVER, ECOSYSTEM or GIT, not {kind!r:.40}")
        repo = self.optional_text(obj, "repo", f"{field}.repo")
        if range_type is RangeType.GIT and repo is None:
            raise self.fail(f"{field}.repo", "a GIT range needs its repository")
        raw_events = self.items(obj.get("events"), f"{field}.events", self.limits.events)
        if not raw_events:
            raise self.fail(f"{field}.events", "a range needs at least one event")
        return Range(
            type=range_type,
            events=tuple(self.event(e, f"{field}.events[{i}]") for i, e in enumerate(raw_events)),
            repo=repo,
        )

    def event(self, raw: object, field: str) -> Event:
        obj = self.mapping(raw, field)
        if len(obj) != 1:
            raise self.fail(
                field, "an event has exactly one of introduced, fixed, last_affected, limit"
            )
        ((key, value),) = obj.items()
        try:
            kind = EventKind(key)
        except ValueError:
            raise self.fail(field, f"unknown event {key!r:.40}") from None
        return Event(kind, self.name(value, f"{field}.{key}"))
