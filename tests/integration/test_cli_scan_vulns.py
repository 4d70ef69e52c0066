"""`trustyard scan PATH --vulns` as a CI pipeline runs it: a subprocess, no server, against a
data folder where `trustyard vulndb import` put the offline OSV fixture (../shared/vulndb).

The findings of the python-app and node-app archives are exactly the fixture's advisories of
their package versions (`tests/support/expected_vulns.py`: expected-matches.json's ids where it
has the version, our Index over the fixture's records for the others), in every output; the
CycloneDX document passes cyclonedx-python-lib's strict 1.6 validator; --fail-on gates; a
missing or empty database is exit 2 with how to import one. PostgreSQL (--database-url) gives
the same answer. The database is only read."""

from __future__ import annotations

import json
import re
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cyclonedx.schema import SchemaVersion
from cyclonedx.validation.json import JsonStrictValidator
from sqlalchemy import Engine, insert
from sqlalchemy.exc import DBAPIError

from tests.support.archives import image_archive
from tests.support.expected_vulns import VULNDB, expected_findings
from tests.support.images import image_info, image_layout
from tests.support.postgres import PostgresCluster
from tests.support.workers import trustyard
from trustyard.cli.scan_vulns import read_only
from trustyard.db.engine import make_engine
from trustyard.db.tables import vuln_database

pytestmark = [pytest.mark.integration]

FOLDERS = ("pypi", "npm", "go")


def imported(data_dir: Path, database_url: str | None, *folders: str) -> None:
    done = trustyard(data_dir, database_url, "migrate")
    assert done.returncode == 0, done.stderr
    bundles = [str(VULNDB / folder) for folder in folders]
    done = trustyard(data_dir, database_url, "vulndb", "import", *bundles)
    assert done.returncode == 0, done.stderr


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data folder whose SQLite database holds the whole fixture (about 7 s to import)."""
    folder = tmp_path_factory.mktemp("vulndb")
    imported(folder, None, *FOLDERS)
    return folder


def archive(name: str) -> Path:
    return image_archive(name, "oci-archive")


def scan(
    data_dir: Path, image: Path, *args: str, database_url: str | None = None
) -> subprocess.CompletedProcess[str]:
    return trustyard(data_dir, database_url, "scan", str(image), "--vulns", *args)


def report(data_dir: Path, image: Path, *args: str, **options: Any) -> dict[str, Any]:
    done = scan(data_dir, image, "--format", "json", "-q", *args, **options)
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    document: dict[str, Any] = json.loads(done.stdout)
    return document


def findings_of(document: dict[str, Any]) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
    """(component, finding) of the JSON report (findings by layer, then component)."""
    for layer in document["layers"]:
        for component in layer["components"]:
            for finding in component["findings"]:
                yield component, finding


def found_set(document: dict[str, Any]) -> set[tuple[str, str]]:
    """(component name, record id): a finding names every record merged into it."""
    return {
        (component["name"], record)
        for component, finding in findings_of(document)
        for record in finding["records"]
    }


@pytest.mark.parametrize("name", ["python-app", "node-app"])
def test_json_has_exactly_the_fixtures_advisories(data_dir: Path, name: str) -> None:
    document = report(data_dir, archive(name))
    expected = expected_findings(name)
    assert found_set(document) == expected
    assert document["repository"] == name
    assert document["status"] == "matched"
    assert document["manifest_digest"] == image_info(name)["digest"]
    assert document["database_version"] == len(FOLDERS)  # one switch per imported source
    pairs = list(findings_of(document))
    # no two records of these packages share an alias: one finding per record
    assert len(pairs) == len(expected)
    assert document["counts"]["total"] == len(expected)
    app_layer = image_info(name)["images"][0]["layers"][1]["digest"]
    assert {layer["digest"] for layer in document["layers"]} == {app_layer}
    for component, finding in pairs:
        assert finding["id"] in finding["records"]
        assert finding["via"] == component["matched_as"]["via"] == "package"
        assert finding["bucket"] in ("critical", "major", "minor", "unknown")


def test_table_lists_each_finding_with_its_layer_bucket_fix_and_a_summary(
    data_dir: Path,
) -> None:
    done = scan(data_dir, archive("node-app"))
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    header = next(line for line in lines if "component" in line)
    for column in ("version", "layer", "vulnerability", "bucket", "fixed in", "via"):
        assert column in header
    app_layer = image_info("node-app")["images"][0]["layers"][1]["digest"]
    row = next(line for line in lines if "GHSA-p6mc-m468-83gw" in line)
    cells = [cell.strip() for cell in row.strip("│ ").split("│")]
    assert cells == [
        "lodash",
        "4.17.15",
        app_layer[7:19],
        "GHSA-p6mc-m468-83gw",
        "critical",
        "4.17.19",
        "package",
    ]
    total = len(expected_findings("node-app"))
    summary = re.compile(rf"^{total} vulnerabilities: \d+ critical, \d+ major, \d+ minor, \d+ unk")
    assert any(summary.match(line.strip()) for line in lines), done.stdout
    # the same summary on stderr, with the scan's
    assert "node-app linux/amd64: 6 components in 2 layers" in done.stderr
    assert f"node-app: {total} vulnerabilities: " in done.stderr


def test_cyclonedx_has_the_vulnerabilities_and_is_valid(data_dir: Path) -> None:
    done = scan(data_dir, archive("python-app"), "--format", "cyclonedx-json", "-q")
    assert done.returncode == 0, done.stderr
    error = JsonStrictValidator(SchemaVersion.V1_6).validate_str(done.stdout)
    assert error is None, str(error)
    document = json.loads(done.stdout)
    names = {c["bom-ref"]: c["name"] for c in document["components"]}
    found = set()
    for vulnerability in document["vulnerabilities"]:
        records = {
            p["value"] for p in vulnerability["properties"] if p["name"] == "trustyard:record"
        }
        assert vulnerability["id"] in records
        for affected in vulnerability["affects"]:
            found |= {(names[affected["ref"]], record) for record in records}
    assert found == expected_findings("python-app")


def test_fail_on_gates_a_pipeline(data_dir: Path) -> None:
    # python-app has critical findings (idna, urllib3): the report is written, then exit 1
    done = scan(data_dir, archive("python-app"), "--fail-on", "critical")
    assert done.returncode == 1, done.stderr
    assert "PYSEC-2024-60" in done.stdout
    assert "at or above critical" in done.stderr
    # --fail-on with any output: spdx-json is the SBOM alone, the gate still holds
    done = scan(data_dir, archive("node-app"), "-q", "-f", "spdx-json", "--fail-on", "major")
    assert done.returncode == 1, done.stderr
    assert json.loads(done.stdout)["spdxVersion"] == "SPDX-2.3"
    # an image without findings (the fixture has no Debian records) passes even at minor
    done = scan(data_dir, image_layout("debian-minbase"), "-q", "--fail-on", "minor")
    assert done.returncode == 0, done.stderr
    assert "0 vulnerabilities: 0 critical, 0 major, 0 minor, 0 unknown" in done.stdout
    # multi-arch's findings (Go's stdlib) are all unrated: below critical, but "any
    # vulnerability" (minor) fails
    done = scan(data_dir, archive("multi-arch"), "-q", "--fail-on", "critical")
    assert done.returncode == 0, done.stderr
    assert "80 vulnerabilities: 0 critical, 0 major, 0 minor, 80 unknown" in done.stdout
    assert scan(data_dir, archive("multi-arch"), "-q", "--fail-on", "minor").returncode == 1
    # and without --fail-on, findings are no failure
    assert scan(data_dir, archive("python-app"), "-q").returncode == 0


def test_a_missing_or_empty_database_is_exit_2_and_says_how_to_import(
    data_dir: Path, tmp_path: Path
) -> None:
    image = archive("node-app")
    nothing = tmp_path / "nothing"
    done = scan(nothing, image)
    assert done.returncode == 2
    assert done.stdout == ""
    assert "no trustyard database at" in done.stderr
    assert f"trustyard vulndb import BUNDLE... --data-dir {nothing}" in done.stderr
    assert not nothing.exists()  # nothing created

    empty = tmp_path / "empty"
    assert trustyard(empty, None, "migrate").returncode == 0
    done = scan(empty, image)
    assert done.returncode == 2
    assert done.stdout == ""
    assert "has no records: import OSV bundles with `trustyard vulndb import" in done.stderr

    # an unreachable database is one line, no traceback
    done = scan(nothing, image, database_url="postgresql://nobody@127.0.0.1:1/none")
    assert done.returncode == 2
    assert "cannot connect to the database" in done.stderr
    assert "Traceback" not in done.stderr

    # the database options and --fail-on belong to --vulns
    done = trustyard(data_dir, None, "scan", str(image), "--fail-on", "critical")
    assert done.returncode == 2
    assert "need --vulns" in done.stderr


def read_only_refuses_writes(engine: Engine) -> None:
    refused = pytest.raises(DBAPIError, match=r"readonly database|read-only transaction")
    with refused, read_only(engine) as conn:
        conn.execute(insert(vuln_database).values(id=2, generation=0, version=0))


def test_the_database_is_only_read(data_dir: Path) -> None:
    engine = make_engine(f"sqlite:///{data_dir / 'trustyard.db'}")
    try:
        read_only_refuses_writes(engine)
    finally:
        engine.dispose()


def test_postgres_gives_the_same_findings(pg_cluster: PostgresCluster, tmp_path: Path) -> None:
    url = pg_cluster.create_database(f"t_{uuid.uuid4().hex[:12]}")
    imported(tmp_path, url, "npm")
    document = report(tmp_path, archive("node-app"), database_url=url)
    assert found_set(document) == expected_findings("node-app")
    engine = make_engine(url)
    try:
        read_only_refuses_writes(engine)
    finally:
        engine.dispose()
