"""Vulnerabilities end to end (issue 11): a real server with scan on push, the offline OSV
bundles of ../shared/vulndb imported with `trustyard vulndb import`, the python-app and
node-app test images pushed with skopeo, scanned on push, matched, and read from /api/v1 as
JSON, CSV and CycloneDX 1.6: exactly the advisories of the images' package versions
(`tests/support/expected_vulns.py`: expected-matches.json's ids where it has a query for the
version, our in-memory Index over the fixture otherwise), in the buckets the records' own
CVSS vectors give. A VEX `not_affected` statement takes its finding out of counts and exports
until it expires; the tag list shows the counts; states and refusals are clear."""

from __future__ import annotations

import csv
import io
import json
import shutil
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from cyclonedx.schema import SchemaVersion
from cyclonedx.validation.json import JsonStrictValidator
from sqlalchemy import select, update

from tests.integration.clients import Clients
from tests.integration.oci_helpers import brief
from tests.support.expected_vulns import VULNDB, expected_findings, from_index
from tests.support.images import image_info, image_layout, load_truth
from tests.support.server import TrustyardServer
from trustyard.auth import audit
from trustyard.db.engine import make_engine, write_tx
from trustyard.db.tables import repositories, vuln_triage
from trustyard.kit.clock import utc_now
from trustyard.vulnerabilities.index import Index
from trustyard.vulnerabilities.osv import parse_record
from trustyard.vulnerabilities.severity import bucket_for_score
from trustyard.vulnerabilities.triage import Scope, TriageStore
from trustyard.vulnerabilities.vex import parse_document

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("vulnerabilities-e2e")]

ADMIN_PASSWORD = "the vulnerability administrator's password"
IMAGES = ("python-app", "node-app")
OSV = {"pypi": "PyPI", "npm": "npm"}
DEADLINE = 300.0  # generous: the machine is shared; no test asserts a duration
CYCLONEDX = "application/vnd.cyclonedx+json"
VALIDATOR = JsonStrictValidator(SchemaVersion.V1_6)


@pytest.fixture(scope="module")
def registry(
    start_server: Callable[..., TrustyardServer], tmp_path_factory: pytest.TempPathFactory
) -> TrustyardServer:
    server = start_server(
        "vulns",
        TRUSTYARD_SCANNING__ENABLED="true",
        TRUSTYARD_AUTH__ENABLED="true",
        TRUSTYARD_ADMIN_PASSWORD=ADMIN_PASSWORD,
        TRUSTYARD_JOBS__POLL_SECONDS="0.2",
    )
    # The fixture's ecosystems the two images have packages of, as osv.dev's all.zip.
    bundles = tmp_path_factory.mktemp("osv-bundles")
    paths = [
        shutil.make_archive(str(bundles / f"{OSV[folder]}-all"), "zip", root_dir=VULNDB / folder)
        for folder in OSV
    ]
    server.cli("vulndb", "import", *paths)
    return server


@pytest.fixture(scope="module")
def engine(registry: TrustyardServer) -> Iterator[Any]:
    made = make_engine(registry.database_url or f"sqlite:///{registry.data_dir / 'trustyard.db'}")
    yield made
    made.dispose()


@pytest.fixture(scope="module")
def admin(registry: TrustyardServer) -> Iterator[httpx.Client]:
    auth = httpx.BasicAuth("admin", ADMIN_PASSWORD)
    with httpx.Client(base_url=registry.url, timeout=60, auth=auth) as client:
        yield client


@pytest.fixture(scope="module")
def pushed(
    registry: TrustyardServer, admin: httpx.Client, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, str]:
    """image -> its repository: both pushed with skopeo, each scanned and matched on push."""
    clients = Clients(tmp_path_factory.mktemp("vuln-clients"), [registry.host])
    repositories = {}
    for image in IMAGES:
        repository = f"admin/{image}-{uuid.uuid4().hex[:6]}"
        clients.skopeo(
            "copy",
            "--quiet",
            "--dest-tls-verify=false",
            "--dest-creds",
            f"admin:{ADMIN_PASSWORD}",
            f"oci:{image_layout(image)}:latest",
            f"docker://{registry.host}/{repository}:v1",
        )
        repositories[image] = repository
    for repository in repositories.values():
        wait_until_matched(admin, repository, "v1")
    return repositories


def path(repository: str, reference: str) -> str:
    return f"/api/v1/repositories/{repository}/manifests/{reference}/vulnerabilities"


def wait_until_matched(client: httpx.Client, repository: str, reference: str) -> dict[str, Any]:
    """The image's report once its scan on push is matched (the scan job matches it in its
    own transaction, so `matched` follows `succeeded` at once)."""
    deadline = time.monotonic() + DEADLINE
    while True:
        answer = client.get(path(repository, reference))
        assert answer.status_code == 200, brief(answer)
        body: dict[str, Any] = answer.json()
        assert body["status"] in ("not_scanned", "pending", "matched"), body
        if body["status"] == "matched":
            return body
        assert time.monotonic() < deadline, f"{repository} not matched: {body}"
        time.sleep(0.3)


def report(client: httpx.Client, repository: str, **params: Any) -> dict[str, Any]:
    answer = client.get(path(repository, "v1"), params=params)
    assert answer.status_code == 200, brief(answer)
    assert answer.headers["content-type"] == "application/json"
    body: dict[str, Any] = answer.json()
    return body


def findings(body: dict[str, Any]) -> list[tuple[dict[str, Any], dict[str, Any], str]]:
    """(component, finding, layer digest) of every finding of a JSON report."""
    return [
        (component, finding, layer["digest"])
        for layer in body["layers"]
        for component in layer["components"]
        for finding in component["findings"]
    ]


def fixture_index() -> Index:
    records = (
        parse_record(p.read_bytes())
        for folder in OSV
        for p in sorted((VULNDB / folder).glob("*.json"))
    )
    return Index.of(records)


@pytest.fixture(scope="module")
def expected_buckets() -> dict[tuple[str, str, str], str]:
    """(name, version, vulnerability id) -> the bucket the fixture's records give, read by
    the in-memory Index (not through the database, the scan or the API)."""
    index = fixture_index()
    buckets = {}
    for image in IMAGES:
        for ecosystem, name, version in load_truth(image):
            if ecosystem in OSV:
                for found in index.findings(OSV[ecosystem], name, version):
                    buckets[(name, version, found.id)] = str(found.severity.bucket)
    return buckets


# --- the report ---------------------------------------------------------------------------------
@pytest.mark.parametrize("image", IMAGES)
def test_the_api_reports_exactly_the_advisories_of_the_images_versions(
    image: str,
    pushed: dict[str, str],
    admin: httpx.Client,
    registry: TrustyardServer,
    expected_buckets: dict[tuple[str, str, str], str],
) -> None:
    body = report(admin, pushed[image])
    assert (body["repository"], body["manifest_digest"]) == (
        pushed[image],
        image_info(image)["digest"],
    )
    assert body["status"] == "matched"
    assert body["error"] is None
    status = json.loads(registry.cli("vulndb", "status", "--json").stdout)
    assert body["database_version"] == status["version"]
    rows = findings(body)
    got = {(c["name"], record) for c, f, _ in rows for record in f["records"]}
    assert got == expected_findings(image)
    assert got, f"{image} has no advisories in the fixture?"
    # One finding per (component, vulnerability): aliases merged, never counted twice.
    keys = [(c["name"], f["id"]) for c, f, _ in rows]
    assert len(keys) == len(set(keys))
    # Buckets: as the records' CVSS vectors give them, and DTR's thresholds on the score.
    for component, finding, _ in rows:
        key = (component["name"], component["version"], finding["id"])
        assert finding["bucket"] == expected_buckets[key], key
        if finding["score"] is not None:
            assert finding["bucket"] == str(bucket_for_score(finding["score"])), finding
        assert finding["via"] == "package"
        assert component["matched_as"]["ecosystem"] == OSV[component["ecosystem"]]
    tally = {"critical": 0, "major": 0, "minor": 0, "unknown": 0}
    for _, finding, _ in rows:
        tally[finding["bucket"]] += 1
    assert body["counts"] == {**tally, "total": len(rows)}
    # Per layer: every language package came with the image's second (application) layer.
    app_layer = image_info(image)["images"][0]["layers"][1]["digest"]
    assert {layer for _, _, layer in rows} == {app_layer}
    assert {layer["digest"] for layer in body["layers"]} == {app_layer}


def test_versions_without_a_query_are_matched_through_our_index() -> None:
    """Recorded for the report: the image versions expected-matches.json has no query for
    (their expected ids come from our Index over the fixture, as the module says)."""
    assert from_index("python-app") == {
        ("pypi", "MarkupSafe", "2.1.2"),
        ("pypi", "certifi", "2018.4.16"),
        ("pypi", "chardet", "3.0.4"),
        ("pypi", "idna", "2.7"),
        ("pypi", "pytz", "2019.1"),
        ("pypi", "sqlparse", "0.2.4"),
        ("pypi", "urllib3", "1.23"),
    }
    assert from_index("node-app") == {("npm", "follow-redirects", "1.13.0")}


@pytest.mark.parametrize("image", IMAGES)
def test_csv_has_a_row_per_finding_and_a_download_name(
    image: str, pushed: dict[str, str], admin: httpx.Client
) -> None:
    body = report(admin, pushed[image])
    answer = admin.get(path(pushed[image], "v1"), params={"format": "csv"})
    assert answer.status_code == 200, brief(answer)
    assert answer.headers["content-type"] == "text/csv; charset=utf-8"
    disposition = answer.headers["content-disposition"]
    assert disposition.startswith("attachment; filename=")
    assert disposition.endswith('.csv"')
    rows = list(csv.DictReader(io.StringIO(answer.text)))
    assert sorted((r["component"], r["vulnerability"], r["bucket"]) for r in rows) == sorted(
        (c["name"], f["id"], f["bucket"]) for c, f, _ in findings(body)
    )
    assert {r["manifest_digest"] for r in rows} == {image_info(image)["digest"]}


@pytest.mark.parametrize("image", IMAGES)
def test_cyclonedx_is_strictly_valid_and_points_at_its_components(
    image: str, pushed: dict[str, str], admin: httpx.Client
) -> None:
    body = report(admin, pushed[image])
    answer = admin.get(path(pushed[image], "v1"), params={"format": "cyclonedx"})
    assert answer.status_code == 200, brief(answer)
    assert answer.headers["content-type"] == CYCLONEDX
    assert answer.headers["content-disposition"].endswith('.cdx.json"')
    error = VALIDATOR.validate_str(answer.text)
    assert error is None, str(error)
    document = json.loads(answer.text)
    components = {c["bom-ref"]: c for c in document["components"]}
    entries = document["vulnerabilities"]
    found = set()
    for entry in entries:
        [affected] = entry["affects"]
        found.add((components[affected["ref"]]["name"], entry["id"]))
        assert entry["ratings"][0]["severity"] in (
            "critical",
            "high",
            "medium",
            "low",
            "none",
            "unknown",
        )
    assert found == {(c["name"], f["id"]) for c, f, _ in findings(body)}
    assert len(entries) == len(found)


def test_the_tag_list_shows_the_counts(pushed: dict[str, str], admin: httpx.Client) -> None:
    for repository in pushed.values():
        counts = report(admin, repository)["counts"]
        answer = admin.get(f"/api/v1/repositories/{repository}/tags")
        assert answer.status_code == 200, brief(answer)
        [tag] = answer.json()["items"]
        assert (tag["scan_status"], tag["vulnerabilities"]) == ("succeeded", counts)


# --- triage ---------------------------------------------------------------------------------------
def test_a_vex_not_affected_statement_hides_the_finding_until_it_expires(
    pushed: dict[str, str], admin: httpx.Client, engine: Any
) -> None:
    repository = pushed["python-app"]
    before = report(admin, repository)
    component, finding, _ = next(
        (c, f, layer) for c, f, layer in findings(before) if c["name"] == "Django"
    )
    vuln = finding["id"]
    document = {
        "@context": "https://openvex.dev/ns/v0.2.0",
        "@id": f"https://example.com/vex/{uuid.uuid4().hex}",
        "author": "security team",
        "timestamp": "2026-01-01T00:00:00Z",
        "version": 1,
        "statements": [
            {
                "vulnerability": {"name": vuln},
                "products": [{"@id": component["purl"]}],
                "status": "not_affected",
                "justification": "vulnerable_code_not_in_execute_path",
            }
        ],
    }
    data = json.dumps(document).encode()
    with write_tx(engine) as conn:
        repository_id = conn.scalar(
            select(repositories.c.id).where(repositories.c.name == repository)
        )
        scope = Scope("repository", audit.organization_of(repository), repository_id)
        now = utc_now()
        TriageStore().import_vex(
            conn,
            parse_document(data),
            data,
            scope,
            expires_at=now + timedelta(days=1),
            imported_by="admin",
            now=now,
        )
    after = report(admin, repository)
    assert after["counts"]["total"] == before["counts"]["total"] - 1
    assert after["counts"][finding["bucket"]] == before["counts"][finding["bucket"]] - 1
    assert after["suppressed"] == 1
    [tag] = admin.get(f"/api/v1/repositories/{repository}/tags").json()["items"]
    assert tag["vulnerabilities"] == after["counts"]
    assert (component["name"], vuln) not in {(c["name"], f["id"]) for c, f, _ in findings(after)}
    rows = csv.DictReader(
        io.StringIO(admin.get(path(repository, "v1"), params={"format": "csv"}).text)
    )
    assert vuln not in {r["vulnerability"] for r in rows if r["component"] == "Django"}
    # Asked for, it is listed with its analysis.
    shown = admin.get(path(repository, "v1"), params={"format": "cyclonedx", "suppressed": True})
    assert VALIDATOR.validate_str(shown.text) is None
    [entry] = [e for e in json.loads(shown.text)["vulnerabilities"] if e["id"] == vuln]
    assert entry["analysis"]["state"] == "not_affected"
    assert entry["analysis"]["justification"] == "code_not_reachable"
    # Expired, it holds no more.
    with write_tx(engine) as conn:
        conn.execute(
            update(vuln_triage)
            .where(vuln_triage.c.vuln_id == vuln)
            .values(expires_at=utc_now() - timedelta(seconds=1))
        )
    assert report(admin, repository)["counts"] == before["counts"]
    [tag] = admin.get(f"/api/v1/repositories/{repository}/tags").json()["items"]
    assert tag["vulnerabilities"] == before["counts"]


# --- states and refusals --------------------------------------------------------------------------
def test_an_image_never_scanned_says_so(
    pushed: dict[str, str], admin: httpx.Client, tmp_path: Path, registry: TrustyardServer
) -> None:
    repository = f"admin/unscanned-{uuid.uuid4().hex[:6]}"
    made = admin.post("/api/v1/repositories", json={"name": repository})
    assert made.status_code == 201, brief(made)
    off = admin.patch(f"/api/v1/repositories/{repository}", json={"scan_on_push": False})
    assert off.status_code == 200, brief(off)
    Clients(tmp_path, [registry.host]).skopeo(
        "copy",
        "--quiet",
        "--dest-tls-verify=false",
        "--dest-creds",
        f"admin:{ADMIN_PASSWORD}",
        f"oci:{image_layout('node-app')}:latest",
        f"docker://{registry.host}/{repository}:v1",
    )
    body = report(admin, repository)
    assert (body["status"], body["scan_id"], body["layers"]) == ("not_scanned", None, [])
    assert body["counts"]["total"] == 0
    for form in ("csv", "cyclonedx"):
        answer = admin.get(path(repository, "v1"), params={"format": form})
        assert answer.status_code == 409, brief(answer)
        assert answer.headers["content-type"] == "application/problem+json"
        assert "has not been scanned" in answer.json()["detail"]
    [tag] = admin.get(f"/api/v1/repositories/{repository}/tags").json()["items"]
    assert (tag["scan_status"], tag["vulnerabilities"]) == (None, None)


def test_unknown_manifests_and_unreadable_repositories_answer_404(
    pushed: dict[str, str], admin: httpx.Client, registry: TrustyardServer
) -> None:
    repository = pushed["node-app"]
    missing = admin.get(path(repository, "sha256:" + "0" * 64))
    assert missing.status_code == 404, brief(missing)
    assert admin.get(path(repository, "no-such-tag")).status_code == 404
    assert admin.get(path(repository, "v1"), params={"format": "xml"}).status_code == 422
    with httpx.Client(base_url=registry.url, timeout=60) as anonymous:
        hidden = anonymous.get(path(repository, "v1"))
    assert hidden.status_code == 404, brief(hidden)
