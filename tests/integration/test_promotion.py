"""Promotion end to end (issue 12): a real server with accounts, scan on push and the PyPI
advisories of ../shared/vulndb imported; real skopeo and oras pushes of the shared test images.

The pipeline, made with DTR-shaped bodies on `/api/v0/.../promotionPolicies` by the system
administrator:

    dev/app --(tag starts with v: "%n")--> qa/app --(no vulnerabilities: "release-%n-%h")--> prod
       \\--(tag starts with v: "candidate-%n")--> staging/app  (the branch)

A developer who may push only to dev/app builds `build-N` tags, attaches a cosign-style
signature (an artifact manifest with `subject`, also tagged `sha256-<hex>.sig`) and an SBOM
(oras, with a subject) to each image, then tags it `vN`. The administrator's policies promote
as the administrator, whoever pushed. python-app (known vulnerable under the PyPI advisories)
stops at qa: the gate's vulnerability rules fail. multi-arch (an index of two Go images; no Go
advisories are imported, so its scan finds nothing) reaches prod under the template's tag.
Every copy is pulled back digest-exact with skopeo, its referrers and the signature's
fallback tag are there, and the history and promotion list say how each image got there. A
policy that would close the loop (prod -> dev) is refused with 400; a manual promotion needs
pull on the source and push on the target, and a repeat of it moves nothing.

Waiting is on events (a webhook receiver subscribed to PROMOTION and SCAN_COMPLETED) and on
the job queue (`/api/v1/jobs`), never on a fixed delay.
"""

from __future__ import annotations

import base64
import hashlib
import json
import shutil
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import oras.oci
import oras.provider
import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from tests.integration.clients import Clients, layout_blobs, layout_top
from tests.integration.oci_helpers import OCI_EMPTY, OCI_MANIFEST, brief, encode, push_blob
from tests.support.expected_vulns import VULNDB
from tests.support.images import image_info, image_layout
from tests.support.server import TrustyardServer
from tests.support.webhook_receiver import Received, WebhookReceiver

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.xdist_group("promotion")]

ADMIN_PASSWORD = "the promotion administrator's password"
DEVELOPER = "devon"
DEVELOPER_PASSWORD = "the developer's own password"
V0 = "/api/v0/repositories"
V1 = "/api/v1"
DEV, QA, PROD, STAGING = "dev/app", "qa/app", "prod/app", "staging/app"
SANDBOX, REVIEW = "sandbox/app", "dev/review"  # manual promotions: hidden from / read-only for
# the developer
VULNERABLE, CLEAN = "python-app", "multi-arch"  # see the module's docstring
BUILDS = {VULNERABLE: "1", CLEAN: "2"}  # image -> its build number (tags build-N, vN)
COSIGN_SIGNATURE = "application/vnd.dev.cosign.artifact.sig.v1+json"
SIMPLE_SIGNING = "application/vnd.dev.cosign.simplesigning.v1+json"
SIGNATURE_ANNOTATION = "dev.cosignproject.cosign/signature"
SBOM_ARTIFACT = "application/spdx+json"
DEADLINE = 300.0  # generous: the machine is shared; no test asserts a duration
MANIFEST_TYPES = ", ".join(
    (
        OCI_MANIFEST,
        "application/vnd.oci.image.index.v1+json",
        "application/vnd.docker.distribution.manifest.v2+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
    )
)


# --- the pipeline ---------------------------------------------------------------------------------
@dataclass
class Pipeline:
    server: TrustyardServer
    admin: httpx.Client
    developer: httpx.Client
    clients: Clients
    receiver: WebhookReceiver
    hook_path: str
    policies: dict[str, int]  # "dev->qa", "dev->staging", "qa->prod" -> id
    digests: dict[str, str]  # image -> its top manifest's digest
    signatures: dict[str, str]  # image -> its signature manifest's digest
    sboms: dict[str, str]  # image -> its SBOM artifact's digest
    public_key: ec.EllipticCurvePublicKey
    work: Path

    def promotions(self) -> list[dict[str, Any]]:
        """The PROMOTION events delivered so far (CloudEvents `data`)."""
        return promotion_events(self.receiver.delivered(self.hook_path))


def promotion_events(found: list[Received]) -> list[dict[str, Any]]:
    """The `data` of the PROMOTION events among delivered requests."""
    return [r.json()["data"] for r in found if r.headers.get("x-trustyard-event") == "PROMOTION"]


@pytest.fixture(scope="module")
def registry(
    start_server: Callable[..., TrustyardServer], tmp_path_factory: pytest.TempPathFactory
) -> TrustyardServer:
    server = start_server(
        "promotion",
        TRUSTYARD_SCANNING__ENABLED="true",
        TRUSTYARD_AUTH__ENABLED="true",
        TRUSTYARD_ADMIN_PASSWORD=ADMIN_PASSWORD,
        TRUSTYARD_JOBS__POLL_SECONDS="0.2",
        TRUSTYARD_WEBHOOKS__ALLOWED_NETWORKS="127.0.0.1/32",
    )
    bundles = tmp_path_factory.mktemp("osv-bundles")
    bundle = shutil.make_archive(str(bundles / "PyPI-all"), "zip", root_dir=VULNDB / "pypi")
    server.cli("vulndb", "import", bundle)
    return server


@pytest.fixture(scope="module")
def receiver() -> Iterator[WebhookReceiver]:
    with WebhookReceiver() as running:
        yield running


def expect(answer: httpx.Response, *statuses: int) -> Any:
    assert answer.status_code in statuses, brief(answer)
    return answer.json() if answer.content else None


def dtr_policy(target: str, rules: list[dict[str, Any]], template: str) -> dict[str, Any]:
    """A promotion policy in DTR's documented shape."""
    return {"enabled": True, "rules": rules, "tagTemplate": template, "targetRepository": target}


TAG_STARTS_WITH_V = [{"field": "tag", "operator": "sw", "values": ["v"]}]
NO_VULNERABILITIES = [
    # Canonical and DTR names, a value as a string and as a JSON number.
    {"field": "vulnerability.critical", "operator": "lte", "values": ["0"]},
    {"field": "vulnerability_all", "operator": "eq", "values": [0]},
]
RELEASE_TEMPLATE = "release-%n-%h"


def setup_accounts(admin: httpx.Client) -> None:
    """The developer may push to dev/app only and read review/app (a team of organization
    `dev`); every other repository is the administrator's."""
    for name in (DEV, QA, PROD, STAGING, SANDBOX, REVIEW):
        expect(admin.post(f"{V1}/repositories", json={"name": name}), 201)
    expect(
        admin.post(f"{V1}/users", json={"username": DEVELOPER, "password": DEVELOPER_PASSWORD}),
        201,
    )
    expect(admin.post(f"{V1}/organizations/dev/teams", json={"name": "builders"}), 201)
    expect(admin.put(f"{V1}/organizations/dev/teams/builders/members/{DEVELOPER}"), 204)
    for repository, role in ((DEV, "read-write"), (REVIEW, "read-only")):
        grant = f"{V1}/organizations/dev/teams/builders/repositories/{repository}"
        expect(admin.put(grant, json={"role": role}), 204)


def subscribe(admin: httpx.Client, receiver: WebhookReceiver, path: str) -> None:
    body = {
        "url": receiver.url(path),
        "events": ["PROMOTION", "SCAN_COMPLETED"],
        "registry": True,
        "format": "cloudevents",
    }
    expect(admin.post(f"{V1}/webhooks", json=body), 201)


def create_policies(admin: httpx.Client) -> dict[str, int]:
    made = {}
    for key, source, body in (
        ("dev->qa", DEV, dtr_policy(QA, TAG_STARTS_WITH_V, "%n")),
        ("dev->staging", DEV, dtr_policy(STAGING, TAG_STARTS_WITH_V, "candidate-%n")),
        ("qa->prod", QA, dtr_policy(PROD, NO_VULNERABILITIES, RELEASE_TEMPLATE)),
    ):
        created = expect(admin.post(f"{V0}/{source}/promotionPolicies", json=body), 201)
        assert created["targetRepository"] == body["targetRepository"], created
        assert created["tagTemplate"] == body["tagTemplate"]
        assert created["enabled"] is True
        made[key] = int(created["id"])
    return made


def sign(key: ec.EllipticCurvePrivateKey, repository: str, digest: str) -> tuple[bytes, str]:
    """A cosign simple-signing payload for the image and its signature (base64 DER)."""
    payload = json.dumps(
        {
            "critical": {
                "identity": {"docker-reference": repository},
                "image": {"docker-manifest-digest": digest},
                "type": "cosign container image signature",
            },
            "optional": None,
        }
    ).encode()
    signature = key.sign(payload, ec.ECDSA(hashes.SHA256()))
    return payload, base64.b64encode(signature).decode()


def subject_of(client: httpx.Client, repository: str, digest: str) -> dict[str, Any]:
    head = client.head(f"/v2/{repository}/manifests/{digest}", headers={"Accept": MANIFEST_TYPES})
    assert head.status_code == 200, brief(head)
    return {
        "mediaType": head.headers["content-type"],
        "digest": digest,
        "size": int(head.headers["content-length"]),
    }


def push_signature(
    client: httpx.Client, key: ec.EllipticCurvePrivateKey, repository: str, digest: str
) -> str:
    """A cosign-style signature of the image: an artifact manifest whose subject is the image,
    also tagged `sha256-<hex>.sig` (cosign's tag scheme, for clients without referrers)."""
    payload, signature = sign(key, f"registry.example/{repository}", digest)
    push_blob(client, repository, payload)
    push_blob(client, repository, b"{}")
    document = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": COSIGN_SIGNATURE,
        "config": {"mediaType": OCI_EMPTY, "digest": sha(b"{}"), "size": 2},
        "layers": [
            {
                "mediaType": SIMPLE_SIGNING,
                "digest": sha(payload),
                "size": len(payload),
                "annotations": {SIGNATURE_ANNOTATION: signature},
            }
        ],
        "subject": subject_of(client, repository, digest),
    }
    body = encode(document)
    tag = digest.replace(":", "-") + ".sig"
    for reference in (sha(body), tag):
        answer = client.put(
            f"/v2/{repository}/manifests/{reference}",
            content=body,
            headers={"Content-Type": OCI_MANIFEST},
        )
        assert answer.status_code == 201, brief(answer)
    return sha(body)


def push_sbom(
    registry: TrustyardServer, client: httpx.Client, work: Path, repository: str, digest: str
) -> str:
    """An SPDX document attached to the image with oras (an artifact with a subject)."""
    subject = subject_of(client, repository, digest)
    sbom = work / f"sbom-{digest[7:19]}.spdx.json"
    sbom.write_text(json.dumps({"spdxVersion": "SPDX-2.3", "name": digest}), encoding="utf-8")
    auth_config = work / "oras-auth.json"
    oras_client = oras.provider.Registry(
        hostname=registry.host, insecure=True, auth_backend="basic"
    )
    oras_client.login(
        DEVELOPER, DEVELOPER_PASSWORD, hostname=registry.host, config_path=str(auth_config)
    )
    config = work / "sbom-config.json"
    config.write_bytes(b"{}")
    pushed = oras_client.push(
        target=f"{registry.host}/{repository}:sbom-{digest[7:19]}",
        files=[f"{sbom}:{SBOM_ARTIFACT}"],
        manifest_config=f"{config}:{SBOM_ARTIFACT}",  # oras-py's artifactType is its type
        config_path=str(auth_config),
        subject=oras.oci.Subject(**subject),
        disable_path_validation=True,
        quiet=True,
    )
    assert pushed.status_code == 201
    digest_pushed: str = pushed.headers["Docker-Content-Digest"]
    return digest_pushed


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@pytest.fixture(scope="module")
def pipeline(
    registry: TrustyardServer, receiver: WebhookReceiver, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Pipeline]:
    work = tmp_path_factory.mktemp("promotion")
    admin = httpx.Client(
        base_url=registry.url, timeout=60, auth=httpx.BasicAuth("admin", ADMIN_PASSWORD)
    )
    developer = httpx.Client(
        base_url=registry.url, timeout=60, auth=httpx.BasicAuth(DEVELOPER, DEVELOPER_PASSWORD)
    )
    hook_path = f"/promotion-{uuid.uuid4().hex[:8]}"  # this server's deliveries only
    setup_accounts(admin)
    subscribe(admin, receiver, hook_path)
    policies = create_policies(admin)
    key = ec.generate_private_key(ec.SECP256R1())
    clients = Clients(work / "clients", [registry.host])
    creds = f"{DEVELOPER}:{DEVELOPER_PASSWORD}"
    digests, signatures, sboms = {}, {}, {}
    for image, build in BUILDS.items():
        flags = ["--all"] if image == CLEAN else []
        clients.skopeo(
            "copy", "--quiet", *flags, "--dest-tls-verify=false", "--dest-creds", creds,
            f"oci:{image_layout(image)}:latest", f"docker://{registry.host}/{DEV}:build-{build}",
        )  # fmt: skip
        digest = image_info(image)["digest"]
        digests[image] = digest
        # Attached before the image gets the tag the policies promote...
        signatures[image] = push_signature(developer, key, DEV, digest)
        sboms[image] = push_sbom(registry, developer, work, DEV, digest)
        # ... which a release tag of the same manifest then adds (a retag, as CI does it).
        clients.skopeo(
            "copy", "--quiet", *flags, "--src-tls-verify=false", "--dest-tls-verify=false",
            "--src-creds", creds, "--dest-creds", creds,
            f"docker://{registry.host}/{DEV}:build-{build}",
            f"docker://{registry.host}/{DEV}:v{build}",
        )  # fmt: skip
    made = Pipeline(
        registry,
        admin,
        developer,
        clients,
        receiver,
        hook_path,
        policies,
        digests,
        signatures,
        sboms,
        key.public_key(),
        work,
    )
    try:
        yield made
    finally:
        admin.close()
        developer.close()


# --- waiting ------------------------------------------------------------------------------------
def wait_promoted(pipeline: Pipeline, repository: str, tag: str) -> None:
    """Until the PROMOTION event of `repository:tag` arrived. The condition reads only the
    requests it is handed: the receiver holds its lock while it asks."""

    def seen(found: list[Received]) -> bool:
        return any(
            (data["repository"], data["tag"]) == (repository, tag)
            for data in promotion_events(found)
        )

    pipeline.receiver.wait_for(seen, timeout=DEADLINE, path=pipeline.hook_path)


def wait_scanned(pipeline: Pipeline, repository: str, digest: str) -> None:
    """Until the SCAN_COMPLETED event of the image in `repository` arrived (it is published
    in the transaction that stores the scan and its match)."""

    def seen(found: list[Received]) -> bool:
        return any(
            r.headers.get("x-trustyard-event") == "SCAN_COMPLETED"
            and r.json().get("subject") == repository
            and r.json()["data"].get("digest") == digest
            for r in found
        )

    pipeline.receiver.wait_for(seen, timeout=DEADLINE, path=pipeline.hook_path)


def wait_jobs_settled(admin: httpx.Client, kind: str) -> None:
    """Until no job of `kind` is queued or running (the queue drains; jobs are awaited through
    their states, as every job test does)."""
    deadline = time.monotonic() + DEADLINE
    params = {"kind": kind, "state": ["queued", "running"]}
    while expect(admin.get(f"{V1}/jobs", params=params), 200)["items"]:
        assert time.monotonic() < deadline, f"{kind} jobs did not settle"
        time.sleep(0.2)


def tags(client: httpx.Client, repository: str) -> dict[str, str]:
    """tag -> digest of a repository, through /api/v1."""
    page = expect(client.get(f"{V1}/repositories/{repository}/tags", params={"limit": 500}), 200)
    return {item["name"]: item["digest"] for item in page["items"]}


def release_tag(pipeline: Pipeline) -> str:
    return f"release-v{BUILDS[CLEAN]}-{pipeline.digests[CLEAN][7:19]}"


# --- the chain and the gate ---------------------------------------------------------------------
def test_the_clean_image_reaches_prod_under_the_template_tag(pipeline: Pipeline) -> None:
    wait_promoted(pipeline, PROD, release_tag(pipeline))
    digest = pipeline.digests[CLEAN]
    assert tags(pipeline.admin, QA)[f"v{BUILDS[CLEAN]}"] == digest
    assert tags(pipeline.admin, PROD)[release_tag(pipeline)] == digest


def test_the_vulnerable_image_stops_at_qa(pipeline: Pipeline) -> None:
    digest = pipeline.digests[VULNERABLE]
    tag = f"v{BUILDS[VULNERABLE]}"
    wait_promoted(pipeline, QA, tag)
    wait_scanned(pipeline, QA, digest)
    wait_jobs_settled(pipeline.admin, "policies.evaluate")
    assert tags(pipeline.admin, QA)[tag] == digest
    report = expect(
        pipeline.admin.get(f"{V1}/repositories/{QA}/manifests/{tag}/vulnerabilities"), 200
    )
    assert report["status"] == "matched"
    assert report["counts"]["critical"] > 0, report["counts"]
    assert digest not in set(tags(pipeline.admin, PROD).values())
    assert not any(
        (data["digest"], data["repository"]) == (digest, PROD) for data in pipeline.promotions()
    )
    # The dry run of the gate over qa says why, rule by rule.
    dry = expect(
        pipeline.admin.post(
            f"{V1}/repositories/{QA}/policy-dry-run", json={"rules": NO_VULNERABILITIES}
        ),
        200,
    )
    text = json.dumps(dry)
    assert tag in text
    assert "failed" in text


def test_one_source_branches_to_two_targets(pipeline: Pipeline) -> None:
    for image, build in BUILDS.items():
        wait_promoted(pipeline, STAGING, f"candidate-v{build}")
        assert tags(pipeline.admin, STAGING)[f"candidate-v{build}"] == pipeline.digests[image]
        assert tags(pipeline.admin, QA)[f"v{build}"] == pipeline.digests[image]


def test_only_the_release_tags_move(pipeline: Pipeline) -> None:
    """build-N, sbom-... are not promoted (the rule wants a tag starting with v); the
    signature's fallback tag travels with the image it names."""
    wait_promoted(pipeline, PROD, release_tag(pipeline))
    for image, build in BUILDS.items():
        fallback = pipeline.digests[image].replace(":", "-") + ".sig"
        assert set(tags(pipeline.admin, STAGING)) >= {f"candidate-v{build}", fallback}
        assert not any(t.startswith(("build-", "sbom-")) for t in tags(pipeline.admin, QA))


# --- what the targets hold ----------------------------------------------------------------------
@pytest.mark.parametrize(
    ("repository", "image"),
    [(QA, VULNERABLE), (QA, CLEAN), (STAGING, VULNERABLE), (PROD, CLEAN)],
)
def test_skopeo_pulls_the_promoted_image_digest_exact(
    pipeline: Pipeline, repository: str, image: str
) -> None:
    wait_promoted(pipeline, PROD, release_tag(pipeline))
    wait_promoted(pipeline, STAGING, f"candidate-v{BUILDS[VULNERABLE]}")
    digest = pipeline.digests[image]
    pulled = pipeline.work / f"pulled-{repository.replace('/', '-')}-{image}"
    flags = ["--all"] if image == CLEAN else []
    pipeline.clients.skopeo(
        "copy", "--quiet", *flags, "--src-tls-verify=false",
        "--src-creds", f"admin:{ADMIN_PASSWORD}",
        f"docker://{pipeline.server.host}/{repository}@{digest}", f"oci:{pulled}:latest",
    )  # fmt: skip
    assert layout_top(pulled)["digest"] == digest
    original = layout_blobs(image_layout(image))
    assert layout_blobs(pulled) == original  # every manifest, config and layer, byte for byte


@pytest.mark.parametrize("repository", [QA, STAGING, PROD])
def test_the_signature_and_the_sbom_came_along(pipeline: Pipeline, repository: str) -> None:
    wait_promoted(pipeline, PROD, release_tag(pipeline))
    for build in BUILDS.values():
        wait_promoted(pipeline, STAGING, f"candidate-v{build}")
    images = [CLEAN] if repository == PROD else list(BUILDS)
    for image in images:
        digest = pipeline.digests[image]
        answer = pipeline.admin.get(f"/v2/{repository}/referrers/{digest}")
        assert answer.status_code == 200, brief(answer)
        found = {item["digest"]: item.get("artifactType") for item in answer.json()["manifests"]}
        assert found == {
            pipeline.signatures[image]: COSIGN_SIGNATURE,
            pipeline.sboms[image]: SBOM_ARTIFACT,
        }
        # The fallback tag names the same signature manifest, and it verifies.
        fallback = digest.replace(":", "-") + ".sig"
        signature = pipeline.admin.get(
            f"/v2/{repository}/manifests/{fallback}", headers={"Accept": OCI_MANIFEST}
        )
        assert signature.status_code == 200, brief(signature)
        assert signature.headers["docker-content-digest"] == pipeline.signatures[image]
        (layer,) = signature.json()["layers"]
        payload = pipeline.admin.get(f"/v2/{repository}/blobs/{layer['digest']}")
        assert payload.status_code == 200, brief(payload)
        claimed = json.loads(payload.content)["critical"]["image"]["docker-manifest-digest"]
        assert claimed == digest
        der = base64.b64decode(layer["annotations"][SIGNATURE_ANNOTATION])
        pipeline.public_key.verify(der, payload.content, ec.ECDSA(hashes.SHA256()))
        sbom = pipeline.admin.get(
            f"/v2/{repository}/manifests/{pipeline.sboms[image]}",
            headers={"Accept": OCI_MANIFEST},
        )
        assert sbom.status_code == 200, brief(sbom)
        assert sbom.json()["subject"]["digest"] == digest


# --- the record -----------------------------------------------------------------------------------
def history(client: httpx.Client, repository: str, reference: str) -> dict[str, Any]:
    path = f"{V1}/repositories/{repository}/manifests/{reference}/history"
    body: dict[str, Any] = expect(client.get(path), 200)
    return body


def test_the_history_says_how_the_image_got_to_prod(pipeline: Pipeline) -> None:
    wait_promoted(pipeline, PROD, release_tag(pipeline))
    digest = pipeline.digests[CLEAN]
    build = BUILDS[CLEAN]
    in_prod = history(pipeline.admin, PROD, release_tag(pipeline))
    assert in_prod["digest"] == digest
    [arrival] = [e for e in in_prod["entries"] if e["kind"] == "promoted-from"]
    assert (arrival["source_repository"], arrival["source_reference"]) == (QA, f"v{build}")
    assert (arrival["target_repository"], arrival["target_tag"]) == (PROD, release_tag(pipeline))
    assert arrival["policy_id"] == pipeline.policies["qa->prod"]
    assert arrival["promoted_as"] == "admin"  # the policy's creator
    assert (
        f"promoted from {QA}:v{build} by policy {pipeline.policies['qa->prod']}"
        in (arrival["summary"])
    )
    in_qa = {e["kind"]: e for e in history(pipeline.admin, QA, digest)["entries"]}
    assert in_qa["promoted-from"]["source_repository"] == DEV
    assert in_qa["promoted-from"]["policy_id"] == pipeline.policies["dev->qa"]
    assert in_qa["promoted-from"]["actor"] == DEVELOPER  # who pushed the tag it was promoted by
    assert in_qa["promoted-to"]["target_repository"] == PROD
    in_dev = history(pipeline.admin, DEV, f"v{build}")["entries"]
    pushes = [e for e in in_dev if e["kind"] == "pushed"]
    assert {e["target_tag"] for e in pushes} >= {f"build-{build}", f"v{build}"}
    assert {e["actor"] for e in pushes} == {DEVELOPER}
    assert {e["target_repository"] for e in in_dev if e["kind"] == "promoted-to"} == {
        QA,
        STAGING,
    }
    times = [e["at"] for e in in_dev]
    assert times == sorted(times)  # oldest first


def test_policy_promotions_are_audited_as_the_policys_creator(pipeline: Pipeline) -> None:
    wait_promoted(pipeline, PROD, release_tag(pipeline))
    audit = expect(
        pipeline.admin.get(
            f"{V1}/audit", params={"action": "manifest.promote", "organization": "prod"}
        ),
        200,
    )
    [entry] = [e for e in audit["items"] if e["resource"] == PROD]
    assert entry["actor"] == "admin"
    detail = entry["detail"]
    assert (detail["source"], detail["reference"]) == (QA, f"v{BUILDS[CLEAN]}")
    assert (detail["tag"], detail["digest"]) == (release_tag(pipeline), pipeline.digests[CLEAN])
    assert (detail["policy"], detail["trigger"]) == (pipeline.policies["qa->prod"], "scan")


def test_the_promotion_list_shows_both_directions(pipeline: Pipeline) -> None:
    wait_promoted(pipeline, PROD, release_tag(pipeline))
    page = expect(pipeline.admin.get(f"{V1}/repositories/{QA}/promotions"), 200)
    moves = {(p["source_repository"], p["target_repository"], p["digest"]) for p in page["items"]}
    clean, vulnerable = pipeline.digests[CLEAN], pipeline.digests[VULNERABLE]
    assert moves >= {(DEV, QA, clean), (DEV, QA, vulnerable), (QA, PROD, clean)}
    assert (QA, PROD, vulnerable) not in moves
    outgoing = expect(
        pipeline.admin.get(f"{V1}/repositories/{QA}/promotions", params={"direction": "out"}),
        200,
    )
    assert PROD in {p["target_repository"] for p in outgoing["items"]}
    assert QA not in {p["target_repository"] for p in outgoing["items"]}
    # The developer may not read qa/app: it does not exist for them.
    hidden = pipeline.developer.get(f"{V1}/repositories/{QA}/promotions")
    assert hidden.status_code == 404, brief(hidden)


def test_the_developer_sees_where_their_image_went_without_names_they_may_not_read(
    pipeline: Pipeline,
) -> None:
    wait_promoted(pipeline, STAGING, f"candidate-v{BUILDS[CLEAN]}")
    wait_promoted(pipeline, QA, f"v{BUILDS[CLEAN]}")
    page = expect(pipeline.developer.get(f"{V1}/repositories/{DEV}/promotions"), 200)
    assert page["items"]
    for item in page["items"]:
        assert item["source_repository"] == DEV
        assert item["target_repository"] is None  # private repositories of the administrator
        assert item["target_tag"] is None


# --- refusals -------------------------------------------------------------------------------------
def test_a_policy_closing_a_cycle_is_refused(pipeline: Pipeline) -> None:
    for source, target in ((PROD, DEV), (QA, DEV), (STAGING, STAGING)):
        answer = pipeline.admin.post(
            f"{V0}/{source}/promotionPolicies", json=dtr_policy(target, TAG_STARTS_WITH_V, "%n")
        )
        assert answer.status_code == 400, brief(answer)
        assert "cycle" in answer.json()["detail"]
    listed = expect(pipeline.admin.get(f"{V0}/{PROD}/promotionPolicies"), 200)
    assert listed == []


def test_a_manual_promotion_needs_pull_on_the_source_and_push_on_the_target(
    pipeline: Pipeline,
) -> None:
    wait_promoted(pipeline, QA, f"v{BUILDS[VULNERABLE]}")
    body = {"reference": f"v{BUILDS[VULNERABLE]}", "targetRepository": SANDBOX}
    # The developer may pull dev/app but may not even see sandbox/app...
    refused = pipeline.developer.post(f"{V1}/repositories/{DEV}/promotions", json=body)
    assert refused.status_code == 404, brief(refused)
    assert refused.json()["detail"] == f"repository {SANDBOX!r} does not exist"
    # ... and may read review/app, not write to it.
    body["targetRepository"] = REVIEW
    refused = pipeline.developer.post(f"{V1}/repositories/{DEV}/promotions", json=body)
    assert refused.status_code == 403, brief(refused)
    assert tags(pipeline.admin, REVIEW) == {}
    # Nor may anybody promote from a repository they may not read.
    body = {"reference": f"v{BUILDS[VULNERABLE]}", "targetRepository": DEV, "targetTag": "x"}
    refused = pipeline.developer.post(f"{V1}/repositories/{QA}/promotions", json=body)
    assert refused.status_code == 404, brief(refused)
    assert "x" not in tags(pipeline.admin, DEV)


def test_a_manual_promotion_is_recorded_once(pipeline: Pipeline) -> None:
    wait_promoted(pipeline, QA, f"v{BUILDS[VULNERABLE]}")
    digest = pipeline.digests[VULNERABLE]
    body = {"reference": digest, "targetRepository": SANDBOX, "targetTag": "hotfix"}
    first = pipeline.admin.post(f"{V1}/repositories/{QA}/promotions", json=body)
    assert first.status_code == 201, brief(first)
    record = first.json()
    assert record["moved"] is True
    assert (record["source_repository"], record["source_reference"]) == (QA, digest)
    assert (record["target_repository"], record["target_tag"], record["digest"]) == (
        SANDBOX,
        "hotfix",
        digest,
    )
    assert record["trigger"] == "manual"
    assert record["policy_id"] is None
    assert (record["actor"], record["promoted_as"]) == ("admin", "admin")
    again = pipeline.admin.post(f"{V1}/repositories/{QA}/promotions", json=body)
    assert again.status_code == 200, brief(again)
    assert again.json()["moved"] is False
    page = expect(pipeline.admin.get(f"{V1}/repositories/{SANDBOX}/promotions"), 200)
    assert [(p["id"], p["target_tag"]) for p in page["items"]] == [(record["id"], "hotfix")]
    # One audit entry, one PROMOTION event, one history line.
    audit = expect(pipeline.admin.get(f"{V1}/audit", params={"action": "manifest.promote"}), 200)
    entries = [e for e in audit["items"] if e["resource"] == SANDBOX]
    assert len(entries) == 1, entries
    assert entries[0]["detail"]["tag"] == "hotfix"
    wait_promoted(pipeline, SANDBOX, "hotfix")
    sent = [d for d in pipeline.promotions() if (d["digest"], d["repository"]) == (digest, SANDBOX)]
    assert len(sent) == 1, sent
    lines = history(pipeline.admin, SANDBOX, "hotfix")["entries"]
    assert [e["kind"] for e in lines] == ["promoted-from"]
    assert lines[0]["policy_id"] is None
    # The signature and SBOM came along here too.
    found = pipeline.admin.get(f"/v2/{SANDBOX}/referrers/{digest}").json()["manifests"]
    assert {item["digest"] for item in found} == {
        pipeline.signatures[VULNERABLE],
        pipeline.sboms[VULNERABLE],
    }


def test_bad_promotion_requests_are_refused_clearly(pipeline: Pipeline) -> None:
    path = f"{V1}/repositories/{DEV}/promotions"
    cases = [
        ({"reference": "nope", "targetRepository": SANDBOX}, 404),
        ({"reference": "v1", "targetRepository": "sandbox/none"}, 404),
        ({"reference": pipeline.digests[CLEAN], "targetRepository": SANDBOX}, 422),  # no tag
        ({"reference": "v1", "targetRepository": SANDBOX, "targetTag": "-bad"}, 422),
        ({"reference": "v1", "targetRepository": "Not A Name"}, 422),
        ({"reference": "v1"}, 422),
    ]
    for body, status in cases:
        answer = pipeline.admin.post(path, json=body)
        assert answer.status_code == status, (body, brief(answer))
        assert answer.headers["content-type"] == "application/problem+json"
