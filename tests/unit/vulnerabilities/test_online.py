"""The online update against a real HTTP server on loopback (http.server in a thread): the
first fetch imports, the next asks with If-None-Match / If-Modified-Since and a 304 changes
nothing, a download cut off resumes with Range / If-Range (a changed bundle starts again), a
corrupt or truncated bundle and an HTTP error are recorded on the source and keep its
records, a bundle over the size limit stops early; the `vulndb.update` job through its
handler; which ecosystems the registry has seen (SQLite and PostgreSQL)."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from datetime import UTC, datetime
from email.utils import format_datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, insert, select

from tests.support.databases import empty, migrated_engine
from tests.support.osv_server import Bundle, Served, serve_bundles, zipped
from tests.unit.vulnerabilities.fixture_db import VULNDB
from trustyard.config import Settings, VulnerabilitiesSettings
from trustyard.db.engine import read_tx, write_tx
from trustyard.db.tables import (
    repositories,
    scan_components,
    scans,
    vuln_affected,
    vuln_records,
    vuln_sources,
)
from trustyard.jobs.interfaces import JobContext, PermanentJobError
from trustyard.jobs.queue import SqlJobQueue
from trustyard.scanning.stores import ScanStore
from trustyard.vulnerabilities.bundles import BundleLimits
from trustyard.vulnerabilities.importer import Importer
from trustyard.vulnerabilities.interfaces import BundleInvalid
from trustyard.vulnerabilities.jobs import (
    UPDATE_DEDUPE_KEY,
    UPDATE_KIND,
    UpdateDatabase,
    UpdateFailed,
    update_schedule,
)
from trustyard.vulnerabilities.online import (
    OnlineUpdater,
    UpdateConfig,
    _stem,
    default_sources,
    ecosystems_of,
    source_name_of,
)
from trustyard.vulnerabilities.stores import VulnStore
from trustyard.wiring.jobs import make_handlers
from trustyard.wiring.vulnerabilities import make_importer

pytestmark = pytest.mark.xdist_group("vulndb-online")


@pytest.fixture(scope="module")
def http() -> Iterator[tuple[str, Served]]:
    with serve_bundles() as served:
        yield served


# --- bundles from the shared fixture ------------------------------------------------------------
def records(folder: str, count: int) -> dict[str, bytes]:
    paths = sorted((VULNDB / folder).glob("*.json"))[:count]
    assert len(paths) == count, f"the fixture has fewer than {count} {folder} records"
    return {p.name: p.read_bytes() for p in paths}


@pytest.fixture(scope="module", params=["sqlite"])
def engine(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Engine]:
    with migrated_engine(request, tmp_path_factory, request.param) as engine:
        yield engine


@pytest.fixture
def db(engine: Engine) -> Engine:
    return empty(engine, [vuln_affected, vuln_records, vuln_sources])


def updater(engine: Engine, tmp_path: Path, sources: list[str], **config: Any) -> OnlineUpdater:
    limits = BundleLimits(total_bytes=config.pop("total_bytes", 64 << 20))
    return OnlineUpdater(
        engine,
        Importer(engine, limits=limits),
        UpdateConfig(downloads=tmp_path / "downloads", timeout=30.0, **config),
        sources=sources,
    )


def source_row(engine: Engine, name: str) -> Any:
    with read_tx(engine) as conn:
        return conn.execute(select(vuln_sources).where(vuln_sources.c.name == name)).one()


def osv_ids(engine: Engine, name: str) -> set[str]:
    with read_tx(engine) as conn:
        query = (
            select(vuln_records.c.osv_id)
            .join(vuln_sources, vuln_sources.c.id == vuln_records.c.source_id)
            .where(vuln_sources.c.name == name)
            .where(vuln_records.c.generation == vuln_sources.c.generation)
        )
        return set(conn.scalars(query))


def ids_of(entries: dict[str, bytes]) -> set[str]:
    return {name.removesuffix(".json") for name in entries}


# --- the tests ------------------------------------------------------------------------------------
def test_first_fetch_imports_then_304_changes_nothing(
    db: Engine, http: tuple[str, Served], tmp_path: Path
) -> None:
    base, served = http
    entries = records("pypi", 12)
    served.bundles["/a/PyPI/all.zip"] = Bundle(zipped(entries), etag='"pypi-1"')
    url = f"{base}/a/PyPI/all.zip"
    run = updater(db, tmp_path, [url])
    lines: list[str] = []

    first = run.run(progress=lines.append)
    (outcome,) = first.outcomes
    assert outcome.status == "imported", outcome
    assert outcome.source == "osv:PyPI"
    assert outcome.report is not None
    assert outcome.report.added == 12
    assert osv_ids(db, "osv:PyPI") == ids_of(entries)
    row = source_row(db, "osv:PyPI")
    assert (row.url, row.etag) == (url, '"pypi-1"')
    assert any("GET" in line for line in lines)
    assert any("imported 12" in line for line in lines)
    assert not list((tmp_path / "downloads").glob("*.bundle")), "the download is removed"

    with read_tx(db) as conn:
        version = VulnStore().version(conn)
    second = run.run()
    assert [o.status for o in second.outcomes] == ["not-modified"]
    assert served.asked("/a/PyPI/all.zip")[-1]["if-none-match"] == '"pypi-1"'
    with read_tx(db) as conn:
        assert VulnStore().version(conn) == version
    assert source_row(db, "osv:PyPI").generation == row.generation


def test_last_modified_alone_is_asked_with_if_modified_since(
    db: Engine, http: tuple[str, Served], tmp_path: Path
) -> None:
    base, served = http
    stamp = format_datetime(datetime(2026, 11, 1, tzinfo=UTC), usegmt=True)
    served.bundles["/lm/npm/all.zip"] = Bundle(
        zipped(records("npm", 3)), etag=None, last_modified=stamp
    )
    run = updater(db, tmp_path, [f"{base}/lm/npm/all.zip"])
    assert [o.status for o in run.run().outcomes] == ["imported"]
    assert source_row(db, "osv:npm").last_modified == stamp
    assert [o.status for o in run.run().outcomes] == ["not-modified"]
    assert served.asked("/lm/npm/all.zip")[-1]["if-modified-since"] == stamp


def test_a_cut_off_download_resumes_with_range_and_imports_the_whole(
    db: Engine, http: tuple[str, Served], tmp_path: Path
) -> None:
    base, served = http
    entries = records("go", 20)
    body = zipped(entries)
    half = len(body) // 2
    served.bundles["/cut/Go/all.zip"] = Bundle(body, etag='"go-1"', cut_after=half)
    run = updater(db, tmp_path, [f"{base}/cut/Go/all.zip"])

    cut = run.run()
    (outcome,) = cut.outcomes
    assert outcome.status == "failed", outcome
    assert outcome.transient
    assert "resumes" in (outcome.error or "")
    (part,) = (tmp_path / "downloads").glob("*.part")
    assert part.stat().st_size == half
    assert part.with_suffix(".part.json").exists()
    assert source_row(db, "osv:Go").error == outcome.error
    assert osv_ids(db, "osv:Go") == set()

    resumed = run.run()
    (outcome,) = resumed.outcomes
    assert outcome.status == "imported", outcome
    assert outcome.resumed_from == half
    asked = served.asked("/cut/Go/all.zip")[-1]
    assert (asked["range"], asked["if-range"]) == (f"bytes={half}-", '"go-1"')
    assert osv_ids(db, "osv:Go") == ids_of(entries)
    assert not list((tmp_path / "downloads").glob("*.part*"))


def test_a_bundle_changed_since_the_cut_starts_again(
    db: Engine, http: tuple[str, Served], tmp_path: Path
) -> None:
    base, served = http
    old = zipped(records("go", 20))
    served.bundles["/moved/Go/all.zip"] = Bundle(old, etag='"old"', cut_after=len(old) // 3)
    run = updater(db, tmp_path, [f"{base}/moved/Go/all.zip"])
    assert run.run().outcomes[0].status == "failed"
    entries = records("go", 5)
    served.bundles["/moved/Go/all.zip"] = Bundle(zipped(entries), etag='"new"')

    (outcome,) = run.run().outcomes
    assert outcome.status == "imported", outcome
    assert outcome.resumed_from == 0
    assert served.asked("/moved/Go/all.zip")[-1]["if-range"] == '"old"'
    assert osv_ids(db, "osv:Go") == ids_of(entries)


def test_a_corrupt_bundle_is_recorded_and_keeps_the_old_records(
    db: Engine, http: tuple[str, Served], tmp_path: Path
) -> None:
    base, served = http
    entries = records("npm", 6)
    good = zipped(entries)
    served.bundles["/bad/npm/all.zip"] = Bundle(good, etag='"n1"')
    other = zipped(records("pypi", 2))
    served.bundles["/bad/PyPI/all.zip"] = Bundle(other, etag='"p1"')
    urls = [f"{base}/bad/npm/all.zip", f"{base}/bad/PyPI/all.zip"]
    run = updater(db, tmp_path, urls)
    assert [o.status for o in run.run().outcomes] == ["imported", "imported"]

    served.bundles["/bad/npm/all.zip"] = Bundle(good[: len(good) - 40], etag='"n2"')  # truncated
    served.bundles["/bad/PyPI/all.zip"] = Bundle(zipped(records("pypi", 4)), etag='"p2"')
    npm, pypi = run.run().outcomes
    assert npm.status == "failed", npm
    assert not npm.transient
    assert "truncated or corrupt" in (npm.error or "")
    assert pypi.status == "imported", "one source failing does not stop the others"
    row = source_row(db, "osv:npm")
    assert row.failed_at is not None
    assert "truncated or corrupt" in row.error
    assert row.etag == '"n1"', "the validators of the last import stay"
    assert osv_ids(db, "osv:npm") == ids_of(entries)

    job = UpdateDatabase(run)
    served.bundles["/bad/PyPI/all.zip"].status = 503
    with pytest.raises(UpdateFailed, match="2 of 2 sources failed") as failed:
        job(JobContext(1, UPDATE_KIND, {}, 1, 3, "w"))
    assert "osv:npm: failed" in str(failed.value)
    assert "HTTP 503" in str(failed.value)
    served.bundles["/bad/PyPI/all.zip"].status = 404
    with pytest.raises(PermanentJobError, match="HTTP 404"):
        job(JobContext(2, UPDATE_KIND, {}, 1, 3, "w"))
    assert osv_ids(db, "osv:npm") == ids_of(entries)
    served.bundles["/bad/npm/all.zip"] = Bundle(good, etag='"n1"')
    served.bundles["/bad/PyPI/all.zip"] = Bundle(other, etag='"p1"')
    job(JobContext(3, UPDATE_KIND, {}, 1, 3, "w"))  # both fine again: the job succeeds


def test_over_the_size_limit_stops_early(
    db: Engine, http: tuple[str, Served], tmp_path: Path
) -> None:
    base, served = http
    body = zipped(records("pypi", 30))
    served.bundles["/big/PyPI/all.zip"] = Bundle(body, etag='"big"')
    run = updater(db, tmp_path, [f"{base}/big/PyPI/all.zip"], max_bytes=len(body) // 4)
    (outcome,) = run.run().outcomes
    assert outcome.status == "failed"
    assert not outcome.transient
    assert "over the limit" in (outcome.error or "")
    assert not list((tmp_path / "downloads").glob("*.part*")), "nothing of it is kept"
    assert source_row(db, "osv:PyPI").failed_at is not None


def test_over_the_size_limit_without_a_declared_size_stops_as_it_grows(
    db: Engine, http: tuple[str, Served], tmp_path: Path
) -> None:
    base, served = http
    body = zipped(records("pypi", 30))
    served.bundles["/undeclared/PyPI/all.zip"] = Bundle(body, declare_length=False)
    url = f"{base}/undeclared/PyPI/all.zip"
    assert [o.status for o in updater(db, tmp_path, [url]).run().outcomes] == ["imported"]

    served.bundles["/undeclared/PyPI/all.zip"] = Bundle(body, etag='"v2"', declare_length=False)
    (outcome,) = updater(db, tmp_path, [url], max_bytes=len(body) // 4).run().outcomes
    assert outcome.status == "failed"
    assert f"over the limit of {len(body) // 4} bytes" in (outcome.error or "")
    assert not list((tmp_path / "downloads").glob("*.part*"))


def test_a_bundle_that_unpacks_over_the_limit_is_refused_by_the_importer(
    db: Engine, http: tuple[str, Served], tmp_path: Path
) -> None:
    base, served = http
    entries = records("pypi", 30)
    served.bundles["/unpacked/PyPI/all.zip"] = Bundle(zipped(entries), etag='"u"')
    run = updater(
        db,
        tmp_path,
        [f"{base}/unpacked/PyPI/all.zip"],
        total_bytes=sum(map(len, entries.values())) // 2,
    )
    (outcome,) = run.run().outcomes
    assert outcome.status == "failed"
    assert "once decompressed" in (outcome.error or "")
    assert osv_ids(db, "osv:PyPI") == set()


def test_the_sources_by_default_are_the_ecosystems_seen() -> None:
    seen = {
        ("pypi", ""),
        ("npm", ""),
        ("golang", ""),
        ("deb", "debian"),
        ("deb", "ubuntu"),
        ("apk", "alpine"),
        ("rpm", "rocky"),
        ("rpm", "redhat"),
        ("binary", ""),
        ("deb", "somethingelse"),
    }
    ecosystems = ecosystems_of(seen)
    assert ecosystems == sorted(
        ["PyPI", "npm", "Go", "Debian", "Ubuntu", "Alpine", "Rocky Linux", "Red Hat"]
    )
    urls = default_sources("https://osv.example/", ["Red Hat", "PyPI"])
    assert urls == ["https://osv.example/Red%20Hat/all.zip", "https://osv.example/PyPI/all.zip"]
    assert [source_name_of(u) for u in urls] == ["osv:Red Hat", "osv:PyPI"]
    assert source_name_of("https://mirror.example/osv/crates.tar.gz") == "osv:crates"


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_ecosystems_seen_reads_the_component_index(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, backend: str
) -> None:
    with migrated_engine(request, tmp_path_factory, backend) as engine:
        now = datetime.now(UTC)
        digest = "sha256:" + hashlib.sha256(b"m").hexdigest()
        with write_tx(engine) as conn:
            repo = conn.execute(
                insert(repositories).values(name="acme/app", created_at=now)
            ).inserted_primary_key[0]
            scan = conn.execute(
                insert(scans).values(
                    repository_id=repo,
                    manifest_digest=digest,
                    status="succeeded",
                    trigger="push",
                    created_at=now,
                )
            ).inserted_primary_key[0]
            rows = [
                ("deb", "libc6", "pkg:deb/debian/libc6@2.36-9?distro=debian-12"),
                ("deb", "bash", "pkg:deb/Ubuntu/bash@5.1"),
                ("apk", "musl", "pkg:apk/alpine/musl@1.2.4-r2"),
                ("rpm", "bash", "pkg:rpm/rocky/bash@5.1.8-6.el9"),
                ("pypi", "flask", "pkg:pypi/flask@2.0.0"),
                ("pypi", "jinja2", "pkg:pypi/jinja2@3.0.0"),
                ("npm", "@scope/x", "pkg:npm/%40scope/x@1.0.0"),
                ("binary", "openssl", "pkg:generic/openssl@3.0.11"),
            ]
            conn.execute(
                insert(scan_components),
                [
                    {
                        "scan_id": scan,
                        "repository_id": repo,
                        "manifest_digest": digest,
                        "platform": "linux/amd64",
                        "ecosystem": ecosystem,
                        "name": name,
                        "version": "1",
                        "purl": purl,
                        "layer_digest": digest,
                        "location": "x",
                    }
                    for ecosystem, name, purl in rows
                ],
            )
        with read_tx(engine) as conn:
            seen = ScanStore().ecosystems_seen(conn)
        assert seen == {
            ("deb", "debian"),
            ("deb", "ubuntu"),
            ("apk", "alpine"),
            ("rpm", "rocky"),
            ("pypi", ""),
            ("npm", ""),
            ("binary", ""),
        }
        assert ecosystems_of(seen) == ["Alpine", "Debian", "PyPI", "Rocky Linux", "Ubuntu", "npm"]


def test_make_importer_takes_the_bundle_limits_of_the_settings(db: Engine, tmp_path: Path) -> None:
    settings = Settings(
        data_dir=tmp_path,
        vulnerabilities=VulnerabilitiesSettings(
            max_bundle_entries=3, max_bundle_bytes=5 << 20, max_bundle_ratio=7
        ),
    )
    importer = make_importer(settings, db)
    assert (importer.limits.entries, importer.limits.total_bytes, importer.limits.ratio) == (
        3,
        5 << 20,
        7,
    )
    bundle = tmp_path / "four.zip"
    bundle.write_bytes(zipped(records("npm", 4)))
    with pytest.raises(BundleInvalid, match="4 entries, over 3"):
        importer.import_bundle(bundle, source="limits")


@pytest.mark.parametrize("cron", ["17 4 * * *", None])
def test_the_update_job_is_registered_and_scheduled_by_update_cron(
    db: Engine, tmp_path: Path, cron: str | None
) -> None:
    settings = Settings(
        data_dir=tmp_path, vulnerabilities=VulnerabilitiesSettings(update_cron=cron)
    )
    handlers, schedules = make_handlers(settings, db, SqlJobQueue(db))
    assert UPDATE_KIND in handlers.kinds()
    mine = [s for s in schedules if s.kind == UPDATE_KIND]
    assert [(s.name, s.cron) for s in mine] == ([("vulndb.update", cron)] if cron else [])
    # The scheduler enqueues under "schedule:<name>": the key the API's request shares.
    assert f"schedule:{update_schedule('* * * * *').name}" == UPDATE_DEDUPE_KEY


def test_a_source_the_disk_refuses_fails_alone(
    db: Engine, http: tuple[str, Served], tmp_path: Path
) -> None:
    base, served = http
    served.bundles["/disk/npm/all.zip"] = Bundle(zipped(records("npm", 2)), etag='"d1"')
    served.bundles["/disk/Go/all.zip"] = Bundle(zipped(records("go", 2)), etag='"d2"')
    npm_url, go_url = f"{base}/disk/npm/all.zip", f"{base}/disk/Go/all.zip"
    blocked = tmp_path / "downloads" / f"{_stem('osv:npm', npm_url)}.part"
    blocked.mkdir(parents=True)  # the download cannot be written there
    npm, go = updater(db, tmp_path, [npm_url, go_url]).run().outcomes
    assert npm.status == "failed", npm
    assert "IsADirectoryError" in (npm.error or "")
    assert source_row(db, "osv:npm").error == npm.error
    assert go.status == "imported", go
