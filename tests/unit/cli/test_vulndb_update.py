"""`trustyard vulndb update` as a user runs it (a real process on a SQLite data folder) against
a loopback server of OSV bundles: it imports with progress lines, the next run finds the
source not modified, a failing source gives exit 1 and names it, and it refuses to start
while the update job is queued or running."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.osv_server import Bundle, Served, serve_bundles, zipped
from tests.support.workers import trustyard
from tests.unit.vulnerabilities.fixture_db import VULNDB
from trustyard.db.engine import make_engine, write_tx
from trustyard.jobs.admin import JobAdmin
from trustyard.jobs.queue import SqlJobQueue
from trustyard.vulnerabilities.jobs import enqueue_update


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("data")
    done = trustyard(folder, None, "migrate")
    assert done.returncode == 0, done.stderr
    return folder


@pytest.fixture(scope="module")
def http() -> Iterator[tuple[str, Served]]:
    with serve_bundles() as served:
        yield served


def test_update_now_then_not_modified(data_dir: Path, http: tuple[str, Served]) -> None:
    base, served = http
    records = {p.name: p.read_bytes() for p in sorted((VULNDB / "npm").glob("*.json"))}
    served.bundles["/npm/all.zip"] = Bundle(zipped(records), etag='"n1"')
    url = f"{base}/npm/all.zip"

    done = trustyard(data_dir, None, "vulndb", "update", "--source", url)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == f"osv:npm: GET {url}"
    assert lines[-1].startswith(f"osv:npm: imported {len(records)} records ({len(records)} added")

    done = trustyard(data_dir, None, "vulndb", "update", "--source", url, "--json")
    assert done.returncode == 0, done.stderr
    [outcome] = json.loads(done.stdout)
    assert (outcome["source"], outcome["status"]) == ("osv:npm", "not-modified")
    assert "osv:npm: not modified" in done.stderr

    done = trustyard(data_dir, None, "vulndb", "status", "--json")
    [source] = json.loads(done.stdout)["sources"]
    assert (source["name"], source["url"], source["records"]) == ("osv:npm", url, len(records))


def test_a_failing_source_exits_1(data_dir: Path, http: tuple[str, Served]) -> None:
    base, served = http
    served.bundles["/gone/PyPI/all.zip"] = Bundle(b"", status=404)
    done = trustyard(data_dir, None, "vulndb", "update", "--source", f"{base}/gone/PyPI/all.zip")
    assert done.returncode == 1
    assert "osv:PyPI: failed: GET" in done.stdout
    assert "HTTP 404" in done.stdout


def test_no_source_and_nothing_seen_does_nothing(data_dir: Path) -> None:
    done = trustyard(data_dir, None, "vulndb", "update")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == (
        "no source to update (no URL configured and no ecosystem seen yet)"
    )


def test_refused_while_the_job_is_live(data_dir: Path) -> None:
    engine = make_engine(f"sqlite:///{data_dir / 'trustyard.db'}")
    try:
        with write_tx(engine) as conn:
            job = enqueue_update(SqlJobQueue(engine), conn)
        try:
            url = "http://127.0.0.1:9/x.zip"
            done = trustyard(data_dir, None, "vulndb", "update", "--source", url)
        finally:  # the other tests of the module update again
            with write_tx(engine) as conn:
                JobAdmin().cancel(conn, job.id)
    finally:
        engine.dispose()
    assert done.returncode == 1
    assert f"an update is queued or running as job {job.id}" in done.stderr
