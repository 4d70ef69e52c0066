"""The `scan.image` job handler over a real database (SQLite and PostgreSQL) and a real
filesystem blob store: success, refusal, passing failures and retries, idempotence."""

from __future__ import annotations

import gzip
import io
import json
import logging
import re
import tarfile
import threading
import time
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, event, select, update

from tests.support.databases import empty, migrated_engine
from trustyard.content.interfaces import ManifestRecord
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
)
from trustyard.events.outbox import Outbox
from trustyard.jobs.admin import JobAdmin
from trustyard.jobs.interfaces import JobContext, JobState, PermanentJobError
from trustyard.jobs.queue import SqlJobQueue
from trustyard.jobs.registry import HandlerRegistry
from trustyard.jobs.runner import Worker
from trustyard.oci.digest import digest_bytes
from trustyard.scanning.compact import compact_boms, read_compact
from trustyard.scanning.interfaces import Limits
from trustyard.scanning.jobs import DatabaseLayerCache, ScanImage
from trustyard.scanning.model import ScanRefused
from trustyard.scanning.scanner import Scanner
from trustyard.scanning.service import ScanService, Target
from trustyard.scanning.stores import ScanRecord, ScanStore
from trustyard.storage.filesystem import FilesystemDriver

TABLES = (
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
)
METADATA = b"Metadata-Version: 2.1\nName: jobpkg\nVersion: 2.0\n"


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


def store_blob(driver: FilesystemDriver, data: bytes) -> str:
    digest = digest_bytes(data)
    path = driver.blob_path(digest)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return str(digest)


def layer_bytes(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return gzip.compress(buffer.getvalue(), mtime=0)


def queued_scan(
    engine: Engine, driver: FilesystemDriver, layer: bytes, repository: str = "acme/app"
) -> ScanRecord:
    """An image in `repository` whose scan was requested (its job queued)."""
    config = json.dumps({"architecture": "amd64", "os": "linux"}).encode()
    layer_digest, config_digest = store_blob(driver, layer), store_blob(driver, config)
    document = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": config_digest,
            "size": len(config),
        },
        "layers": [
            {
                "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                "digest": layer_digest,
                "size": len(layer),
            }
        ],
    }
    payload = json.dumps(document).encode()
    digest = str(digest_bytes(payload))
    content = ContentStore()
    with write_tx(engine) as conn:
        repository_id = content.ensure_repository(conn, repository)
        record = ManifestRecord(digest, document["mediaType"], payload)  # type: ignore[arg-type]
        content.insert_manifest(conn, repository_id, record, None, None, [])
        target = Target(repository, repository_id, digest, record.media_type, payload)
        return ScanService(SqlJobQueue(engine)).request(conn, target, requested_by="wanda")


def context(scan: ScanRecord, attempt: int = 1, max_attempts: int = 3) -> JobContext:
    assert scan.job_id is not None
    return JobContext(scan.job_id, "scan.image", {}, attempt, max_attempts, "test-worker")


def current(engine: Engine, scan: ScanRecord) -> ScanRecord:
    with read_tx(engine) as conn:
        found = ScanStore().get(conn, scan.id)
    assert found is not None
    return found


def outbox_types(engine: Engine) -> list[str]:
    with read_tx(engine) as conn:
        return list(conn.scalars(select(event_outbox.c.type).order_by(event_outbox.c.id)))


def handler(engine: Engine, driver: FilesystemDriver, **options: Any) -> ScanImage:
    return ScanImage(engine, driver, Outbox(None), progress_seconds=0.01, **options)


def test_a_scan_runs_records_its_bom_components_and_event(
    engine: Engine, driver: FilesystemDriver
) -> None:
    where = "usr/lib/python3/dist-packages/jobpkg-2.0.dist-info/METADATA"
    scan = queued_scan(engine, driver, layer_bytes({where: METADATA}))
    handler(engine, driver)(context(scan))
    done = current(engine, scan)
    assert (done.status, done.error, done.layers_done, done.layers_total) == (
        "succeeded",
        None,
        1,
        1,
    )
    assert done.started_at is not None
    assert done.finished_at is not None
    with read_tx(engine) as conn:
        [bom] = ScanStore().boms(conn, scan.id)
        rows = conn.execute(select(scan_components.c.name, scan_components.c.location)).all()
        # the list policies read is stored with the BOMs, which they then never decode
        listed, unread = ScanStore().compact_components_of(conn, [scan.id])[scan.id]
    with write_tx(engine) as conn:  # as a scan stored before migration 0012
        conn.execute(update(scans).where(scans.c.id == scan.id).values(components=None))
        fallback = ScanStore().compact_components_of(conn, [scan.id])[scan.id]
    assert unread is None
    assert listed is not None
    assert [item[1:3] for item in read_compact(listed)] == [("jobpkg", "2.0")]
    assert fallback[0] is None  # an older scan: read from its BOMs
    assert fallback[1] is not None
    assert read_compact(compact_boms(zlib.decompress(fallback[1]))) == read_compact(listed)
    assert bom["platform"] == "linux/amd64"
    assert [(c["name"], c["version"]) for c in bom["components"]] == [("jobpkg", "2.0")]
    assert [tuple(row) for row in rows] == [("jobpkg", where)]
    assert outbox_types(engine) == ["SCAN_COMPLETED"]
    # Run again (at least once delivery): nothing changes, no second event.
    handler(engine, driver)(context(scan))
    assert current(engine, scan) == done
    assert outbox_types(engine) == ["SCAN_COMPLETED"]


def test_a_scan_of_cached_layers_writes_once_and_still_reports_its_totals(
    engine: Engine, driver: FilesystemDriver
) -> None:
    """The push path shares SQLite's one writer with scans: an image whose layers were all
    read before (a re-tag, a rebuild on the same base) costs one write, its result."""
    layer = layer_bytes({"etc/hostname": b"box\n"})
    handler(engine, driver)(context(queued_scan(engine, driver, layer)))
    again = queued_scan(engine, driver, layer, repository="acme/other")
    commits: list[str] = []

    def count(conn: Any) -> None:
        if conn.get_execution_options().get("trustyard_write"):  # write_tx, not read_tx
            commits.append("commit")

    event.listen(engine, "commit", count)
    try:
        handler(engine, driver)(context(again))
    finally:
        event.remove(engine, "commit", count)
    assert len(commits) == 1
    done = current(engine, again)
    assert (done.status, done.layers_done, done.layers_total) == ("succeeded", 1, 1)
    assert done.bytes_done == done.bytes_total == len(layer)
    assert done.started_at is not None
    assert done.finished_at is not None
    assert done.started_at <= done.finished_at


def test_a_refused_layer_fails_the_scan_for_good(engine: Engine, driver: FilesystemDriver) -> None:
    scan = queued_scan(engine, driver, layer_bytes({"../../etc/evil": b"x"}))
    with pytest.raises(PermanentJobError, match="scan refused"):
        handler(engine, driver)(context(scan))
    failed = current(engine, scan)
    assert failed.status == "failed"
    assert failed.error is not None
    assert ".." in failed.error
    assert outbox_types(engine) == ["SCAN_FAILED"]


class Flaky:
    """A scanner that fails the first `failures` times with a passing error."""

    def __init__(self, failures: int) -> None:
        self.failures = failures

    def __call__(self, cache: DatabaseLayerCache) -> Scanner:
        flaky = self

        class FlakyScanner(Scanner):
            def scan_image(self, *args: Any, **kwargs: Any) -> Any:
                if flaky.failures > 0:
                    flaky.failures -= 1
                    raise ConnectionError("storage went away")
                return super().scan_image(*args, **kwargs)

        return FlakyScanner(cache=cache)


def test_a_passing_failure_requeues_the_scan_and_the_retry_finishes_it(
    engine: Engine, driver: FilesystemDriver
) -> None:
    scan = queued_scan(engine, driver, layer_bytes({"etc/hostname": b"box\n"}))
    run = handler(engine, driver, scanner=Flaky(1))
    with pytest.raises(ConnectionError):
        run(context(scan, attempt=1))
    again = current(engine, scan)
    assert (again.status, again.error) == (
        "queued",
        "attempt 1 failed: ConnectionError: storage went away",
    )
    run(context(scan, attempt=2))
    assert current(engine, scan).status == "succeeded"
    assert outbox_types(engine) == ["SCAN_COMPLETED"]


def test_the_last_attempt_fails_the_scan(engine: Engine, driver: FilesystemDriver) -> None:
    scan = queued_scan(engine, driver, layer_bytes({"etc/hostname": b"box\n"}))
    with pytest.raises(ConnectionError):
        handler(engine, driver, scanner=Flaky(5))(context(scan, attempt=3, max_attempts=3))
    failed = current(engine, scan)
    assert failed.status == "failed"
    assert failed.error == "gave up after 3 attempts: ConnectionError: storage went away"
    assert outbox_types(engine) == ["SCAN_FAILED"]


def test_a_manifest_deleted_before_its_scan_ends_the_job_quietly(
    engine: Engine, driver: FilesystemDriver, caplog: pytest.LogCaptureFixture
) -> None:
    """A normal outcome, not a failure: the scan goes, its job succeeds, nothing is logged
    above DEBUG and no SCAN_FAILED event is sent (MANIFEST_DELETED says what happened)."""
    scan = queued_scan(engine, driver, layer_bytes({"etc/hostname": b"box\n"}))
    assert scan.job_id is not None
    with write_tx(engine) as conn:
        ContentStore().delete_manifest(conn, "acme/app", scan.manifest_digest)
    handlers = HandlerRegistry()
    handlers.register("scan.image", handler(engine, driver))
    worker = Worker(SqlJobQueue(engine), handlers, poll_seconds=0.05)
    caplog.set_level(logging.INFO)
    thread = threading.Thread(target=worker.run)
    thread.start()
    try:
        deadline = time.monotonic() + 60
        while job_state(engine, scan.job_id) in (JobState.QUEUED, JobState.RUNNING):
            assert time.monotonic() < deadline, "the scan job never ended"
            time.sleep(0.02)
    finally:
        worker.request_stop()
        thread.join(60)
    assert job_state(engine, scan.job_id) is JobState.SUCCEEDED
    with read_tx(engine) as conn:
        assert ScanStore().get(conn, scan.id) is None
    assert outbox_types(engine) == []
    loud = [r for r in caplog.records if r.name.startswith("trustyard.scanning")]
    assert loud == []
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == []


def job_state(engine: Engine, job_id: int) -> JobState:
    with read_tx(engine) as conn:
        return JobAdmin().get(conn, job_id).job.state


def test_a_missing_layer_blob_is_refused(engine: Engine, driver: FilesystemDriver) -> None:
    layer = layer_bytes({"etc/hostname": b"box\n"})
    scan = queued_scan(engine, driver, layer)
    assert driver.delete(digest_bytes(layer))
    with pytest.raises(PermanentJobError, match="not in the registry's storage"):
        handler(engine, driver)(context(scan))
    assert current(engine, scan).status == "failed"


def test_scan_refused_is_what_the_registry_source_raises_for_bad_digests(
    engine: Engine, driver: FilesystemDriver
) -> None:
    from trustyard.scanning.registry_source import RegistrySource

    source = RegistrySource(engine, driver, 1, "sha256:" + "0" * 64, b"{}")
    with pytest.raises(ScanRefused, match="invalid digest"):
        source.open_blob("not a digest")
    assert source.has_blob("not a digest") is False


def test_a_repository_deleted_during_its_scan_leaves_nothing_behind(
    engine: Engine, driver: FilesystemDriver
) -> None:
    scan = queued_scan(engine, driver, layer_bytes({"etc/hostname": b"box\n"}))

    def deleting(cache: DatabaseLayerCache) -> Scanner:
        class Deleting(Scanner):
            def scan_image(self, *args: Any, **kwargs: Any) -> Any:
                found = super().scan_image(*args, **kwargs)
                with write_tx(engine) as conn:
                    conn.execute(repositories.delete())
                return found

        return Deleting(cache=cache)

    handler(engine, driver, scanner=deleting)(context(scan))
    with read_tx(engine) as conn:
        assert ScanStore().get(conn, scan.id) is None
        assert conn.execute(select(scan_components)).first() is None
    assert outbox_types(engine) == []


def python_dists(count: int) -> dict[str, bytes]:
    return {
        f"usr/lib/python3/dist-packages/p{index}-1.0.dist-info/METADATA": (
            b"Metadata-Version: 2.1\nName: p%d\nVersion: 1.0\n" % index
        )
        for index in range(count)
    }


def test_an_image_past_the_component_limit_fails_its_scan_naming_it(
    engine: Engine, driver: FilesystemDriver
) -> None:
    scan = queued_scan(engine, driver, layer_bytes(python_dists(11)))
    limits = Limits(max_image_components=10)
    with pytest.raises(PermanentJobError, match="scan refused"):
        handler(engine, driver, limits=limits)(context(scan))
    failed = current(engine, scan)
    assert (failed.status, failed.error) == (
        "failed",
        "the image linux/amd64 has more than 10 components (the max_image_components limit)",
    )
    assert outbox_types(engine) == ["SCAN_FAILED"]


def test_a_bom_past_the_stored_size_limit_fails_its_scan_naming_it(
    engine: Engine, driver: FilesystemDriver
) -> None:
    scan = queued_scan(engine, driver, layer_bytes(python_dists(11)))
    with pytest.raises(PermanentJobError, match="scan refused"):
        handler(engine, driver, limits=Limits(max_bom_bytes=2048))(context(scan))
    failed = current(engine, scan)
    assert failed.status == "failed"
    assert failed.error is not None
    assert re.fullmatch(
        r"the scan's BOM is \d{4,} bytes, more than 2048 \(the max_bom_bytes limit\)",
        failed.error,
    ), failed.error
    with read_tx(engine) as conn:
        assert conn.scalar(select(scans.c.boms).where(scans.c.id == scan.id)) is None
        assert conn.execute(select(scan_components)).first() is None
