"""Small helpers for the OCI conformance-style HTTP tests: blobs, manifests, digests, errors."""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from typing import Any

import httpx

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
OCI_EMPTY = "application/vnd.oci.empty.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"
API_VERSION = "registry/2.0"
EMPTY_JSON = b"{}"


def digest_of(data: bytes, algorithm: str = "sha256") -> str:
    return f"{algorithm}:{hashlib.new(algorithm, data).hexdigest()}"


def sha256(data: bytes) -> str:
    return digest_of(data, "sha256")


def sha512(data: bytes) -> str:
    return digest_of(data, "sha512")


def random_blob(size: int = 1024) -> bytes:
    return os.urandom(size)


def descriptor(
    media_type: str, data: bytes, algorithm: str = "sha256", **extra: Any
) -> dict[str, Any]:
    return {
        "mediaType": media_type,
        "digest": digest_of(data, algorithm),
        "size": len(data),
        **extra,
    }


def encode(document: dict[str, Any]) -> bytes:
    return json.dumps(document, indent=2).encode()


def error_codes(response: httpx.Response) -> list[str]:
    """The OCI error codes of a response, checking the envelope's shape on the way."""
    body = response.json()
    assert isinstance(body, dict)
    assert list(body) == ["errors"]
    assert isinstance(body["errors"], list)
    assert body["errors"]
    for item in body["errors"]:
        assert isinstance(item["code"], str)
        assert isinstance(item["message"], str)
    return [item["code"] for item in body["errors"]]


def brief(response: httpx.Response) -> str:
    """A short description of a response for assertion messages (bodies may be binary)."""
    return f"{response.status_code} {response.headers!r} {response.content[:300]!r}"


def assert_error(response: httpx.Response, status: int, code: str) -> None:
    assert response.status_code == status, brief(response)
    assert response.headers["content-type"] == "application/json"
    assert error_codes(response) == [code]


# --- blobs ------------------------------------------------------------------------------------
def start_upload(client: httpx.Client, repo: str) -> str:
    """Open an upload session; return its Location."""
    response = client.post(f"/v2/{repo}/blobs/uploads/")
    assert response.status_code == 202, brief(response)
    return response.headers["location"]


def with_digest(location: str, digest: str) -> str:
    separator = "&" if "?" in location else "?"
    return f"{location}{separator}digest={digest}"


def push_blob(client: httpx.Client, repo: str, data: bytes, algorithm: str = "sha256") -> str:
    """Monolithic upload (POST with ?digest=); return the digest."""
    digest = digest_of(data, algorithm)
    response = client.post(
        f"/v2/{repo}/blobs/uploads/",
        params={"digest": digest},
        content=data,
        headers={"Content-Type": "application/octet-stream"},
    )
    assert response.status_code == 201, brief(response)
    assert response.headers["docker-content-digest"] == digest
    return digest


def push_blob_chunked(
    client: httpx.Client, repo: str, data: bytes, chunk_size: int, algorithm: str = "sha256"
) -> str:
    """Chunked upload: PATCH with Content-Range for every chunk, then an empty PUT."""
    location = start_upload(client, repo)
    for start in range(0, len(data), chunk_size):
        chunk = data[start : start + chunk_size]
        response = client.patch(
            location,
            content=chunk,
            headers={
                "Content-Type": "application/octet-stream",
                "Content-Range": f"{start}-{start + len(chunk) - 1}",
            },
        )
        assert response.status_code == 202, brief(response)
        assert response.headers["range"] == f"0-{start + len(chunk) - 1}"
        location = response.headers["location"]
    digest = digest_of(data, algorithm)
    response = client.put(with_digest(location, digest))
    assert response.status_code == 201, brief(response)
    return digest


# --- manifests --------------------------------------------------------------------------------
@dataclass
class Image:
    """A pushed (or ready to push) image: its manifest bytes and what they reference."""

    manifest: bytes
    media_type: str
    config: bytes
    layers: list[bytes]

    @property
    def digest(self) -> str:
        return sha256(self.manifest)


def image_manifest(
    config: dict[str, Any],
    layers: list[dict[str, Any]],
    *,
    media_type: str = OCI_MANIFEST,
    subject: dict[str, Any] | None = None,
    artifact_type: str | None = None,
    annotations: dict[str, str] | None = None,
) -> dict[str, Any]:
    document: dict[str, Any] = {"schemaVersion": 2, "mediaType": media_type}
    if artifact_type is not None:
        document["artifactType"] = artifact_type
    document["config"] = config
    document["layers"] = layers
    if subject is not None:
        document["subject"] = subject
    if annotations is not None:
        document["annotations"] = annotations
    return document


def index_manifest(
    children: list[dict[str, Any]],
    *,
    media_type: str = OCI_INDEX,
    subject: dict[str, Any] | None = None,
    artifact_type: str | None = None,
    annotations: dict[str, str] | None = None,
) -> dict[str, Any]:
    document: dict[str, Any] = {"schemaVersion": 2, "mediaType": media_type}
    if artifact_type is not None:
        document["artifactType"] = artifact_type
    document["manifests"] = children
    if subject is not None:
        document["subject"] = subject
    if annotations is not None:
        document["annotations"] = annotations
    return document


def put_manifest(
    client: httpx.Client, repo: str, reference: str, body: bytes, media_type: str = OCI_MANIFEST
) -> httpx.Response:
    return client.put(
        f"/v2/{repo}/manifests/{reference}", content=body, headers={"Content-Type": media_type}
    )


def make_image(
    client: httpx.Client,
    repo: str,
    *,
    layer_count: int = 1,
    docker: bool = False,
    label: str = "",
) -> Image:
    """Push a small config and layers to `repo` and build (but do not push) their manifest."""
    config = encode({"architecture": "amd64", "os": "linux", "label": label or os.urandom(8).hex()})
    layers = [random_blob(512 + i) for i in range(layer_count)]
    push_blob(client, repo, config)
    for layer in layers:
        push_blob(client, repo, layer)
    media_type = DOCKER_MANIFEST if docker else OCI_MANIFEST
    document = image_manifest(
        descriptor(DOCKER_CONFIG if docker else OCI_CONFIG, config),
        [descriptor(DOCKER_LAYER if docker else OCI_LAYER, layer) for layer in layers],
        media_type=media_type,
    )
    return Image(encode(document), media_type, config, layers)


def push_image(
    client: httpx.Client, repo: str, tag: str | None = None, *, docker: bool = False
) -> Image:
    """Push a small image, by tag when one is given, else by digest."""
    image = make_image(client, repo, docker=docker)
    response = put_manifest(client, repo, tag or image.digest, image.manifest, image.media_type)
    assert response.status_code == 201, brief(response)
    return image


def push_artifact(
    client: httpx.Client,
    repo: str,
    subject: dict[str, Any],
    artifact_type: str | None,
    *,
    annotations: dict[str, str] | None = None,
    config_media_type: str = OCI_EMPTY,
    payload: bytes | None = None,
) -> tuple[str, bytes, httpx.Response]:
    """Push an artifact manifest whose subject is `subject`; return digest, bytes, response."""
    config = EMPTY_JSON if config_media_type == OCI_EMPTY else encode({"kind": "config"})
    push_blob(client, repo, config)
    content = payload if payload is not None else random_blob(64)
    push_blob(client, repo, content)
    document = image_manifest(
        descriptor(config_media_type, config),
        [descriptor("application/octet-stream", content)],
        subject=subject,
        artifact_type=artifact_type,
        annotations=annotations,
    )
    body = encode(document)
    digest = sha256(body)
    response = put_manifest(client, repo, digest, body)
    return digest, body, response
