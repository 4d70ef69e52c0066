"""Cross-repository mounts with real clients, counted by the server itself (GET /metrics).

skopeo pushes an image to one repository, then the same image to a second one: the second push
mounts every layer (`POST /v2/<second>/blobs/uploads/?mount=D&from=<first>` answered 201 Created)
instead of uploading it again, with accounts off and with accounts on (the Docker token flow,
`--dest-creds`). skopeo asks the token endpoint for pull on the source itself; clients that take
the scope from the challenge instead are covered in test_auth_registry.py.

The python `oras` client (oras-py) has no mount at all: before each blob it sends
`HEAD /v2/<target>/blobs/<digest>` and, on 404, uploads the blob again (POST, then a monolithic
PUT). Its test records every request it sends and pins exactly that, so a future oras-py that
learns to mount shows up here.

Each module server keeps a ledger of the upload-start POSTs its tests made, by the status they
must have had; a test waits until the server's counters equal the ledger (each worker process
adds its counts within a second), so a mount that fell back to 202 fails with the difference.
"""

from __future__ import annotations

import shutil
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import oras.provider
import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from tests.integration.clients import Clients, debug_messages, layout_blob_path, logged_requests
from tests.support.images import image_info, image_layout
from tests.support.server import TrustyardServer
from trustyard.auth.accounts import AccountService
from trustyard.db.engine import make_engine, write_tx

pytestmark = pytest.mark.integration

ADMIN_PASSWORD = "an admin password for mount tests"
PASSWORD = "correct horse battery staple"
OWNER = "olga"  # owns organization acme, where every test pushes
IMAGE = "python-app"  # several layers
SETTLE_SECONDS = 30.0  # worker processes flush their counts at least once a second
ORAS_BLOB_TYPE = "application/vnd.trustyard.test.blob"


@dataclass
class Registry:
    """A module server, its credentials (None: accounts off) and the upload-start POSTs its
    tests sent, by the status each must have got."""

    server: TrustyardServer
    credentials: tuple[str, str] | None
    sent: Counter[str] = field(default_factory=Counter)

    @property
    def host(self) -> str:
        return self.server.host

    def upload_starts(self) -> dict[str, int]:
        """The server's count of POST .../blobs/uploads/, by status."""
        answer = httpx.get(f"{self.server.url}/metrics", timeout=60)
        assert answer.status_code == 200, answer.text
        found: dict[str, int] = {}
        for family in text_string_to_metric_families(answer.text):
            for sample in family.samples:
                labels = sample.labels
                if (
                    sample.name == "trustyard_http_requests_total"
                    and labels.get("route") == "upload_start"
                    and labels.get("method") == "POST"
                ):
                    found[labels["status"]] = int(sample.value)
        return found

    def settle(self) -> dict[str, int]:
        """Wait until the server counted exactly the 201s and 202s the tests sent (a 401 that
        challenges a client before it sends credentials is no upload); fail with both."""
        expected = {status: self.sent[status] for status in ("201", "202")}
        deadline = time.monotonic() + SETTLE_SECONDS
        while True:
            found = self.upload_starts()
            if {status: found.get(status, 0) for status in expected} == expected:
                return found
            if time.monotonic() > deadline:
                raise AssertionError(f"upload-start POSTs by status: {found}, sent {expected}")
            time.sleep(0.2)


def _seed(server: TrustyardServer) -> None:
    engine = make_engine(server.database_url or f"sqlite:///{server.data_dir / 'trustyard.db'}")
    try:
        with write_tx(engine) as conn:
            accounts = AccountService()
            accounts.create_user(conn, OWNER, PASSWORD)
            accounts.create_organization(conn, "acme", OWNER)
    finally:
        engine.dispose()


@pytest.fixture(scope="module")
def accounts_off(start_server: Callable[..., TrustyardServer]) -> Registry:
    return Registry(start_server("mounts-open"), None)


@pytest.fixture(scope="module")
def accounts_on(start_server: Callable[..., TrustyardServer]) -> Registry:
    server = start_server(
        "mounts-secured", TRUSTYARD_AUTH__ENABLED="true", TRUSTYARD_ADMIN_PASSWORD=ADMIN_PASSWORD
    )
    _seed(server)
    return Registry(server, (OWNER, PASSWORD))


@pytest.fixture(params=["accounts off", "accounts on"])
def registry(request: pytest.FixtureRequest, backend: str) -> Registry:
    """Either module server, started only when a selected test needs it (`backend` makes the
    tests' ids name the database, as for every other server test)."""
    found: Registry = request.getfixturevalue(str(request.param).replace(" ", "_"))
    return found


def _unique(label: str) -> str:
    return f"acme/{label}-{uuid.uuid4().hex[:8]}"


# --- skopeo -----------------------------------------------------------------------------------


def test_skopeo_mounts_every_layer_of_a_second_push(registry: Registry, tmp_path: Path) -> None:
    image = image_info(IMAGE)["images"][0]
    layers = [layer["digest"] for layer in image["layers"]]
    assert len(layers) >= 2
    layout = image_layout(IMAGE)
    clients = Clients(tmp_path / "clients", [registry.host])
    creds = ["--dest-creds", ":".join(registry.credentials)] if registry.credentials else []
    first, second = _unique("first"), _unique("second")

    def push(repository: str) -> tuple[list[str], list[str]]:
        """The URLs of skopeo's upload-start POSTs, and its log messages."""
        debug = clients.skopeo(
            "--debug", "copy", "--dest-tls-verify=false", *creds,
            f"oci:{layout}:latest", f"docker://{registry.host}/{repository}:1",
        ).stderr  # fmt: skip
        starts = f"{registry.server.url}/v2/{repository}/blobs/uploads/"
        posts = [u for m, u in logged_requests(debug) if m == "POST" and u.startswith(starts)]
        return posts, debug_messages(debug)

    plain, _ = push(first)
    registry.sent["202"] += len(plain)
    registry.settle()

    posts, messages = push(second)
    mounts = [parse_qs(urlsplit(url).query) for url in posts if "mount=" in url]
    assert {m["mount"][0]: m["from"][0] for m in mounts} == dict.fromkeys(layers, first)
    assert messages.count("... mount OK") == len(layers)  # skopeo's word for a 201
    registry.sent["201"] += len(mounts)  # each mount Created: nothing travelled again
    registry.sent["202"] += len(posts) - len(mounts)  # the config, uploaded again
    counted = registry.settle()
    assert counted.get("201") == registry.sent["201"]

    owner = httpx.Client(base_url=registry.server.url, auth=registry.credentials, timeout=60)
    with owner:
        for layer in image["layers"]:
            head = owner.head(f"/v2/{second}/blobs/{layer['digest']}")
            assert head.status_code == 200, layer
            assert int(head.headers["content-length"]) == layer["size"]
        manifest = owner.head(
            f"/v2/{second}/manifests/1",
            headers={"Accept": "application/vnd.oci.image.manifest.v1+json"},
        )
        assert manifest.headers["docker-content-digest"] == image_info(IMAGE)["digest"]


# --- oras (python) ----------------------------------------------------------------------------


def _oras(registry: Registry) -> tuple[oras.provider.Registry, list[tuple[str, str, int]]]:
    """An oras client and the list its requests are recorded in: (method, URL, status). With
    accounts on it answers challenges with Basic credentials (its token backend keeps a
    pull-only token for pushes: oras-project/oras-py#187)."""
    backend = "basic" if registry.credentials else "token"
    client = oras.provider.Registry(hostname=registry.host, insecure=True, auth_backend=backend)
    if registry.credentials:
        client.auth.set_basic_auth(*registry.credentials)
    sent: list[tuple[str, str, int]] = []

    def record(response: requests.Response, *_: Any, **__: Any) -> None:
        sent.append((str(response.request.method), str(response.request.url), response.status_code))

    client.session.hooks["response"].append(record)
    return client, sent


def test_oras_never_mounts_it_uploads_every_blob_again(registry: Registry, tmp_path: Path) -> None:
    (layer,) = image_info("go-binary")["images"][0]["layers"]
    blob = tmp_path / "layer.tar.gz"
    shutil.copyfile(layout_blob_path(image_layout("go-binary"), layer["digest"]), blob)
    client, sent = _oras(registry)
    first, second = _unique("oras-first"), _unique("oras-second")

    for repository in (first, second):
        client.push(
            target=f"{registry.host}/{repository}:1",
            files=[f"{blob}:{ORAS_BLOB_TYPE}"],
            disable_path_validation=True,
            quiet=True,
        )
    assert not [url for _, url, _ in sent if "mount=" in url]
    base = f"http://{registry.host}/v2/{second}/"
    config = "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"  # "{}"

    def what(url: str) -> str:
        path = urlsplit(url).path.removeprefix(urlsplit(base).path)
        if path.startswith("blobs/uploads/"):
            return "new upload" if path == "blobs/uploads/" else "upload session"
        return path.replace(layer["digest"], "LAYER").replace(config, "CONFIG")

    second_push = [(m, what(u), s) for m, u, s in sent if u.startswith(base) and s != 401]
    assert second_push == [
        ("HEAD", "blobs/LAYER", 404),  # not in this repository yet: upload it all again
        ("POST", "new upload", 202),
        ("PUT", "upload session", 201),
        ("HEAD", "blobs/CONFIG", 404),
        ("POST", "new upload", 202),
        ("PUT", "upload session", 201),
        ("PUT", "manifests/1", 201),
    ]
    registry.sent["202"] += 4  # per push a plain POST per blob; no 201 from a mount
    registry.settle()
