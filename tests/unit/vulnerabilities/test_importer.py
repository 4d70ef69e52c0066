"""The offline import into the metadata database (SQLite and PostgreSQL), atomic by
generation: what an import and a second one report, what readers see meanwhile, and that a
bundle that is truncated, a zip bomb, leaves the bundle or holds a malformed record changes
nothing (the previous generation still answers, nothing of the failed one is left)."""

from __future__ import annotations

import hashlib
import json
import zipfile
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Connection, Engine, func, select

from tests.support.databases import empty, migrated_engine
from tests.unit.vulnerabilities.fixture_db import VULNDB
from trustyard.db.engine import read_tx, write_tx
from trustyard.db.tables import vuln_affected, vuln_records, vuln_sources
from trustyard.errors import Invalid
from trustyard.kit.clock import utc_now
from trustyard.vulnerabilities.bundles import BundleLimits
from trustyard.vulnerabilities.importer import Importer, source_name
from trustyard.vulnerabilities.interfaces import (
    BundleInvalid,
    BundleRecordInvalid,
    ImportConflict,
)
from trustyard.vulnerabilities.matching import package_key
from trustyard.vulnerabilities.osv import parse_record
from trustyard.vulnerabilities.service import VulnerabilityService
from trustyard.vulnerabilities.stores import Claim, NewRecord, VulnStore

Query = tuple[str, str, str]
QUERIES: list[Query] = [
    ("npm", "lodash", "4.17.15"),
    ("npm", "minimist", "1.2.0"),
    ("npm", "handlebars", "4.5.2"),
    ("npm", "axios", "0.21.0"),
    ("npm", "axios", "1.5.0"),
    ("npm", "left-pad", "1.2.0"),
]


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def engine(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Engine]:
    with migrated_engine(request, tmp_path_factory, request.param) as engine:
        yield engine


@pytest.fixture
def db(engine: Engine) -> Engine:
    return empty(engine, [vuln_affected, vuln_records, vuln_sources])


def npm_records() -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted((VULNDB / "npm").glob("*.json"))}


def record(osv_id: str, name: str, fixed: str, ecosystem: str = "npm", **extra: Any) -> bytes:
    document = {
        "id": osv_id,
        "modified": "2024-05-01T00:00:00Z",
        "affected": [
            {
                "package": {"ecosystem": ecosystem, "name": name},
                "ranges": [
                    {"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": fixed}]}
                ],
            }
        ],
        **extra,
    }
    return json.dumps(document).encode()


def folder(path: Path, entries: dict[str, bytes]) -> Path:
    path.mkdir(parents=True)
    for name, data in entries.items():
        (path / name).write_bytes(data)
    return path


def zipped(path: Path, entries: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in entries.items():
            archive.writestr(name, data)
    return path


def packages_in(data: bytes) -> set[tuple[str, str]]:
    return {
        package_key(a.package.ecosystem, a.package.name)
        for a in parse_record(data).affected
        if a.package is not None
    }


def answers(engine: Engine, queries: list[Query] = QUERIES) -> dict[Query, set[str]]:
    """Every query's record ids, from one lookup of all their packages."""
    with read_tx(engine) as conn:
        index = VulnerabilityService().index_for(conn, [(e, n) for e, n, _ in queries])
    return {q: {i for f in index.findings(*q) for i in f.record_ids} for q in queries}


def generations(engine: Engine) -> set[int]:
    with read_tx(engine) as conn:
        return set(conn.scalars(select(vuln_records.c.generation).distinct()))


def status_of(engine: Engine, name: str) -> Any:
    with read_tx(engine) as conn:
        status = VulnStore().status(conn)
    return next(s for s in status.sources if s.name == name)


class CountingStore(VulnStore):
    """Counts the batches written, and runs `during` at the start of each batch transaction
    (earlier batches committed, the switch not yet made)."""

    def __init__(self, during: Any = None) -> None:
        self.batches = 0
        self.during = during

    def insert_records(self, conn: Connection, claim: Claim, records: Any) -> None:
        self.batches += 1
        super().insert_records(conn, claim, records)

    def renew(self, conn: Connection, claim: Claim, now: datetime) -> None:
        if self.during is not None:
            self.during()
        super().renew(conn, claim, now)


def test_an_import_answers_the_fixtures_queries(db: Engine, tmp_path: Path) -> None:
    entries = npm_records()
    report = Importer(db).import_bundle(zipped(tmp_path / "npm.zip", entries))
    assert report.source == "npm"
    assert (report.records, report.added, report.changed, report.unchanged) == (16, 16, 0, 0)
    assert (report.removed, report.withdrawn, report.skipped_entries) == (0, 0, 0)
    assert report.changed_packages == set().union(*(packages_in(d) for d in entries.values()))
    assert report.bundle_sha256 is not None
    assert len(report.bundle_sha256) == 64
    expected = json.loads((VULNDB / "expected" / "expected-matches.json").read_text())
    npm = [q for q in expected["queries"] if q["ecosystem"] == "npm"]
    got = answers(db, [("npm", q["package"], q["version"]) for q in npm])
    assert got == {("npm", q["package"], q["version"]): set(q["ids"]) for q in npm}
    status = status_of(db, "npm")
    assert (status.records, status.importing, status.error) == (16, False, None)
    assert status.generation == report.generation
    assert status.url == (tmp_path / "npm.zip").resolve().as_uri()


def test_a_second_import_reports_exactly_the_changed_packages(db: Engine, tmp_path: Path) -> None:
    entries = npm_records()
    first = Importer(db).import_bundle(folder(tmp_path / "npm", entries))
    before = answers(db)
    with read_tx(db) as conn:
        version = VulnStore().version(conn)

    changed = dict(entries)
    lodash = json.loads(entries["GHSA-jf85-cpcp-j695.json"])  # lodash, fixed 4.17.12
    for affected in lodash["affected"]:
        for rng in affected["ranges"]:
            rng["events"] = [{"introduced": "0"}, {"fixed": "4.17.16"}]
    changed["GHSA-jf85-cpcp-j695.json"] = json.dumps(lodash).encode()
    del changed["GHSA-8hc4-vh64-cxmj.json"]  # axios 1.3.2 to 1.7.4
    minimist = json.loads(entries["GHSA-vh95-rmgr-6w4m.json"])
    minimist["withdrawn"] = "2024-06-01T00:00:00Z"
    changed["GHSA-vh95-rmgr-6w4m.json"] = json.dumps(minimist).encode()
    changed["GHSA-test-left-pad.json"] = record("GHSA-test-left-pad", "left-pad", "1.3.0")

    second = Importer(db).import_bundle(zipped(tmp_path / "npm.zip", changed), source="npm")
    assert second.generation > first.generation
    assert (second.added, second.changed, second.unchanged) == (1, 1, 13)
    assert (second.removed, second.withdrawn, second.records) == (2, 1, 15)
    touched = (
        packages_in(entries["GHSA-jf85-cpcp-j695.json"])
        | packages_in(changed["GHSA-jf85-cpcp-j695.json"])
        | packages_in(entries["GHSA-8hc4-vh64-cxmj.json"])
        | packages_in(entries["GHSA-vh95-rmgr-6w4m.json"])
        | {("npm", "left-pad")}
    )
    assert second.changed_packages == touched
    assert ("npm", "handlebars") not in touched  # a package nobody touched stays out

    after = answers(db)
    assert after[("npm", "lodash", "4.17.15")] == before[("npm", "lodash", "4.17.15")] | {
        "GHSA-jf85-cpcp-j695"
    }
    assert before[("npm", "axios", "1.5.0")] - after[("npm", "axios", "1.5.0")] == {
        "GHSA-8hc4-vh64-cxmj"
    }
    assert "GHSA-vh95-rmgr-6w4m" in before[("npm", "minimist", "1.2.0")]
    assert "GHSA-vh95-rmgr-6w4m" not in after[("npm", "minimist", "1.2.0")]
    assert after[("npm", "left-pad", "1.2.0")] == {"GHSA-test-left-pad"}
    assert after[("npm", "handlebars", "4.5.2")] == before[("npm", "handlebars", "4.5.2")]
    assert generations(db) == {second.generation}  # the old rows went
    with read_tx(db) as conn:
        assert VulnStore().version(conn) == version + 1
        assert conn.scalar(select(func.count()).select_from(vuln_records)) == 15

    third = Importer(db).import_bundle(zipped(tmp_path / "again.zip", changed), source="npm")
    assert (third.added, third.changed, third.unchanged, third.removed) == (0, 0, 15, 0)
    assert third.changed_packages == frozenset()


def _bomb(tmp_path: Path, entries: dict[str, bytes]) -> Path:
    padding = {
        f"GHSA-pad-{i}.json": json.dumps(
            {"id": f"GHSA-pad-{i}", "modified": "2024-01-01T00:00:00Z"}
        )
        .encode()
        .ljust(1024 * 1024)
        for i in range(8)
    }
    return zipped(tmp_path / "bomb.zip", {**entries, **padding})


def _truncated(tmp_path: Path, entries: dict[str, bytes]) -> Path:
    path = zipped(tmp_path / "truncated.zip", entries)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) * 3 // 5])
    return path


BAD_EVENT = json.loads(record("GHSA-bad-event", "lodash", "1.0.0"))
BAD_EVENT["affected"][0]["ranges"][0]["events"] = [{"introduced": "0", "fixed": "1.0.0"}]

FAILURES: dict[str, tuple[Any, str, str | None]] = {
    # name: (make the bundle from the entries, the refused rule, the entry named)
    "truncated zip": (_truncated, "corrupt", None),
    "zip bomb": (_bomb, "ratio", "GHSA-pad-1.json"),
    "path traversal": (
        lambda p, e: zipped(p / "evil.zip", {**e, "../../etc/cron.d/x.json": b"{}"}),
        "name",
        "../../etc/cron.d/x.json",
    ),
    "malformed record": (
        lambda p, e: folder(p / "bad", {**e, "zz-bad.json": json.dumps(BAD_EVENT).encode()}),
        "record",
        "zz-bad.json",
    ),
}


@pytest.mark.parametrize("case", list(FAILURES))
def test_a_bad_bundle_changes_nothing(db: Engine, tmp_path: Path, case: str) -> None:
    entries = npm_records()
    first = Importer(db).import_bundle(folder(tmp_path / "npm", entries))
    before = answers(db)

    make, rule, entry = FAILURES[case]
    newer = {
        **{k: v for k, v in entries.items() if "8hc4" not in k},
        "GHSA-test-left-pad.json": record("GHSA-test-left-pad", "left-pad", "1.3.0"),
    }
    bundle = make(tmp_path, newer)
    seen_during: list[dict[Query, set[str]]] = []
    store = CountingStore(during=lambda: seen_during.append(answers(db)))
    importer = Importer(
        db, store, limits=BundleLimits(ratio=50, ratio_floor=2 * 1024 * 1024), batch_records=2
    )
    with pytest.raises(BundleInvalid) as caught:
        importer.import_bundle(bundle, source="npm")
    error = caught.value
    assert (error.rule, error.entry) == (rule, entry)
    if case != "truncated zip":
        assert store.batches > 0  # rows of the new generation were written, then removed
    if case == "malformed record":
        assert isinstance(error, BundleRecordInvalid)
        assert (error.record_id, error.field) == (
            "GHSA-bad-event",
            "affected[0].ranges[0].events[0]",
        )
        assert "zz-bad.json" in error.message
        assert "GHSA-bad-event" in error.message

    assert all(seen == before for seen in seen_during)  # readers never saw the new records
    assert answers(db) == before
    assert generations(db) == {first.generation}
    status = status_of(db, "npm")
    assert (status.generation, status.records, status.importing) == (first.generation, 16, False)
    assert status.failed_at is not None
    assert status.error == error.message


def test_readers_see_the_old_generation_until_the_switch(db: Engine, tmp_path: Path) -> None:
    entries = npm_records()
    Importer(db).import_bundle(folder(tmp_path / "npm", entries))
    before = answers(db)
    newer = {
        **entries,
        "GHSA-test-left-pad.json": record("GHSA-test-left-pad", "left-pad", "1.3.0"),
    }
    del newer["GHSA-8hc4-vh64-cxmj.json"]
    seen: list[dict[Query, set[str]]] = []
    store = CountingStore(during=lambda: seen.append(answers(db)))
    Importer(db, store, batch_records=3).import_bundle(folder(tmp_path / "n2", newer), source="npm")
    assert store.batches == 6
    assert len(seen) == 7
    assert all(answer == before for answer in seen)
    assert answers(db) != before


def test_a_wrong_sha256_is_refused_before_anything_is_written(db: Engine, tmp_path: Path) -> None:
    bundle = zipped(tmp_path / "npm.zip", npm_records())
    with pytest.raises(BundleInvalid) as caught:
        Importer(db).import_bundle(bundle, sha256="0" * 64)
    assert caught.value.rule == "sha256"
    with read_tx(db) as conn:
        assert VulnStore().status(conn).sources == ()
    report = Importer(db).import_bundle(
        bundle, sha256=hashlib.sha256(bundle.read_bytes()).hexdigest().upper()
    )
    assert report.records == 16
    with pytest.raises(BundleInvalid):
        Importer(db).import_bundle(tmp_path, sha256="0" * 64)  # a folder has no digest


def test_an_import_running_is_not_doubled_and_a_stalled_one_is_taken_over(
    db: Engine, tmp_path: Path
) -> None:
    store = VulnStore()
    now = utc_now()
    with write_tx(db) as conn:  # an import that wrote one batch, then stopped
        stalled = store.claim(conn, "npm", now, now - timedelta(minutes=10))
        half = NewRecord("GHSA-half", now, "0" * 64, None, (), b"x", frozenset({("npm", "x")}))
        store.insert_records(conn, stalled, [half])
    bundle = folder(tmp_path / "npm", npm_records())
    with pytest.raises(ImportConflict):
        Importer(db).import_bundle(bundle)
    assert status_of(db, "npm").importing
    assert generations(db) == {stalled.generation}  # the running import's rows are its own

    later = Importer(db, clock=lambda: utc_now() + timedelta(minutes=11))
    report = later.import_bundle(bundle)
    assert report.records == 16
    assert generations(db) == {report.generation}
    with write_tx(db) as conn, pytest.raises(ImportConflict):  # the stalled one cannot go on
        store.renew(conn, stalled, utc_now())


def test_lookups_normalise_names_and_answer_only_the_packages_asked(
    db: Engine, tmp_path: Path
) -> None:
    entries = {
        "PYSEC-1.json": record("PYSEC-1", "Foo_Bar", "2.0", "PyPI"),
        "PYSEC-2.json": json.dumps(
            {
                "id": "PYSEC-2",
                "modified": "2024-05-01T00:00:00Z",
                "aliases": ["CVE-2024-1"],
                "affected": [
                    {"package": {"ecosystem": "PyPI", "name": name}, "versions": ["1.0"]}
                    for name in ("foo-bar", "other")
                ],
            }
        ).encode(),
    }
    report = Importer(db).import_bundle(folder(tmp_path / "pypi", entries))
    assert report.changed_packages == {("PyPI", "foo-bar"), ("PyPI", "other")}
    with read_tx(db) as conn:
        index = VulnerabilityService().index_for(conn, [("PyPI", "FOO.bar"), ("PyPI", "nothing")])
    assert index.records == 2
    assert {f.id for f in index.findings("PyPI", "foo_bar", "1.0")} == {"PYSEC-1", "PYSEC-2"}
    assert index.findings("PyPI", "other", "1.0") == []  # not asked for
    assert index.findings("PyPI", "nothing", "1.0") == []
    with read_tx(db) as conn:
        assert VulnerabilityService().index_for(conn, []).records == 0


def test_unreadable_range_versions_are_warnings_and_the_record_still_matches(
    db: Engine, tmp_path: Path
) -> None:
    odd = json.loads(record("PYSEC-2019-125", "bleach", "2019-09-12", "PyPI"))
    odd["affected"][0]["versions"] = ["3.1.0"]
    report = Importer(db).import_bundle(
        folder(tmp_path / "p", {"PYSEC-2019-125.json": json.dumps(odd).encode()})
    )
    assert report.warning_count == 1
    assert report.warnings[0].startswith("PYSEC-2019-125: affected[0].ranges[0]")
    assert answers(db, [("PyPI", "bleach", "3.1.0")]) == {
        ("PyPI", "bleach", "3.1.0"): {"PYSEC-2019-125"}
    }


def test_an_unknown_ecosystem_is_a_warning_and_its_explicit_versions_still_match(
    db: Engine, tmp_path: Path
) -> None:
    """An ecosystem without a known order (a new one osv.dev added) imports: its ranges are
    left out with one warning per range, its explicit versions still match, and nothing
    else of the bundle is lost."""
    strange = json.loads(record("NEW-2026-1", "thing", "2.0.0", "Brand-New-Ecosystem"))
    strange["affected"][0]["versions"] = ["1.0.0"]
    fine = record("GHSA-aaaa-bbbb-cccc", "left-pad", "1.3.0")
    report = Importer(db).import_bundle(
        folder(
            tmp_path / "n",
            {"NEW-2026-1.json": json.dumps(strange).encode(), "GHSA.json": fine},
        )
    )
    assert report.records == 2
    assert report.warning_count == 1
    assert report.warnings[0] == (
        "NEW-2026-1: affected[0].ranges[0]: no version order for Brand-New-Ecosystem"
    )
    assert answers(
        db,
        [
            ("Brand-New-Ecosystem", "thing", "1.0.0"),
            ("Brand-New-Ecosystem", "thing", "1.5.0"),  # inside the range: not known
            ("npm", "left-pad", "1.2.0"),
        ],
    ) == {
        ("Brand-New-Ecosystem", "thing", "1.0.0"): {"NEW-2026-1"},
        ("Brand-New-Ecosystem", "thing", "1.5.0"): set(),
        ("npm", "left-pad", "1.2.0"): {"GHSA-aaaa-bbbb-cccc"},
    }


def test_a_bundle_without_records_is_refused(db: Engine, tmp_path: Path) -> None:
    with pytest.raises(BundleInvalid) as caught:
        Importer(db).import_bundle(folder(tmp_path / "x", {"README.md": b"hello"}))
    assert caught.value.rule == "empty"
    with pytest.raises(Invalid):
        Importer(db).import_bundle(folder(tmp_path / "y", npm_records()), source="")


def test_source_names() -> None:
    assert source_name(Path("/data/osv/PyPI/all.zip")) == "PyPI"
    assert source_name(Path("/data/npm-2024.tar.gz")) == "npm-2024"
    assert source_name(Path("/data/go")) == "go"


def test_the_cleanup_after_a_switch_leaves_a_newer_import_alone(db: Engine, tmp_path: Path) -> None:
    """Once an import has switched, the next import of the source may claim it while the old
    rows are still being deleted: only the old generation goes, not the newer one's rows."""
    now = utc_now()
    half = NewRecord("GHSA-half", now, "0" * 64, None, (), b"x", frozenset({("npm", "x")}))

    class Interleaving(VulnStore):
        """The next import claims the source and writes a batch at the first database
        access after the switch (in that access's transaction)."""

        switched = False
        newer: Claim | None = None

        def switch(self, conn: Connection, claim: Claim, now: datetime, **kw: Any) -> None:
            super().switch(conn, claim, now, **kw)
            self.switched = True

        def interleave(self, conn: Connection) -> None:
            if self.switched and self.newer is None:
                self.newer = self.claim(conn, "npm", now, now - timedelta(minutes=10))
                self.insert_records(conn, self.newer, [half])

        def generations(self, conn: Connection, source_id: int) -> set[int]:
            self.interleave(conn)
            return super().generations(conn, source_id)

        def delete_batch(
            self, conn: Connection, source_id: int, generation: int, limit: int
        ) -> int:
            self.interleave(conn)
            return super().delete_batch(conn, source_id, generation, limit)

    entries = npm_records()
    Importer(db).import_bundle(folder(tmp_path / "npm", entries))
    store = Interleaving()
    second = Importer(db, store).import_bundle(folder(tmp_path / "n2", entries), source="npm")
    assert store.newer is not None
    assert generations(db) == {second.generation, store.newer.generation}
