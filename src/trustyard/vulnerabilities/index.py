"""Records held in memory by (ecosystem, package name), and the findings for one component.

`Index.findings(ecosystem, name, version)` answers the vulnerabilities of one component: every
record (withdrawn ones are never added) with an `affected[]` entry for the package that covers
the version, merged by alias so that one CVE counts once per component (PYSEC-x and GHSA-y
naming CVE-z are one finding), with the version to upgrade to and the severity (`severity.py`:
the CVSS score and DTR's bucket of the merged records). The store of the database and its import
come next; this is the matching they will feed.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

from trustyard.vulnerabilities.matching import AffectedMatcher, package_key
from trustyard.vulnerabilities.osv import Affected, Record
from trustyard.vulnerabilities.severity import NO_RATING, Rating, rate_group
from trustyard.vulnerabilities.versions import VersionInvalid, compare, scheme_for


@dataclass(frozen=True, slots=True)
class Finding:
    """One vulnerability of one component: `id` the first of its records' ids, `record_ids`
    all of them, `aliases` every other name (CVE...), `fixed` the version to upgrade to
    (None when no record names one), `severity` the rating of the records together (for
    this package: an `affected[]` entry's own severity before the record's)."""

    id: str
    record_ids: tuple[str, ...]
    aliases: tuple[str, ...]
    fixed: str | None
    severity: Rating = NO_RATING


@dataclass(frozen=True, slots=True)
class _Hit:
    record: Record
    fixed: str | None
    entries: tuple[Affected, ...]  # the record's entries for the package that matched


class Index:
    def __init__(self) -> None:
        self._by_package: dict[tuple[str, str], list[tuple[Record, AffectedMatcher]]] = defaultdict(
            list
        )
        self.records = 0
        self.withdrawn = 0

    @classmethod
    def of(cls, records: Iterable[Record]) -> Index:
        index = cls()
        for record in records:
            index.add(record)
        return index

    def add(self, record: Record) -> None:
        if record.withdrawn is not None:
            self.withdrawn += 1
            return
        self.records += 1
        for entry in record.affected:
            if entry.package is None:
                continue  # a GIT-only entry names no package
            key = package_key(entry.package.ecosystem, entry.package.name)
            self._by_package[key].append((record, AffectedMatcher(entry)))

    def packages(self) -> int:
        return len(self._by_package)

    def matchers(self, ecosystem: str, name: str) -> list[tuple[Record, AffectedMatcher]]:
        return self._by_package.get(package_key(ecosystem, name), [])

    def findings(self, ecosystem: str, name: str, version: str) -> list[Finding]:
        entries: dict[str, list[AffectedMatcher]] = defaultdict(list)
        records: dict[str, Record] = {}
        for record, matcher in self.matchers(ecosystem, name):
            entries[record.id].append(matcher)
            records[record.id] = record
        hits = []
        for record_id, matchers in entries.items():
            matched = tuple(m.entry for m in matchers if m.affects(version))
            if matched:
                hits.append(_Hit(records[record_id], _fix(matchers, version, ecosystem), matched))
        return _merge(hits, ecosystem)


def _fix(matchers: list[AffectedMatcher], version: str, ecosystem: str) -> str | None:
    """The lowest version above `version` that none of the record's entries for the package
    affects: a record may take an incomplete fix back (GO-2023-2185 names 1.20.11 fixed in one
    entry and affected in the next)."""
    candidate = version
    for _ in range(len(matchers) + 4):
        fixes = [f for m in matchers if m.affects(candidate) and (f := m.fixed_in(candidate))]
        if not fixes:
            return None if candidate == version else candidate
        candidate = _highest_of(fixes, ecosystem)
    return None


def _merge(hits: list[_Hit], ecosystem: str) -> list[Finding]:
    """Group records that share an id or an alias (transitively), one finding per group."""
    parent: dict[str, str] = {}

    def find(name: str) -> str:
        parent.setdefault(name, name)
        while parent[name] != name:
            parent[name] = parent[parent[name]]
            name = parent[name]
        return name

    for hit in hits:
        for alias in hit.record.aliases:
            parent[find(alias)] = find(hit.record.id)
        find(hit.record.id)
    groups: dict[str, list[_Hit]] = defaultdict(list)
    for hit in hits:
        groups[find(hit.record.id)].append(hit)
    findings = []
    for members in groups.values():
        ids = sorted(h.record.id for h in members)
        names = {a for h in members for a in h.record.aliases} - set(ids)
        fixes = [h.fixed for h in members if h.fixed is not None]
        findings.append(
            Finding(
                id=ids[0],
                record_ids=tuple(ids),
                aliases=tuple(sorted(names)),
                fixed=_highest_of(fixes, ecosystem) if fixes else None,
                severity=rate_group((h.record, h.entries) for h in members),
            )
        )
    findings.sort(key=lambda f: f.id)
    return findings


def _highest_of(fixes: list[str], ecosystem: str) -> str:
    """The highest of `fixes` in the package's order: the one that fixes them all."""
    best = fixes[0]
    scheme = scheme_for(ecosystem)
    if scheme is None:
        return best
    for fix in fixes[1:]:
        try:
            if compare(scheme, best, fix) < 0:
                best = fix
        except VersionInvalid:
            continue
    return best
