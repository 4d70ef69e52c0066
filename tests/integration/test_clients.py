"""Real clients against a real trustyard: skopeo, buildah, podman, oras and skopeo sync.

Every test checks what a user of the client relies on: the digest that comes back is the digest
that went in, byte for byte, not just that the client exited 0.
"""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import oras.client
import oras.oci
import pytest

from tests.integration.clients import (
    ALL_MANIFEST_TYPES,
    Clients,
    debug_messages,
    file_digest,
    layout_blob_path,
    layout_blobs,
    layout_top,
    logged_requests,
)
from tests.support.images import IMAGE_NAMES, image_info, image_layout
from tests.support.refreg import ReferenceRegistry
from tests.support.server import TrustyardServer

pytestmark = pytest.mark.integration

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
SBOM_ARTIFACT = "application/vnd.trustyard.test.sbom.v1+json"


@pytest.fixture
def clients(server: TrustyardServer, tmp_path: Path) -> Clients:
    return Clients(tmp_path / "clients", [server.host])


def sha256(data: bytes) -> str:
    return f"sha256:{hashlib.sha256(data).hexdigest()}"


def head_manifest(http: httpx.Client, repository: str, reference: str) -> httpx.Response:
    response = http.head(
        f"/v2/{repository}/manifests/{reference}", headers={"Accept": ALL_MANIFEST_TYPES}
    )
    assert response.status_code == 200, f"{repository}:{reference} -> {response.status_code}"
    return response


def get_manifest(http: httpx.Client, repository: str, reference: str) -> httpx.Response:
    response = http.get(
        f"/v2/{repository}/manifests/{reference}", headers={"Accept": ALL_MANIFEST_TYPES}
    )
    assert response.status_code == 200, f"{repository}:{reference} -> {response.status_code}"
    assert sha256(response.content) == response.headers["Docker-Content-Digest"]
    return response


def platform_image(info: dict[str, Any], architecture: str) -> dict[str, Any]:
    images: list[dict[str, Any]] = info["images"]
    return next(i for i in images if i["platform"]["architecture"] == architecture)


# --- 1. skopeo copy in and out, every test image ----------------------------------------------


@pytest.mark.parametrize("name", IMAGE_NAMES)
def test_skopeo_round_trip_is_digest_exact(
    name: str,
    server: TrustyardServer,
    client: httpx.Client,
    clients: Clients,
    repo: str,
    tmp_path: Path,
) -> None:
    source = image_layout(name)
    info = image_info(name)
    top = layout_top(source)
    assert top["digest"] == info["digest"]
    is_index = info["mediaType"] == OCI_INDEX

    clients.push_layout(source, f"{server.host}/{repo}:latest", all_images=is_index)

    head = head_manifest(client, repo, "latest")
    assert head.headers["Docker-Content-Digest"] == info["digest"]
    assert head.headers["Content-Type"] == info["mediaType"]
    assert int(head.headers["Content-Length"]) == top["size"]

    pulled = tmp_path / "pulled"
    clients.pull_layout(f"{server.host}/{repo}:latest", pulled, all_images=is_index)

    pulled_top = layout_top(pulled)
    assert (pulled_top["digest"], pulled_top["mediaType"], pulled_top["size"]) == (
        top["digest"],
        top["mediaType"],
        top["size"],
    )
    assert layout_blobs(pulled) == layout_blobs(source)
    for digest in layout_blobs(pulled):
        assert file_digest(layout_blob_path(pulled, digest)) == digest


# --- 2. buildah: from scratch, add, commit, push ----------------------------------------------


def test_buildah_push_of_a_scratch_image(
    server: TrustyardServer, client: httpx.Client, clients: Clients, repo: str, tmp_path: Path
) -> None:
    payload = b"hello from a scratch image\n" * 100
    source_file = tmp_path / "hello.txt"
    source_file.write_bytes(payload)
    container = clients.buildah("from", "scratch").stdout.strip()
    clients.buildah("add", container, str(source_file), "/hello.txt")
    clients.buildah("config", "--label", "org.example.built-by=buildah", container)
    image_id = clients.buildah(
        "commit", "--quiet", "--format", "oci", container, "localhost/scratch-test:1"
    ).stdout.strip()
    target = f"{server.host}/{repo}:1"
    digest_file = clients.digestfile("buildah-push")

    clients.buildah(
        "push", "--tls-verify=false", "--digestfile", str(digest_file),
        "localhost/scratch-test:1", f"docker://{target}",
    )  # fmt: skip

    pushed = digest_file.read_text(encoding="utf-8").strip()
    inspected = json.loads(
        clients.skopeo("inspect", "--tls-verify=false", f"docker://{target}").stdout
    )
    assert inspected["Digest"] == pushed
    assert inspected["Labels"]["org.example.built-by"] == "buildah"
    response = get_manifest(client, repo, "1")
    assert response.headers["Docker-Content-Digest"] == pushed
    assert response.headers["Content-Type"] == OCI_MANIFEST
    manifest = response.json()
    assert manifest["config"]["digest"] == f"sha256:{image_id}"
    assert inspected["Layers"] == [layer["digest"] for layer in manifest["layers"]]
    (layer,) = manifest["layers"]
    blob = client.get(f"/v2/{repo}/blobs/{layer['digest']}")
    assert blob.status_code == 200
    assert sha256(blob.content) == layer["digest"]
    assert len(blob.content) == layer["size"]
    with tarfile.open(fileobj=io.BytesIO(blob.content), mode="r:gz") as tar:
        files = {m.name.removeprefix("./"): m for m in tar.getmembers() if m.isfile()}
        assert list(files) == ["hello.txt"]
        extracted = tar.extractfile(files["hello.txt"])
        assert extracted is not None
        assert extracted.read() == payload


# --- 3. podman pull and push ------------------------------------------------------------------


def test_podman_pulls_a_skopeo_push_and_pushes_it_on(
    server: TrustyardServer, client: httpx.Client, clients: Clients, repo: str
) -> None:
    info = image_info("python-app")
    image = info["images"][0]
    source_ref = f"{server.host}/{repo}:1.0"
    clients.push_layout(image_layout("python-app"), source_ref)

    image_id = clients.podman("pull", "--quiet", "--tls-verify=false", source_ref).stdout.strip()

    assert f"sha256:{image_id}" == image["config"]
    (inspected,) = json.loads(clients.podman("image", "inspect", source_ref).stdout)
    assert inspected["Digest"] == info["digest"]
    assert f"{server.host}/{repo}@{info['digest']}" in inspected["RepoDigests"]

    copy_repo = f"{repo}/copy"
    digest_file = clients.digestfile("podman-push")
    clients.podman(
        "push", "--tls-verify=false", "--digestfile", str(digest_file),
        source_ref, f"{server.host}/{copy_repo}:2.0",
    )  # fmt: skip

    pushed = digest_file.read_text(encoding="utf-8").strip()
    response = get_manifest(client, copy_repo, "2.0")
    assert response.headers["Docker-Content-Digest"] == pushed
    manifest = response.json()
    assert manifest["mediaType"] == OCI_MANIFEST
    assert manifest["config"]["digest"] == image["config"]
    # podman keeps the compressed layers it pulled (its blob-info cache knows them): no re-gzip.
    assert [(x["digest"], x["size"]) for x in manifest["layers"]] == [
        (x["digest"], x["size"]) for x in image["layers"]
    ]
    for layer in manifest["layers"]:
        head = client.head(f"/v2/{copy_repo}/blobs/{layer['digest']}")
        assert head.status_code == 200
        assert int(head.headers["Content-Length"]) == layer["size"]


def test_podman_pull_arch_chooses_that_platform_from_an_index(
    server: TrustyardServer, clients: Clients, repo: str
) -> None:
    info = image_info("multi-arch")
    arm64 = platform_image(info, "arm64")
    amd64 = platform_image(info, "amd64")
    ref = f"{server.host}/{repo}:multi"
    clients.push_layout(image_layout("multi-arch"), ref, all_images=True)

    image_id = clients.podman(
        "pull", "--quiet", "--arch", "arm64", "--tls-verify=false", ref
    ).stdout.strip()

    assert f"sha256:{image_id}" == arm64["config"]
    (inspected,) = json.loads(clients.podman("image", "inspect", ref).stdout)
    assert inspected["Architecture"] == "arm64"
    assert f"{server.host}/{repo}@{arm64['manifest']}" in inspected["RepoDigests"]
    assert f"{server.host}/{repo}@{amd64['manifest']}" not in inspected["RepoDigests"]


# --- 4. oras: an artifact with a subject, found through the referrers API ---------------------


def test_oras_artifact_with_a_subject_is_a_referrer(
    server: TrustyardServer, client: httpx.Client, clients: Clients, repo: str, tmp_path: Path
) -> None:
    clients.push_layout(image_layout("go-binary"), f"{server.host}/{repo}:app")
    subject_head = head_manifest(client, repo, "app")
    subject = oras.oci.Subject(
        mediaType=subject_head.headers["Content-Type"],
        digest=subject_head.headers["Docker-Content-Digest"],
        size=int(subject_head.headers["Content-Length"]),
    )
    sbom_bytes = b'{"spdxVersion": "SPDX-2.3", "name": "go-binary"}\n'
    sbom = tmp_path / "sbom.spdx.json"
    sbom.write_bytes(sbom_bytes)
    config = tmp_path / "artifact-config.json"
    config.write_bytes(b'{"generator": "trustyard tests"}')
    annotations = {"org.example.kind": "sbom"}
    registry = oras.client.OrasClient(hostname=server.host, insecure=True)

    pushed = registry.push(
        target=f"{server.host}/{repo}:sbom",
        files=[f"{sbom}:application/spdx+json"],
        manifest_config=f"{config}:{SBOM_ARTIFACT}",
        manifest_annotations=annotations,
        subject=subject,
        disable_path_validation=True,
        quiet=True,
    )

    assert pushed.status_code == 201
    assert pushed.headers["OCI-Subject"] == subject.digest
    artifact_digest = pushed.headers["Docker-Content-Digest"]
    artifact = get_manifest(client, repo, artifact_digest)
    assert artifact.json()["subject"]["digest"] == subject.digest
    expected = {
        "mediaType": OCI_MANIFEST,
        "digest": artifact_digest,
        "size": len(artifact.content),
        "artifactType": SBOM_ARTIFACT,
        "annotations": annotations,
    }
    referrers = client.get(f"/v2/{repo}/referrers/{subject.digest}")
    assert referrers.status_code == 200
    assert referrers.headers["Content-Type"] == OCI_INDEX
    assert referrers.json()["manifests"] == [expected]
    filtered = client.get(
        f"/v2/{repo}/referrers/{subject.digest}", params={"artifactType": SBOM_ARTIFACT}
    )
    assert filtered.headers["OCI-Filters-Applied"] == "artifactType"
    assert filtered.json()["manifests"] == [expected]
    other = client.get(
        f"/v2/{repo}/referrers/{subject.digest}", params={"artifactType": "application/x-none"}
    )
    assert other.json()["manifests"] == []

    outdir = tmp_path / "pulled"
    files = registry.pull(target=f"{server.host}/{repo}:sbom", outdir=str(outdir))

    assert files == [str(outdir / "sbom.spdx.json")]
    assert (outdir / "sbom.spdx.json").read_bytes() == sbom_bytes


# --- 5. skopeo sync: reference registry -> trustyard -> reference registry -------------------


@pytest.fixture
def reference() -> Iterator[ReferenceRegistry]:
    with ReferenceRegistry() as registry:
        yield registry


def test_skopeo_sync_through_trustyard_is_digest_exact(
    server: TrustyardServer,
    client: httpx.Client,
    clients: Clients,
    repo: str,
    reference: ReferenceRegistry,
) -> None:
    clients.add_insecure(reference.host)
    seeds = {"v1": "node-app", "v2": "go-binary", "multi": "multi-arch"}
    for tag, name in seeds.items():
        clients.push_layout(
            image_layout(name),
            f"{reference.host}/src/app:{tag}",
            all_images=name == "multi-arch",
        )
    sync = ("sync", "--src", "docker", "--dest", "docker", "--all")
    tls = ("--src-tls-verify=false", "--dest-tls-verify=false")

    clients.skopeo(*sync, *tls, f"{reference.host}/src/app", f"{server.host}/{repo}")
    clients.skopeo(*sync, *tls, f"{server.host}/{repo}/app", f"{reference.host}/back")

    expected = {tag: image_info(name)["digest"] for tag, name in seeds.items()}
    with httpx.Client(base_url=reference.url, timeout=60) as reference_http:
        copies = [
            (reference_http, "src/app"),
            (client, f"{repo}/app"),
            (reference_http, "back/app"),
        ]
        for http, repository in copies:
            tags = http.get(f"/v2/{repository}/tags/list")
            assert tags.status_code == 200
            assert sorted(tags.json()["tags"]) == sorted(expected)
            for tag, digest in expected.items():
                response = get_manifest(http, repository, tag)
                assert response.headers["Docker-Content-Digest"] == digest, (repository, tag)
            for child in image_info("multi-arch")["images"]:
                assert (
                    head_manifest(http, repository, child["manifest"]).headers[
                        "Docker-Content-Digest"
                    ]
                    == child["manifest"]
                )


# --- 6. skopeo mounts layers across repositories instead of uploading them again ----------


def test_skopeo_second_push_mounts_layers_from_the_first_repository(
    server: TrustyardServer, client: httpx.Client, clients: Clients, repo: str
) -> None:
    info = image_info("python-app")
    image = info["images"][0]
    layers = [layer["digest"] for layer in image["layers"]]
    layout = image_layout("python-app")
    first, second = f"{repo}/first", f"{repo}/second"
    clients.push_layout(layout, f"{server.host}/{first}:1")

    debug = clients.skopeo(
        "--debug", "copy", "--dest-tls-verify=false",
        f"oci:{layout}:latest", f"docker://{server.host}/{second}:1",
    ).stderr  # fmt: skip

    uploads = f"{server.url}/v2/{second}/blobs/uploads/"
    requests = [(m, u) for m, u in logged_requests(debug) if u.startswith(uploads)]
    mounted: dict[str, str] = {}
    completed: list[str] = []
    plain_posts = 0
    for method, url in requests:
        query = parse_qs(urlsplit(url).query)
        if method == "POST" and "mount" in query:
            mounted[query["mount"][0]] = query["from"][0]
        elif method == "POST":
            plain_posts += 1
        elif method == "PUT":
            completed.append(query["digest"][0])
    assert mounted == dict.fromkeys(layers, first), (requests, debug_messages(debug)[-40:])
    # skopeo logs "mount OK" only when the registry answers the mount POST with 201 Created.
    assert debug_messages(debug).count("... mount OK") == len(layers)
    # Only the config travelled again; the layers were never PATCHed or PUT into `second`.
    assert completed == [image["config"]]
    assert plain_posts == 1
    assert [m for m, _ in requests].count("PATCH") == 1

    assert head_manifest(client, second, "1").headers["Docker-Content-Digest"] == info["digest"]
    for layer in image["layers"]:
        head = client.head(f"/v2/{second}/blobs/{layer['digest']}")
        assert head.status_code == 200
        assert int(head.headers["Content-Length"]) == layer["size"]
