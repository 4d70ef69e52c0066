"""OCI conformance, content management: deleting tags, manifests and blobs."""

from __future__ import annotations

import httpx
import pytest

from tests.integration.oci_helpers import (
    API_VERSION,
    OCI_MANIFEST,
    assert_error,
    brief,
    descriptor,
    push_artifact,
    push_blob,
    push_image,
    put_manifest,
    random_blob,
    sha256,
)

pytestmark = pytest.mark.integration

MISSING = sha256(b"never pushed")


def _tags(client: httpx.Client, repo: str) -> list[str]:
    response = client.get(f"/v2/{repo}/tags/list")
    assert response.status_code == 200
    tags: list[str] = response.json()["tags"]
    return tags


def _assert_accepted(response: httpx.Response) -> None:
    assert response.status_code == 202, brief(response)
    assert response.headers["docker-distribution-api-version"] == API_VERSION


def test_delete_tag_keeps_the_manifest(client: httpx.Client, repo: str) -> None:
    image = push_image(client, repo, "v1")
    assert put_manifest(client, repo, "v2", image.manifest).status_code == 201

    _assert_accepted(client.delete(f"/v2/{repo}/manifests/v1"))

    assert_error(client.get(f"/v2/{repo}/manifests/v1"), 404, "MANIFEST_UNKNOWN")
    assert client.head(f"/v2/{repo}/manifests/v1").status_code == 404
    by_digest = client.get(f"/v2/{repo}/manifests/{image.digest}")
    assert by_digest.status_code == 200
    assert by_digest.content == image.manifest
    assert client.get(f"/v2/{repo}/manifests/v2").content == image.manifest
    assert _tags(client, repo) == ["v2"]
    # Gone means gone: a second delete is a 404.
    assert_error(client.delete(f"/v2/{repo}/manifests/v1"), 404, "MANIFEST_UNKNOWN")


def test_delete_manifest_by_digest_removes_it_and_its_tags(client: httpx.Client, repo: str) -> None:
    image = push_image(client, repo, "v1")
    assert put_manifest(client, repo, "v2", image.manifest).status_code == 201
    other = push_image(client, repo, "keep")

    _assert_accepted(client.delete(f"/v2/{repo}/manifests/{image.digest}"))

    for reference in (image.digest, "v1", "v2"):
        assert_error(client.get(f"/v2/{repo}/manifests/{reference}"), 404, "MANIFEST_UNKNOWN")
        assert client.head(f"/v2/{repo}/manifests/{reference}").status_code == 404
    assert _tags(client, repo) == ["keep"]
    assert client.get(f"/v2/{repo}/manifests/keep").content == other.manifest
    assert_error(client.delete(f"/v2/{repo}/manifests/{image.digest}"), 404, "MANIFEST_UNKNOWN")
    # Its blobs stay until garbage collection: the manifest can be pushed again.
    assert put_manifest(client, repo, "v1", image.manifest).status_code == 201
    assert client.get(f"/v2/{repo}/manifests/v1").content == image.manifest


def test_deleted_referrer_leaves_the_referrers_list(client: httpx.Client, repo: str) -> None:
    image = push_image(client, repo, "v1")
    subject = descriptor(OCI_MANIFEST, image.manifest)
    gone, _, _ = push_artifact(client, repo, subject, "application/vnd.example.a")
    kept, _, _ = push_artifact(client, repo, subject, "application/vnd.example.b")

    _assert_accepted(client.delete(f"/v2/{repo}/manifests/{gone}"))

    listed = client.get(f"/v2/{repo}/referrers/{image.digest}").json()["manifests"]
    assert [item["digest"] for item in listed] == [kept]


def test_delete_blob(client: httpx.Client, repo: str) -> None:
    data = random_blob(2048)
    digest = push_blob(client, repo, data)

    _assert_accepted(client.delete(f"/v2/{repo}/blobs/{digest}"))

    assert_error(client.get(f"/v2/{repo}/blobs/{digest}"), 404, "BLOB_UNKNOWN")
    assert client.head(f"/v2/{repo}/blobs/{digest}").status_code == 404
    assert_error(client.delete(f"/v2/{repo}/blobs/{digest}"), 404, "BLOB_UNKNOWN")


def test_deleted_blob_no_longer_satisfies_a_manifest(client: httpx.Client, repo: str) -> None:
    image = push_image(client, repo, "v1")
    layer = sha256(image.layers[0])
    _assert_accepted(client.delete(f"/v2/{repo}/blobs/{layer}"))
    # A new manifest that needs it is refused; the pushed one is still served.
    response = put_manifest(client, repo, "v2", image.manifest.replace(b"\n", b"\n "))
    assert_error(response, 400, "MANIFEST_BLOB_UNKNOWN")
    assert client.get(f"/v2/{repo}/manifests/v1").content == image.manifest


def test_delete_blob_in_one_repository_keeps_it_in_another(client: httpx.Client, repo: str) -> None:
    data = random_blob(512)
    digest = push_blob(client, repo, data)
    other = f"{repo}/other"
    assert push_blob(client, other, data) == digest

    _assert_accepted(client.delete(f"/v2/{repo}/blobs/{digest}"))

    assert_error(client.get(f"/v2/{repo}/blobs/{digest}"), 404, "BLOB_UNKNOWN")
    kept = client.get(f"/v2/{other}/blobs/{digest}")
    assert kept.status_code == 200
    assert kept.content == data


def test_deleting_unknown_things_is_404(client: httpx.Client, repo: str) -> None:
    push_image(client, repo, "v1")
    missing_repo = f"{repo}/missing"
    for name in (repo, missing_repo):
        assert_error(client.delete(f"/v2/{name}/manifests/nope"), 404, "MANIFEST_UNKNOWN")
        assert_error(client.delete(f"/v2/{name}/manifests/{MISSING}"), 404, "MANIFEST_UNKNOWN")
        assert_error(client.delete(f"/v2/{name}/blobs/{MISSING}"), 404, "BLOB_UNKNOWN")
    # Still all there.
    assert _tags(client, repo) == ["v1"]


def test_deleting_with_malformed_references_is_400(client: httpx.Client, repo: str) -> None:
    push_image(client, repo, "v1")
    assert_error(client.delete(f"/v2/{repo}/manifests/sha256:abc"), 400, "DIGEST_INVALID")
    assert_error(client.delete(f"/v2/{repo}/manifests/-tag"), 400, "TAG_INVALID")
    assert_error(client.delete(f"/v2/{repo}/blobs/sha256:abc"), 400, "DIGEST_INVALID")
    assert _tags(client, repo) == ["v1"]
