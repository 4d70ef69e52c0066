"""The vulnerabilities of stored images over a real database (SQLite and PostgreSQL): a scan
job matched in its own transaction, the read API, a matching failure that keeps the scan and
queues a retry, and re-matching after an import of a newer bundle (exactly the new advisory,
a VULNERABILITY_FOUND event, no blob read; the older bundle again resolves it)."""

from __future__ import annotations

import json
import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Connection, Engine, event, select

from tests.support.databases import empty, migrated_engine
from tests.unit.scanning.test_scan_job import context, layer_bytes, queued_scan
from tests.unit.vulnerabilities.fixture_db import EXPECTED, VULNDB
from trustyard.content.stores import ContentStore
from trustyard.db.engine import read_tx, write_tx
from trustyard.db.tables import (
    event_outbox,
    jobs,
    manifest_references,
    manifests,
    repositories,
    repository_blobs,
    scan_components,
    scan_layers,
    scans,
    tags,
    vuln_affected,
    vuln_findings,
    vuln_image_matches,
    vuln_image_packages,
    vuln_records,
    vuln_sources,
)
from trustyard.events.outbox import Outbox
from trustyard.jobs.interfaces import JobContext
from trustyard.jobs.queue import SqlJobQueue
from trustyard.scanning.jobs import ScanImage
from trustyard.scanning.stores import ScanRecord, ScanStore
from trustyard.storage.filesystem import FilesystemDriver
from trustyard.vulnerabilities.images import ImageMatcher, ImageStore
from trustyard.vulnerabilities.importer import Importer
from trustyard.vulnerabilities.interfaces import Counts, Package
from trustyard.vulnerabilities.jobs import MatchScan, RematchImages
from trustyard.vulnerabilities.rematch import (
    MATCH_KIND,
    REMATCH_KIND,
    MatchOnScan,
    Rematcher,
    enqueue_rematch,
    match_dedupe_key,
)
from trustyard.vulnerabilities.service import PackageIndex, VulnerabilityService

TABLES = (
    vuln_findings,
    vuln_image_packages,
    vuln_image_matches,
    scan_components,
    scans,
    scan_layers,
    tags,
    manifest_references,
    manifests,
    repository_blobs,
    event_outbox,
    jobs,
    repositories,
    vuln_affected,
    vuln_records,
    vuln_sources,
)
URLLIB3 = "usr/local/lib/python3.11/site-packages/urllib3-1.24.1.dist-info/METADATA"
SIX = "usr/local/lib/python3.11/site-packages/six-1.16.0.dist-info/METADATA"
NEW = "PYSEC-2023-212"  # the advisory the newer bundle adds
EXPECTED_IDS = next(
    q["ids"]
    for q in json.loads(EXPECTED.read_text())["queries"]
    if (q["ecosystem"], q["package"], q["version"]) == ("PyPI", "urllib3", "1.24.1")
)


def metadata(name: str, version: str) -> bytes:
    return f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n".encode()


LAYER = layer_bytes({URLLIB3: metadata("urllib3", "1.24.1"), SIX: metadata("six", "1.16.0")})


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def db_engine(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Engine]:
    with migrated_engine(request, tmp_path_factory, request.param) as engine:
        yield engine


@pytest.fixture
def engine(db_engine: Engine) -> Engine:
    return empty(db_engine, TABLES)


@pytest.fixture
def driver(tmp_path: Path) -> FilesystemDriver:
    return FilesystemDriver(tmp_path / "blobs")


@pytest.fixture(scope="module")
def bundles(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """Two folders of the fixture's records naming urllib3: the older without NEW, the
    newer with it."""
    root = tmp_path_factory.mktemp("bundles")
    older, newer = root / "older" / "pypi", root / "newer" / "pypi"
    older.mkdir(parents=True)
    newer.mkdir(parents=True)
    for path in sorted((VULNDB / "pypi").glob("*.json")):
        record = json.loads(path.read_text())
        names = {a.get("package", {}).get("name", "").lower() for a in record["affected"]}
        if "urllib3" in names:
            shutil.copy(path, newer)
            if record["id"] != NEW:
                shutil.copy(path, older)
    return older, newer


STORE = ImageStore(ScanStore())


def matcher(service: VulnerabilityService | None = None) -> ImageMatcher:
    return ImageMatcher(STORE, service or VulnerabilityService())


def scan_job(engine: Engine, driver: FilesystemDriver, consumer: MatchOnScan) -> ScanImage:
    outbox = Outbox(SqlJobQueue(engine), inline=[consumer])
    return ScanImage(engine, driver, outbox, progress_seconds=60)


def scanned(
    engine: Engine, driver: FilesystemDriver, service: VulnerabilityService | None = None
) -> ScanRecord:
    """An image with urllib3 1.24.1 and six, tagged v1, scanned by the scan job whose
    outbox matches it."""
    scan = queued_scan(engine, driver, LAYER)
    with write_tx(engine) as conn:
        manifest = ContentStore().manifest_id(conn, scan.repository_id, scan.manifest_digest)
        assert manifest is not None
        ContentStore().set_tag(conn, scan.repository_id, "v1", manifest)
    scan_job(engine, driver, MatchOnScan(matcher(service), SqlJobQueue(engine)))(context(scan))
    with read_tx(engine) as conn:
        done = ScanStore().get(conn, scan.id)
    assert done is not None
    assert done.status == "succeeded"
    return done


def ids(engine: Engine, scan: ScanRecord) -> list[str]:
    with read_tx(engine) as conn:
        found = STORE.image_vulnerabilities(
            conn, scan.repository_id, scan.repository, scan.manifest_digest
        )
    return [f.vuln_id for f in found.findings]


def outbox(engine: Engine) -> list[tuple[str, dict[str, Any]]]:
    with read_tx(engine) as conn:
        rows = conn.execute(
            select(event_outbox.c.type, event_outbox.c.contents).order_by(event_outbox.c.id)
        )
        return [(row.type, json.loads(row.contents)) for row in rows]


def queued(engine: Engine, kind: str) -> list[Any]:
    with read_tx(engine) as conn:
        return list(
            conn.execute(
                select(jobs.c.id, jobs.c.payload, jobs.c.dedupe_key, jobs.c.state).where(
                    jobs.c.kind == kind
                )
            )
        )


def job_context(job_id: int, kind: str, payload: dict[str, Any]) -> JobContext:
    return JobContext(job_id, kind, payload, 1, 3, "test-worker")


# --- matching on scan completion and reading ---------------------------------------------------
def test_a_completed_scan_is_matched_in_its_own_transaction(
    engine: Engine, driver: FilesystemDriver, bundles: tuple[Path, Path]
) -> None:
    Importer(engine).import_bundle(bundles[1], source="pypi")
    # A first image brings the layer into the cache: the second scan then writes once.
    scanned(engine, driver)
    again = queued_scan(engine, driver, LAYER, repository="acme/other")
    commits: list[str] = []

    def count(conn: Connection) -> None:
        if conn.get_execution_options().get("trustyard_write"):
            commits.append("commit")

    consumer = MatchOnScan(matcher(), SqlJobQueue(engine))
    event.listen(engine, "commit", count)
    try:
        scan_job(engine, driver, consumer)(context(again))
    finally:
        event.remove(engine, "commit", count)
    assert len(commits) == 1  # the scan's result and its match: one write transaction
    assert ids(engine, again) == sorted(EXPECTED_IDS)
    with read_tx(engine) as conn:
        image = STORE.image_vulnerabilities(
            conn, again.repository_id, again.repository, again.manifest_digest
        )
        counts = STORE.counts_for(
            conn, again.repository_id, [again.manifest_digest, "sha256:" + "0" * 64]
        )
    assert image.status == "matched"
    assert image.error is None
    with read_tx(engine) as conn:
        assert image.database_version == VulnerabilityService().version(conn)
    assert {f.record_ids for f in image.findings} == {(i,) for i in EXPECTED_IDS}
    assert {f.component.name for f in image.findings} == {"urllib3"}
    assert {f.component.target.ecosystem for f in image.findings} == {"PyPI"}
    assert all(f.triage is None for f in image.findings)
    assert counts == {again.manifest_digest: image.counts}
    assert image.counts.total == len(EXPECTED_IDS)
    assert queued(engine, MATCH_KIND) == []


def test_states_before_a_match(engine: Engine, driver: FilesystemDriver) -> None:
    scan = queued_scan(engine, driver, LAYER)
    with read_tx(engine) as conn:
        pending = STORE.image_vulnerabilities(
            conn, scan.repository_id, scan.repository, scan.manifest_digest
        )
        never = STORE.image_vulnerabilities(conn, scan.repository_id, scan.repository, "sha256:1")
        counts = STORE.counts_for(conn, scan.repository_id, [scan.manifest_digest])
    assert (pending.status, pending.findings, pending.scan_id) == ("pending", (), None)
    assert (never.status, never.findings) == ("not_scanned", ())
    assert counts == {}


def test_an_image_without_vulnerabilities_counts_zero(
    engine: Engine, driver: FilesystemDriver
) -> None:
    scan = scanned(engine, driver)  # an empty database
    with read_tx(engine) as conn:
        image = STORE.image_vulnerabilities(
            conn, scan.repository_id, scan.repository, scan.manifest_digest
        )
        counts = STORE.counts_for(conn, scan.repository_id, [scan.manifest_digest])
    assert (image.status, image.findings) == ("matched", ())
    assert counts == {scan.manifest_digest: Counts()}


class Broken(VulnerabilityService):
    """A database that fails while matching (`failures` times)."""

    def __init__(self, failures: int = 1) -> None:
        super().__init__()
        self.failures = failures

    def index_for(self, conn: Connection, packages: Any) -> PackageIndex:
        if self.failures > 0:
            self.failures -= 1
            raise RuntimeError("the vulnerability database went away")
        return super().index_for(conn, packages)


def test_a_matching_failure_keeps_the_scan_and_queues_a_retry(
    engine: Engine, driver: FilesystemDriver, bundles: tuple[Path, Path]
) -> None:
    Importer(engine).import_bundle(bundles[1], source="pypi")
    scan = scanned(engine, driver, Broken())  # asserts the scan succeeded
    assert [t for t, _ in outbox(engine)] == ["SCAN_COMPLETED"]
    with read_tx(engine) as conn:
        image = STORE.image_vulnerabilities(
            conn, scan.repository_id, scan.repository, scan.manifest_digest
        )
        components = conn.scalar(
            select(scan_components.c.name).where(scan_components.c.scan_id == scan.id).limit(1)
        )
    assert components is not None  # the scan's result committed
    assert image.status == "failed"
    assert image.error is not None
    assert "the vulnerability database went away" in image.error
    [retry] = queued(engine, MATCH_KIND)
    assert (retry.dedupe_key, json.loads(retry.payload)) == (
        match_dedupe_key(scan.id),
        {"scan_id": scan.id},
    )
    # The retry job matches it.
    MatchScan(engine, matcher())(job_context(retry.id, MATCH_KIND, {"scan_id": scan.id}))
    assert ids(engine, scan) == sorted(EXPECTED_IDS)
    with read_tx(engine) as conn:
        status = STORE.image_vulnerabilities(
            conn, scan.repository_id, scan.repository, scan.manifest_digest
        ).status
    assert status == "matched"


# --- re-matching after an import -----------------------------------------------------------------
def importer(engine: Engine) -> Importer:
    queue = SqlJobQueue(engine)

    def hook(conn: Connection, source: str, packages: frozenset[Package]) -> None:
        enqueue_rematch(queue, conn, source, packages)

    return Importer(engine, on_switch=hook)


def rematch(engine: Engine) -> None:
    """Run every queued vulns.rematch job, as a worker would."""
    handler = RematchImages(Rematcher(engine, matcher(), Outbox(SqlJobQueue(engine))))
    for job in queued(engine, REMATCH_KIND):
        if job.state == "queued":
            handler(job_context(job.id, REMATCH_KIND, json.loads(job.payload)))
            with write_tx(engine) as conn:
                conn.execute(jobs.update().where(jobs.c.id == job.id).values(state="succeeded"))


def test_a_newer_bundle_adds_exactly_its_advisory_without_reading_a_blob(
    engine: Engine, driver: FilesystemDriver, bundles: tuple[Path, Path], tmp_path: Path
) -> None:
    older, newer = bundles
    importer(engine).import_bundle(older, source="pypi")
    rematch(engine)  # nothing stored yet: it only announces the update
    scan = scanned(engine, driver)
    before = ids(engine, scan)
    assert before == sorted(set(EXPECTED_IDS) - {NEW})
    with write_tx(engine) as conn:
        conn.execute(event_outbox.delete())
    shutil.rmtree(tmp_path / "blobs")  # no layer, no blob: re-matching must not need them

    report = importer(engine).import_bundle(newer, source="pypi")
    assert report.changed_packages == {("PyPI", "urllib3")}
    [job] = [j for j in queued(engine, REMATCH_KIND) if j.state == "queued"]
    assert json.loads(job.payload) == {
        "source": "pypi",
        "part": 1,
        "parts": 1,
        "packages": [["PyPI", "urllib3"]],
    }
    rematch(engine)
    assert ids(engine, scan) == sorted(EXPECTED_IDS)
    [(found_type, found), (done_type, done)] = outbox(engine)
    assert found_type == "VULNERABILITY_FOUND"
    assert (found["repository"], found["digest"], found["tags"]) == (
        scan.repository,
        scan.manifest_digest,
        ["v1"],
    )
    assert found["count"] == 1
    [item] = found["vulnerabilities"]
    assert item["id"] == NEW
    assert "CVE-2023-45803" in item["aliases"]
    assert item["component"]["name"] == "urllib3"
    assert item["component"]["version"] == "1.24.1"
    assert item["bucket"] in ("critical", "major", "minor", "unknown")
    assert done_type == "SCANNER_UPDATE_COMPLETED"
    assert (done["images"], done["found"], done["resolved"], done["sources"]) == (1, 1, 0, ["pypi"])
    with read_tx(engine) as conn:
        image = STORE.image_vulnerabilities(
            conn, scan.repository_id, scan.repository, scan.manifest_digest
        )
    assert image.database_version == done["databaseVersion"]
    kept = {f.vuln_id: f.found_at for f in image.findings}

    # Importing the older bundle again takes the advisory back off: resolved.
    with write_tx(engine) as conn:
        conn.execute(event_outbox.delete())
    importer(engine).import_bundle(older, source="pypi")
    rematch(engine)
    assert ids(engine, scan) == before
    [(resolved_type, resolved), (_, done)] = outbox(engine)
    assert resolved_type == "VULNERABILITY_RESOLVED"
    assert [i["id"] for i in resolved["vulnerabilities"]] == [NEW]
    assert (done["found"], done["resolved"]) == (0, 1)
    with read_tx(engine) as conn:
        image = STORE.image_vulnerabilities(
            conn, scan.repository_id, scan.repository, scan.manifest_digest
        )
    # The findings that stayed are the same findings: found when they were first found.
    assert {f.vuln_id: f.found_at for f in image.findings} == {
        k: v for k, v in kept.items() if k != NEW
    }


def test_a_huge_update_is_split_into_bounded_jobs(engine: Engine) -> None:
    packages = {("npm", f"package-{i:06d}-{'x' * 40}") for i in range(3000)}
    with write_tx(engine) as conn:
        parts = enqueue_rematch(SqlJobQueue(engine), conn, "npm", packages)
    made = queued(engine, REMATCH_KIND)
    assert len(made) == parts > 1
    payloads = [json.loads(j.payload) for j in made]
    assert all(len(j.payload) < 64 * 1024 for j in made)
    assert {tuple(p) for payload in payloads for p in payload["packages"]} == packages
    assert {(p["part"], p["parts"]) for p in payloads} == {(i, parts) for i in range(1, parts + 1)}


def test_a_rescan_keeps_when_each_finding_was_found(
    engine: Engine, driver: FilesystemDriver, bundles: tuple[Path, Path]
) -> None:
    Importer(engine).import_bundle(bundles[0], source="pypi")
    first = scanned(engine, driver)
    store = ScanStore()
    with write_tx(engine) as conn:
        boms = store.boms(conn, first.id)
        again_id = store.create_scan(
            conn,
            first.repository_id,
            first.manifest_digest,
            job_id=None,
            trigger="rescan",
            force=True,
            requested_by=None,
        )
        again = store.get(conn, again_id)
        assert again is not None
        store.succeed(conn, again, boms, [])
    with read_tx(engine) as conn:
        before = STORE.image_vulnerabilities(
            conn, first.repository_id, first.repository, first.manifest_digest
        )
    Importer(engine).import_bundle(bundles[1], source="pypi")  # NEW is new to the rescan
    with write_tx(engine) as conn:
        assert matcher().match_scan(conn, again_id) is not None
    with read_tx(engine) as conn:
        after = STORE.image_vulnerabilities(
            conn, first.repository_id, first.repository, first.manifest_digest
        )
    assert (before.scan_id, after.scan_id) == (first.id, again_id)
    old = {f.vuln_id: f.found_at for f in before.findings}
    new = {f.vuln_id: f.found_at for f in after.findings}
    assert set(new) == set(old) | {NEW}
    assert {k: v for k, v in new.items() if k != NEW} == old
    assert new[NEW] is not None
    assert all(new[NEW] > moment for moment in old.values() if moment is not None)


def test_on_postgresql_a_switch_waits_for_a_match_that_read_the_old_generation(
    engine: Engine, driver: FilesystemDriver, bundles: tuple[Path, Path]
) -> None:
    """Else its re-match could run before the match commits, and the match would store what
    the old generation said."""
    if engine.dialect.name != "postgresql":
        pytest.skip("SQLite runs one writer at a time")
    older, newer = bundles
    importer(engine).import_bundle(older, source="pypi")
    scan = queued_scan(engine, driver, LAYER)
    ScanImage(engine, driver, Outbox(None), progress_seconds=60)(context(scan))  # not matched
    holding, go = threading.Event(), threading.Event()
    errors: list[BaseException] = []

    def match_slowly() -> None:
        try:
            with write_tx(engine) as conn:
                matcher().match_scan(conn, scan.id)  # reads the older generation
                holding.set()
                go.wait(60)
        except BaseException as error:
            errors.append(error)
            holding.set()

    def switch() -> None:
        try:
            importer(engine).import_bundle(newer, source="pypi")
        except BaseException as error:
            errors.append(error)

    matching = threading.Thread(target=match_slowly)
    matching.start()
    assert holding.wait(60)
    importing = threading.Thread(target=switch)
    importing.start()

    def switch_waits() -> bool:
        with read_tx(engine) as conn:
            waiting = conn.exec_driver_sql(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
            ).scalar()
        return bool(waiting)

    deadline = time.monotonic() + 60
    while not switch_waits():
        assert importing.is_alive(), "the switch did not wait for the match in progress"
        assert time.monotonic() < deadline
        time.sleep(0.05)
    go.set()
    matching.join(60)
    importing.join(60)
    assert errors == []
    rematch(engine)
    assert ids(engine, scan) == sorted(EXPECTED_IDS)
    found = [t for t, _ in outbox(engine) if t.startswith("VULNERABILITY_")]
    assert found == ["VULNERABILITY_FOUND"]
