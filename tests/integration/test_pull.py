"""OCI conformance, pull workflow: the base endpoint, blobs (with ranges) and manifests."""

from __future__ import annotations

import httpx
import pytest

from tests.integration.oci_helpers import (
    API_VERSION,
    DOCKER_MANIFEST,
    OCI_INDEX,
    OCI_MANIFEST,
    Image,
    assert_error,
    brief,
    push_blob,
    push_image,
    put_manifest,
    random_blob,
    sha256,
)

pytestmark = pytest.mark.integration

MISSING_DIGEST = sha256(b"nobody pushed this")


def test_base_endpoint_answers_200_with_the_api_version(client: httpx.Client) -> None:
    for path in ("/v2/", "/v2"):
        response = client.get(path)
        assert response.status_code == 200
        assert response.headers["docker-distribution-api-version"] == API_VERSION
    head = client.head("/v2/")
    assert head.status_code == 200
    assert head.content == b""
    assert head.headers["docker-distribution-api-version"] == API_VERSION


# --- blobs ------------------------------------------------------------------------------------
@pytest.mark.parametrize("size", [0, 1, 4096, 300 * 1024])
def test_blob_get_and_head_return_the_exact_bytes(
    client: httpx.Client, repo: str, size: int
) -> None:
    data = random_blob(size)
    digest = push_blob(client, repo, data)

    got = client.get(f"/v2/{repo}/blobs/{digest}")
    head = client.head(f"/v2/{repo}/blobs/{digest}")

    assert got.status_code == 200
    assert got.content == data
    assert got.headers["docker-content-digest"] == digest
    assert got.headers["content-length"] == str(size)
    assert head.status_code == 200
    assert head.content == b""
    assert head.headers["docker-content-digest"] == digest
    assert head.headers["content-length"] == str(size)


@pytest.fixture
def ranged_blob(client: httpx.Client, repo: str) -> tuple[str, bytes]:
    data = random_blob(100_000)
    return f"/v2/{repo}/blobs/{push_blob(client, repo, data)}", data


@pytest.mark.parametrize(
    ("header", "start", "end"),
    [
        ("bytes=0-0", 0, 0),
        ("bytes=10-19", 10, 19),
        ("bytes=99990-", 99990, 99999),  # open-ended
        ("bytes=-25", 99975, 99999),  # suffix: the last 25 bytes
        ("bytes=-200000", 0, 99999),  # a suffix longer than the blob is the whole blob
        ("bytes=99000-150000", 99000, 99999),  # an end past the blob is clamped
    ],
)
def test_blob_range_get_returns_206_with_content_range(
    client: httpx.Client, ranged_blob: tuple[str, bytes], header: str, start: int, end: int
) -> None:
    url, data = ranged_blob
    response = client.get(url, headers={"Range": header})
    assert response.status_code == 206
    assert response.headers["content-range"] == f"bytes {start}-{end}/{len(data)}"
    assert response.headers["content-length"] == str(end - start + 1)
    assert response.content == data[start : end + 1]
    assert response.headers["docker-content-digest"] == url.rsplit("/", 1)[1]


@pytest.mark.parametrize("header", ["bytes=100000-", "bytes=100000-100005", "bytes=-0"])
def test_blob_range_outside_the_blob_is_416_with_its_size(
    client: httpx.Client, ranged_blob: tuple[str, bytes], header: str
) -> None:
    url, _ = ranged_blob
    response = client.get(url, headers={"Range": header})
    assert_error(response, 416, "RANGE_INVALID")
    assert response.headers["content-range"] == "bytes */100000"


@pytest.mark.parametrize("header", ["bytes=500-0", "bytes=99999-99998", "bytes=100005-100000"])
def test_a_reversed_blob_range_is_416_not_the_whole_blob(
    client: httpx.Client, ranged_blob: tuple[str, bytes], header: str
) -> None:
    url, _ = ranged_blob
    for response in (
        client.get(url, headers={"Range": header}),
        client.head(url, headers={"Range": header}),
    ):
        assert response.status_code == 416, brief(response)
        assert response.headers["content-range"] == "bytes */100000"
    assert_error(client.get(url, headers={"Range": header}), 416, "RANGE_INVALID")


def test_blob_head_with_range_has_no_body(
    client: httpx.Client, ranged_blob: tuple[str, bytes]
) -> None:
    url, _ = ranged_blob
    response = client.head(url, headers={"Range": "bytes=5-9"})
    assert response.status_code == 206
    assert response.headers["content-range"] == "bytes 5-9/100000"
    assert response.headers["content-length"] == "5"
    assert response.content == b""


def test_unknown_blob_is_404_blob_unknown(client: httpx.Client, repo: str) -> None:
    push_blob(client, repo, b"something else")
    response = client.get(f"/v2/{repo}/blobs/{MISSING_DIGEST}")
    assert_error(response, 404, "BLOB_UNKNOWN")
    assert response.json()["errors"][0]["detail"] == {"digest": MISSING_DIGEST}
    head = client.head(f"/v2/{repo}/blobs/{MISSING_DIGEST}")
    assert head.status_code == 404
    assert head.content == b""


def test_blob_of_another_repository_is_not_served(client: httpx.Client, repo: str) -> None:
    digest = push_blob(client, repo, random_blob(100))
    assert_error(client.get(f"/v2/{repo}-other/blobs/{digest}"), 404, "BLOB_UNKNOWN")


# --- manifests --------------------------------------------------------------------------------
def _check_manifest_response(response: httpx.Response, image: Image, head: bool = False) -> None:
    assert response.status_code == 200, brief(response)
    assert response.headers["content-type"] == image.media_type
    assert response.headers["docker-content-digest"] == image.digest
    assert response.headers["content-length"] == str(len(image.manifest))
    assert response.content == (b"" if head else image.manifest)


@pytest.mark.parametrize("docker", [False, True], ids=["oci", "docker"])
def test_manifest_get_and_head_by_tag_and_by_digest(
    client: httpx.Client, repo: str, docker: bool
) -> None:
    image = push_image(client, repo, "v1", docker=docker)
    accept = {"Accept": f"{OCI_MANIFEST}, {DOCKER_MANIFEST}, {OCI_INDEX}"}
    for reference in ("v1", image.digest):
        url = f"/v2/{repo}/manifests/{reference}"
        _check_manifest_response(client.get(url, headers=accept), image)
        _check_manifest_response(client.head(url, headers=accept), image, head=True)


def test_manifest_get_without_accept_returns_the_stored_type(
    client: httpx.Client, repo: str
) -> None:
    image = push_image(client, repo, "latest")
    _check_manifest_response(client.get(f"/v2/{repo}/manifests/latest"), image)


def test_pulled_blobs_of_a_manifest_match_its_descriptors(client: httpx.Client, repo: str) -> None:
    image = push_image(client, repo, "v1")
    document = client.get(f"/v2/{repo}/manifests/v1").json()
    for desc, data in zip(
        [document["config"], *document["layers"]], [image.config, *image.layers], strict=True
    ):
        blob = client.get(f"/v2/{repo}/blobs/{desc['digest']}")
        assert blob.status_code == 200
        assert len(blob.content) == desc["size"]
        assert sha256(blob.content) == desc["digest"]
        assert blob.content == data


def test_unknown_manifest_is_404_manifest_unknown(client: httpx.Client, repo: str) -> None:
    push_image(client, repo, "v1")
    for reference in ("nope", MISSING_DIGEST):
        response = client.get(f"/v2/{repo}/manifests/{reference}")
        assert_error(response, 404, "MANIFEST_UNKNOWN")
        head = client.head(f"/v2/{repo}/manifests/{reference}")
        assert head.status_code == 404
        assert head.content == b""


@pytest.mark.parametrize("reference", [".INVALID_MANIFEST_NAME", "-dash", "a" * 129, "t%40g"])
def test_a_tag_that_cannot_exist_is_an_unknown_manifest_on_reads(
    client: httpx.Client, repo: str, reference: str
) -> None:
    """The conformance suite reads `.INVALID_MANIFEST_NAME` and expects 404: a tag outside the
    grammar names nothing. Pushing one stays 400 TAG_INVALID."""
    image = push_image(client, repo, "v1")
    response = client.get(f"/v2/{repo}/manifests/{reference}")
    assert_error(response, 404, "MANIFEST_UNKNOWN")
    head = client.head(f"/v2/{repo}/manifests/{reference}")
    assert head.status_code == 404
    assert head.content == b""
    pushed = put_manifest(client, repo, reference, image.manifest, image.media_type)
    assert_error(pushed, 400, "TAG_INVALID")


def test_manifest_of_unknown_repository_is_404(client: httpx.Client, repo: str) -> None:
    assert_error(client.get(f"/v2/{repo}/manifests/latest"), 404, "MANIFEST_UNKNOWN")


@pytest.mark.parametrize(
    "accept",
    [
        "*/*",
        OCI_MANIFEST,
        f"{DOCKER_MANIFEST}, {OCI_MANIFEST}",
        f"{DOCKER_MANIFEST};q=0.9, {OCI_MANIFEST};q=0.5",
        "application/*",
    ],
)
def test_accept_that_allows_the_stored_type_gets_it(
    client: httpx.Client, repo: str, accept: str
) -> None:
    image = push_image(client, repo, "v1")
    _check_manifest_response(
        client.get(f"/v2/{repo}/manifests/v1", headers={"Accept": accept}), image
    )


def test_accept_that_excludes_the_stored_type_is_404(client: httpx.Client, repo: str) -> None:
    image = push_image(client, repo, "v1")
    for reference in ("v1", image.digest):
        url = f"/v2/{repo}/manifests/{reference}"
        response = client.get(url, headers={"Accept": DOCKER_MANIFEST})
        assert_error(response, 404, "MANIFEST_UNKNOWN")
        head = client.head(url, headers={"Accept": f"{DOCKER_MANIFEST}, {OCI_INDEX}"})
        assert head.status_code == 404
