"""The fault tool the mirroring suites rely on (tests/support/proxy.py), checked against the
reference registry with skopeo: it counts what goes through, cuts a transfer after N bytes
and refuses connections until started again, and holds traffic until released."""

from __future__ import annotations

import subprocess
import threading
from collections.abc import Iterator

import pytest

from tests.support.images import image_info, image_layout
from tests.support.proxy import CountingProxy
from tests.support.refreg import ReferenceRegistry

pytestmark = pytest.mark.integration

MIB = 1024 * 1024


@pytest.fixture(scope="module")
def refreg() -> Iterator[ReferenceRegistry]:
    with ReferenceRegistry() as registry:
        yield registry


def push(proxy: CountingProxy, image: str, repository: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["skopeo", "copy", "--dest-tls-verify=false",
         f"oci:{image_layout(image)}:latest", f"docker://{proxy.host}/{repository}:v1"],
        capture_output=True, text=True, check=False, timeout=600,
    )  # fmt: skip


def test_the_proxy_counts_every_body_byte_sent_upstream(refreg: ReferenceRegistry) -> None:
    with CountingProxy(refreg.url) as proxy:
        assert push(proxy, "go-binary", "count/go").returncode == 0
        # blob_bytes: the manifest, its config and its layers (what the build summary counts)
        assert proxy.bytes_sent() == image_info("go-binary")["blob_bytes"]
        assert proxy.bytes_sent("PUT", "/manifests/") > 0


def test_the_proxy_cuts_after_n_bytes_until_started_again(refreg: ReferenceRegistry) -> None:
    with CountingProxy(refreg.url) as proxy:
        proxy.stop_after(10 * MIB)
        failed = push(proxy, "debian-minbase", "cut/debian")
        assert failed.returncode != 0
        assert proxy.cut.is_set()
        assert not proxy.running
        assert 10 * MIB <= proxy.bytes_sent() < 10 * MIB + 64 * 1024
        assert push(proxy, "go-binary", "cut/go").returncode != 0  # refused while stopped
        proxy.start()
        assert push(proxy, "debian-minbase", "cut/debian").returncode == 0


def test_the_proxy_holds_traffic_until_released(refreg: ReferenceRegistry) -> None:
    with CountingProxy(refreg.url) as proxy:
        proxy.pause_after(5 * MIB)
        results: list[int] = []
        pusher = threading.Thread(
            target=lambda: results.append(push(proxy, "python-app", "hold/py").returncode)
        )
        pusher.start()
        assert proxy.paused.wait(120)
        assert results == []  # held: skopeo is still waiting for its upload
        proxy.release()
        pusher.join(timeout=600)
        assert results == [0]
