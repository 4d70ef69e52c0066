"""The reference registry wrapper and the shared test images work with skopeo."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator

import httpx
import pytest

from tests.support.images import image_info, image_layout
from tests.support.refreg import ReferenceRegistry

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"


@pytest.fixture
def registry() -> Iterator[ReferenceRegistry]:
    with ReferenceRegistry() as reg:
        yield reg


def _skopeo_push(layout: str, dest: str) -> None:
    argv = ["skopeo", "copy", "--dest-tls-verify=false", f"oci:{layout}:latest", dest]
    subprocess.run(argv, check=True, capture_output=True, timeout=300)


@pytest.mark.integration
def test_push_go_binary_and_list_tags(registry: ReferenceRegistry) -> None:
    assert registry.url == f"http://127.0.0.1:{registry.port}"
    _skopeo_push(str(image_layout("go-binary")), f"docker://{registry.host}/test/go:latest")

    with httpx.Client(base_url=registry.url, timeout=10) as client:
        tags = client.get("/v2/test/go/tags/list")
        head = client.head("/v2/test/go/manifests/latest", headers={"Accept": OCI_MANIFEST})

    assert tags.status_code == 200
    assert tags.json() == {"name": "test/go", "tags": ["latest"]}
    assert head.status_code == 200
    assert head.headers["Docker-Content-Digest"] == image_info("go-binary")["digest"]
