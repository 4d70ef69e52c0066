"""/api/v1/vulndb on a real `trustyard serve` (accounts on; SQLite and PostgreSQL, one server per
module) whose embedded worker runs the online update against a loopback server of OSV bundles:
the status for any signed-in user, the admin's upload (streamed, bounded by
max_upload_bytes, a bad bundle refused with its entry and record named and nothing changed),
and the admin's request for an update (202, a second one while it runs answers the same job)."""

from __future__ import annotations

import base64
import hashlib
import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from tests.integration.test_api import PASSWORD, assert_problem, basic
from tests.support.osv_server import Bundle, Served, serve_bundles, zipped
from tests.support.server import TrustyardServer
from tests.unit.vulnerabilities.fixture_db import VULNDB

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("vulndb-api")]

A = "/api/v1/vulndb"
ADMIN_PASSWORD = "an admin password for vulndb tests"
UPLOAD_LIMIT = 256 * 1024
DEADLINE = 120.0
BODY_TIMEOUT = 2  # seconds an upload may stall
Body = dict[str, Any]


@dataclass
class World:
    server: TrustyardServer
    base: str
    served: Served

    def client(self, user: str = "admin") -> httpx.Client:
        secret = ADMIN_PASSWORD if user == "admin" else PASSWORD
        return httpx.Client(base_url=self.server.url, auth=basic(user, secret), timeout=120)

    def status(self, user: str = "admin") -> Body:
        with self.client(user) as client:
            answer = client.get(A)
        assert answer.status_code == 200, answer.text
        body: Body = answer.json()
        return body

    def source(self, name: str) -> Body:
        found = {s["name"]: s for s in self.status()["sources"]}
        return found[name]


@pytest.fixture(scope="module")
def world(start_server: Callable[..., TrustyardServer]) -> Iterator[World]:
    with serve_bundles() as (base, served):
        server = start_server(
            "vulndb-api",
            TRUSTYARD_AUTH__ENABLED="true",
            TRUSTYARD_ADMIN_PASSWORD=ADMIN_PASSWORD,
            TRUSTYARD_VULNERABILITIES__UPDATE_SOURCES=json.dumps([f"{base}/osv/PyPI/all.zip"]),
            TRUSTYARD_VULNERABILITIES__MAX_UPLOAD_BYTES=str(UPLOAD_LIMIT),
            TRUSTYARD_SERVER__BODY_TIMEOUT=str(BODY_TIMEOUT),
        )
        with httpx.Client(base_url=server.url, auth=basic("admin", ADMIN_PASSWORD)) as admin:
            made = admin.post("/api/v1/users", json={"username": "walter", "password": PASSWORD})
            assert made.status_code == 201, made.text
        yield World(server, base, served)


def records(folder: str, count: int | None = None) -> dict[str, bytes]:
    paths = sorted((VULNDB / folder).glob("*.json"))[:count]
    return {p.name: p.read_bytes() for p in paths}


def upload(world: World, body: Any, **params: str) -> httpx.Response:
    with world.client() as admin:
        return admin.post(f"{A}/imports", content=body, params=params)


def test_upload_imports_and_any_user_sees_the_status(world: World) -> None:
    bundle = zipped(records("npm"))
    digest = hashlib.sha256(bundle).hexdigest()
    answer = upload(world, bundle, source="offline-npm", sha256=digest)
    assert answer.status_code == 200, answer.text
    report = answer.json()
    count = len(records("npm"))
    assert (report["source"], report["records"], report["added"]) == ("offline-npm", count, count)
    assert report["bundle_sha256"] == digest

    status = world.status("walter")  # not an administrator
    [source] = [s for s in status["sources"] if s["name"] == "offline-npm"]
    assert source["records"] == count
    assert source["updated_at"] is not None
    assert source["importing"] is False
    assert status["version"] >= 1
    assert status["records"] >= count
    assert not list((world.server.data_dir / "vulndb" / "uploads").iterdir()), "temp file left"


def test_bad_bundles_are_refused_and_change_nothing(world: World) -> None:
    good = zipped(records("npm", 5))
    assert upload(world, good, source="bad-npm").status_code == 200
    before = world.source("bad-npm")

    truncated = upload(world, good[:-30], source="bad-npm")
    body = assert_problem(truncated, 422)
    assert body["rule"] == "corrupt"
    assert "the upload" in str(body["detail"])
    assert "truncated or corrupt" in str(body["detail"])

    broken = dict(records("npm", 5))
    name = sorted(broken)[2]
    document = json.loads(broken[name])
    document["affected"][0]["ranges"][0]["events"] = "not a list"
    broken[name] = json.dumps(document).encode()
    invalid = upload(world, zipped(broken), source="bad-npm")
    body = assert_problem(invalid, 422)
    assert (body["rule"], body["entry"], body["record"]) == ("record", name, document["id"])
    assert body["field"] == "affected[0].ranges[0].events"

    wrong_digest = upload(world, good, source="bad-npm", sha256="0" * 64)
    assert "SHA-256" in str(assert_problem(wrong_digest, 422)["detail"])
    assert "not a zip" in str(assert_problem(upload(world, b""), 422)["detail"])

    after = world.source("bad-npm")
    assert (after["records"], after["generation"]) == (before["records"], before["generation"])
    assert after["error"].startswith("vulnerability bundle the upload, entry "), after["error"]
    assert "uploads" not in after["error"], "the status names no temporary file"


def test_uploads_over_the_limit_are_refused(world: World) -> None:
    declared = upload(world, b"x" * (UPLOAD_LIMIT + 1))
    assert f"larger than {UPLOAD_LIMIT} bytes" in str(assert_problem(declared, 413)["detail"])

    def chunked() -> Iterator[bytes]:  # no Content-Length: counted as it comes
        for _ in range(UPLOAD_LIMIT // 4096 + 2):
            yield b"y" * 4096

    streamed = upload(world, chunked())
    assert "max_upload_bytes" in str(assert_problem(streamed, 413)["detail"])
    assert not list((world.server.data_dir / "vulndb" / "uploads").iterdir())


def test_a_stalled_upload_is_refused_after_the_body_timeout(world: World) -> None:
    """The request guard times the upload's body as any other (the route has no body
    parameter: it reads the stream itself)."""
    host, port = world.server.url.removeprefix("http://").split(":")
    credentials = base64.b64encode(f"admin:{ADMIN_PASSWORD}".encode()).decode()
    head = (
        f"POST {A}/imports HTTP/1.1\r\nHost: {host}\r\nAuthorization: Basic {credentials}\r\n"
        "Content-Type: application/octet-stream\r\nContent-Length: 100000\r\n\r\n"
    )
    with socket.create_connection((host, int(port)), timeout=DEADLINE) as connection:
        connection.sendall(head.encode() + b"PK\x03\x04 only the start")
        answer = b""
        while b"\r\n\r\n" not in answer and (chunk := connection.recv(65536)):
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 408 "), answer[:200]
    assert not list((world.server.data_dir / "vulndb" / "uploads").iterdir())


def test_an_update_runs_as_one_job_at_a_time(world: World) -> None:
    entries = records("pypi", 8)
    gate = threading.Event()
    world.served.bundles["/osv/PyPI/all.zip"] = Bundle(zipped(entries), etag='"p1"', hold=gate)
    try:
        with world.client() as admin:
            first = admin.post(f"{A}/updates")
            assert first.status_code == 202, first.text
            assert first.json()["created"] is True
            job = first.json()["job_id"]
            second = admin.post(f"{A}/updates")
            assert second.status_code == 202, second.text
            assert second.json() == {"job_id": job, "created": False}
            assert world.status("walter")["update_job"] == job
    finally:
        gate.set()
    deadline = time.monotonic() + DEADLINE
    with world.client() as admin:
        while (state := admin.get(f"/api/v1/jobs/{job}").json())["state"] != "succeeded":
            assert state["state"] in ("queued", "running"), state
            assert time.monotonic() < deadline, world.server.log()
            time.sleep(0.1)
    source = world.source("osv:PyPI")
    assert source["records"] == len(entries)
    assert source["url"] == f"{world.base}/osv/PyPI/all.zip"
    assert world.status()["update_job"] is None
