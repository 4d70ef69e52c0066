"""RemoteService.test ("test connection") with the real OCI client against real servers:
the reference registry reached, a closed port diagnosed as unreachable, the password never
in the diagnosis. (Runs once trustyard.ociclient.client exists.)"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.ports import free_port
from tests.support.refreg import ReferenceRegistry
from trustyard.config import MirroringSettings
from trustyard.mirroring.remotes import RemoteService, RemoteStore, secret_box
from trustyard.ociclient.interfaces import RemoteEndpoint

pytest.importorskip("trustyard.ociclient.client")

PASSWORD = "a-password-that-must-not-leak"


@pytest.fixture(scope="module")
def registry() -> Iterator[ReferenceRegistry]:
    with ReferenceRegistry() as reg:
        yield reg


def service() -> RemoteService:
    settings = MirroringSettings(max_attempts=1, connect_timeout_seconds=5)
    return RemoteService(RemoteStore(), secret_box("a passphrase for tests"), settings)


def test_the_reference_registry_is_reached(registry: ReferenceRegistry) -> None:
    found = service().test(RemoteEndpoint(url=registry.url))
    assert found.ok, found.message
    assert found.kind is None
    assert found.message


def test_a_closed_port_is_unreachable_and_the_password_stays_out() -> None:
    endpoint = RemoteEndpoint(
        url=f"http://127.0.0.1:{free_port()}", username="robot", password=PASSWORD
    )
    found = service().test(endpoint)
    assert not found.ok
    assert found.kind in ("unreachable", "timeout"), found
    assert PASSWORD not in found.message
    assert found.message
