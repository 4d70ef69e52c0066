"""Does an OSV record affect one version of one package, and which version fixes it.

OSV's evaluation, exactly (https://ossf.github.io/osv-schema/#evaluation):
- a version is affected when it is one of the entry's explicit `versions` (equal in the
  ecosystem's order: PyPI's `2.2.0` is `2.2`), or when a range covers it;
- a range's events are sorted by the ecosystem's order, `introduced: "0"` lowest, and walked:
  `introduced` (v >= e) makes it affected, `fixed` (v >= e) and `last_affected` (v > e)
  unaffected; the state after the last applicable event stands;
- `limit` events bound the range from above (v must be below one of them; `*` is no bound);
- GIT ranges speak of commits and are ignored for packages; SEMVER ranges use SemVer (Go's
  variant in the Go ecosystem), ECOSYSTEM ranges the ecosystem's own order.

A range with a version its order cannot read (PYSEC-2019-125's `fixed: 2019-09-12`) is left out
with a warning rather than guessed at: dropping only that event would mark every later version
affected. `Index` holds records by (ecosystem, package name), leaves withdrawn records out and
merges aliases, so one CVE counts once per component.
"""

from __future__ import annotations

import re
from bisect import bisect_left
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cmp_to_key
from typing import Any

from trustyard.vulnerabilities.osv import Affected, EventKind, Range, RangeType
from trustyard.vulnerabilities.versions import (
    Scheme,
    VersionInvalid,
    VersionKey,
    parse_version,
    scheme_for,
)

_INTRODUCED, _FIXED = EventKind.INTRODUCED, EventKind.FIXED
_PEP503 = re.compile(r"[-_.]+")


def package_key(ecosystem: str, name: str) -> tuple[str, str]:
    """How records and components meet: the ecosystem as written (`Debian:12` is not
    `Debian:11`) and the name in the ecosystem's normal form (PEP 503 for PyPI)."""
    if ecosystem == "PyPI":
        return ecosystem, _PEP503.sub("-", name).lower()
    return ecosystem, name


class _Lowest:
    """`introduced: "0"`: below every version of every scheme."""

    __slots__ = ()

    def __lt__(self, other: Any) -> bool:
        return other is not self

    def __gt__(self, other: Any) -> bool:
        return False

    def __eq__(self, other: object) -> bool:
        return other is self

    __hash__ = object.__hash__


LOWEST = _Lowest()
_EVENT_ORDER = {_INTRODUCED: 0, EventKind.LAST_AFFECTED: 1, _FIXED: 2, EventKind.LIMIT: 3}


@dataclass(frozen=True, slots=True)
class _Event:
    key: VersionKey
    kind: EventKind
    version: str


class _CompiledRange:
    __slots__ = ("events", "limits", "scheme")

    def __init__(self, scheme: Scheme, events: list[_Event], limits: list[VersionKey]) -> None:
        self.scheme = scheme
        self.events = events
        self.limits = limits

    def affects(self, v: VersionKey) -> bool:
        if self.limits and not any(v < limit for limit in self.limits):
            return False
        affected = False
        for event in self.events:
            if event.kind is _INTRODUCED:
                if not v < event.key:
                    affected = True
            elif event.kind is _FIXED:
                if not v < event.key:
                    affected = False
            elif event.key < v:  # last_affected
                affected = False
        return affected

    def next_fix(self, v: VersionKey) -> _Event | None:
        """The lowest `fixed` above `v`: the version to upgrade to within this range."""
        for event in self.events:
            if event.kind is _FIXED and v < event.key:
                return event
        return None


class AffectedMatcher:
    """One `affected[]` entry of a record, ready to answer for versions of its package.
    Built once per entry; the range and version keys are made on first use."""

    __slots__ = ("_compiled", "_ranges", "_scheme", "_versions", "ecosystem", "entry", "warnings")

    def __init__(self, entry: Affected) -> None:
        if entry.package is None:
            raise ValueError("an entry without a package matches no package")
        self.entry = entry
        self.ecosystem = entry.package.ecosystem
        self._scheme = scheme_for(self.ecosystem)
        self._compiled = False
        self._ranges: list[_CompiledRange] = []
        self._versions: list[VersionKey] = []
        self.warnings: list[str] = []

    def compile(self) -> None:
        """Parse the range events and explicit versions (once); `warnings` then says which
        ranges were left out."""
        if self._compiled:
            return
        self._compiled = True
        for i, rng in enumerate(self.entry.ranges):
            compiled = self._compile_range(i, rng)
            if compiled is not None:
                self._ranges.append(compiled)
        if self._scheme is not None:
            keys = []
            for text in self.entry.versions:
                try:
                    keys.append(parse_version(self._scheme, text))
                except VersionInvalid:
                    continue  # still matched by its text
            keys.sort(key=cmp_to_key(_compare_keys))
            self._versions = keys

    def _compile_range(self, i: int, rng: Range) -> _CompiledRange | None:
        if rng.type is RangeType.GIT:
            return None
        if rng.type is RangeType.SEMVER:
            scheme: Scheme | None = Scheme.GO if self._scheme is Scheme.GO else Scheme.SEMVER
        else:
            scheme = self._scheme
        if scheme is None:
            self.warnings.append(f"ranges[{i}]: no version order for {self.ecosystem}")
            return None
        events: list[_Event] = []
        limits: list[VersionKey] = []
        for event in rng.events:
            if event.kind is EventKind.LIMIT and event.version == "*":
                continue
            try:
                key: VersionKey = (
                    LOWEST
                    if event.kind is _INTRODUCED and event.version == "0"
                    else parse_version(scheme, event.version)
                )
            except VersionInvalid as e:
                self.warnings.append(f"ranges[{i}]: {e.message}; the range is left out")
                return None
            if event.kind is EventKind.LIMIT:
                limits.append(key)
            else:
                events.append(_Event(key, event.kind, event.version))
        events.sort(key=cmp_to_key(_compare_events))
        return _CompiledRange(scheme, events, limits)

    @staticmethod
    def _key(version: str, scheme: Scheme | None) -> VersionKey | None:
        if scheme is None:
            return None
        try:
            return parse_version(scheme, version)
        except VersionInvalid:
            return None

    def _in_versions(self, version: str) -> bool:
        if version in self.entry.versions:
            return True
        v = self._key(version, self._scheme)
        if v is None or not self._versions:
            return False
        at = bisect_left(self._versions, v)
        return at < len(self._versions) and self._versions[at] == v

    def _ranges_affecting(self, version: str) -> Iterator[tuple[_CompiledRange, VersionKey]]:
        for compiled in self._ranges:
            v = self._key(version, compiled.scheme)
            if v is not None and compiled.affects(v):
                yield compiled, v

    def affects(self, version: str) -> bool:
        self.compile()
        return self._in_versions(version) or any(True for _ in self._ranges_affecting(version))

    def fixed_in(self, version: str) -> str | None:
        """The version to upgrade to: the highest of the next fixes of the ranges that cover
        `version` (for a version listed only explicitly, the next fix of any range)."""
        self.compile()
        fixes = [
            fix
            for compiled, v in self._ranges_affecting(version)
            if (fix := compiled.next_fix(v)) is not None
        ]
        if not fixes:
            for compiled in self._ranges:
                v = self._key(version, compiled.scheme)
                if v is not None and (fix := compiled.next_fix(v)) is not None:
                    fixes.append(fix)
        if not fixes:
            return None
        best = fixes[0]
        for fix in fixes[1:]:
            if best.key < fix.key:
                best = fix
        return best.version


def _compare_keys(a: VersionKey, b: VersionKey) -> int:
    return -1 if a < b else (1 if b < a else 0)


def _compare_events(a: _Event, b: _Event) -> int:
    """By version (the lowest first); at one version introduced before last_affected before
    fixed, so that `introduced 1.0, fixed 1.0` affects nothing."""
    return _compare_keys(a.key, b.key) or _EVENT_ORDER[a.kind] - _EVENT_ORDER[b.kind]
