"""The fixture database (../shared/vulndb: PyPI, Go, npm) answers every query of
expected/expected-matches.json with exactly its ids, and none of its negative controls."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.unit.vulnerabilities.fixture_db import EXPECTED, record_paths
from trustyard.vulnerabilities.index import Index
from trustyard.vulnerabilities.osv import Record, parse_record


def _queries() -> list[dict[str, Any]]:
    queries: list[dict[str, Any]] = json.loads(EXPECTED.read_text())["queries"]
    return queries


@pytest.fixture(scope="module")
def records() -> list[Record]:
    return [parse_record(path.read_bytes()) for path in record_paths()]


@pytest.fixture(scope="module")
def index(records: list[Record]) -> Index:
    return Index.of(records)


def test_the_whole_fixture_is_indexed(records: list[Record], index: Index) -> None:
    assert len(records) == 6968
    assert index.withdrawn == 27  # 10 PyPI, 17 Go: never matched
    assert index.records == len(records) - 27


@pytest.mark.parametrize("query", _queries(), ids=lambda q: f"{q['package']}@{q['version']}")
def test_expected_ids(index: Index, query: dict[str, Any]) -> None:
    findings = index.findings(query["ecosystem"], query["package"], query["version"])
    matched = {record_id for f in findings for record_id in f.record_ids}
    assert matched == set(query["ids"])
    assert len(findings) == query["count"]  # no two of these records share an alias
    assert not matched & set(query["withdrawn_ids_ignored"])
    for finding in findings:  # the version to upgrade to is not affected by the finding
        if finding.fixed is not None:
            after = index.findings(query["ecosystem"], query["package"], finding.fixed)
            assert finding.id not in {f.id for f in after}, finding


# The negative controls of ../shared/vulndb/README.md.
NOT_MATCHED = [
    ("npm", "lodash", "4.17.15", "GHSA-jf85-cpcp-j695"),  # fixed 4.17.12
    ("npm", "handlebars", "4.5.2", "GHSA-2cf5-4w76-r9qv"),  # fixed 4.5.2
    ("npm", "axios", "0.21.0", "GHSA-8hc4-vh64-cxmj"),  # 1.3.2 to 1.7.4
    ("Go", "stdlib", "1.19.8", "GO-2023-1702"),  # fixed 1.19.8
    ("Go", "stdlib", "1.19.8", "GO-2023-1705"),
    ("Go", "golang.org/x/net", "0.0.0-20220722155237-a158d28d115b", "GO-2021-0238"),
    ("Go", "golang.org/x/net", "0.0.0-20220722155237-a158d28d115b", "GO-2022-0236"),
    ("Go", "golang.org/x/net", "0.0.0-20220722155237-a158d28d115b", "GO-2022-0288"),
]


@pytest.mark.parametrize(("ecosystem", "package", "version", "record_id"), NOT_MATCHED)
def test_negative_controls(
    index: Index, ecosystem: str, package: str, version: str, record_id: str
) -> None:
    assert record_id in {r.id for r, _ in index.matchers(ecosystem, package)}  # it is there
    matched = {i for f in index.findings(ecosystem, package, version) for i in f.record_ids}
    assert record_id not in matched


def test_sub_packages_are_other_packages(index: Index) -> None:
    # lodash's records also name lodash-es, lodash.set... and handlebars' Maven webjars; a
    # package matches only the entries of its own name and ecosystem.
    lodash_set = {i for f in index.findings("npm", "lodash.set", "4.17.15") for i in f.record_ids}
    assert lodash_set <= {"GHSA-p6mc-m468-83gw"}
    assert index.findings("npm", "org.webjars.npm:handlebars", "4.5.2") == []
    assert index.findings("npm", "Lodash", "4.17.15") == []


def test_pypi_names_are_normalised(index: Index) -> None:
    assert index.findings("PyPI", "pyyaml", "5.3") == index.findings("PyPI", "PyYAML", "5.3")
    assert index.findings("PyPI", "Django", "2.2") == index.findings("PyPI", "django", "2.2.0")
