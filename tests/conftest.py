"""Shared fixtures: real trustyard servers on SQLite and on PostgreSQL."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.postgres import PostgresCluster
from tests.support.server import TrustyardServer

BACKENDS = ("sqlite", "postgres")


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[PostgresCluster]:
    cluster = PostgresCluster()
    cluster.start()
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(scope="session", params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def make_database_url(backend: str, request: pytest.FixtureRequest) -> str | None:
    """None means the default: SQLite inside the server's data folder."""
    if backend == "sqlite":
        return None
    cluster: PostgresCluster = request.getfixturevalue("pg_cluster")
    return cluster.create_database(f"t_{uuid.uuid4().hex[:12]}")


@pytest.fixture(scope="session")
def server(
    backend: str, request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[TrustyardServer]:
    """One shared registry per backend; tests use their own repository names."""
    data_dir = tmp_path_factory.mktemp(f"registry-{backend}")
    instance = TrustyardServer(data_dir, make_database_url(backend, request))
    instance.start()
    try:
        yield instance
    finally:
        instance.stop()


# Registries `start_server` started that are still running. Each holds four processes and
# about 400 MiB; kept to the end of the session, the suite's 60-odd would fill the machine.
_RUNNING: list[TrustyardServer] = []


def _stop(instances: list[TrustyardServer]) -> None:
    for instance in instances:
        instance.stop()
        if instance in _RUNNING:
            _RUNNING.remove(instance)


@pytest.fixture(scope="module", autouse=True)
def _stop_the_modules_servers() -> Iterator[None]:
    """Registries started for one test module (every user of `start_server` is a module
    fixture) stop when the module's tests are done, not at the end of the session."""
    before = list(_RUNNING)
    yield
    _stop([instance for instance in _RUNNING if instance not in before])


@pytest.fixture(scope="session")
def start_server(
    backend: str, request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Callable[..., TrustyardServer]]:
    """Start extra registries with their own settings (as TRUSTYARD_* variables); they are
    stopped when the test module that started them is done (see above)."""
    started: list[TrustyardServer] = []

    def start(label: str, **environment: str) -> TrustyardServer:
        data_dir = tmp_path_factory.mktemp(f"{label}-{backend}") / "data"
        instance = TrustyardServer(
            data_dir, make_database_url(backend, request), extra_env=environment
        )
        started.append(instance.start())
        _RUNNING.append(instance)
        return instance

    try:
        yield start
    finally:
        _stop(started)


@pytest.fixture
def fresh_server(
    backend: str, request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[TrustyardServer]:
    """A registry of the test's own, for tests that kill or restart it."""
    instance = TrustyardServer(tmp_path / "data", make_database_url(backend, request))
    instance.start()
    try:
        yield instance
    finally:
        instance.stop()


@pytest.fixture
def client(server: TrustyardServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=60) as http:
        yield http


@pytest.fixture
def repo() -> str:
    """A repository name no other test uses."""
    return f"test/r{uuid.uuid4().hex[:10]}"
