"""Triage in the metadata database (SQLite and PostgreSQL): overrides, VEX imports and their
re-imports, and which decision `apply_triage` gives each finding (scope, age, expiry, the
vulnerability's names, the component's purl), with the counts that follow."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, select, text

from tests.support.databases import empty, migrated_engine
from trustyard.content.stores import ContentStore
from trustyard.db.engine import read_tx, write_tx
from trustyard.db.tables import repositories, vex_documents, vuln_triage
from trustyard.errors import Invalid, NotFound
from trustyard.vulnerabilities.components import Target as LookUp
from trustyard.vulnerabilities.components import Via
from trustyard.vulnerabilities.interfaces import (
    Counts,
    ImageComponent,
    ImageFinding,
    ImageVulnerabilities,
    TriageStatus,
)
from trustyard.vulnerabilities.triage import (
    IMAGE,
    ORGANIZATION,
    REPOSITORY,
    Scope,
    TriageStore,
    VexVersionConflict,
    apply_triage,
    assertions,
    image_document,
)
from trustyard.vulnerabilities.vex import Target as VexTarget
from trustyard.vulnerabilities.vex import VexInvalid, parse_document

NOW = datetime(2026, 3, 1, 12, tzinfo=UTC)
DIGEST = "sha256:" + "11" * 32
OTHER_DIGEST = "sha256:" + "22" * 32
REQUESTS = "pkg:pypi/requests@2.19.0"
URLLIB3 = "pkg:pypi/urllib3@1.24.1"
OPENSSL = "pkg:deb/debian/openssl@3.0.11-1~deb12u2?arch=amd64&distro=debian-12"


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def engine(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Engine]:
    with migrated_engine(request, tmp_path_factory, request.param) as engine:
        yield engine


@pytest.fixture
def db(engine: Engine) -> Engine:
    return empty(engine, [vuln_triage, vex_documents, repositories])


@pytest.fixture
def repos(db: Engine) -> dict[str, int]:
    with write_tx(db) as conn:
        return {
            name: ContentStore().ensure_repository(conn, name)
            for name in ("acme/app", "acme/api", "other/app")
        }


def finding(vuln_id: str, purl: str, bucket: str = "critical", *aliases: str) -> ImageFinding:
    component = ImageComponent(
        platform="linux/amd64",
        ecosystem="pypi",
        name=purl.rsplit("/", maxsplit=1)[-1].split("@", maxsplit=1)[0],
        version="1",
        purl=purl,
        layer="sha256:" + "33" * 32,
        target=LookUp("PyPI", "x", "1", Via.PACKAGE),
    )
    return ImageFinding(
        component=component,
        vuln_id=vuln_id,
        record_ids=(vuln_id,),
        aliases=aliases,
        bucket=bucket,
        score=9.0,
        vector=None,
        fixed="9",
    )


def image(*findings: ImageFinding, digest: str = DIGEST) -> ImageVulnerabilities:
    return ImageVulnerabilities(
        repository="acme/app",
        manifest_digest=digest,
        status="matched",
        scan_id=1,
        database_version=1,
        matched_at=NOW,
        error=None,
        findings=findings,
    )


FINDINGS = (
    finding("GHSA-j8r2-6x86-q33q", REQUESTS, "major", "CVE-2023-32681"),
    finding("PYSEC-2019-132", URLLIB3, "critical", "CVE-2019-11324"),
    finding("CVE-2023-5678", OPENSSL, "minor"),
)


def applied(
    db: Engine, repos: dict[str, int], vulns: ImageVulnerabilities, now: datetime = NOW
) -> ImageVulnerabilities:
    with read_tx(db) as conn:
        return apply_triage(conn, vulns, repos["acme/app"], "acme", now)


def override(
    db: Engine, repository_id: int, vuln: str, *, digest: str | None = None, **extra: Any
) -> int:
    scope = Scope(IMAGE if digest else REPOSITORY, "acme", repository_id, digest)
    with write_tx(db) as conn:
        row = TriageStore().add_override(
            conn,
            scope,
            vuln,
            statement=extra.pop("statement", "not reachable"),
            created_by="alice",
            now=extra.pop("now", NOW),
            **extra,
        )
    return row.id


def vex(*statements: dict[str, Any], doc_id: str = "urn:vex:1", version: int = 1) -> bytes:
    return json.dumps(
        {
            "@context": "https://openvex.dev/ns/v0.2.0",
            "@id": doc_id,
            "author": "sec",
            "timestamp": "2026-02-01T00:00:00Z",
            "version": version,
            "statements": list(statements),
        }
    ).encode()


def imported(db: Engine, data: bytes, scope: Scope, **extra: Any) -> Any:
    with write_tx(db) as conn:
        return TriageStore().import_vex(
            conn, parse_document(data), data, scope, imported_by="bob", now=NOW, **extra
        )


def test_an_override_suppresses_its_vulnerability_by_any_name(
    db: Engine, repos: dict[str, int]
) -> None:
    vulns = image(*FINDINGS)
    assert vulns.counts == Counts(critical=1, major=1, minor=1)
    override(db, repos["acme/app"], "CVE-2023-32681", component_purl=REQUESTS)  # an alias
    result = applied(db, repos, vulns)
    triaged = {f.vuln_id: f.triage for f in result.findings}
    hidden = triaged["GHSA-j8r2-6x86-q33q"]
    assert hidden is not None
    assert (hidden.status, hidden.source, hidden.scope) == (
        TriageStatus.NOT_AFFECTED,
        "override",
        REPOSITORY,
    )
    assert (hidden.statement, hidden.created_by) == ("not reachable", "alice")
    assert triaged["PYSEC-2019-132"] is None
    assert result.counts == Counts(critical=1, minor=1)


def test_a_component_purl_must_name_the_findings_component(
    db: Engine, repos: dict[str, int]
) -> None:
    override(db, repos["acme/app"], "CVE-2023-32681", component_purl=URLLIB3)
    reordered = "pkg:deb/debian/openssl@3.0.11-1~deb12u2?distro=debian-12&arch=amd64"
    override(db, repos["acme/app"], "CVE-2023-5678", component_purl=reordered)
    result = applied(db, repos, image(*FINDINGS))
    assert [f.triage is not None for f in result.findings] == [False, False, True]


def test_the_scope_must_cover_the_image(db: Engine, repos: dict[str, int]) -> None:
    override(db, repos["acme/app"], "PYSEC-2019-132", digest=OTHER_DIGEST)  # another image
    override(db, repos["acme/api"], "PYSEC-2019-132")  # another repository
    other = Scope(ORGANIZATION, "other")
    imported(db, vex({"vulnerability": "PYSEC-2019-132", "status": "fixed"}), other)
    assert applied(db, repos, image(*FINDINGS)).counts == image(*FINDINGS).counts
    override(db, repos["acme/app"], "PYSEC-2019-132", digest=DIGEST)
    assert applied(db, repos, image(*FINDINGS)).counts == Counts(major=1, minor=1)


def test_the_narrowest_scope_wins_then_the_newest(db: Engine, repos: dict[str, int]) -> None:
    org = Scope(ORGANIZATION, "acme")
    under = {"vulnerability": "CVE-2019-11324", "status": "under_investigation"}
    imported(db, vex(under), org)
    [urllib3] = applied(db, repos, image(FINDINGS[1])).findings
    assert urllib3.triage is not None
    assert (urllib3.triage.scope, urllib3.triage.status) == (
        ORGANIZATION,
        TriageStatus.UNDER_INVESTIGATION,
    )
    assert not urllib3.suppressed  # under investigation still counts
    # The repository's decision beats the organization's, though older.
    older = NOW - timedelta(days=30)
    override(db, repos["acme/app"], "PYSEC-2019-132", now=older)
    [urllib3] = applied(db, repos, image(FINDINGS[1])).findings
    assert urllib3.triage is not None
    assert (urllib3.triage.scope, urllib3.suppressed) == (REPOSITORY, True)
    # An image's decision beats both: VEX says this image is affected.
    affected = {
        "vulnerability": {"name": "PYSEC-2019-132"},
        "status": "affected",
        "action_statement": "upgrade urllib3",
        "products": [DIGEST],
        "timestamp": "2025-01-01T00:00:00Z",
    }
    imported(db, vex(affected, doc_id="urn:vex:2"), Scope(REPOSITORY, "acme", repos["acme/app"]))
    [urllib3] = applied(db, repos, image(FINDINGS[1])).findings
    assert urllib3.triage is not None
    assert (urllib3.triage.scope, urllib3.triage.status) == (IMAGE, TriageStatus.AFFECTED)
    assert urllib3.triage.statement == "upgrade urllib3"
    # Among equals, the newest: a later override of the image hides it again.
    override(db, repos["acme/app"], "PYSEC-2019-132", digest=DIGEST, statement="patched")
    [urllib3] = applied(db, repos, image(FINDINGS[1])).findings
    assert urllib3.triage is not None
    assert (urllib3.triage.statement, urllib3.suppressed) == ("patched", True)


def test_an_expired_decision_is_ignored(db: Engine, repos: dict[str, int]) -> None:
    until = NOW + timedelta(days=7)
    org = Scope(ORGANIZATION, "acme")
    imported(
        db,
        vex({"vulnerability": "CVE-2023-5678", "status": "fixed"}),
        org,
        expires_at=until,
    )
    assert applied(db, repos, image(*FINDINGS)).counts == Counts(critical=1, major=1)
    later = applied(db, repos, image(*FINDINGS), now=until)
    assert later.counts == Counts(critical=1, major=1, minor=1)
    # An expired narrow decision leaves the wider one in force.
    override(db, repos["acme/app"], "PYSEC-2019-132", expires_at=until)
    imported(
        db,
        vex({"vulnerability": "PYSEC-2019-132", "status": "under_investigation"}, doc_id="u:2"),
        org,
    )
    [urllib3] = applied(db, repos, image(FINDINGS[1]), now=until).findings
    assert urllib3.triage is not None
    assert urllib3.triage.status is TriageStatus.UNDER_INVESTIGATION


def test_vex_reimport_needs_a_higher_version(db: Engine, repos: dict[str, int]) -> None:
    scope = Scope(REPOSITORY, "acme", repos["acme/app"])
    first = vex(
        {"vulnerability": "CVE-2023-32681", "status": "not_affected", "impact_statement": "a"},
        {"vulnerability": "CVE-2019-11324", "status": "fixed", "products": [URLLIB3]},
    )
    record, replaced = imported(db, first, scope)
    assert (record.rows, record.version, record.scope, replaced) == (2, 1, REPOSITORY, None)
    assert record.repository == "acme/app"
    assert applied(db, repos, image(*FINDINGS)).counts == Counts(minor=1)
    for same_or_older in (1,):
        with pytest.raises(VexVersionConflict):
            imported(
                db, vex({"vulnerability": "X", "status": "fixed"}, version=same_or_older), scope
            )
    second = vex(
        {"vulnerability": "CVE-2019-11324", "status": "affected", "action_statement": "upgrade"},
        version=3,
    )
    record, replaced = imported(db, second, scope)
    assert (record.rows, record.version, replaced) == (1, 3, 1)
    assert applied(db, repos, image(*FINDINGS)).counts == Counts(critical=1, major=1, minor=1)
    with pytest.raises(VexVersionConflict):
        imported(db, vex({"vulnerability": "X", "status": "fixed"}, version=2), scope)
    # The same @id for another repository is refused, whatever its version.
    with pytest.raises(VexVersionConflict):
        imported(
            db,
            vex({"vulnerability": "X", "status": "fixed"}, version=9),
            Scope(REPOSITORY, "acme", repos["acme/api"]),
        )
    with read_tx(db) as conn:
        assert TriageStore().document_json(conn, record.id)["version"] == 3


def test_an_image_import_refuses_statements_about_another_image(
    db: Engine, repos: dict[str, int]
) -> None:
    scope = Scope(IMAGE, "acme", repos["acme/app"], DIGEST)
    other = {"vulnerability": "X", "status": "fixed", "products": [OTHER_DIGEST]}
    with pytest.raises(VexInvalid) as refused:
        imported(db, vex({"vulnerability": "Y", "status": "fixed"}, other), scope)
    assert (refused.value.statement, refused.value.field) == (1, "products")
    record, _ = imported(db, vex({"vulnerability": "Y", "status": "fixed"}), scope)
    assert (record.scope, record.digest) == (IMAGE, DIGEST)


def test_documents_listed_by_scope_and_deleted(db: Engine, repos: dict[str, int]) -> None:
    app = Scope(REPOSITORY, "acme", repos["acme/app"])
    fixed = {"vulnerability": "CVE-2023-5678", "status": "fixed"}
    a, _ = imported(db, vex(fixed, doc_id="urn:a"), app)
    b, _ = imported(db, vex(fixed, doc_id="urn:b"), Scope(ORGANIZATION, "acme"))
    store = TriageStore()
    with read_tx(db) as conn:
        assert [d.id for d in store.documents(conn)] == [a.id, b.id]
        assert [d.id for d in store.documents(conn, repository_id=repos["acme/app"])] == [a.id]
        assert [d.id for d in store.documents(conn, namespace="acme")] == [b.id]
        assert [d.id for d in store.documents(conn, after=a.id)] == [b.id]
        assert store.document(conn, b.id).scope == ORGANIZATION
    with write_tx(db) as conn:
        store.delete_document(conn, a.id)
    with read_tx(db) as conn:
        assert [d.id for d in store.documents(conn)] == [b.id]
        left = conn.scalars(select(vuln_triage.c.document_id)).all()
        assert left == [b.id]
        with pytest.raises(NotFound):
            store.document(conn, a.id)


def test_overrides_listed_and_deleted_per_repository(db: Engine, repos: dict[str, int]) -> None:
    first = override(db, repos["acme/app"], "CVE-1")
    second = override(db, repos["acme/app"], "CVE-2", digest=DIGEST)
    elsewhere = override(db, repos["acme/api"], "CVE-3")
    store = TriageStore()
    with read_tx(db) as conn:
        assert [r.id for r in store.overrides(conn, repos["acme/app"])] == [first, second]
        assert [r.id for r in store.overrides(conn, repos["acme/app"], digest=DIGEST)] == [second]
    with write_tx(db) as conn, pytest.raises(NotFound):
        store.delete_override(conn, repos["acme/app"], elsewhere)  # not this repository's
    with write_tx(db) as conn:
        store.delete_override(conn, repos["acme/app"], first)
    with read_tx(db) as conn:
        assert [r.id for r in store.overrides(conn, repos["acme/app"])] == [second]


@pytest.mark.parametrize(
    "bad",
    [
        {"vuln": " "},
        {"vuln": "x" * 129},
        {"component_purl": "not a purl"},
        {"statement": "  "},
        {"expires_at": NOW - timedelta(seconds=1)},
    ],
)
def test_a_bad_override_is_refused(db: Engine, repos: dict[str, int], bad: dict[str, Any]) -> None:
    extra = dict(bad)
    vuln = extra.pop("vuln", "CVE-1")
    with pytest.raises(Invalid):
        override(db, repos["acme/app"], vuln, **extra)


def test_the_export_assertions_are_the_winning_decisions(db: Engine, repos: dict[str, int]) -> None:
    override(db, repos["acme/app"], "CVE-1", now=NOW - timedelta(days=1), statement="old")
    override(db, repos["acme/app"], "CVE-1", statement="new")
    override(db, repos["acme/app"], "CVE-1", component_purl=REQUESTS, digest=DIGEST)
    with read_tx(db) as conn:
        rows = TriageStore().applicable(conn, repos["acme/app"], DIGEST, "acme", NOW)
    written = assertions(rows)
    assert [(a.vulnerability, a.component_purl, a.statement) for a in written] == [
        ("CVE-1", None, "new"),
        ("CVE-1", REQUESTS, "not reachable"),
    ]


# --- two imports of one document at once (PostgreSQL: SQLite has one writer at a time) ---------
def postgres_only(engine: Engine) -> None:
    if engine.dialect.name != "postgresql":
        pytest.skip("SQLite runs one writer at a time: two imports cannot interleave")


def test_a_first_import_committed_meanwhile_is_a_conflict(
    db: Engine, repos: dict[str, int]
) -> None:
    """Two first imports of one @id: the one whose insert comes second is told so (409),
    not a database error."""
    postgres_only(db)
    scope = Scope(REPOSITORY, "acme", repos["acme/app"])
    data = vex({"vulnerability": "CVE-1", "status": "fixed"}, doc_id="urn:race")

    class Raced(TriageStore):
        def _imported(self, conn: Any, document_id: str) -> Any:
            found = super()._imported(conn, document_id)
            imported(db, data, scope)  # another request's import commits meanwhile
            return found

    with pytest.raises(VexVersionConflict), write_tx(db) as conn:
        Raced().import_vex(conn, parse_document(data), data, scope, imported_by="x", now=NOW)
    with read_tx(db) as conn:
        assert [d.document_id for d in TriageStore().documents(conn)] == ["urn:race"]


def test_two_reimports_of_one_document_run_one_after_the_other(
    db: Engine, repos: dict[str, int]
) -> None:
    """A re-import waits for one of the same @id in progress and then finds its version: it
    never mixes its rows with the other's."""
    postgres_only(db)
    scope = Scope(REPOSITORY, "acme", repos["acme/app"])
    imported(db, vex({"vulnerability": "CVE-1", "status": "fixed"}, doc_id="urn:re"), scope)
    first = vex({"vulnerability": "CVE-2", "status": "fixed"}, doc_id="urn:re", version=2)
    second = vex({"vulnerability": "CVE-3", "status": "fixed"}, doc_id="urn:re", version=2)
    outcome: list[BaseException | None] = []

    def other(pid: list[int]) -> None:
        try:
            with write_tx(db) as conn:
                pid.append(conn.connection.driver_connection.info.backend_pid)  # type: ignore[union-attr]
                TriageStore().import_vex(
                    conn, parse_document(second), second, scope, imported_by="y", now=NOW
                )
            outcome.append(None)
        except BaseException as error:
            outcome.append(error)

    with write_tx(db) as conn:
        TriageStore().import_vex(
            conn, parse_document(first), first, scope, imported_by="x", now=NOW
        )
        pid: list[int] = []
        thread = threading.Thread(target=other, args=(pid,))
        thread.start()
        waiting_for_a_lock(db, pid)
    thread.join(timeout=60)
    assert not thread.is_alive()
    assert isinstance(outcome[0], VexVersionConflict)
    with read_tx(db) as conn:
        names = conn.scalars(select(vuln_triage.c.vuln_id)).all()
    assert names == ["CVE-2"]


def waiting_for_a_lock(db: Engine, pid: list[int]) -> None:
    """Return once the other session (whose backend pid `pid` will hold) waits for a lock."""
    deadline = time.monotonic() + 60
    with db.connect() as watcher:
        while True:
            if pid:
                state = watcher.scalar(
                    text("SELECT wait_event_type FROM pg_stat_activity WHERE pid = :pid"),
                    {"pid": pid[0]},
                )
                watcher.rollback()
                if state == "Lock":
                    return
            assert time.monotonic() < deadline, "the other import never waited"
            time.sleep(0.01)


def test_the_image_document_says_what_holds_and_changes_with_it(
    db: Engine, repos: dict[str, int]
) -> None:
    override(db, repos["acme/app"], "CVE-1", component_purl=REQUESTS, digest=DIGEST)
    url = "https://registry.example/api/v1/repositories/acme/app/manifests/x/vex"

    def document() -> dict[str, Any]:
        with read_tx(db) as conn:
            rows = TriageStore().applicable(conn, repos["acme/app"], DIGEST, "acme", NOW)
        return image_document(
            rows, "acme/app", DIGEST, registry="registry.example", url=url, now=NOW
        )

    first = document()
    parsed = parse_document(json.dumps(first))
    [said] = parsed.statements
    assert (said.vulnerability, said.status, said.statement) == (
        "CVE-1",
        TriageStatus.NOT_AFFECTED,
        "not reachable",
    )
    assert said.targets == (VexTarget(DIGEST, REQUESTS),)
    product = first["statements"][0]["products"][0]["@id"]
    assert "repository_url=registry.example/acme/app" in product
    assert parsed.id.startswith(f"{url}#")
    assert (parsed.timestamp, document()["@id"]) == (NOW, first["@id"])  # stable
    override(db, repos["acme/app"], "CVE-2", now=NOW + timedelta(hours=1))
    changed = document()
    assert changed["@id"] != first["@id"]
    assert changed["timestamp"] == "2026-03-01T13:00:00Z"
