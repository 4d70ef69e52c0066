"""Triage on a real server: DTR overrides per repository, OpenVEX documents imported,
re-imported, read, exported and deleted through /api/v1, every change in the audit log, bad
documents refused naming the statement and field; and a VEX `not_affected` statement taking a
finding out of the counts `apply_triage` gives, until it expires."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine

from tests.integration.oci_helpers import brief, push_image
from tests.integration.test_api import assert_problem
from tests.support.server import TrustyardServer
from trustyard.auth.audit import organization_of
from trustyard.db.engine import make_engine, read_tx
from trustyard.kit.clock import utc_now
from trustyard.vulnerabilities.components import Target, Via
from trustyard.vulnerabilities.interfaces import (
    Counts,
    ImageComponent,
    ImageFinding,
    ImageVulnerabilities,
)
from trustyard.vulnerabilities.triage import apply_triage
from trustyard.vulnerabilities.vex import Target as VexTarget
from trustyard.vulnerabilities.vex import parse_document

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("triage-api")]

ADMIN_PASSWORD = "the triage administrator's password"
PASSWORD = "a triage tester's long password"
ORG = "tri"
REPO = f"{ORG}/app"  # private: wendy read-write, rhea read-only, mal nothing
TAG = "v1"
REQUESTS = "pkg:pypi/requests@2.19.0"
URLLIB3 = "pkg:pypi/urllib3@1.24.1"
A = "/api/v1"


@dataclass
class World:
    server: TrustyardServer
    digest: str
    repository_id: int
    engine: Engine

    def client(self, user: str | None) -> httpx.Client:
        auth = None
        if user is not None:
            auth = httpx.BasicAuth(user, ADMIN_PASSWORD if user == "admin" else PASSWORD)
        return httpx.Client(base_url=self.server.url, auth=auth, timeout=60)

    def call(self, user: str | None, method: str, path: str, **extra: Any) -> httpx.Response:
        with self.client(user) as client:
            return client.request(method, path, **extra)

    def audited(self, action: str) -> list[dict[str, Any]]:
        answer = self.call("admin", "GET", f"{A}/audit", params={"action": action})
        assert answer.status_code == 200, brief(answer)
        items: list[dict[str, Any]] = answer.json()["items"]
        return items


@pytest.fixture(scope="module")
def world(start_server: Callable[..., TrustyardServer]) -> Iterator[World]:
    server = start_server(
        "triage-api", TRUSTYARD_AUTH__ENABLED="true", TRUSTYARD_ADMIN_PASSWORD=ADMIN_PASSWORD
    )
    with httpx.Client(
        base_url=server.url, auth=httpx.BasicAuth("admin", ADMIN_PASSWORD), timeout=60
    ) as admin:
        for name in ("owen", "wendy", "rhea", "mal"):
            made = admin.post(f"{A}/users", json={"username": name, "password": PASSWORD})
            assert made.status_code == 201, brief(made)
    with httpx.Client(
        base_url=server.url, auth=httpx.BasicAuth("owen", PASSWORD), timeout=60
    ) as owen:
        assert owen.post(f"{A}/organizations", json={"name": ORG}).status_code == 201
        assert owen.post(f"{A}/repositories", json={"name": REPO}).status_code == 201
        for team, member, role in (
            ("writers", "wendy", "read-write"),
            ("readers", "rhea", "read-only"),
        ):
            assert owen.post(f"{A}/organizations/{ORG}/teams", json={"name": team}).is_success
            assert owen.put(f"{A}/organizations/{ORG}/teams/{team}/members/{member}").is_success
            granted = owen.put(
                f"{A}/organizations/{ORG}/teams/{team}/repositories/{REPO}", json={"role": role}
            )
            assert granted.status_code == 204, brief(granted)
        image = push_image(owen, REPO, TAG)
    engine = make_engine(server.database_url or f"sqlite:///{server.data_dir / 'trustyard.db'}")
    with read_tx(engine) as conn:
        from trustyard.content.stores import ContentStore

        repository_id = ContentStore().repository_id(conn, REPO)
    assert repository_id is not None
    try:
        yield World(server, image.digest, repository_id, engine)
    finally:
        engine.dispose()


def vex(*statements: dict[str, Any], doc_id: str = "urn:tri:1", version: int = 1) -> dict[str, Any]:
    return {
        "@context": "https://openvex.dev/ns/v0.2.0",
        "@id": doc_id,
        "author": "Tri Security",
        "timestamp": "2026-01-01T00:00:00Z",
        "version": version,
        "statements": list(statements),
    }


def not_affected(vulnerability: str, *products: Any) -> dict[str, Any]:
    statement: dict[str, Any] = {
        "vulnerability": {"name": vulnerability},
        "status": "not_affected",
        "justification": "vulnerable_code_not_in_execute_path",
    }
    if products:
        statement["products"] = list(products)
    return statement


def finding(vuln_id: str, purl: str, bucket: str, *aliases: str) -> ImageFinding:
    name = purl.rsplit("/", maxsplit=1)[-1].split("@", maxsplit=1)[0]
    return ImageFinding(
        component=ImageComponent(
            platform="linux/amd64",
            ecosystem="pypi",
            name=name,
            version=purl.rsplit("@", maxsplit=1)[-1],
            purl=purl,
            layer="sha256:" + "44" * 32,
            target=Target("PyPI", name, purl.rsplit("@", maxsplit=1)[-1], Via.PACKAGE),
        ),
        vuln_id=vuln_id,
        record_ids=(vuln_id,),
        aliases=aliases,
        bucket=bucket,
        score=None,
        vector=None,
        fixed=None,
    )


def findings_of(world: World) -> ImageVulnerabilities:
    """The image's findings as the matcher stores them (built here: the triage is what is
    under test, not the matching)."""
    return ImageVulnerabilities(
        repository=REPO,
        manifest_digest=world.digest,
        status="matched",
        scan_id=None,
        database_version=1,
        matched_at=utc_now(),
        error=None,
        findings=(
            finding("GHSA-j8r2-6x86-q33q", REQUESTS, "major", "CVE-2023-32681"),
            finding("PYSEC-2019-132", URLLIB3, "critical", "CVE-2019-11324"),
        ),
    )


def counts(world: World, at: datetime) -> Counts:
    with read_tx(world.engine) as conn:
        triaged = apply_triage(
            conn, findings_of(world), world.repository_id, organization_of(REPO), at
        )
    return triaged.counts


# --- overrides ---------------------------------------------------------------------------------
def test_an_override_is_created_listed_and_deleted_by_writers(world: World) -> None:
    path = f"{A}/repositories/{REPO}/vulnerability-overrides"
    body = {
        "vulnerability": "CVE-2019-11324",
        "component_purl": URLLIB3,
        "digest": world.digest,
        "reason": "the proxy code is never reached",
    }
    assert_problem(world.call("rhea", "POST", path, json=body), 403)  # read-only
    assert_problem(world.call("mal", "POST", path, json=body), 404)  # cannot read it
    assert_problem(world.call(None, "POST", path, json=body), 401)
    missing_image = {**body, "digest": "sha256:" + "0" * 64}
    assert_problem(world.call("wendy", "POST", path, json=missing_image), 404)
    created = world.call("wendy", "POST", path, json=body)
    assert created.status_code == 201, brief(created)
    override = created.json()
    assert override["scope"] == "image"
    assert (override["status"], override["source"], override["created_by"]) == (
        "not_affected",
        "override",
        "wendy",
    )
    assert (override["repository"], override["digest"]) == (REPO, world.digest)
    assert counts(world, utc_now()) == Counts(major=1)

    listed = world.call("rhea", "GET", path)
    assert listed.status_code == 200, brief(listed)
    assert [item["id"] for item in listed.json()["items"]] == [override["id"]]
    assert_problem(world.call("mal", "GET", path), 404)

    one = f"{path}/{override['id']}"
    assert_problem(world.call("rhea", "DELETE", one), 403)
    assert world.call("wendy", "DELETE", one).status_code == 204
    assert_problem(world.call("wendy", "DELETE", one), 404)
    assert counts(world, utc_now()) == Counts(critical=1, major=1)

    [made] = world.audited("vulnerability.override.create")
    assert (made["actor"], made["resource"], made["organization"]) == ("wendy", REPO, ORG)
    assert made["detail"]["vulnerability"] == "CVE-2019-11324"
    [gone] = world.audited("vulnerability.override.delete")
    assert gone["detail"]["override"] == override["id"]


@pytest.mark.parametrize(
    "body",
    [
        {"vulnerability": "CVE-1"},  # no reason
        {"vulnerability": "", "reason": "x"},
        {"vulnerability": "CVE-1", "reason": "x", "digest": "sha256:nothex"},
        {"vulnerability": "CVE-1", "reason": "x", "component_purl": "not a purl"},
        {"vulnerability": "CVE-1", "reason": "x", "expires_at": "2001-01-01T00:00:00Z"},
        {"vulnerability": "CVE-1", "reason": "x", "expires_at": "tomorrow"},
        {"vulnerability": "CVE-1", "reason": "x", "justification": "because"},
    ],
)
def test_a_bad_override_is_refused_with_422(world: World, body: dict[str, Any]) -> None:
    path = f"{A}/repositories/{REPO}/vulnerability-overrides"
    assert_problem(world.call("wendy", "POST", path, json=body), 422)


# --- VEX documents -----------------------------------------------------------------------------
def test_a_vex_document_is_imported_reimported_read_exported_and_deleted(world: World) -> None:
    params = {"repository": REPO, "digest": world.digest}
    first = vex(
        not_affected("CVE-2023-32681", {"@id": world.digest, "subcomponents": [{"@id": REQUESTS}]})
    )
    imported = world.call("wendy", "POST", f"{A}/vex", params=params, json=first)
    assert imported.status_code == 201, brief(imported)
    record = imported.json()
    assert (record["scope"], record["digest"], record["repository"]) == (
        "image",
        world.digest,
        REPO,
    )
    assert (record["document_id"], record["version"], record["decisions"]) == ("urn:tri:1", 1, 1)
    assert imported.headers["location"] == f"{A}/vex/{record['id']}"
    assert counts(world, utc_now()) == Counts(critical=1)

    again = world.call("wendy", "POST", f"{A}/vex", params=params, json=first)
    assert "version 1" in str(assert_problem(again, 409)["detail"])
    second = vex(
        not_affected("CVE-2019-11324", URLLIB3),
        {
            "vulnerability": {"name": "CVE-2023-32681"},
            "status": "affected",
            "action_statement": "upgrade requests to 2.31.0",
        },
        version=2,
    )
    replaced = world.call("wendy", "POST", f"{A}/vex", params=params, json=second)
    assert replaced.status_code == 201, brief(replaced)
    assert (replaced.json()["id"], replaced.json()["replaced_version"]) == (record["id"], 1)
    assert counts(world, utc_now()) == Counts(major=1)

    one = f"{A}/vex/{record['id']}"
    read = world.call("rhea", "GET", one)
    assert read.status_code == 200, brief(read)
    assert read.json()["document"]["version"] == 2
    assert_problem(world.call("mal", "GET", one), 404)
    listed = world.call("rhea", "GET", f"{A}/vex", params={"repository": REPO}).json()
    assert [item["id"] for item in listed["items"]] == [record["id"]]
    assert world.call("mal", "GET", f"{A}/vex").json()["items"] == []

    exported = world.call("rhea", "GET", f"{A}/repositories/{REPO}/manifests/{TAG}/vex")
    assert exported.status_code == 200, brief(exported)
    document = parse_document(exported.content)
    said = {(s.vulnerability, s.status.value, s.targets) for s in document.statements}
    assert said == {
        ("CVE-2019-11324", "not_affected", (VexTarget(world.digest, URLLIB3),)),
        ("CVE-2023-32681", "affected", (VexTarget(world.digest, None),)),
    }
    assert_problem(world.call("mal", "GET", f"{A}/repositories/{REPO}/manifests/{TAG}/vex"), 404)
    assert_problem(world.call("rhea", "GET", f"{A}/repositories/{REPO}/manifests/nope/vex"), 404)

    assert_problem(world.call("rhea", "DELETE", one), 403)
    assert world.call("wendy", "DELETE", one).status_code == 204
    assert_problem(world.call("wendy", "GET", one), 404)
    assert counts(world, utc_now()) == Counts(critical=1, major=1)
    assert [e["detail"]["version"] for e in world.audited("vex.import")] == [2, 1]
    assert len(world.audited("vex.delete")) == 1


def test_an_organizations_document_is_for_its_owners(world: World) -> None:
    doc = vex(not_affected("CVE-9", REQUESTS), doc_id="urn:tri:org")
    params = {"organization": ORG}
    assert_problem(world.call("wendy", "POST", f"{A}/vex", params=params, json=doc), 403)
    assert_problem(world.call("mal", "POST", f"{A}/vex", params=params, json=doc), 404)
    made = world.call("owen", "POST", f"{A}/vex", params=params, json=doc)
    assert made.status_code == 201, brief(made)
    assert (made.json()["scope"], made.json()["organization"]) == ("organization", ORG)
    one = f"{A}/vex/{made.json()['id']}"
    assert world.call("wendy", "GET", one).status_code == 200  # a member sees it
    assert_problem(world.call("mal", "GET", one), 404)
    assert_problem(world.call("wendy", "DELETE", one), 403)
    assert world.call("owen", "DELETE", one).status_code == 204


def test_a_bad_document_is_refused_naming_the_statement_and_field(world: World) -> None:
    bad = vex(not_affected("CVE-1"), {"vulnerability": {"name": "CVE-2"}, "status": "not_affected"})
    answer = world.call("wendy", "POST", f"{A}/vex", params={"repository": REPO}, json=bad)
    detail = str(assert_problem(answer, 422)["detail"])
    assert "statement 1: justification" in detail
    for params in ({}, {"repository": REPO, "organization": ORG}, {"digest": world.digest}):
        answer = world.call("wendy", "POST", f"{A}/vex", params=params, json=vex(not_affected("X")))
        assert_problem(answer, 422)
    for body in ([], "text", {"@context": "https://openvex.dev/ns"}):
        answer = world.call("wendy", "POST", f"{A}/vex", params={"repository": REPO}, json=body)
        assert answer.status_code == 422, brief(answer)
    assert world.call("wendy", "GET", f"{A}/vex", params={"repository": REPO}).json()["items"] == []


# --- the "done when": a not_affected statement and its expiry --------------------------
def test_a_not_affected_statement_leaves_the_counts_until_it_expires(world: World) -> None:
    before = counts(world, utc_now())
    assert before == Counts(critical=1, major=1)
    until = (utc_now() + timedelta(hours=1)).replace(microsecond=0)
    doc = vex(not_affected("CVE-2019-11324", URLLIB3), doc_id="urn:tri:expiring")
    params = {"repository": REPO, "expires_at": until.isoformat().replace("+00:00", "Z")}
    made = world.call("wendy", "POST", f"{A}/vex", params=params, json=doc)
    assert made.status_code == 201, brief(made)
    assert datetime.fromisoformat(made.json()["expires_at"]).astimezone(UTC) == until
    assert counts(world, utc_now()) == Counts(major=1)
    assert counts(world, until - timedelta(seconds=1)) == Counts(major=1)
    assert counts(world, until) == before  # expired: counted again
    world.call("wendy", "DELETE", f"{A}/vex/{made.json()['id']}")
