"""`trustyard vulndb import` and `trustyard vulndb status` as a user runs them (real processes
on a SQLite data folder): a bundle with its SHA-256 file, a broken bundle beside a good one
(the good one is imported, the command fails naming the broken one), the status after."""

from __future__ import annotations

import hashlib
import json
import zipfile
from pathlib import Path

import pytest

from tests.support.workers import trustyard
from tests.unit.vulnerabilities.fixture_db import VULNDB


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("data")
    done = trustyard(folder, None, "migrate")
    assert done.returncode == 0, done.stderr
    return folder


def npm_zip(path: Path) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for record in sorted((VULNDB / "npm").glob("*.json")):
            archive.write(record, record.name)
    return path


def test_import_and_status(data_dir: Path, tmp_path: Path) -> None:
    (tmp_path / "npm").mkdir()
    bundle = npm_zip(tmp_path / "npm" / "all.zip")  # osv.dev's layout: the source is "npm"
    sums = tmp_path / "SHA256SUMS"
    sums.write_text(f"{hashlib.sha256(bundle.read_bytes()).hexdigest()}  all.zip\n")

    done = trustyard(
        data_dir, None, "vulndb", "import", str(bundle), "--sha256", str(sums), "--json"
    )
    assert done.returncode == 0, done.stderr
    [report] = json.loads(done.stdout)
    assert (report["source"], report["records"], report["added"]) == ("npm", 16, 16)
    assert ["npm", "lodash"] in report["changed_packages"]

    broken = tmp_path / "broken.zip"
    broken.write_bytes(bundle.read_bytes()[:2000])
    done = trustyard(data_dir, None, "vulndb", "import", str(broken), str(bundle))
    assert done.returncode == 1
    assert f"{broken}: vulnerability bundle {broken}: a truncated or corrupt zip" in done.stderr
    assert done.stdout.startswith("npm: 16 records (0 added, 0 changed, 16 unchanged, 0 removed")

    done = trustyard(data_dir, None, "vulndb", "status", "--json")
    assert done.returncode == 0, done.stderr
    status = json.loads(done.stdout)
    assert (status["version"], status["records"]) == (2, 16)
    by_name = {s["name"]: s for s in status["sources"]}
    assert by_name["npm"]["records"] == 16
    assert by_name["npm"]["error"] is None
    assert by_name["broken"]["records"] == 0
    assert by_name["broken"]["generation"] is None
    assert "truncated or corrupt zip" in by_name["broken"]["error"]

    done = trustyard(data_dir, None, "vulndb", "status")
    lines = done.stdout.splitlines()
    assert lines[0].startswith("database version 2, 16 records, updated ")
    assert lines[1] == "source\trecords\tupdated\tfailed\terror"
    assert [line.split("\t")[:2] for line in lines[2:]] == [["broken", "0"], ["npm", "16"]]


def test_source_and_sha256_name_one_bundle(data_dir: Path, tmp_path: Path) -> None:
    done = trustyard(data_dir, None, "vulndb", "import", "a.zip", "b.zip", "--source", "x")
    assert done.returncode == 2
    assert "give one PATH" in done.stderr
    done = trustyard(data_dir, None, "vulndb", "import", str(tmp_path / "missing.zip"))
    assert done.returncode == 1
    assert "cannot be read" in done.stderr
