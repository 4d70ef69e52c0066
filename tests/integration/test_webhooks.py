"""Webhooks on a real server, delivered to a real HTTP receiver on 127.0.0.1: every event type
with its documented payload and a valid signature in both formats, retries that deliver once,
order per subscription, nothing for a rolled-back push, samples, redelivery, pull events and
TLS (custom CA, skip-verify)."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import ipaddress
import json
import ssl
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.integration.oci_helpers import (
    OCI_CONFIG,
    OCI_LAYER,
    OCI_MANIFEST,
    brief,
    descriptor,
    encode,
    error_codes,
    image_manifest,
    make_image,
    push_image,
    put_manifest,
    random_blob,
)
from tests.integration.webhook_helpers import (
    ADMIN_PASSWORD,
    EMITTED,
    FAST,
    RESERVED,
    deliveries,
    eventually,
    settled,
    subscribe,
    unique,
)
from tests.support.server import TrustyardServer
from tests.support.webhook_receiver import Received, WebhookReceiver

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("webhooks")]

TIMESTAMP = r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$"


@pytest.fixture(scope="module")
def server(start_server: Callable[..., TrustyardServer]) -> TrustyardServer:
    return start_server("webhooks", **FAST)


@pytest.fixture
def admin(server: TrustyardServer) -> Iterator[httpx.Client]:
    with httpx.Client(
        base_url=server.url, auth=httpx.BasicAuth("admin", ADMIN_PASSWORD), timeout=60
    ) as client:
        yield client


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    with WebhookReceiver() as running:
        yield running


def new_org(admin: httpx.Client) -> str:
    name = unique("org")
    created = admin.post("/api/v1/organizations", json={"name": name})
    assert created.status_code == 201, brief(created)
    return name


def new_repository(admin: httpx.Client) -> str:
    name = f"{new_org(admin)}/app"
    created = admin.post("/api/v1/repositories", json={"name": name})
    assert created.status_code == 201, brief(created)
    return name


def types(requests: list[Received]) -> list[str]:
    return [r.headers["x-trustyard-event"] for r in requests]


def check_dtr(request: Received, secret: str) -> dict[str, Any]:
    """The checks every DTR-shaped delivery passes; returns its `contents`."""
    assert request.signed_with(secret)
    assert request.headers["content-type"] == "application/json"
    assert request.headers["user-agent"] == "trustyard-webhooks/1"
    assert request.headers["x-trustyard-delivery"].isdigit()
    body = request.json()
    assert list(body) == ["type", "createdAt", "contents"]
    assert body["type"] == request.headers["x-trustyard-event"]
    assert_timestamp(body["createdAt"])
    contents: dict[str, Any] = body["contents"]
    return contents


def assert_timestamp(text: str) -> None:
    import re

    assert re.fullmatch(TIMESTAMP, text), text
    dt.datetime.fromisoformat(text.replace("Z", "+00:00"))


# --- every event type, both formats -------------------------------------------------------------
def test_every_event_type_arrives_signed_in_both_formats(
    admin: httpx.Client, receiver: WebhookReceiver
) -> None:
    org = new_org(admin)
    dtr = subscribe(admin, receiver, "/dtr", list(EMITTED), namespace=org)
    ce = subscribe(admin, receiver, "/ce", list(EMITTED), namespace=org, format="cloudevents")
    app, pushed_repo = f"{org}/app", f"{org}/pushed"

    assert admin.post("/api/v1/repositories", json={"name": app}).status_code == 201
    image = push_image(admin, app, "v1")
    other = make_image(admin, app)
    assert put_manifest(admin, app, "v2", other.manifest).status_code == 201
    first = push_image(admin, pushed_repo, "latest")  # the push creates the repository

    def pulled() -> list[Received]:
        # Pulls are recorded once the server has noticed that a subscription wants them.
        got = admin.get(f"/v2/{app}/manifests/{image.digest}", headers={"Accept": OCI_MANIFEST})
        assert got.status_code == 200
        return [r for r in receiver.delivered("/dtr") if "MANIFEST_PULL" in types([r])]

    eventually(pulled, what="a MANIFEST_PULL delivery")
    for _ in range(3):  # a HEAD is no pull
        head = admin.head(f"/v2/{app}/manifests/v1", headers={"Accept": OCI_MANIFEST})
        assert head.status_code == 200
    patched = admin.patch(f"/api/v1/repositories/{app}", json={"description": "edited"})
    assert patched.status_code == 200
    assert admin.delete(f"/v2/{app}/manifests/v1").status_code == 202
    assert admin.delete(f"/v2/{app}/manifests/{other.digest}").status_code == 202
    assert admin.delete(f"/api/v1/repositories/{pushed_repo}").status_code == 204

    expected = [
        "REPO_CREATED",  # app, through the API
        "MANIFEST_PUSH",
        "TAG_PUSH",  # v1
        "MANIFEST_PUSH",
        "TAG_PUSH",  # v2
        "REPO_CREATED",  # pushed, by its first blob
        "MANIFEST_PUSH",
        "TAG_PUSH",  # latest
        "REPO_UPDATED",
        "TAG_DELETE",  # v1
        "TAG_DELETE",  # v2, removed with its manifest
        "MANIFEST_DELETE",
        "REPO_DELETED",
    ]

    def without_pulls(found: list[Received]) -> list[Received]:
        return [r for r in found if r.headers["x-trustyard-event"] != "MANIFEST_PULL"]

    for path in ("/dtr", "/ce"):
        receiver.wait_for(lambda found: len(without_pulls(found)) >= len(expected), path=path)
    dtr_requests = receiver.delivered("/dtr")
    assert types(without_pulls(dtr_requests)) == expected
    assert types(without_pulls(receiver.delivered("/ce"))) == expected

    by_type: dict[str, list[dict[str, Any]]] = {}
    for request in dtr_requests:
        by_type.setdefault(request.json()["type"], []).append(check_dtr(request, dtr["secret"]))
    for contents in [c for items in by_type.values() for c in items]:
        assert contents["namespace"] == org
        assert contents["author"] == "admin"
    created_api, created_push = by_type["REPO_CREATED"]
    assert created_api["repository"] == app
    assert created_api["createdBy"] == "api"
    assert created_api["visibility"] == "private"
    assert created_push["repository"] == pushed_repo
    assert created_push["createdBy"] == "push"
    assert_timestamp(created_api["createdAt"])
    pushed_v1 = by_type["MANIFEST_PUSH"][0]
    assert pushed_v1["repository"] == app
    assert pushed_v1["digest"] == image.digest
    assert pushed_v1["mediaType"] == OCI_MANIFEST
    assert pushed_v1["size"] == len(image.manifest)
    assert pushed_v1["imageName"] == f"{app}@{image.digest}"
    assert_timestamp(pushed_v1["pushedAt"])
    tag_v1 = by_type["TAG_PUSH"][0]
    assert {k: tag_v1[k] for k in ("repository", "tag", "digest", "imageName")} == {
        "repository": app,
        "tag": "v1",
        "digest": image.digest,
        "imageName": f"{app}:v1",
    }
    assert by_type["TAG_PUSH"][2]["digest"] == first.digest
    pulls = by_type["MANIFEST_PULL"]
    assert all(p["reference"] == image.digest and p["tag"] is None for p in pulls)  # no HEAD
    assert pulls[0]["digest"] == image.digest
    assert pulls[0]["imageName"] == f"{app}@{image.digest}"
    assert_timestamp(pulls[0]["pulledAt"])
    assert by_type["REPO_UPDATED"][0]["changes"] == {"description": "edited"}
    deleted_tags = by_type["TAG_DELETE"]
    assert [(t["tag"], t["digest"]) for t in deleted_tags] == [
        ("v1", image.digest),
        ("v2", other.digest),
    ]
    manifest_deleted = by_type["MANIFEST_DELETE"][0]
    assert manifest_deleted["digest"] == other.digest
    assert manifest_deleted["tags"] == ["v2"]
    assert by_type["REPO_DELETED"][0]["repository"] == pushed_repo
    assert_timestamp(by_type["REPO_DELETED"][0]["deletedAt"])

    # CloudEvents: the same events (same ids), the same contents as `data`.
    dtr_by_id = {r.event_id: r.json() for r in dtr_requests}
    ce_requests = receiver.delivered("/ce")
    for request in ce_requests:
        assert request.signed_with(ce["secret"])
        assert not request.signed_with(dtr["secret"])
        assert request.headers["content-type"] == "application/cloudevents+json; charset=utf-8"
        body = request.json()
        assert body["specversion"] == "1.0"
        assert body["id"] == request.event_id
        assert body["datacontenttype"] == "application/json"
        assert_timestamp(body["time"])
        twin = dtr_by_id.get(body["id"])
        if twin is None:  # a pull event the other subscription did not get (best effort)
            assert body["type"] == "trustyard.manifest.pull"
            continue
        assert body["type"] == "trustyard." + twin["type"].lower().replace("_", ".", 1)
        assert body["data"] == twin["contents"]
        assert body["time"] == twin["createdAt"]
        assert body["subject"] == twin["contents"]["repository"]
        assert body["source"] == f"/v2/{twin['contents']['repository']}"


def test_samples_of_every_type_reach_the_receiver(
    admin: httpx.Client, receiver: WebhookReceiver
) -> None:
    repository = new_repository(admin)
    created = subscribe(admin, receiver, "/samples", ["TAG_PUSH"], repository=repository)
    everything = [*EMITTED, *RESERVED]
    for event_type in everything:
        answer = admin.post(f"/api/v1/webhooks/{created['id']}/test", json={"type": event_type})
        assert answer.status_code == 202, brief(answer)
        assert answer.json()["kind"] == "test"
        assert answer.json()["event_type"] == event_type
    default = admin.post(f"/api/v1/webhooks/{created['id']}/test")
    assert default.status_code == 202
    assert default.json()["event_type"] == "TAG_PUSH"
    got = receiver.wait_for(lambda found: len(found) == len(everything) + 1, path="/samples")
    assert types(got) == [*everything, "TAG_PUSH"]
    for request in got:
        contents = check_dtr(request, created["secret"])
        assert contents["sample"] is True
        if request.json()["type"] == "SCANNER_UPDATE_COMPLETED":
            assert "repository" not in contents
        else:
            assert contents["repository"] == repository


# --- retries and order ----------------------------------------------------------------------
def test_a_receiver_failing_three_times_gets_the_event_once(
    admin: httpx.Client, receiver: WebhookReceiver
) -> None:
    repository = new_repository(admin)
    created = subscribe(admin, receiver, "/flaky", ["TAG_PUSH"], repository=repository)
    receiver.fail_next(3)
    image = push_image(admin, repository, "one")
    receiver.wait_for(lambda found: len(found) == 1, path="/flaky")
    # A second event behind it: were the first delivered twice, the copy would come first.
    push_image(admin, repository, "two")
    receiver.wait_for(lambda found: len(found) == 2, path="/flaky")
    arrived = receiver.received("/flaky")
    assert [r.status for r in arrived] == [500, 500, 500, 200, 200]
    assert len({r.body for r in arrived[:4]}) == 1  # the same bytes at every attempt
    assert len({r.event_id for r in arrived[:4]}) == 1
    assert [r.json()["contents"]["tag"] for r in receiver.delivered("/flaky")] == ["one", "two"]
    assert receiver.delivered("/flaky")[0].json()["contents"]["digest"] == image.digest

    history = settled(admin, created["id"], 2)
    assert [(d["event_type"], d["state"], d["attempts"]) for d in history] == [
        ("TAG_PUSH", "delivered", 4),
        ("TAG_PUSH", "delivered", 1),
    ]
    attempts = history[0]["history"]
    assert [a["attempt"] for a in attempts] == [1, 2, 3, 4]
    assert [a["status_code"] for a in attempts] == [500, 500, 500, 200]
    assert [a["response_excerpt"] for a in attempts] == [
        "planned failure",
        "planned failure",
        "planned failure",
        '{"received": true}',
    ]
    assert all(isinstance(a["latency_ms"], int) and a["latency_ms"] >= 0 for a in attempts)
    assert history[0]["last_status"] == 200
    subscription = admin.get(f"/api/v1/webhooks/{created['id']}").json()
    assert subscription["active"] is True
    assert subscription["failing_since"] is None
    assert subscription["last_success_at"] is not None
    assert subscription["last_failure_at"] is not None


def test_deliveries_to_one_subscription_keep_the_order_of_events(
    admin: httpx.Client, receiver: WebhookReceiver
) -> None:
    repository = new_repository(admin)
    subscribe(admin, receiver, "/ordered", ["TAG_PUSH"], repository=repository)
    image = make_image(admin, repository)
    receiver.fail_next(2)  # the first event is retried: everything behind it waits
    tags = [f"t{index:02d}" for index in range(20)]
    for tag in tags:
        assert put_manifest(admin, repository, tag, image.manifest).status_code == 201
    got = receiver.wait_for(lambda found: len(found) == len(tags), path="/ordered")
    assert [r.json()["contents"]["tag"] for r in got] == tags
    assert len({r.event_id for r in got}) == len(tags)


def test_nothing_is_delivered_for_a_rolled_back_push(
    admin: httpx.Client, receiver: WebhookReceiver
) -> None:
    org = new_org(admin)
    subscribe(admin, receiver, "/rollback", list(EMITTED), namespace=org)
    broken = f"{org}/broken"
    missing_layer = random_blob(300)  # never pushed
    config = encode({"architecture": "amd64", "os": "linux"})
    document = image_manifest(
        descriptor(OCI_CONFIG, config), [descriptor(OCI_LAYER, missing_layer)]
    )
    refused = put_manifest(admin, broken, "v1", encode(document))
    assert refused.status_code == 400, brief(refused)
    assert error_codes(refused) == ["MANIFEST_BLOB_UNKNOWN"]
    assert admin.get(f"/v2/{broken}/tags/list").status_code == 404
    # A change after it: once its events are in, anything of the failed push would be too.
    push_image(admin, f"{org}/fine", "v1")
    got = receiver.wait_for(lambda found: "TAG_PUSH" in types(found), path="/rollback")
    assert types(got) == ["REPO_CREATED", "MANIFEST_PUSH", "TAG_PUSH"]
    assert {r.json()["contents"]["repository"] for r in got} == {f"{org}/fine"}


# --- redelivery -----------------------------------------------------------------------------------
def test_redelivery_sends_the_same_event_again(
    admin: httpx.Client, receiver: WebhookReceiver
) -> None:
    repository = new_repository(admin)
    created = subscribe(admin, receiver, "/again", ["TAG_PUSH"], repository=repository)
    push_image(admin, repository, "v1")
    first = receiver.wait_for(lambda found: len(found) == 1, path="/again")[0]
    [original] = settled(admin, created["id"], 1)
    again = admin.post(f"/api/v1/webhooks/{created['id']}/deliveries/{original['id']}/redeliver")
    assert again.status_code == 202, brief(again)
    redelivery = again.json()
    assert redelivery["kind"] == "redelivery"
    assert redelivery["redelivery_of"] == original["id"]
    assert redelivery["event_id"] == original["event_id"]
    assert redelivery["id"] > original["id"]
    second = receiver.wait_for(lambda found: len(found) == 2, path="/again")[1]
    assert second.body == first.body
    assert second.event_id == first.event_id
    assert second.headers["x-trustyard-delivery"] == str(redelivery["id"])
    assert second.signed_with(created["secret"])
    missing = admin.post(f"/api/v1/webhooks/{created['id']}/deliveries/999999/redeliver")
    assert missing.status_code == 404
    both = settled(admin, created["id"], 2)
    assert [d["kind"] for d in both] == ["event", "redelivery"]


def test_a_rotated_secret_signs_the_next_deliveries(
    admin: httpx.Client, receiver: WebhookReceiver
) -> None:
    repository = new_repository(admin)
    created = subscribe(admin, receiver, "/rotate", ["TAG_PUSH"], repository=repository)
    rotated = admin.patch(f"/api/v1/webhooks/{created['id']}", json={"rotate_secret": True})
    assert rotated.status_code == 200
    secret = rotated.json()["secret"]
    assert secret
    assert secret != created["secret"]
    assert admin.get(f"/api/v1/webhooks/{created['id']}").json()["secret"] is None
    push_image(admin, repository, "v1")
    got = receiver.wait_for(lambda found: len(found) == 1, path="/rotate")[0]
    assert got.signed_with(secret)
    assert not got.signed_with(created["secret"])


# --- TLS ---------------------------------------------------------------------------------------
def tls_material(directory: Path) -> tuple[str, ssl.SSLContext]:
    """A CA (PEM, to hand to the subscription) and a server context with a certificate for
    127.0.0.1 that the CA signed."""
    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "webhook test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    certificate = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    cert_path, key_path = directory / "server.pem", directory / "server.key"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_path, key_path)
    return ca.public_bytes(serialization.Encoding.PEM).decode(), context


def test_tls_with_a_custom_ca_with_skip_verify_and_refused_without(
    admin: httpx.Client, tmp_path: Path
) -> None:
    ca_pem, context = tls_material(tmp_path)
    repository = new_repository(admin)
    with WebhookReceiver(tls=context) as secure:
        assert secure.url().startswith("https://127.0.0.1:")
        trusted = subscribe(admin, secure, "/ca", ["TAG_PUSH"], repository=repository,
                            ca_bundle=ca_pem)  # fmt: skip
        blind = subscribe(admin, secure, "/blind", ["TAG_PUSH"], repository=repository,
                          tls_verify=False)  # fmt: skip
        strict = subscribe(admin, secure, "/strict", ["TAG_PUSH"], repository=repository)
        push_image(admin, repository, "v1")
        secure.wait_for(lambda found: len(found) == 1, path="/ca")
        secure.wait_for(lambda found: len(found) == 1, path="/blind")

        def failed_on_tls() -> list[dict[str, Any]]:
            found = deliveries(admin, strict["id"])
            return [a for d in found for a in d["history"] if a["error"]]

        failures = eventually(failed_on_tls, what="a failed TLS attempt")
        assert failures[0]["status_code"] is None
        assert "TLS" in failures[0]["error"]
        assert "certificate verify failed" in failures[0]["error"]
        assert secure.received("/strict") == []
        assert admin.delete(f"/api/v1/webhooks/{strict['id']}").status_code == 204
        assert trusted["ca_bundle"] == ca_pem
        assert blind["tls_verify"] is False
    bad = admin.post(
        "/api/v1/webhooks",
        json={
            "url": "https://127.0.0.1:9/x",
            "events": ["TAG_PUSH"],
            "repository": repository,
            "ca_bundle": "-----BEGIN CERTIFICATE-----\nnot a certificate\n",
        },
    )
    assert bad.status_code == 422, brief(bad)


def test_signature_example_of_the_readme_verifies_a_delivery(
    admin: httpx.Client, receiver: WebhookReceiver
) -> None:
    """The five lines README shows a receiver, run on a real delivery."""
    repository = new_repository(admin)
    created = subscribe(admin, receiver, "/readme", ["TAG_PUSH"], repository=repository)
    push_image(admin, repository, "v1")
    got = receiver.wait_for(lambda found: len(found) == 1, path="/readme")[0]
    secret, body = created["secret"], got.body
    header = got.headers["x-trustyard-signature-256"]
    expected = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(header, expected)
    assert json.loads(body)["contents"]["tag"] == "v1"
