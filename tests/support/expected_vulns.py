"""The vulnerabilities a test image must show with the offline OSV fixture (../shared/vulndb:
pypi/, npm/, go/) imported: the ground truth for `trustyard scan --vulns` and the registry's
own matching, which must give the same set.

`expected_findings(image)` is a set of (component name, OSV record id) over the image's
packages (its `<image>.packages.tsv`). A package version that
`vulndb/expected/expected-matches.json` has a query for takes that query's ids (versions
compared in the ecosystem's order: the image's Django 2.2 is the query's 2.2.0); any other
version takes what the fixture's records answer through `trustyard.vulnerabilities.index.Index`
(our own matching; `from_index(image)` names these packages). OS packages have none: the
fixture has no Debian records.
"""

from __future__ import annotations

import json
from functools import cache
from typing import Any

from tests.support.images import load_truth, shared_dir

VULNDB = shared_dir() / "vulndb"
EXPECTED = VULNDB / "expected" / "expected-matches.json"
# The scanner's ecosystem -> (the OSV ecosystem, the fixture's folder).
ECOSYSTEMS = {"pypi": ("PyPI", "pypi"), "npm": ("npm", "npm"), "golang": ("Go", "go")}


def expected_findings(image: str) -> set[tuple[str, str]]:
    """(component name, record id) of every vulnerability the image's packages have."""
    found: set[tuple[str, str]] = set()
    for ecosystem, name, version in _packages(image):
        found |= {(name, record) for record in _ids(ecosystem, name, version)}
    return found


def from_index(image: str) -> set[tuple[str, str, str]]:
    """The image's packages (ecosystem, name, version) that expected-matches.json has no
    query for: their ids come from our Index over the fixture's records."""
    return {
        (ecosystem, name, version)
        for ecosystem, name, version in _packages(image)
        if _query(ecosystem, name, version) is None
    }


def _packages(image: str) -> list[tuple[str, str, str]]:
    return [row for row in load_truth(image) if row[0] in ECOSYSTEMS]


def _ids(ecosystem: str, name: str, version: str) -> set[str]:
    query = _query(ecosystem, name, version)
    if query is not None:
        return set(query["ids"])
    osv = ECOSYSTEMS[ecosystem][0]
    findings = _index(ecosystem).findings(osv, name, _osv_version(ecosystem, version))
    return {record for finding in findings for record in finding.record_ids}


def _query(ecosystem: str, name: str, version: str) -> dict[str, Any] | None:
    from trustyard.vulnerabilities.matching import package_key
    from trustyard.vulnerabilities.versions import compare, scheme_for

    osv = ECOSYSTEMS[ecosystem][0]
    scheme = scheme_for(osv)
    assert scheme is not None
    wanted = _osv_version(ecosystem, version)
    for query in _queries():
        if package_key(query["ecosystem"], query["package"]) != package_key(osv, name):
            continue
        if compare(scheme, query["version"], wanted) == 0:
            return query
    return None


def _osv_version(ecosystem: str, version: str) -> str:
    """Go's module versions without their `v` (and `stdlib`'s `go`), as the queries write them."""
    if ecosystem == "golang":
        return version.removeprefix("go").removeprefix("v")
    return version


@cache
def _queries() -> tuple[dict[str, Any], ...]:
    return tuple(json.loads(EXPECTED.read_text())["queries"])


@cache
def _index(ecosystem: str) -> Any:
    from trustyard.vulnerabilities.index import Index
    from trustyard.vulnerabilities.osv import parse_record

    folder = VULNDB / ECOSYSTEMS[ecosystem][1]
    return Index.of(parse_record(path.read_bytes()) for path in sorted(folder.glob("*.json")))
