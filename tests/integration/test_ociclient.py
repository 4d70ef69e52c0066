"""The OCI client against real registries: the reference registry (anonymous) and a trustyard
server with accounts (Docker token flow, wrong password)."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from collections.abc import Iterator

import pytest

from tests.support.refreg import ReferenceRegistry
from tests.support.server import TrustyardServer
from trustyard.ociclient.client import RegistryClient
from trustyard.ociclient.interfaces import ClientLimits, RemoteAuthFailed, RemoteEndpoint

PASSWORD = "an admin password for client tests"


@pytest.fixture(scope="module")
def site(start_server: object) -> TrustyardServer:
    return start_server(  # type: ignore[operator,no-any-return]
        "ociclient", TRUSTYARD_AUTH__ENABLED="true", TRUSTYARD_ADMIN_PASSWORD=PASSWORD
    )


def _stream(data: bytes) -> object:
    @contextlib.contextmanager
    def open_stream(offset: int) -> Iterator[Iterator[bytes]]:
        yield iter([data[offset:]])

    return open_stream


def _sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def test_token_flow_push_and_pull_digest_exact(site: TrustyardServer) -> None:
    ep = RemoteEndpoint(url=site.url, username="admin", password=PASSWORD)
    with RegistryClient(ep, ClientLimits(chunk_bytes=4096)) as c:
        assert "reached" in c.ping()
        layer = os.urandom(10_000)
        cfg = b'{"architecture":"amd64","os":"linux"}'
        sent = c.push_blob("oc/a", _sha(layer), len(layer), _stream(layer))  # type: ignore[arg-type]
        assert sent.how == "uploaded"
        assert sent.bytes_sent == len(layer)
        c.push_blob("oc/a", _sha(cfg), len(cfg), _stream(cfg))  # type: ignore[arg-type]
        again = c.push_blob("oc/a", _sha(layer), len(layer), _stream(layer))  # type: ignore[arg-type]
        assert again.how == "present"
        manifest = json.dumps(
            {
                "schemaVersion": 2,
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "config": {
                    "mediaType": "application/vnd.oci.image.config.v1+json",
                    "digest": _sha(cfg),
                    "size": len(cfg),
                },
                "layers": [
                    {
                        "mediaType": "application/vnd.oci.image.layer.v1.tar",
                        "digest": _sha(layer),
                        "size": len(layer),
                    }
                ],
            },
            indent=3,
        ).encode()
        digest = c.put_manifest(
            "oc/a", "v1", manifest, "application/vnd.oci.image.manifest.v1+json"
        )
        assert digest == _sha(manifest)
        head = c.head_manifest("oc/a", "v1")
        assert head is not None
        assert head.digest == digest
        assert c.get_manifest("oc/a", "v1").body == manifest
        assert "v1" in c.tags("oc/a", limit=10)
        with c.pull_blob("oc/a", _sha(layer)) as it:
            assert b"".join(it) == layer
        assert c.referrers("oc/a", digest) == []


def test_wrong_password_is_a_clear_authentication_failure(site: TrustyardServer) -> None:
    ep = RemoteEndpoint(url=site.url, username="admin", password="not the password")
    with RegistryClient(ep) as c, pytest.raises(RemoteAuthFailed) as info:
        c.tags("oc/a", limit=10)
    assert "not the password" not in str(info.value)
    assert "401" in str(info.value)


@pytest.fixture(scope="module")
def reference() -> Iterator[ReferenceRegistry]:
    with ReferenceRegistry() as reg:
        yield reg


def test_reference_registry_mount_fallback_referrers_and_delete(
    reference: ReferenceRegistry,
) -> None:
    with RegistryClient(RemoteEndpoint(url=reference.url), ClientLimits(chunk_bytes=1000)) as c:
        assert "anonymously" in c.ping()
        layer = os.urandom(3500)
        first = c.push_blob("rr/a", _sha(layer), len(layer), _stream(layer))  # type: ignore[arg-type]
        assert (first.how, first.bytes_sent) == ("uploaded", len(layer))
        mounted = c.push_blob(
            "rr/b",
            _sha(layer),
            len(layer),
            _stream(layer),  # type: ignore[arg-type]
            mount_from=["rr/a"],
        )
        assert mounted.how == "mounted"
        assert c.has_blob("rr/b", _sha(layer)) == len(layer)
        with c.pull_blob("rr/b", _sha(layer), offset=100) as it:
            assert b"".join(it) == layer[100:]
        # no referrers API: the sha256-<hex> tag schema index answers
        subject = "sha256:" + "ab" * 32
        index = json.dumps(
            {
                "schemaVersion": 2,
                "mediaType": "application/vnd.oci.image.index.v1+json",
                "manifests": [],
            }
        ).encode()
        assert c.referrers("rr/b", subject) == []
        c.put_manifest(
            "rr/b", "sha256-" + "ab" * 32, index, "application/vnd.oci.image.index.v1+json"
        )
        assert c.referrers("rr/b", subject) == []
        assert c.delete_manifest("rr/b", _sha(index)) is True
        assert c.delete_manifest("rr/b", _sha(index)) is False
        assert c.head_manifest("rr/b", "sha256-" + "ab" * 32) is None
