"""The fixture database (../shared/vulndb) imported as offline bundles, one of each kind (PyPI
as osv.dev's all.zip, Go as a folder, npm as a tar.gz), answers every query of
expected/expected-matches.json exactly as the in-memory index does, from one lookup of all
their packages.

SQLite imports the whole fixture (6,968 records). PostgreSQL imports the records that name
a queried package (a few hundred, the same answers): the same SQL, without paying for 7,000
rows a second time."""

from __future__ import annotations

import json
import shutil
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine

from tests.support.databases import migrated_engine
from tests.unit.vulnerabilities.fixture_db import EXPECTED, VULNDB
from trustyard.db.engine import read_tx
from trustyard.vulnerabilities.importer import Importer
from trustyard.vulnerabilities.index import Index
from trustyard.vulnerabilities.interfaces import ImportReport
from trustyard.vulnerabilities.matching import package_key
from trustyard.vulnerabilities.osv import parse_record
from trustyard.vulnerabilities.service import VulnerabilityService

QUERIES: list[dict[str, Any]] = json.loads(EXPECTED.read_text())["queries"]
Imported = tuple[Engine, dict[str, ImportReport], str]
ASKED = {package_key(q["ecosystem"], q["package"]) for q in QUERIES}


def _wanted(path: Path) -> bool:
    record = parse_record(path.read_bytes())
    return any(
        package_key(a.package.ecosystem, a.package.name) in ASKED
        for a in record.affected
        if a.package is not None
    )


def bundles(root: Path, subset: bool) -> dict[str, Path]:
    """PyPI as a zip, Go as a folder, npm as a tar.gz (of all records, or the subset)."""
    folders = {}
    for folder in ("pypi", "go", "npm"):
        folders[folder] = VULNDB / folder
        if subset:
            folders[folder] = root / folder
            folders[folder].mkdir()
            for path in sorted((VULNDB / folder).glob("*.json")):
                if _wanted(path):
                    shutil.copy(path, folders[folder])
    npm = root / "npm.tar.gz"
    with tarfile.open(npm, "w:gz") as archive:
        archive.add(folders["npm"], arcname="npm")
    pypi = shutil.make_archive(str(root / "PyPI-all"), "zip", root_dir=folders["pypi"])
    return {"pypi": Path(pypi), "go": folders["go"], "npm": npm}


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def imported(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Imported]:
    subset = request.param == "postgres"
    made = bundles(tmp_path_factory.mktemp("bundles"), subset)
    with migrated_engine(request, tmp_path_factory, request.param) as engine:
        importer = Importer(engine)
        reports = {name: importer.import_bundle(path) for name, path in made.items()}
        yield engine, reports, request.param


@pytest.fixture(scope="module")
def memory() -> Index:
    return Index.of(
        parse_record(p.read_bytes())
        for folder in ("pypi", "go", "npm")
        for p in (VULNDB / folder).glob("*.json")
    )


def test_every_record_is_imported_and_withdrawn_ones_are_left_out(
    imported: Imported,
) -> None:
    _, reports, backend = imported
    assert {r.source for r in reports.values()} == {"PyPI-all", "go", "npm"}
    if backend == "sqlite":
        assert {k: (r.records, r.withdrawn) for k, r in reports.items()} == {
            "pypi": (2651, 10),
            "go": (4274, 17),
            "npm": (16, 0),
        }
    for report in reports.values():
        assert report.added == report.records
        assert report.changed == report.unchanged == report.removed == 0


def test_the_database_answers_like_the_index_in_memory(imported: Imported, memory: Index) -> None:
    engine, _, _ = imported
    with read_tx(engine) as conn:  # one lookup for the packages of every query
        index = VulnerabilityService().index_for(
            conn, [(q["ecosystem"], q["package"]) for q in QUERIES]
        )
    for q in QUERIES:
        found = index.findings(q["ecosystem"], q["package"], q["version"])
        assert {i for f in found for i in f.record_ids} == set(q["ids"]), q["package"]
        assert len(found) == q["count"]
        assert found == memory.findings(q["ecosystem"], q["package"], q["version"])
