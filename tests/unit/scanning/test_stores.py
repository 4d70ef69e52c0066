"""The scanning domain's SQL (layer cache, scans, component index) and the service over it,
on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, func, select

from tests.support.databases import empty, migrated_engine
from trustyard.content.interfaces import ManifestRecord
from trustyard.content.manifests import FACT_REPOSITORY_ID, FACT_SCAN_ON_PUSH, FACT_SCANNABLE
from trustyard.content.stores import ContentStore
from trustyard.db.engine import read_tx, write_tx
from trustyard.db.tables import (
    jobs,
    manifest_references,
    manifests,
    repositories,
    scan_components,
    scan_layers,
    scans,
    tags,
)
from trustyard.events.model import Event, manifest_pushed
from trustyard.jobs.queue import SqlJobQueue
from trustyard.oci import mediatypes as mt
from trustyard.oci.digest import digest_bytes
from trustyard.scanning.jobs import DatabaseLayerCache
from trustyard.scanning.model import Component, Distro, LayerScan
from trustyard.scanning.service import (
    SCAN_KIND,
    NoScan,
    NotAnImage,
    ScanNotReady,
    ScanService,
    Target,
)
from trustyard.scanning.stores import ScanStore, pack, unpack

TABLES = (scan_components, scans, scan_layers, tags, manifest_references, manifests, jobs)
TABLES_AND_REPOSITORIES = (*TABLES, repositories)
VERSION = "test-1"
CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_MANIFEST_TYPE = "application/vnd.oci.image.manifest.v1+json"


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def db_engine(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Engine]:
    with migrated_engine(request, tmp_path_factory, request.param) as engine:
        yield engine


@pytest.fixture
def engine(db_engine: Engine) -> Engine:
    return empty(db_engine, TABLES_AND_REPOSITORIES)


def component(name: str, version: str = "1.0", where: str = "usr/lib/x/METADATA") -> Component:
    return Component("pypi", name, version, f"pkg:pypi/{name}@{version}", (where,), "python")


def layer_scan(digest: str, *components: Component) -> LayerScan:
    return LayerScan(
        digest,
        "application/vnd.oci.image.layer.v1.tar+gzip",
        components=list(components),
        whiteouts=["etc/gone"],
        distro=Distro("debian", "12", "Debian GNU/Linux 12 (bookworm)"),
        files=3,
        uncompressed_bytes=1234,
        notes=["a note"],
    )


def image_payload(label: str) -> bytes:
    layer = digest_bytes(label.encode())
    document = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": CONFIG, "digest": str(digest_bytes(b"{}")), "size": 2},
        "layers": [
            {
                "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                "digest": str(layer),
                "size": 10,
            }
        ],
    }
    return json.dumps(document).encode()


def add_manifest(engine: Engine, repository: str, payload: bytes, tag: str | None = None) -> str:
    store = ContentStore()
    digest = str(digest_bytes(payload))
    with write_tx(engine) as conn:
        repository_id = store.ensure_repository(conn, repository)
        record = ManifestRecord(digest, "application/vnd.oci.image.manifest.v1+json", payload)
        manifest_id = store.insert_manifest(conn, repository_id, record, None, None, [])
        if tag is not None:
            store.set_tag(conn, repository_id, tag, manifest_id)
    return digest


def target(engine: Engine, service: ScanService, repository: str, reference: str) -> Target:
    with read_tx(engine) as conn:
        return service.target(conn, repository, reference)


def service_for(engine: Engine) -> ScanService:
    return ScanService(SqlJobQueue(engine))


# --- the layer cache ---------------------------------------------------------------------------
def test_a_cached_layer_comes_back_as_it_was_stored(engine: Engine) -> None:
    stored = layer_scan("sha256:" + "a" * 64, component("requests", "2.31.0"))
    store = ScanStore()
    with write_tx(engine) as conn:
        store.put_layer(conn, stored.digest, VERSION, scan=stored, duration=0.5)
    with read_tx(engine) as conn:
        assert store.cached_layer(conn, stored.digest, VERSION) == stored
        assert store.cached_layer(conn, stored.digest, "another-version") is None
        assert store.cached_layer(conn, "sha256:" + "b" * 64, VERSION) is None
        row = store.layer_row(conn, stored.digest)
    assert row is not None
    assert (row.status, row.scanner_version, row.duration_seconds) == ("succeeded", VERSION, 0.5)


def test_a_refused_layer_is_recorded_but_never_served_from_the_cache(engine: Engine) -> None:
    digest = "sha256:" + "c" * 64
    store = ScanStore()
    with write_tx(engine) as conn:
        store.put_layer(conn, digest, VERSION, scan=None, error="path escapes the layer")
    with read_tx(engine) as conn:
        assert store.cached_layer(conn, digest, VERSION) is None
        row = store.layer_row(conn, digest)
    assert row is not None
    assert (row.status, row.error) == ("failed", "path escapes the layer")
    rescanned = layer_scan(digest)
    with write_tx(engine) as conn:  # a later success replaces the failure (one row per layer)
        store.put_layer(conn, digest, VERSION, scan=rescanned)
    with read_tx(engine) as conn:
        assert store.cached_layer(conn, digest, VERSION) == rescanned
        assert conn.scalar(select(func.count()).select_from(scan_layers)) == 1


def test_a_forced_cache_reads_every_layer_once_per_scan(engine: Engine) -> None:
    stored = layer_scan("sha256:" + "d" * 64, component("six"))
    DatabaseLayerCache(engine, version=VERSION).put(stored)
    assert DatabaseLayerCache(engine, version=VERSION).get(stored.digest) == stored
    forced = DatabaseLayerCache(engine, force=True, version=VERSION)
    assert forced.get(stored.digest) is None  # read it again...
    fresh = layer_scan(stored.digest, component("six", "1.16.0"))
    forced.put(fresh)
    assert forced.get(stored.digest) == fresh  # ...once: another platform reuses it


@settings(max_examples=30, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    names=st.lists(st.text(min_size=1, max_size=40), max_size=5),
    paths=st.lists(st.text(max_size=80), max_size=5),
)
def test_packed_layer_results_round_trip(names: list[str], paths: list[str]) -> None:
    scan = LayerScan(
        "sha256:" + "e" * 64,
        "m",
        components=[
            component(name, where=path or "x") for name, path in zip(names, paths, strict=False)
        ],
        whiteouts=paths,
    )
    assert LayerScan.from_json(unpack(pack(scan.to_json()))) == scan


# --- scans ---------------------------------------------------------------------------------------
def pushed_event(
    repository: str,
    digest: str,
    repository_id: int,
    actor: str | None,
    scan_on_push: bool,
    scannable: bool,
) -> Event:
    """The MANIFEST_PUSH event a push publishes, with the facts content gives it."""
    facts = {
        FACT_REPOSITORY_ID: repository_id,
        FACT_SCAN_ON_PUSH: scan_on_push,
        FACT_SCANNABLE: scannable,
    }
    return manifest_pushed(repository, digest, mt.OCI_MANIFEST, 100, actor, facts=facts)


def test_a_push_of_an_image_queues_one_scan_and_its_job(engine: Engine) -> None:
    service = service_for(engine)
    digest = add_manifest(engine, "acme/app", image_payload("one"))
    with read_tx(engine) as conn:
        repository_id = ContentStore().repository_id(conn, "acme/app")
    assert repository_id is not None
    pushed = pushed_event("acme/app", digest, repository_id, "wanda", True, True)
    with write_tx(engine) as conn:
        service.consume(conn, [pushed])
        service.consume(conn, [pushed])  # one live scan per manifest
    with read_tx(engine) as conn:
        scan = ScanStore().latest(conn, repository_id, digest)
        queued = conn.execute(select(jobs.c.id, jobs.c.kind, jobs.c.payload)).all()
        count = conn.scalar(select(func.count()).select_from(scans))
    assert count == 1
    assert scan is not None
    assert (scan.status, scan.trigger, scan.requested_by, scan.force) == (
        "queued",
        "push",
        "wanda",
        False,
    )
    assert [(row.id, row.kind) for row in queued] == [(scan.job_id, SCAN_KIND)]
    assert json.loads(queued[0].payload) == {"repository_id": repository_id, "digest": digest}


@pytest.mark.parametrize(
    ("scan_on_push", "scannable"), [(False, True), (True, False), (False, False)]
)
def test_no_scan_on_push_for_artifacts_or_where_the_repository_says_no(
    engine: Engine, scan_on_push: bool, scannable: bool
) -> None:
    digest = add_manifest(engine, "acme/quiet", image_payload("quiet"))
    with read_tx(engine) as conn:
        repository_id = ContentStore().repository_id(conn, "acme/quiet")
    assert repository_id is not None
    pushed = pushed_event("acme/quiet", digest, repository_id, None, scan_on_push, scannable)
    with write_tx(engine) as conn:
        service_for(engine).consume(conn, [pushed])
    with read_tx(engine) as conn:
        assert conn.scalar(select(func.count()).select_from(scans)) == 0
        assert conn.scalar(select(func.count()).select_from(jobs)) == 0
        assert ScanStore().latest(conn, repository_id, digest) is None


def test_a_request_while_a_scan_is_live_returns_that_scan_and_later_ones_are_rescans(
    engine: Engine,
) -> None:
    service = service_for(engine)
    add_manifest(engine, "acme/app", image_payload("two"), tag="v2")
    wanted = target(engine, service, "acme/app", "v2")
    with write_tx(engine) as conn:
        first = service.request(conn, wanted, requested_by="wanda")
        again = service.request(conn, wanted, force=True, requested_by="olga")
    assert again.id == first.id
    assert first.trigger == "request"
    with write_tx(engine) as conn:  # the job ends: the next request is a new scan
        ScanStore().fail(conn, first.id, "boom")
        conn.execute(jobs.update().values(state="failed"))
        rescan = service.request(conn, wanted, force=True, requested_by="olga")
    assert rescan.id != first.id
    assert (rescan.trigger, rescan.force, rescan.status) == ("rescan", True, "queued")
    with read_tx(engine) as conn:
        assert service.latest(conn, wanted).id == rescan.id


@pytest.mark.parametrize("ended", ["dead", "cancelled", "removed"])
def test_a_scan_whose_job_gave_up_reads_as_failed_and_says_why(engine: Engine, ended: str) -> None:
    # A worker killed at the job's last attempt (reaped as dead), an admin's cancel, or the
    # job's row pruned: the handler never recorded an end, the scan must not stay "queued".
    service = service_for(engine)
    add_manifest(engine, "acme/app", image_payload(f"gave-up-{ended}"), tag=ended)
    wanted = target(engine, service, "acme/app", ended)
    with write_tx(engine) as conn:
        scan = service.request(conn, wanted, requested_by="wanda")
        assert scan.status == "queued"
        ScanStore().start(conn, scan.id)
        if ended == "removed":
            conn.execute(jobs.delete().where(jobs.c.id == scan.job_id))
        else:
            conn.execute(jobs.update().where(jobs.c.id == scan.job_id).values(state=ended))
    with read_tx(engine) as conn:
        seen = service.latest(conn, wanted)
    assert (seen.id, seen.status) == (scan.id, "failed")
    assert seen.error == (
        f"the scan's job ended ({ended}) before the scan finished; ask for a new scan"
    )
    with write_tx(engine) as conn:  # and a new request starts a new scan
        assert service.request(conn, wanted).id != scan.id


def test_the_bom_is_served_only_from_a_succeeded_scan(engine: Engine) -> None:
    service, store = service_for(engine), ScanStore()
    add_manifest(engine, "acme/app", image_payload("three"), tag="v3")
    wanted = target(engine, service, "acme/app", "v3")
    with read_tx(engine) as conn, pytest.raises(NoScan, match="has not been scanned"):
        service.boms(conn, wanted)
    with write_tx(engine) as conn:
        scan = service.request(conn, wanted)
    with read_tx(engine) as conn, pytest.raises(ScanNotReady, match="is queued"):
        service.boms(conn, wanted)
    with write_tx(engine) as conn:
        store.start(conn, scan.id)
        store.progress(conn, scan.id, 5, 10, 1, 2)
    with read_tx(engine) as conn:
        running = service.latest(conn, wanted)
    assert (running.status, running.bytes_done, running.bytes_total) == ("running", 5, 10)
    assert (running.layers_done, running.layers_total) == (1, 2)
    boms = [{"manifest_digest": wanted.digest, "platform": "linux/amd64", "layers": []}]
    with write_tx(engine) as conn:
        store.succeed(conn, scan, boms, [])
    with read_tx(engine) as conn:
        done, served = service.boms(conn, wanted)
    assert (done.id, done.status, done.bytes_done, done.layers_done) == (
        scan.id,
        "succeeded",
        10,
        2,
    )
    assert served == boms
    with write_tx(engine) as conn:  # a rescan that fails keeps the last good BOM available
        conn.execute(jobs.update().values(state="succeeded"))
        failed = service.request(conn, wanted)
        store.fail(conn, failed.id, "a layer escapes")
    with read_tx(engine) as conn:
        assert service.latest(conn, wanted).error == "a layer escapes"
        assert service.boms(conn, wanted)[0].id == scan.id


def test_an_artifact_is_not_scannable(engine: Engine) -> None:
    service = service_for(engine)
    document = json.loads(image_payload("sbom"))
    document["artifactType"] = "application/spdx+json"
    add_manifest(engine, "acme/app", json.dumps(document).encode(), tag="sbom")
    add_manifest(engine, "acme/app", image_payload("image"), tag="image")
    service.check_scannable(target(engine, service, "acme/app", "image"))
    with pytest.raises(NotAnImage, match="not a container image"):
        service.check_scannable(target(engine, service, "acme/app", "sbom"))


# --- the component index -------------------------------------------------------------------------
def succeed_with(engine: Engine, repository: str, label: str, names: list[str]) -> Target:
    service, store = service_for(engine), ScanStore()
    add_manifest(engine, repository, image_payload(label), tag=label)
    wanted = target(engine, service, repository, label)
    with write_tx(engine) as conn:
        conn.execute(jobs.update().values(state="succeeded"))
        scan = service.request(conn, wanted)
        rows = [
            {
                "platform": "linux/amd64",
                "ecosystem": "pypi",
                "name": name,
                "version": "1.0",
                "purl": f"pkg:pypi/{name}@1.0",
                "layer_digest": "sha256:" + "f" * 64,
                "location": f"usr/lib/{name}/METADATA",
            }
            for name in names
        ]
        store.succeed(conn, scan, [], rows)
    return wanted


def search(
    engine: Engine, may_read: set[str] | None = None, limit: int = 100, after: int = 0, **by: str
) -> tuple[list[tuple[str, str, list[str]]], int | None]:
    service = service_for(engine)
    filters: dict[str, str | None] = {"name": None, "version": None, "ecosystem": None}
    filters["purl"] = None
    filters.update(by)
    with read_tx(engine) as conn:
        page, following = service.search(
            conn,
            lambda name: may_read is None or name in may_read,
            after=after,
            limit=limit,
            **filters,
        )
    return [(row.repository, row.name, tags) for row, tags in page], following


def test_the_search_finds_images_by_name_version_or_purl_with_their_tags(engine: Engine) -> None:
    succeed_with(engine, "acme/app", "one", ["openssl", "zlib"])
    succeed_with(engine, "acme/other", "two", ["openssl"])
    found, following = search(engine, name="openssl")
    assert sorted(found) == [("acme/app", "openssl", ["one"]), ("acme/other", "openssl", ["two"])]
    assert following is None
    assert search(engine, name="openssl", version="2.0")[0] == []
    assert search(engine, purl="pkg:pypi/zlib@1.0")[0] == [("acme/app", "zlib", ["one"])]
    assert search(engine, name="zlib", ecosystem="deb")[0] == []


def test_the_search_skips_repositories_the_caller_may_not_read_and_pages(engine: Engine) -> None:
    for index in range(5):
        succeed_with(engine, f"acme/r{index}", f"t{index}", ["openssl"])
    readable = {"acme/r1", "acme/r3", "acme/r4"}
    first, following = search(engine, readable, limit=2, name="openssl")
    assert [repository for repository, _, _ in first] == ["acme/r1", "acme/r3"]
    assert following is not None
    rest, end = search(engine, readable, limit=2, after=following, name="openssl")
    assert [repository for repository, _, _ in rest] == ["acme/r4"]
    assert end is None


def test_a_rescan_replaces_the_components_and_a_deleted_manifest_leaves_the_search(
    engine: Engine,
) -> None:
    wanted = succeed_with(engine, "acme/app", "one", ["openssl", "zlib"])
    service, store = service_for(engine), ScanStore()
    with write_tx(engine) as conn:
        conn.execute(jobs.update().values(state="succeeded"))
        scan = service.request(conn, wanted)
        store.succeed(conn, scan, [], [])
    assert search(engine, name="openssl")[0] == []
    succeed_with(engine, "acme/gone", "g", ["openssl"])
    assert len(search(engine, name="openssl")[0]) == 1
    with write_tx(engine) as conn:
        ContentStore().delete_manifest(conn, "acme/gone", str(digest_bytes(image_payload("g"))))
    assert search(engine, name="openssl")[0] == []


def test_values_longer_than_their_columns_are_cut_to_fit(engine: Engine) -> None:
    long_name = "n" * 600 + uuid.uuid4().hex
    succeed_with(engine, "acme/app", "long", [long_name])
    found, _ = search(engine, name=long_name[:512])
    assert [name for _, name, _ in found] == [long_name[:512]]


# --- retention -----------------------------------------------------------------------------------
def test_pruning_keeps_each_manifests_latest_scan_and_the_current_layer_cache(
    engine: Engine,
) -> None:
    store, service = ScanStore(), service_for(engine)
    old_scan = succeed_with(engine, "acme/prune", "v1", ["flask"])
    only_scan = succeed_with(engine, "acme/prune", "v2", ["six"])
    with write_tx(engine) as conn:  # a rescan supersedes the first scan of v1
        conn.execute(jobs.update().values(state="succeeded"))
        first = service.latest(conn, old_scan)
        second = service.request(conn, old_scan)
        store.succeed(conn, second, [], [])
        alone = service.latest(conn, only_scan)
        long_ago = datetime.now(UTC) - timedelta(days=90)
        conn.execute(scans.update().values(finished_at=long_ago))
        for digest, version in (("a", VERSION), ("b", "trustyard-scan-older"), ("c", VERSION)):
            scanned = layer_scan("sha256:" + digest * 64, component(digest))
            store.put_layer(conn, scanned.digest, version, scan=scanned, duration=0.1)
    cutoff = datetime.now(UTC) - timedelta(days=30)
    with write_tx(engine) as conn:
        assert store.prune(conn, cutoff, VERSION, batch=1) == 2  # one of each kind per batch
        assert store.prune(conn, cutoff, VERSION) == 0
    with read_tx(engine) as conn:
        left = set(conn.scalars(select(scans.c.id)).all())
        cached = set(conn.scalars(select(scan_layers.c.digest)).all())
        components = set(conn.scalars(select(scan_components.c.scan_id)).all())
    assert first.id not in left
    assert {second.id, alone.id} <= left  # the latest of each manifest, however old
    assert cached == {"sha256:" + "a" * 64, "sha256:" + "c" * 64}
    assert first.id not in components
    assert alone.id in components
