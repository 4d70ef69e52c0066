"""OCI conformance, push workflow: blob uploads (monolithic, chunked, streamed), mounts,
manifests."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.integration.oci_helpers import (
    API_VERSION,
    DOCKER_CONFIG,
    DOCKER_LAYER,
    DOCKER_LIST,
    DOCKER_MANIFEST,
    OCI_CONFIG,
    OCI_INDEX,
    OCI_LAYER,
    OCI_MANIFEST,
    assert_error,
    brief,
    descriptor,
    digest_of,
    encode,
    image_manifest,
    index_manifest,
    make_image,
    push_blob,
    push_blob_chunked,
    push_image,
    put_manifest,
    random_blob,
    sha256,
    sha512,
    start_upload,
    with_digest,
)

pytestmark = pytest.mark.integration

OCTETS = {"Content-Type": "application/octet-stream"}


def _patch(
    client: httpx.Client, location: str, data: bytes, content_range: str | None = None
) -> httpx.Response:
    headers = dict(OCTETS)
    if content_range is not None:
        headers["Content-Range"] = content_range
    return client.patch(location, content=data, headers=headers)


def _status(client: httpx.Client, location: str) -> httpx.Response:
    return client.get(location)


def _assert_blob(client: httpx.Client, repo: str, digest: str, data: bytes) -> None:
    response = client.get(f"/v2/{repo}/blobs/{digest}")
    assert response.status_code == 200, brief(response)
    assert response.headers["docker-content-digest"] == digest
    assert response.content == data


def _assert_no_blob(client: httpx.Client, repo: str, digest: str) -> None:
    assert_error(client.get(f"/v2/{repo}/blobs/{digest}"), 404, "BLOB_UNKNOWN")


def _assert_created_blob(response: httpx.Response, repo: str, digest: str) -> None:
    assert response.status_code == 201, brief(response)
    assert response.headers["location"].endswith(f"/v2/{repo}/blobs/{digest}")
    assert response.headers["docker-content-digest"] == digest
    assert response.headers["docker-distribution-api-version"] == API_VERSION


# --- sessions and monolithic uploads --------------------------------------------------------------
def test_post_opens_an_upload_session(client: httpx.Client, repo: str) -> None:
    response = client.post(f"/v2/{repo}/blobs/uploads/", headers={"Content-Length": "0"})
    assert response.status_code == 202, brief(response)
    location = response.headers["location"]
    upload_id = response.headers["docker-upload-uuid"]
    assert f"/v2/{repo}/blobs/uploads/" in location
    assert location.rstrip("/").endswith(upload_id)
    assert response.headers["range"] == "0-0"
    assert response.content == b""

    status = _status(client, location)
    assert status.status_code == 204
    assert status.headers["range"] == "0-0"
    assert status.headers["location"] == location


def test_two_sessions_get_different_locations(client: httpx.Client, repo: str) -> None:
    assert start_upload(client, repo) != start_upload(client, repo)


def test_monolithic_post_with_digest_creates_the_blob(client: httpx.Client, repo: str) -> None:
    data = random_blob(5000)
    digest = sha256(data)
    response = client.post(
        f"/v2/{repo}/blobs/uploads/", params={"digest": digest}, content=data, headers=OCTETS
    )
    _assert_created_blob(response, repo, digest)
    _assert_blob(client, repo, digest, data)


def test_monolithic_put_after_post(client: httpx.Client, repo: str) -> None:
    data = random_blob(70_000)
    digest = sha256(data)
    location = start_upload(client, repo)
    response = client.put(with_digest(location, digest), content=data, headers=OCTETS)
    _assert_created_blob(response, repo, digest)
    _assert_blob(client, repo, digest, data)
    # The session is over.
    assert_error(_status(client, location), 404, "BLOB_UPLOAD_UNKNOWN")


def test_empty_blob_can_be_pushed(client: httpx.Client, repo: str) -> None:
    location = start_upload(client, repo)
    digest = sha256(b"")
    _assert_created_blob(client.put(with_digest(location, digest)), repo, digest)
    _assert_blob(client, repo, digest, b"")


def test_pushing_an_existing_blob_again_succeeds(client: httpx.Client, repo: str) -> None:
    data = random_blob(300)
    assert push_blob(client, repo, data) == push_blob(client, repo, data)
    _assert_blob(client, repo, sha256(data), data)


# --- chunked uploads ------------------------------------------------------------------------------
def test_chunked_upload_in_order_then_empty_put(client: httpx.Client, repo: str) -> None:
    data = random_blob(30_000)
    location = start_upload(client, repo)
    for start in range(0, len(data), 10_000):
        end = start + 9_999
        response = _patch(client, location, data[start : end + 1], f"{start}-{end}")
        assert response.status_code == 202, brief(response)
        assert response.headers["range"] == f"0-{end}"
        assert f"/v2/{repo}/blobs/uploads/" in response.headers["location"]
        location = response.headers["location"]

        status = _status(client, location)
        assert status.status_code == 204
        assert status.headers["range"] == f"0-{end}"
        assert status.headers["location"] == location

    digest = sha256(data)
    _assert_created_blob(client.put(with_digest(location, digest)), repo, digest)
    _assert_blob(client, repo, digest, data)


@pytest.mark.parametrize("with_range", [True, False], ids=["content-range", "no-range"])
def test_chunked_upload_with_the_last_chunk_in_the_put(
    client: httpx.Client, repo: str, with_range: bool
) -> None:
    data = random_blob(2_500)
    location = start_upload(client, repo)
    response = _patch(client, location, data[:1000], "0-999")
    assert response.status_code == 202, brief(response)
    headers = dict(OCTETS)
    if with_range:
        headers["Content-Range"] = f"1000-{len(data) - 1}"
    digest = sha256(data)
    response = client.put(
        with_digest(response.headers["location"], digest), content=data[1000:], headers=headers
    )
    _assert_created_blob(response, repo, digest)
    _assert_blob(client, repo, digest, data)


def test_helper_chunked_push_is_byte_exact(client: httpx.Client, repo: str) -> None:
    data = random_blob(10_001)
    digest = push_blob_chunked(client, repo, data, chunk_size=4096)
    _assert_blob(client, repo, digest, data)


def test_streamed_patch_without_content_range(client: httpx.Client, repo: str) -> None:
    data = random_blob(200_000)

    def pieces() -> Iterator[bytes]:  # sent with Transfer-Encoding: chunked
        for start in range(100_000, len(data), 16_384):
            yield data[start : start + 16_384]

    location = start_upload(client, repo)
    first = _patch(client, location, data[:100_000])
    assert first.status_code == 202, brief(first)
    assert first.headers["range"] == "0-99999"
    second = client.patch(first.headers["location"], content=pieces(), headers=OCTETS)
    assert second.status_code == 202, brief(second)
    assert second.headers["range"] == f"0-{len(data) - 1}"
    digest = sha256(data)
    _assert_created_blob(client.put(with_digest(second.headers["location"], digest)), repo, digest)
    _assert_blob(client, repo, digest, data)


@pytest.mark.parametrize(
    "content_range",
    ["20-29", "5-14", "0-9", "11-20"],
    ids=["gap", "overlap", "restart", "skip-one"],
)
def test_out_of_order_chunk_is_416_and_changes_nothing(
    client: httpx.Client, repo: str, content_range: str
) -> None:
    data = random_blob(30)
    location = start_upload(client, repo)
    response = _patch(client, location, data[:10], "0-9")
    assert response.status_code == 202, brief(response)
    location = response.headers["location"]

    start, end = (int(x) for x in content_range.split("-"))
    rejected = _patch(client, location, bytes(end - start + 1), content_range)
    assert_error(rejected, 416, "RANGE_INVALID")
    assert rejected.headers["range"] == "0-9"
    assert rejected.headers["location"] == location

    status = _status(client, location)
    assert status.status_code == 204
    assert status.headers["range"] == "0-9"
    # The session goes on from where it really is.
    response = _patch(client, location, data[10:], "10-29")
    assert response.status_code == 202, brief(response)
    digest = sha256(data)
    _assert_created_blob(
        client.put(with_digest(response.headers["location"], digest)), repo, digest
    )
    _assert_blob(client, repo, digest, data)


def test_first_chunk_must_start_at_zero(client: httpx.Client, repo: str) -> None:
    location = start_upload(client, repo)
    rejected = _patch(client, location, b"x" * 10, "10-19")
    assert_error(rejected, 416, "RANGE_INVALID")
    assert rejected.headers["location"] == location
    assert _status(client, location).headers["range"] == "0-0"


def test_content_range_longer_than_the_body_is_416(client: httpx.Client, repo: str) -> None:
    location = start_upload(client, repo)
    rejected = _patch(client, location, b"x" * 10, "0-19")
    assert_error(rejected, 416, "RANGE_INVALID")
    assert _status(client, location).headers["range"] == "0-0"


# --- digests at the end of an upload --------------------------------------------------------------
def test_wrong_digest_at_put_is_digest_invalid_and_nothing_is_served(
    client: httpx.Client, repo: str
) -> None:
    data = random_blob(1000)
    claimed = sha256(b"something else")
    location = start_upload(client, repo)
    response = client.put(with_digest(location, claimed), content=data, headers=OCTETS)
    assert_error(response, 400, "DIGEST_INVALID")
    _assert_no_blob(client, repo, claimed)
    _assert_no_blob(client, repo, sha256(data))


def test_wrong_digest_at_monolithic_post_is_digest_invalid(client: httpx.Client, repo: str) -> None:
    data = random_blob(1000)
    claimed = sha256(b"not this")
    response = client.post(
        f"/v2/{repo}/blobs/uploads/", params={"digest": claimed}, content=data, headers=OCTETS
    )
    assert_error(response, 400, "DIGEST_INVALID")
    _assert_no_blob(client, repo, claimed)
    _assert_no_blob(client, repo, sha256(data))


def test_wrong_digest_after_chunks_then_the_right_one(client: httpx.Client, repo: str) -> None:
    data = random_blob(4000)
    location = start_upload(client, repo)
    response = _patch(client, location, data, f"0-{len(data) - 1}")
    location = response.headers["location"]
    wrong = client.put(with_digest(location, sha256(b"wrong")))
    assert_error(wrong, 400, "DIGEST_INVALID")
    _assert_no_blob(client, repo, sha256(data))
    # The bytes stay in the session: the client may finish it with the right digest.
    assert _status(client, location).headers["range"] == f"0-{len(data) - 1}"
    digest = sha256(data)
    _assert_created_blob(client.put(with_digest(location, digest)), repo, digest)
    _assert_blob(client, repo, digest, data)


def test_put_without_digest_is_400(client: httpx.Client, repo: str) -> None:
    location = start_upload(client, repo)
    response = client.put(location, content=b"abc", headers=OCTETS)
    assert_error(response, 400, "DIGEST_INVALID")
    _assert_no_blob(client, repo, sha256(b"abc"))


@pytest.mark.parametrize(
    "digest",
    [
        "md5:" + "0" * 32,
        digest_of(b"abc", "sha384"),
        "sha256:" + "A" * 64,  # upper-case hex is not a valid sha256 encoding
        "sha256:abc",
        "sha512:" + "0" * 64,
        "nocolon",
    ],
)
def test_unsupported_or_malformed_digest_is_digest_invalid(
    client: httpx.Client, repo: str, digest: str
) -> None:
    data = b"abc"
    post = client.post(
        f"/v2/{repo}/blobs/uploads/", params={"digest": digest}, content=data, headers=OCTETS
    )
    assert_error(post, 400, "DIGEST_INVALID")
    location = start_upload(client, repo)
    put = client.put(location, params={"digest": digest}, content=data, headers=OCTETS)
    assert_error(put, 400, "DIGEST_INVALID")
    assert_error(client.get(f"/v2/{repo}/blobs/{digest}"), 400, "DIGEST_INVALID")


def test_manifest_put_by_unsupported_algorithm_is_digest_invalid(
    client: httpx.Client, repo: str
) -> None:
    image = make_image(client, repo)
    reference = digest_of(image.manifest, "sha384")
    assert_error(put_manifest(client, repo, reference, image.manifest), 400, "DIGEST_INVALID")


# --- cancelling -----------------------------------------------------------------------------------
def test_delete_upload_ends_the_session(client: httpx.Client, repo: str) -> None:
    location = start_upload(client, repo)
    assert _patch(client, location, b"abc", "0-2").status_code == 202
    response = client.delete(location)
    assert response.status_code == 204
    assert_error(_status(client, location), 404, "BLOB_UPLOAD_UNKNOWN")
    assert_error(_patch(client, location, b"def", "3-5"), 404, "BLOB_UPLOAD_UNKNOWN")
    assert_error(client.put(with_digest(location, sha256(b"abc"))), 404, "BLOB_UPLOAD_UNKNOWN")
    assert_error(client.delete(location), 404, "BLOB_UPLOAD_UNKNOWN")


def test_unknown_upload_is_404(client: httpx.Client, repo: str) -> None:
    location = f"/v2/{repo}/blobs/uploads/{'0' * 32}"
    assert_error(_status(client, location), 404, "BLOB_UPLOAD_UNKNOWN")
    assert_error(_patch(client, location, b"x"), 404, "BLOB_UPLOAD_UNKNOWN")


def test_upload_session_belongs_to_its_repository(client: httpx.Client, repo: str) -> None:
    location = start_upload(client, repo)
    foreign = location.replace(f"/v2/{repo}/", f"/v2/{repo}-other/")
    assert foreign != location
    assert_error(_status(client, foreign), 404, "BLOB_UPLOAD_UNKNOWN")
    assert_error(_patch(client, foreign, b"x"), 404, "BLOB_UPLOAD_UNKNOWN")
    assert _status(client, location).status_code == 204


# --- cross-repository mounts ----------------------------------------------------------------------
def test_mount_from_another_repository(client: httpx.Client, repo: str) -> None:
    data = random_blob(2000)
    digest = push_blob(client, repo, data)
    target = f"{repo}/mounted"
    response = client.post(f"/v2/{target}/blobs/uploads/", params={"mount": digest, "from": repo})
    _assert_created_blob(response, target, digest)
    _assert_blob(client, target, digest, data)


def test_mount_without_from_finds_the_blob(client: httpx.Client, repo: str) -> None:
    data = random_blob(2000)
    digest = push_blob(client, repo, data)
    target = f"{repo}/auto"
    response = client.post(f"/v2/{target}/blobs/uploads/", params={"mount": digest})
    _assert_created_blob(response, target, digest)
    _assert_blob(client, target, digest, data)


@pytest.mark.parametrize("source", ["unknown", "holder-without-blob"])
def test_mount_that_cannot_be_done_opens_a_session(
    client: httpx.Client, repo: str, source: str
) -> None:
    data = random_blob(100)
    digest = sha256(data)
    if source == "unknown":
        params = {"mount": digest, "from": repo}
    else:
        push_blob(client, repo, data)
        empty = f"{repo}/empty"
        push_blob(client, empty, b"unrelated")
        params = {"mount": digest, "from": empty}
    target = f"{repo}/target"
    response = client.post(f"/v2/{target}/blobs/uploads/", params=params)
    assert response.status_code == 202, brief(response)
    location = response.headers["location"]
    assert f"/v2/{target}/blobs/uploads/" in location
    _assert_no_blob(client, target, digest)
    # The session is a normal one: the client uploads the blob itself.
    _assert_created_blob(
        client.put(with_digest(location, digest), content=data, headers=OCTETS), target, digest
    )
    _assert_blob(client, target, digest, data)


def test_mounted_blobs_can_back_a_manifest(client: httpx.Client, repo: str) -> None:
    image = push_image(client, repo, "v1")
    target = f"{repo}/copy"
    for data in (image.config, *image.layers):
        response = client.post(
            f"/v2/{target}/blobs/uploads/", params={"mount": sha256(data), "from": repo}
        )
        assert response.status_code == 201, brief(response)
    assert put_manifest(client, target, "v1", image.manifest).status_code == 201


# --- sha512 ---------------------------------------------------------------------------------------
def test_sha512_blob_end_to_end(client: httpx.Client, repo: str) -> None:
    config = encode({"architecture": "amd64", "os": "linux"})
    layer = random_blob(3000)
    config_digest = push_blob(client, repo, config, "sha512")
    layer_digest = push_blob_chunked(client, repo, layer, 1000, "sha512")
    assert config_digest == sha512(config)
    assert layer_digest.startswith("sha512:")
    _assert_blob(client, repo, layer_digest, layer)
    head = client.head(f"/v2/{repo}/blobs/{layer_digest}")
    assert head.headers["content-length"] == str(len(layer))

    target = f"{repo}/mount512"
    mount = client.post(
        f"/v2/{target}/blobs/uploads/", params={"mount": layer_digest, "from": repo}
    )
    _assert_created_blob(mount, target, layer_digest)
    _assert_blob(client, target, layer_digest, layer)

    manifest = encode(
        image_manifest(
            descriptor(OCI_CONFIG, config, "sha512"), [descriptor(OCI_LAYER, layer, "sha512")]
        )
    )
    by_tag = put_manifest(client, repo, "v512", manifest)
    assert by_tag.status_code == 201, brief(by_tag)
    reference = sha512(manifest)
    by_digest = put_manifest(client, repo, reference, manifest)
    assert by_digest.status_code == 201, brief(by_digest)
    assert by_digest.headers["docker-content-digest"] == reference
    assert by_digest.headers["location"].endswith(f"/v2/{repo}/manifests/{reference}")
    got = client.get(f"/v2/{repo}/manifests/{reference}")
    assert got.status_code == 200
    assert got.headers["docker-content-digest"] == reference
    assert got.content == manifest
    assert client.get(f"/v2/{repo}/manifests/v512").content == manifest


# --- manifests ------------------------------------------------------------------------------------
def _assert_created_manifest(response: httpx.Response, repo: str, digest: str) -> None:
    assert response.status_code == 201, brief(response)
    assert response.headers["location"].endswith(f"/v2/{repo}/manifests/{digest}")
    assert response.headers["docker-content-digest"] == digest
    assert response.headers["docker-distribution-api-version"] == API_VERSION


def test_manifest_put_by_tag(client: httpx.Client, repo: str) -> None:
    image = make_image(client, repo, layer_count=2)
    _assert_created_manifest(put_manifest(client, repo, "1.0", image.manifest), repo, image.digest)
    got = client.get(f"/v2/{repo}/manifests/1.0")
    assert got.content == image.manifest
    assert got.headers["content-type"] == OCI_MANIFEST


def test_manifest_put_by_digest_is_untagged(client: httpx.Client, repo: str) -> None:
    image = make_image(client, repo)
    response = put_manifest(client, repo, image.digest, image.manifest)
    _assert_created_manifest(response, repo, image.digest)
    assert client.get(f"/v2/{repo}/manifests/{image.digest}").content == image.manifest
    assert client.get(f"/v2/{repo}/tags/list").json() == {"name": repo, "tags": []}


def test_manifest_bytes_are_kept_exactly(client: httpx.Client, repo: str) -> None:
    image = make_image(client, repo)
    odd = b"  \n" + image.manifest.replace(b"\n", b"\r\n") + b"\n\n"
    _assert_created_manifest(put_manifest(client, repo, "odd", odd), repo, sha256(odd))
    assert client.get(f"/v2/{repo}/manifests/odd").content == odd


def test_docker_schema2_manifest(client: httpx.Client, repo: str) -> None:
    image = make_image(client, repo, docker=True)
    response = put_manifest(client, repo, "docker", image.manifest, DOCKER_MANIFEST)
    _assert_created_manifest(response, repo, image.digest)
    got = client.get(f"/v2/{repo}/manifests/docker", headers={"Accept": DOCKER_MANIFEST})
    assert got.status_code == 200
    assert got.headers["content-type"] == DOCKER_MANIFEST
    assert got.content == image.manifest


@pytest.mark.parametrize("docker", [False, True], ids=["oci-index", "docker-list"])
def test_index_of_pushed_manifests(client: httpx.Client, repo: str, docker: bool) -> None:
    children = [push_image(client, repo, docker=docker) for _ in range(2)]
    platforms = [{"architecture": "amd64", "os": "linux"}, {"architecture": "arm64", "os": "linux"}]
    child_type = DOCKER_MANIFEST if docker else OCI_MANIFEST
    media_type = DOCKER_LIST if docker else OCI_INDEX
    index = encode(
        index_manifest(
            [
                descriptor(child_type, child.manifest, platform=platform)
                for child, platform in zip(children, platforms, strict=True)
            ],
            media_type=media_type,
        )
    )
    response = put_manifest(client, repo, "multi", index, media_type)
    _assert_created_manifest(response, repo, sha256(index))
    got = client.get(f"/v2/{repo}/manifests/multi", headers={"Accept": media_type})
    assert got.status_code == 200
    assert got.headers["content-type"] == media_type
    assert got.content == index
    for child in children:
        assert client.get(f"/v2/{repo}/manifests/{child.digest}").content == child.manifest


def test_manifest_with_missing_layer_is_manifest_blob_unknown(
    client: httpx.Client, repo: str
) -> None:
    config = encode({"os": "linux"})
    push_blob(client, repo, config)
    missing = random_blob(100)
    body = encode(image_manifest(descriptor(OCI_CONFIG, config), [descriptor(OCI_LAYER, missing)]))
    response = put_manifest(client, repo, "broken", body)
    assert_error(response, 400, "MANIFEST_BLOB_UNKNOWN")
    assert response.json()["errors"][0]["detail"] == {"digest": sha256(missing)}
    assert_error(client.get(f"/v2/{repo}/manifests/broken"), 404, "MANIFEST_UNKNOWN")


def test_manifest_with_missing_config_is_manifest_blob_unknown(
    client: httpx.Client, repo: str
) -> None:
    layer = random_blob(100)
    push_blob(client, repo, layer)
    body = encode(
        image_manifest(descriptor(DOCKER_CONFIG, b"{}"), [descriptor(DOCKER_LAYER, layer)])
    )
    response = put_manifest(client, repo, sha256(body), body)
    assert_error(response, 400, "MANIFEST_BLOB_UNKNOWN")
    assert_error(client.get(f"/v2/{repo}/manifests/{sha256(body)}"), 404, "MANIFEST_UNKNOWN")


def test_blob_in_another_repository_does_not_satisfy_a_manifest(
    client: httpx.Client, repo: str
) -> None:
    image = make_image(client, repo)
    response = put_manifest(client, f"{repo}/elsewhere", "v1", image.manifest)
    assert_error(response, 400, "MANIFEST_BLOB_UNKNOWN")


def test_index_with_missing_child_is_manifest_blob_unknown(client: httpx.Client, repo: str) -> None:
    present = push_image(client, repo)
    absent = make_image(client, repo)  # blobs pushed, manifest not
    index = encode(
        index_manifest(
            [
                descriptor(OCI_MANIFEST, present.manifest),
                descriptor(OCI_MANIFEST, absent.manifest),
            ]
        )
    )
    response = put_manifest(client, repo, "multi", index, OCI_INDEX)
    assert_error(response, 400, "MANIFEST_BLOB_UNKNOWN")
    assert response.json()["errors"][0]["detail"] == {"digest": absent.digest}
    assert_error(client.get(f"/v2/{repo}/manifests/multi"), 404, "MANIFEST_UNKNOWN")


def test_retagging_moves_the_tag_and_keeps_the_old_manifest(
    client: httpx.Client, repo: str
) -> None:
    first = push_image(client, repo, "latest")
    second = push_image(client, repo, "latest")
    assert first.digest != second.digest
    got = client.get(f"/v2/{repo}/manifests/latest")
    assert got.headers["docker-content-digest"] == second.digest
    assert got.content == second.manifest
    assert client.get(f"/v2/{repo}/manifests/{first.digest}").content == first.manifest
    # The same manifest under a second tag.
    again = put_manifest(client, repo, "stable", first.manifest)
    _assert_created_manifest(again, repo, first.digest)
    assert client.get(f"/v2/{repo}/manifests/stable").content == first.manifest
    tags = client.get(f"/v2/{repo}/tags/list").json()["tags"]
    assert tags == ["latest", "stable"]
