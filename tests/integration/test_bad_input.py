"""Bad input: malformed manifests, names, tags, ranges and bodies never break the registry.

Every refusal is a precise 4xx with the OCI error envelope; nothing half-written becomes visible.
"""

from __future__ import annotations

import http.client
import json
import socket
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from tests.integration.oci_helpers import (
    DOCKER_MANIFEST,
    OCI_CONFIG,
    OCI_INDEX,
    OCI_LAYER,
    OCI_MANIFEST,
    assert_error,
    brief,
    descriptor,
    encode,
    error_codes,
    image_manifest,
    make_image,
    push_blob,
    put_manifest,
    random_blob,
    sha256,
    start_upload,
    with_digest,
)
from tests.support.ports import LOOPBACK
from tests.support.server import TrustyardServer

pytestmark = pytest.mark.integration

MiB = 1024 * 1024
FUZZ = settings(
    max_examples=40,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


# --- malformed manifests --------------------------------------------------------------------------
def _valid_manifest(client: httpx.Client, repo: str) -> dict[str, Any]:
    image = make_image(client, repo)
    document: dict[str, Any] = json.loads(image.manifest)
    return document


def _broken(document: dict[str, Any], change: str) -> bytes:
    doc = json.loads(json.dumps(document))
    if change == "missing config":
        del doc["config"]
    elif change == "config not an object":
        doc["config"] = "sha256:abc"
    elif change == "layers not a list":
        doc["layers"] = {"0": doc["layers"][0]}
    elif change == "layer digest malformed":
        doc["layers"][0]["digest"] = "sha256:xyz"
    elif change == "layer digest algorithm unknown":
        doc["layers"][0]["digest"] = "md5:" + "0" * 32
    elif change == "layer size negative":
        doc["layers"][0]["size"] = -1
    elif change == "layer size a string":
        doc["layers"][0]["size"] = "512"
    elif change == "layer without mediaType":
        del doc["layers"][0]["mediaType"]
    elif change == "config size wrong":
        doc["config"]["size"] += 1
    elif change == "annotations not strings":
        doc["annotations"] = {"count": 3}
    elif change == "annotations a list":
        doc["annotations"] = ["a"]
    elif change == "descriptor annotations not strings":
        doc["layers"][0]["annotations"] = {"a": None}
    elif change == "schemaVersion 1":
        doc["schemaVersion"] = 1
    elif change == "schemaVersion missing":
        del doc["schemaVersion"]
    elif change == "schemaVersion a string":
        doc["schemaVersion"] = "2"
    elif change == "subject not a descriptor":
        doc["subject"] = {"digest": 5}
    elif change == "artifactType not a string":
        doc["artifactType"] = ["x"]
    elif change == "artifactType with a NUL":
        doc["artifactType"] = "application/vnd.example\x00+json"
    elif change == "artifactType not a media type":
        doc["artifactType"] = "sbom"
    elif change == "config mediaType with a NUL":
        doc["config"]["mediaType"] = "application/x\x00"
    elif change == "layer mediaType with spaces":
        doc["layers"][0]["mediaType"] = "application/a layer"
    else:
        raise AssertionError(change)
    return encode(doc)


MANIFEST_CHANGES = [
    "missing config",
    "config not an object",
    "layers not a list",
    "layer digest malformed",
    "layer digest algorithm unknown",
    "layer size negative",
    "layer size a string",
    "layer without mediaType",
    "config size wrong",
    "annotations not strings",
    "annotations a list",
    "descriptor annotations not strings",
    "schemaVersion 1",
    "schemaVersion missing",
    "schemaVersion a string",
    "subject not a descriptor",
    "artifactType not a string",
    "artifactType with a NUL",
    "artifactType not a media type",
    "config mediaType with a NUL",
    "layer mediaType with spaces",
]


def _assert_manifest_absent(client: httpx.Client, repo: str, body: bytes, tag: str) -> None:
    assert_error(client.get(f"/v2/{repo}/manifests/{tag}"), 404, "MANIFEST_UNKNOWN")
    assert_error(client.get(f"/v2/{repo}/manifests/{sha256(body)}"), 404, "MANIFEST_UNKNOWN")


def test_malformed_manifests_are_manifest_invalid(client: httpx.Client, repo: str) -> None:
    document = _valid_manifest(client, repo)
    for change in MANIFEST_CHANGES:
        body = _broken(document, change)
        response = put_manifest(client, repo, "bad", body)
        assert response.status_code == 400, f"{change}: {brief(response)}"
        assert error_codes(response) == ["MANIFEST_INVALID"], change
        _assert_manifest_absent(client, repo, body, "bad")
    # The unbroken document is accepted, so each refusal above was about its one change.
    assert put_manifest(client, repo, "good", encode(document)).status_code == 201


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"not json",
        b"[1, 2, 3]",
        b'"a string"',
        b"null",
        b"{",
        b'{"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json"',
        b"\xff\xfe{}",
        b"[" * 100_000 + b"]" * 100_000,  # deeper than any parser's recursion
    ],
    ids=["empty", "text", "array", "string", "null", "brace", "truncated", "bom", "deep"],
)
def test_non_object_manifest_bodies_are_manifest_invalid(
    client: httpx.Client, repo: str, body: bytes
) -> None:
    response = put_manifest(client, repo, "bad", body)
    assert_error(response, 400, "MANIFEST_INVALID")
    _assert_manifest_absent(client, repo, body, "bad")


def test_index_without_manifests_list_is_manifest_invalid(client: httpx.Client, repo: str) -> None:
    for body in (
        encode({"schemaVersion": 2, "mediaType": OCI_INDEX}),
        encode({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": {"a": 1}}),
        encode({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [{"size": 1}]}),
    ):
        assert_error(put_manifest(client, repo, "idx", body, OCI_INDEX), 400, "MANIFEST_INVALID")


def test_unknown_manifest_media_type_is_400(client: httpx.Client, repo: str) -> None:
    document = _valid_manifest(client, repo)
    document["mediaType"] = "application/vnd.example.manifest.v9+json"
    body = encode(document)
    response = put_manifest(client, repo, "x", body, "application/vnd.example.manifest.v9+json")
    assert_error(response, 400, "MANIFEST_INVALID")
    # A body without mediaType, sent with an unknown Content-Type.
    del document["mediaType"]
    del document["config"]
    bare = encode(document)
    assert_error(put_manifest(client, repo, "y", bare, "text/plain"), 400, "MANIFEST_INVALID")


def test_content_type_contradicting_the_body_is_400(client: httpx.Client, repo: str) -> None:
    body = encode(_valid_manifest(client, repo))  # mediaType: OCI image manifest
    response = put_manifest(client, repo, "x", body, DOCKER_MANIFEST)
    assert_error(response, 400, "MANIFEST_INVALID")
    _assert_manifest_absent(client, repo, body, "x")


def test_manifest_digest_in_url_must_match_the_body(client: httpx.Client, repo: str) -> None:
    body = encode(_valid_manifest(client, repo))
    wrong = sha256(body + b" ")
    assert_error(put_manifest(client, repo, wrong, body), 400, "DIGEST_INVALID")
    _assert_manifest_absent(client, repo, body, "unused")
    assert_error(client.get(f"/v2/{repo}/manifests/{wrong}"), 404, "MANIFEST_UNKNOWN")


def test_manifest_over_4_mib_is_413(client: httpx.Client, repo: str) -> None:
    document = _valid_manifest(client, repo)
    base = encode(document)
    exact = base[:-1] + b" " * (4 * MiB - len(base)) + base[-1:]
    assert len(exact) == 4 * MiB
    assert put_manifest(client, repo, "limit", exact).status_code == 201

    over = base[:-1] + b" " * (4 * MiB + 1 - len(base)) + base[-1:]
    response = put_manifest(client, repo, "over", over)
    assert response.status_code == 413, brief(response)
    assert error_codes(response) == ["MANIFEST_INVALID"]

    def streamed() -> Iterator[bytes]:  # no Content-Length: the limit holds while reading
        for start in range(0, len(over), MiB):
            yield over[start : start + MiB]

    # Without Content-Length the server refuses while the body still arrives: the answer is
    # 413, or (a race the server's drain narrows but does not close: granian may reset the
    # connection while the last chunk is in flight) the connection closed without one.
    # Either way the manifest must not be stored.
    try:
        response = client.put(
            f"/v2/{repo}/manifests/streamed",
            content=streamed(),
            headers={"Content-Type": OCI_MANIFEST},
        )
    except httpx.RemoteProtocolError:
        pass
    else:
        assert response.status_code == 413, brief(response)
    _assert_manifest_absent(client, repo, over, "over")
    _assert_manifest_absent(client, repo, over, "streamed")


def test_manifest_with_size_mismatch_for_a_present_blob(client: httpx.Client, repo: str) -> None:
    config = encode({"os": "linux"})
    layer = random_blob(100)
    push_blob(client, repo, config)
    push_blob(client, repo, layer)
    lying = descriptor(OCI_LAYER, layer)
    lying["size"] = 99
    body = encode(image_manifest(descriptor(OCI_CONFIG, config), [lying]))
    assert_error(put_manifest(client, repo, "lie", body), 400, "MANIFEST_INVALID")


# --- names and tags -------------------------------------------------------------------------------
def _raw_get(server: TrustyardServer, method: str, path: str) -> tuple[int, bytes]:
    """Send a path byte for byte (httpx would normalise `..` and `//`)."""
    conn = http.client.HTTPConnection(LOOPBACK, server.port, timeout=60)
    try:
        conn.request(method, path, headers={"Content-Length": "0"})
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


INVALID_NAMES = [
    "test/../etc",
    "test/..",
    "Test/upper",
    "test/Upper",
    "test//double",
    "test/trailing-",
    "test/-leading",
    "test/trailing.",
    "test/a..b",
    "test/a___b",
    "test/sp%20ace",
    "a" * 300,
    "test/" + "a" * 251,  # 256 characters
]


@pytest.mark.parametrize("name", INVALID_NAMES)
def test_invalid_repository_names_are_name_invalid(server: TrustyardServer, name: str) -> None:
    digest = sha256(b"x")
    for method, path in (
        ("GET", f"/v2/{name}/tags/list"),
        ("GET", f"/v2/{name}/manifests/latest"),
        ("PUT", f"/v2/{name}/manifests/latest"),
        ("HEAD", f"/v2/{name}/blobs/{digest}"),
        ("GET", f"/v2/{name}/blobs/{digest}"),
        ("POST", f"/v2/{name}/blobs/uploads/"),
        ("GET", f"/v2/{name}/referrers/{digest}"),
    ):
        status, body = _raw_get(server, method, path)
        assert status == 400, f"{method} {path}: {status} {body[:200]!r}"
        if method != "HEAD":
            assert [e["code"] for e in json.loads(body)["errors"]] == ["NAME_INVALID"]


def test_longest_valid_name_works(client: httpx.Client) -> None:
    name = f"test/{uuid.uuid4().hex}/" + "a" * (255 - 38)
    assert len(name) == 255
    digest = push_blob(client, name, b"long name")
    assert client.get(f"/v2/{name}/blobs/{digest}").content == b"long name"


@pytest.mark.parametrize(
    "tag",
    ["a" * 129, ".hidden", "-dash", "t@g", "tag+plus", "tág"],
    ids=["129-chars", "leading-dot", "leading-dash", "at", "plus", "non-ascii"],
)
def test_invalid_tags_are_tag_invalid(client: httpx.Client, repo: str, tag: str) -> None:
    image = make_image(client, repo)
    reference = quote(tag, safe="")
    assert_error(put_manifest(client, repo, reference, image.manifest), 400, "TAG_INVALID")
    # A read names a manifest that cannot exist: unknown, as the conformance suite expects.
    assert_error(client.get(f"/v2/{repo}/manifests/{reference}"), 404, "MANIFEST_UNKNOWN")
    assert_error(client.delete(f"/v2/{repo}/manifests/{reference}"), 400, "TAG_INVALID")
    assert client.get(f"/v2/{repo}/tags/list").json()["tags"] == []


def test_tag_of_128_characters_is_valid(client: httpx.Client, repo: str) -> None:
    image = make_image(client, repo)
    tag = "_" + "a.b-C_" * 21 + "x"
    assert len(tag) == 128
    assert put_manifest(client, repo, tag, image.manifest).status_code == 201
    assert client.get(f"/v2/{repo}/manifests/{tag}").content == image.manifest


def test_pagination_cursor_must_be_a_proper_tag_or_name(client: httpx.Client, repo: str) -> None:
    push_blob(client, repo, b"x")
    for last in ("\x00", "-x", "a" * 129):
        response = client.get(f"/v2/{repo}/tags/list", params={"last": last})
        assert_error(response, 400, "TAG_INVALID")
    for last in ("\x00", "Upper", "a//b"):
        assert_error(client.get("/v2/_catalog", params={"last": last}), 400, "NAME_INVALID")


@pytest.mark.parametrize("upload_id", ["%00", "x%00y", "0" * 31, "0" * 33, "G" * 32, "a.b"])
def test_malformed_upload_ids_are_unknown(client: httpx.Client, repo: str, upload_id: str) -> None:
    location = f"/v2/{repo}/blobs/uploads/{upload_id}"
    assert_error(client.get(location), 404, "BLOB_UPLOAD_UNKNOWN")
    assert_error(client.patch(location, content=b"x"), 404, "BLOB_UPLOAD_UNKNOWN")
    assert_error(client.put(with_digest(location, sha256(b"x"))), 404, "BLOB_UPLOAD_UNKNOWN")
    assert_error(client.delete(location), 404, "BLOB_UPLOAD_UNKNOWN")


# --- upload ranges --------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "content_range", ["abc", "0-", "-9", "9-0", "0-9-10", "bytes", "0 - 9", "0x0-0x9"]
)
def test_malformed_content_range_is_416(
    client: httpx.Client, repo: str, content_range: str
) -> None:
    location = start_upload(client, repo)
    response = client.patch(
        location,
        content=b"0123456789",
        headers={"Content-Type": "application/octet-stream", "Content-Range": content_range},
    )
    assert_error(response, 416, "RANGE_INVALID")
    assert response.headers["location"] == location
    assert response.headers["range"] == "0-0"
    assert client.get(location).headers["range"] == "0-0"


def test_malformed_range_on_blob_get_is_ignored(client: httpx.Client, repo: str) -> None:
    data = random_blob(100)
    digest = push_blob(client, repo, data)
    for header in ("bytes=abc", "items=0-5", "bytes=0-1,5-6"):
        response = client.get(f"/v2/{repo}/blobs/{digest}", headers={"Range": header})
        assert response.status_code == 200, header
        assert response.content == data
    # A reversed range is not ignored: 416 (test_pull.py), never the whole blob.
    assert (
        client.get(f"/v2/{repo}/blobs/{digest}", headers={"Range": "bytes=5-2"}).status_code == 416
    )


# --- broken bodies over raw sockets ---------------------------------------------------------------
@dataclass
class RawResponse:
    status: int
    headers: dict[str, str]
    body: bytes

    def codes(self) -> list[str]:
        return [e["code"] for e in json.loads(self.body)["errors"]]


def _request_head(
    server: TrustyardServer, method: str, path: str, headers: dict[str, str]
) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", f"Host: {server.host}"]
    lines += [f"{key}: {value}" for key, value in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def _read_response(sock: socket.socket, method: str = "PATCH") -> RawResponse:
    response = http.client.HTTPResponse(sock, method=method)
    response.begin()
    body = response.read()
    return RawResponse(response.status, {k.lower(): v for k, v in response.getheaders()}, body)


def _open(server: TrustyardServer) -> socket.socket:
    return socket.create_connection((LOOPBACK, server.port), timeout=60)


def test_body_longer_than_content_length_never_breaks_the_server(
    client: httpx.Client, server: TrustyardServer, repo: str
) -> None:
    location = start_upload(client, repo)
    head = _request_head(
        server,
        "PATCH",
        location,
        {
            "Content-Length": "10",
            "Content-Range": "0-9",
            "Content-Type": "application/octet-stream",
        },
    )
    with _open(server) as sock:
        sock.sendall(head + b"0123456789" + b"EXTRA BYTES THAT ARE NOT HTTP\r\n\r\n")
        sock.shutdown(socket.SHUT_WR)
        first = _read_response(sock)
        assert first.status == 202
        assert first.headers["range"] == "0-9"
        try:  # the extra bytes are a second, garbled request: refused or dropped, never a 5xx
            second: RawResponse | None = _read_response(sock, "GET")
        except (http.client.RemoteDisconnected, ConnectionError, http.client.BadStatusLine):
            second = None
    assert second is None or 400 <= second.status < 500
    assert client.get(location).headers["range"] == "0-9"
    assert client.get("/v2/").status_code == 200


def test_manifest_with_fewer_bytes_than_sent_is_judged_on_content_length(
    client: httpx.Client, server: TrustyardServer, repo: str
) -> None:
    body = encode(_valid_manifest(client, repo))
    head = _request_head(
        server,
        "PUT",
        f"/v2/{repo}/manifests/cut",
        {"Content-Length": str(len(body) - 5), "Content-Type": OCI_MANIFEST},
    )
    with _open(server) as sock:
        sock.sendall(head + body)
        sock.shutdown(socket.SHUT_WR)
        response = _read_response(sock, "PUT")
    assert response.status == 400
    assert response.codes() == ["MANIFEST_INVALID"]
    _assert_manifest_absent(client, repo, body, "cut")


@pytest.fixture(scope="module")
def impatient_server(start_server: Callable[..., TrustyardServer]) -> TrustyardServer:
    """A registry that drops request bodies which stall for one second."""
    return start_server("impatient", TRUSTYARD_SERVER__BODY_TIMEOUT="1")


@pytest.fixture
def impatient(impatient_server: TrustyardServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=impatient_server.url, timeout=60) as http:
        yield http


def _send_partial(
    server: TrustyardServer, method: str, path: str, headers: dict[str, str], stall: bool
) -> RawResponse | None:
    """Declare 1,000,000 bytes, send 10, then stall (and read the answer) or hang up."""
    sock = _open(server)
    try:
        sock.sendall(_request_head(server, method, path, {**headers, "Content-Length": "1000000"}))
        sock.sendall(b"0123456789")
        if not stall:
            return None
        # The registry keeps serving others while this body is stuck.
        with httpx.Client(base_url=server.url, timeout=60) as other:
            assert other.get("/v2/").status_code == 200
        return _read_response(sock, method)
    finally:
        sock.close()


def _resume(client: httpx.Client, location: str, data: bytes, content_range: str) -> httpx.Response:
    """PATCH, waiting while the server still holds the upload for a request that hung up."""
    deadline = time.monotonic() + 60
    while True:
        response = client.patch(
            location,
            content=data,
            headers={"Content-Type": "application/octet-stream", "Content-Range": content_range},
        )
        if response.status_code != 416 or time.monotonic() > deadline:
            return response
        time.sleep(0.1)


@pytest.mark.parametrize("stall", [False, True], ids=["hang-up", "stall"])
def test_interrupted_chunk_leaves_the_upload_where_it_was(
    impatient: httpx.Client, impatient_server: TrustyardServer, repo: str, stall: bool
) -> None:
    data = random_blob(30)
    location = start_upload(impatient, repo)
    first = impatient.patch(
        location,
        content=data[:10],
        headers={"Content-Type": "application/octet-stream", "Content-Range": "0-9"},
    )
    assert first.status_code == 202

    answer = _send_partial(
        impatient_server, "PATCH", location, {"Content-Type": "application/octet-stream"}, stall
    )
    if answer is not None:
        assert answer.status == 400
        assert answer.codes() == ["BLOB_UPLOAD_INVALID"]

    status = impatient.get(location)
    assert status.status_code == 204
    assert status.headers["range"] == "0-9"
    resumed = _resume(impatient, location, data[10:], "10-29")
    assert resumed.status_code == 202, brief(resumed)
    assert resumed.headers["range"] == "0-29"
    digest = sha256(data)
    done = impatient.put(with_digest(location, digest))
    assert done.status_code == 201, brief(done)
    assert impatient.get(f"/v2/{repo}/blobs/{digest}").content == data


@pytest.mark.parametrize("stall", [False, True], ids=["hang-up", "stall"])
def test_interrupted_monolithic_upload_publishes_nothing(
    impatient: httpx.Client, impatient_server: TrustyardServer, repo: str, stall: bool
) -> None:
    data = b"0123456789" + bytes(999_990)
    digest = sha256(data)
    answer = _send_partial(
        impatient_server,
        "POST",
        f"/v2/{repo}/blobs/uploads/?digest={digest}",
        {"Content-Type": "application/octet-stream"},
        stall,
    )
    if answer is not None:
        assert answer.status == 400
        assert answer.codes() == ["BLOB_UPLOAD_INVALID"]
    assert_error(impatient.get(f"/v2/{repo}/blobs/{digest}"), 404, "BLOB_UNKNOWN")
    assert impatient.head(f"/v2/{repo}/blobs/{digest}").status_code == 404
    # The same blob can be pushed properly afterwards.
    assert push_blob(impatient, repo, data) == digest
    assert impatient.get(f"/v2/{repo}/blobs/{digest}").content == data


@pytest.mark.parametrize("stall", [False, True], ids=["hang-up", "stall"])
def test_interrupted_manifest_put_stores_nothing(
    impatient: httpx.Client, impatient_server: TrustyardServer, repo: str, stall: bool
) -> None:
    answer = _send_partial(
        impatient_server, "PUT", f"/v2/{repo}/manifests/cut", {"Content-Type": OCI_MANIFEST}, stall
    )
    if answer is not None:
        assert answer.status == 400
        assert answer.codes() == ["MANIFEST_INVALID"]
    assert_error(impatient.get(f"/v2/{repo}/manifests/cut"), 404, "MANIFEST_UNKNOWN")
    assert impatient.get("/v2/").status_code == 200


# --- endpoints and methods ------------------------------------------------------------------------
@pytest.mark.parametrize(
    "path",
    ["/v2/test/repo", "/v2/test/repo/unknown/thing", "/v2/test/repo/blobs", "/v2/_catalog/more"],
)
def test_unknown_endpoints_are_404_with_the_envelope(client: httpx.Client, path: str) -> None:
    response = client.get(path)
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/json"
    assert error_codes(response) == ["NAME_UNKNOWN"]


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [
        ("POST", "/v2/test/r/manifests/latest", "DELETE, GET, HEAD, PUT"),
        ("PATCH", "/v2/test/r/blobs/" + sha256(b"x"), "DELETE, GET, HEAD"),
        ("PUT", "/v2/test/r/tags/list", "GET, HEAD"),
        ("DELETE", "/v2/", "GET, HEAD"),
        ("GET", "/v2/test/r/blobs/uploads/", "POST"),
        ("POST", "/v2/test/r/referrers/" + sha256(b"x"), "GET"),
        ("DELETE", "/v2/_catalog", "GET"),
    ],
)
def test_wrong_method_is_405_with_allow(
    client: httpx.Client, method: str, path: str, allow: str
) -> None:
    response = client.request(method, path)
    assert_error(response, 405, "UNSUPPORTED")
    assert response.headers["allow"] == allow


# --- fuzzing --------------------------------------------------------------------------------------
JSON_LEAVES = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False)
    | st.text(max_size=30)
)
JSON_VALUES = st.recursive(
    JSON_LEAVES,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=12,
)
DIGESTS = st.sampled_from(
    [sha256(b"x"), "sha512:" + "0" * 128, "sha256:" + "0" * 63, "md5:00", "sha256:" + "A" * 64]
)
MEDIA_TYPES = st.sampled_from([OCI_MANIFEST, OCI_INDEX, DOCKER_MANIFEST, OCI_CONFIG, "x/y", ""])
DESCRIPTORS = st.fixed_dictionaries(
    {},
    optional={
        "mediaType": MEDIA_TYPES | JSON_VALUES,
        "digest": DIGESTS | JSON_VALUES,
        "size": st.integers(min_value=-5, max_value=2**65) | JSON_VALUES,
        "annotations": st.dictionaries(st.text(max_size=5), JSON_VALUES, max_size=2),
        "urls": JSON_VALUES,
        "platform": JSON_VALUES,
        "artifactType": JSON_VALUES,
    },
)
MANIFEST_LIKE = st.fixed_dictionaries(
    {"schemaVersion": st.sampled_from([2, 2, 1, "2", None])},
    optional={
        "mediaType": MEDIA_TYPES | JSON_VALUES,
        "config": DESCRIPTORS | JSON_VALUES,
        "layers": st.lists(DESCRIPTORS, max_size=3) | JSON_VALUES,
        "manifests": st.lists(DESCRIPTORS, max_size=3) | JSON_VALUES,
        "subject": DESCRIPTORS | JSON_VALUES,
        "annotations": JSON_VALUES,
        "artifactType": JSON_VALUES,
    },
)


def _assert_clean_refusal(response: httpx.Response) -> None:
    assert response.status_code < 500, brief(response)
    path = response.request.url.path
    in_api = path == "/v2" or path.startswith("/v2/")  # `..` may climb out of /v2
    if response.status_code >= 400 and response.request.method != "HEAD" and in_api:
        error_codes(response)


@pytest.mark.parametrize("media_type", [OCI_MANIFEST, OCI_INDEX])
@FUZZ
@given(body=st.binary(max_size=512) | MANIFEST_LIKE.map(lambda d: json.dumps(d).encode()))
@example(body=b'{"schemaVersion": 2, "manifests": [], "artifactType": "a/b\\u0000"}')
@example(body=b'{"schemaVersion": 2, "config": {"mediaType": "\\u0000", "size": 0}, "layers": []}')
def test_random_manifest_bodies_never_cause_5xx(
    client: httpx.Client, repo: str, media_type: str, body: bytes
) -> None:
    response = put_manifest(client, repo, "fuzz", body, media_type)
    _assert_clean_refusal(response)
    if response.status_code != 201:
        assert client.get(f"/v2/{repo}/manifests/{sha256(body)}").status_code == 404


URL_TEXT = st.text(max_size=80) | st.sampled_from(["..", ".", "", "/", "%", "a/../b", "\x00"])


@FUZZ
@given(name=URL_TEXT, reference=URL_TEXT, extra=URL_TEXT)
@example(name="a", reference="\x00", extra="\x00")
@example(name="a\x00", reference="x\x00y", extra="")
def test_random_names_tags_and_digests_in_urls_never_cause_5xx(
    client: httpx.Client, repo: str, name: str, reference: str, extra: str
) -> None:
    push_blob(client, repo, b"fuzz")  # the repository exists, so `last` reaches the database
    quoted_name = quote(name, safe="/")
    ref = quote(reference, safe="")
    for method, url, params in (
        ("GET", f"/v2/{quoted_name}/tags/list", {"last": extra, "n": "2"}),
        ("GET", f"/v2/{repo}/tags/list", {"last": extra}),
        ("GET", "/v2/_catalog", {"last": extra, "n": "3"}),
        ("GET", f"/v2/{quoted_name}/manifests/{ref}", None),
        ("HEAD", f"/v2/{repo}/manifests/{ref}", None),
        ("DELETE", f"/v2/{repo}/manifests/{ref}", None),
        ("GET", f"/v2/{repo}/blobs/{ref}", None),
        ("DELETE", f"/v2/{repo}/blobs/{ref}", None),
        ("GET", f"/v2/{repo}/referrers/{ref}", {"artifactType": extra}),
        ("GET", f"/v2/{repo}/blobs/uploads/{ref}", None),
        ("POST", f"/v2/{repo}/blobs/uploads/", {"mount": reference, "from": name}),
        ("PUT", f"/v2/{repo}/blobs/uploads/{ref}", {"digest": extra}),
    ):
        _assert_clean_refusal(client.request(method, url, params=params))
