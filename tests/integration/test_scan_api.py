"""Scanning inside the registry (issue 5), on a real server with accounts on: images pushed
with skopeo are scanned on push by the embedded worker; their bills of materials are served
as JSON, CycloneDX and SPDX; scans can be requested and repeated; the layer cache is shared
by images; components are searched across the repositories a caller may read; a hostile
layer fails its scan and nothing else."""

from __future__ import annotations

import gzip
import io
import json
import tarfile
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from tests.integration.clients import Clients
from tests.integration.oci_helpers import (
    OCI_CONFIG,
    OCI_LAYER,
    OCI_MANIFEST,
    brief,
    descriptor,
    encode,
    image_manifest,
    push_blob,
    put_manifest,
    sha256,
)
from tests.integration.webhook_helpers import subscribe
from tests.support.images import image_info, image_layout, load_truth
from tests.support.server import TrustyardServer
from tests.support.webhook_receiver import WebhookReceiver
from tests.unit.scanning.layerkit import (
    GzipZeroBomb,
    dpkg_status,
    file,
    gzip_bytes,
    many_entries_layer,
    symlink,
    tar_bytes,
)
from trustyard.auth.accounts import AccountService
from trustyard.db.engine import make_engine, read_tx, write_tx
from trustyard.db.tables import scan_layers

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("scan-api")]

ADMIN_PASSWORD = "the scanning administrator's password"
PASSWORD = "every scanning user's password"
ORG = "scanorg"
OWNER, READER, WRITER, OUTSIDER = "olga-scans", "rory-scans", "wanda-scans", "otto-scans"
PROBLEM = "application/problem+json"
CYCLONEDX = "application/vnd.cyclonedx+json"
SPDX = "application/spdx+json"
SCAN_DEADLINE = 300.0  # generous: the machine is shared; no test asserts a duration


@pytest.fixture(scope="module")
def registry(start_server: Callable[..., TrustyardServer]) -> TrustyardServer:
    server = start_server(
        "scans",
        TRUSTYARD_SCANNING__ENABLED="true",
        TRUSTYARD_AUTH__ENABLED="true",
        TRUSTYARD_ADMIN_PASSWORD=ADMIN_PASSWORD,
        TRUSTYARD_JOBS__POLL_SECONDS="0.2",
        TRUSTYARD_WEBHOOKS__ALLOWED_NETWORKS="127.0.0.1/32",
    )
    url = server.database_url or f"sqlite:///{server.data_dir / 'trustyard.db'}"
    engine = make_engine(url)
    service = AccountService()
    with write_tx(engine) as conn:
        for name in (OWNER, READER, WRITER, OUTSIDER):
            service.create_user(conn, name, PASSWORD)
        service.create_organization(conn, ORG, OWNER)
        for team, member in (("pullers", READER), ("pushers", WRITER)):
            service.create_team(conn, ORG, team)
            service.add_member(conn, ORG, team, member)
            service.set_team_organization_grant(
                conn, ORG, team, "read-only" if team == "pullers" else "read-write"
            )
    engine.dispose()
    return server


@pytest.fixture(scope="module")
def engine(registry: TrustyardServer) -> Iterator[Any]:
    url = registry.database_url or f"sqlite:///{registry.data_dir / 'trustyard.db'}"
    made = make_engine(url)
    yield made
    made.dispose()


def client_for(server: TrustyardServer, user: str | None) -> httpx.Client:
    auth = None
    if user is not None:
        auth = httpx.BasicAuth(user, ADMIN_PASSWORD if user == "admin" else PASSWORD)
    return httpx.Client(base_url=server.url, timeout=60, auth=auth)


@pytest.fixture(scope="module")
def admin(registry: TrustyardServer) -> Iterator[httpx.Client]:
    with client_for(registry, "admin") as client:
        yield client


@pytest.fixture(scope="module")
def clients(registry: TrustyardServer, tmp_path_factory: pytest.TempPathFactory) -> Clients:
    return Clients(tmp_path_factory.mktemp("scan-clients"), [registry.host])


def new_repository(prefix: str = "img") -> str:
    return f"{ORG}/{prefix}{uuid.uuid4().hex[:8]}"


def push(clients: Clients, registry: TrustyardServer, image: str, repository: str) -> str:
    """skopeo copy a shared test image as the administrator; returns its tag."""
    clients.skopeo(
        "copy",
        "--quiet",
        *(["--all"] if image == "multi-arch" else []),
        "--dest-tls-verify=false",
        "--dest-creds",
        f"admin:{ADMIN_PASSWORD}",
        f"oci:{image_layout(image)}:latest",
        f"docker://{registry.host}/{repository}:v1",
    )
    return "v1"


def scan_path(repository: str, reference: str, tail: str = "scan") -> str:
    return f"/api/v1/repositories/{repository}/manifests/{reference}/{tail}"


def wait_for_scan(
    client: httpx.Client, repository: str, reference: str, not_id: int | None = None
) -> dict[str, Any]:
    """The manifest's latest scan once it finished (and is not scan `not_id`)."""
    deadline = time.monotonic() + SCAN_DEADLINE
    while True:
        answer = client.get(scan_path(repository, reference))
        if answer.status_code == 200:
            body: dict[str, Any] = answer.json()
            if body["id"] != not_id and body["status"] in ("succeeded", "failed"):
                return body
        else:
            assert answer.status_code == 404, brief(answer)  # not scanned (yet)
        assert time.monotonic() < deadline, f"no finished scan of {repository}: {brief(answer)}"
        time.sleep(0.3)


def assert_problem(answer: httpx.Response, status: int) -> str:
    assert answer.status_code == status, brief(answer)
    assert answer.headers["content-type"] == PROBLEM
    body = answer.json()
    assert body["status"] == status
    detail: str = body["detail"]
    return detail


def truth(image: str, platform: str | None = None) -> set[tuple[str, str, str]]:
    return set(load_truth(image, platform))


def found(image_bom: dict[str, Any]) -> set[tuple[str, str, str]]:
    return {(c["ecosystem"], c["name"], c["version"]) for c in image_bom["components"]}


def layer_digests(image: str) -> list[list[str]]:
    return [[layer["digest"] for layer in item["layers"]] for item in image_info(image)["images"]]


def layer_row(engine: Any, digest: str) -> Any:
    with read_tx(engine) as conn:
        return conn.execute(select(scan_layers).where(scan_layers.c.digest == digest)).first()


# --- scan on push and the bill of materials ------------------------------------------------------
def test_a_pushed_image_is_scanned_and_its_bom_is_the_ground_truth(
    registry: TrustyardServer, admin: httpx.Client, clients: Clients
) -> None:
    repository = new_repository()
    tag = push(clients, registry, "python-app", repository)
    info = image_info("python-app")
    scan = wait_for_scan(admin, repository, tag)
    assert scan["status"] == "succeeded", scan
    assert (scan["repository"], scan["digest"]) == (repository, info["digest"])
    assert (scan["trigger"], scan["requested_by"], scan["force"]) == ("push", "admin", False)
    sizes = sum(layer["size"] for layer in info["images"][0]["layers"])
    assert scan["progress"] == {
        "bytes_done": sizes,
        "bytes_total": sizes,
        "layers_done": 2,
        "layers_total": 2,
    }
    assert scan["error"] is None
    # By tag and by digest: the same scan.
    assert admin.get(scan_path(repository, info["digest"])).json() == scan

    answer = admin.get(scan_path(repository, tag, "bom"))
    assert answer.status_code == 200, brief(answer)
    assert answer.headers["content-type"] == "application/json"
    bom = answer.json()
    assert (bom["repository"], bom["digest"], bom["scan"]) == (repository, info["digest"], scan)
    [image] = bom["images"]
    assert image["platform"] == "linux/amd64"
    assert image["manifest_digest"] == info["digest"]
    assert [layer["digest"] for layer in image["layers"]] == layer_digests("python-app")[0]
    assert found(image) == truth("python-app")
    base, app = layer_digests("python-app")[0]
    for component in image["components"]:
        wanted = base if component["ecosystem"] == "deb" else app
        assert component["layer"] == wanted, component
        assert component["purl"].startswith(f"pkg:{component['ecosystem']}/")
    added = {(c["ecosystem"], c["name"]) for c in image["layers"][1]["added"]}
    assert added == {(e, n) for e, n, _ in truth("python-app") if e == "pypi"}
    # The whole BOM is streamed as stored; one platform's is rendered through the model: the same.
    one = admin.get(scan_path(repository, tag, "bom"), params={"platform": "linux/amd64"})
    assert one.json() == bom


def test_the_bom_in_cyclonedx_and_spdx(
    registry: TrustyardServer, admin: httpx.Client, clients: Clients
) -> None:
    repository = new_repository()
    tag = push(clients, registry, "go-binary", repository)
    assert wait_for_scan(admin, repository, tag)["status"] == "succeeded"
    names = {name for _, name, _ in truth("go-binary")}

    cyclonedx = admin.get(scan_path(repository, tag, "bom"), params={"format": "cyclonedx-json"})
    assert cyclonedx.status_code == 200, brief(cyclonedx)
    assert cyclonedx.headers["content-type"] == CYCLONEDX
    document = cyclonedx.json()
    assert (document["bomFormat"], document["specVersion"]) == ("CycloneDX", "1.6")
    listed = {(c["name"], c.get("version")) for c in document.get("components", [])}
    assert {(n, v) for _, n, v in truth("go-binary")} <= listed

    spdx = admin.get(scan_path(repository, tag, "bom"), params={"format": "spdx-json"})
    assert spdx.status_code == 200, brief(spdx)
    assert spdx.headers["content-type"] == SPDX
    document = spdx.json()
    assert document["spdxVersion"] == "SPDX-2.3"
    assert names <= {package["name"] for package in document["packages"]}


def test_every_platform_of_an_index_is_scanned(
    registry: TrustyardServer, admin: httpx.Client, clients: Clients
) -> None:
    repository = new_repository("multi")
    tag = push(clients, registry, "multi-arch", repository)
    info = image_info("multi-arch")
    scan = wait_for_scan(admin, repository, tag)
    assert scan["status"] == "succeeded", scan
    assert scan["digest"] == info["digest"]
    bom = admin.get(scan_path(repository, tag, "bom")).json()
    platforms = []
    for image in info["images"]:
        spec = image["platform"]
        plain = f"{spec['os']}/{spec['architecture']}"  # as the ground truth names it
        platform = f"{plain}/{spec['variant']}" if spec.get("variant") else plain
        platforms.append(platform)
        [served] = [b for b in bom["images"] if b["platform"] == platform]
        assert served["manifest_digest"] == image["manifest"]
        assert found(served) == truth("multi-arch", plain)
    assert sorted(image["platform"] for image in bom["images"]) == sorted(platforms)
    for platform in platforms:
        one = admin.get(scan_path(repository, tag, "bom"), params={"platform": platform})
        assert [b["platform"] for b in one.json()["images"]] == [platform]
    missing = admin.get(scan_path(repository, tag, "bom"), params={"platform": "linux/mips64"})
    assert "linux/mips64" in assert_problem(missing, 404)


def test_a_layer_bom_is_what_the_layer_holds_on_its_own(
    registry: TrustyardServer, admin: httpx.Client, clients: Clients
) -> None:
    repository = new_repository()
    tag = push(clients, registry, "python-app", repository)
    assert wait_for_scan(admin, repository, tag)["status"] == "succeeded"
    base = layer_digests("python-app")[0][0]
    answer = admin.get(f"/api/v1/repositories/{repository}/layers/{base}/bom")
    assert answer.status_code == 200, brief(answer)
    layer = answer.json()
    assert layer["digest"] == base
    debs = {(e, n, v) for e, n, v in truth("python-app") if e == "deb"}
    held = {(c["ecosystem"], c["name"], c["version"]) for c in layer["components"]}
    # On its own, the layer also shows what the image's squashed view folds into the OS
    # packages that own it (busybox's fingerprint in busybox-static's binary).
    assert {item for item in held if item[0] == "deb"} == debs
    assert layer["files"] > 0
    # A layer of another repository is not this one's.
    other = new_repository()
    push(clients, registry, "go-binary", other)
    [go_layer] = layer_digests("go-binary")[0]
    absent = admin.get(f"/api/v1/repositories/{repository}/layers/{go_layer}/bom")
    assert_problem(absent, 404)


# --- triggers ------------------------------------------------------------------------------------
def test_without_scan_on_push_nothing_is_scanned_until_asked(
    registry: TrustyardServer, admin: httpx.Client, clients: Clients
) -> None:
    repository = new_repository("quiet")
    created = admin.post("/api/v1/repositories", json={"name": repository})
    assert created.status_code == 201, brief(created)
    changed = admin.patch(f"/api/v1/repositories/{repository}", json={"scan_on_push": False})
    assert changed.status_code == 200, brief(changed)
    assert changed.json()["scan_on_push"] is False
    tag = push(clients, registry, "go-binary", repository)
    # The push committed without a scan: none exists (there is nothing to wait for).
    assert "has not been scanned" in assert_problem(admin.get(scan_path(repository, tag)), 404)
    never = admin.get(scan_path(repository, tag, "bom"))
    assert "has not been scanned" in assert_problem(never, 404)
    tags_path = f"/api/v1/repositories/{repository}/tags"
    listed = admin.get(tags_path).json()["items"]
    assert [(item["name"], item["scan_status"]) for item in listed] == [(tag, None)]

    started = admin.post(scan_path(repository, tag))
    assert started.status_code == 202, brief(started)
    body = started.json()
    assert (body["status"], body["trigger"], body["requested_by"]) == ("queued", "request", "admin")
    scan = wait_for_scan(admin, repository, tag)
    assert (scan["id"], scan["status"]) == (body["id"], "succeeded")
    bom = admin.get(scan_path(repository, tag, "bom")).json()
    assert found(bom["images"][0]) == truth("go-binary")
    listed = admin.get(tags_path).json()["items"]
    assert [(item["name"], item["scan_status"]) for item in listed] == [(tag, "succeeded")]


def test_a_rescan_uses_the_layer_cache_and_force_reads_the_layers_again(
    registry: TrustyardServer, admin: httpx.Client, clients: Clients, engine: Any
) -> None:
    repository = new_repository()
    tag = push(clients, registry, "go-binary", repository)
    first = wait_for_scan(admin, repository, tag)
    [layer] = layer_digests("go-binary")[0]
    cached = layer_row(engine, layer)
    assert cached is not None
    assert cached.status == "succeeded"

    again = admin.post(scan_path(repository, tag))
    assert again.status_code == 202, brief(again)
    assert again.json()["trigger"] == "rescan"
    rescan = wait_for_scan(admin, repository, tag, not_id=first["id"])
    assert rescan["status"] == "succeeded"
    assert layer_row(engine, layer).scanned_at == cached.scanned_at  # not read again

    forced = admin.post(scan_path(repository, tag), params={"force": "true"})
    assert forced.status_code == 202, brief(forced)
    assert forced.json()["force"] is True
    done = wait_for_scan(admin, repository, tag, not_id=rescan["id"])
    assert done["status"] == "succeeded"
    assert layer_row(engine, layer).scanned_at > cached.scanned_at
    bom = admin.get(scan_path(repository, tag, "bom")).json()
    assert bom["scan"]["id"] == done["id"]
    assert found(bom["images"][0]) == truth("go-binary")


def test_two_images_sharing_a_base_layer_scan_it_once(
    registry: TrustyardServer, admin: httpx.Client, clients: Clients, engine: Any
) -> None:
    python_repo, node_repo = new_repository("py"), new_repository("node")
    assert wait_for_scan(admin, python_repo, push(clients, registry, "python-app", python_repo))
    base, _ = layer_digests("python-app")[0]
    assert layer_digests("node-app")[0][0] == base
    before = layer_row(engine, base)
    with read_tx(engine) as conn:
        rows = conn.scalar(select(func.count()).select_from(scan_layers))
    node = wait_for_scan(admin, node_repo, push(clients, registry, "node-app", node_repo))
    assert node["status"] == "succeeded", node
    assert layer_row(engine, base).scanned_at == before.scanned_at
    with read_tx(engine) as conn:  # at most node-app's own layer is new
        assert conn.scalar(select(func.count()).select_from(scan_layers)) <= rows + 1
    bom = admin.get(scan_path(node_repo, "v1", "bom")).json()
    assert found(bom["images"][0]) == truth("node-app")


# --- who may do what -----------------------------------------------------------------------------
def test_readers_view_scans_writers_start_them_and_others_see_nothing(
    registry: TrustyardServer, admin: httpx.Client, clients: Clients
) -> None:
    repository = new_repository("private")
    tag = push(clients, registry, "go-binary", repository)
    scan = wait_for_scan(admin, repository, tag)
    with (
        client_for(registry, READER) as reader,
        client_for(registry, WRITER) as writer,
        client_for(registry, OUTSIDER) as outsider,
        client_for(registry, None) as anonymous,
    ):
        assert reader.get(scan_path(repository, tag)).json() == scan
        assert reader.get(scan_path(repository, tag, "bom")).status_code == 200
        refused = reader.post(scan_path(repository, tag))
        assert "read-write" in assert_problem(refused, 403)

        started = writer.post(scan_path(repository, tag))
        assert started.status_code == 202, brief(started)
        assert started.json()["requested_by"] == WRITER

        ghost = f"{ORG}/nothing-here"
        for caller in (outsider, anonymous):
            for path in (scan_path(repository, tag), scan_path(repository, tag, "bom")):
                hidden = caller.get(path)
                missing = caller.get(path.replace(repository, ghost))
                assert_problem(hidden, 404)
                assert hidden.json()["detail"] == missing.json()["detail"].replace(
                    ghost, repository
                )
        assert_problem(outsider.post(scan_path(repository, tag)), 404)
        assert_problem(anonymous.post(scan_path(repository, tag)), 401)


def test_the_component_search_hides_private_repositories(
    registry: TrustyardServer, admin: httpx.Client, clients: Clients
) -> None:
    private, public = new_repository("secret"), new_repository("open")
    for repository in (private, public):
        tag = push(clients, registry, "python-app", repository)
        assert wait_for_scan(admin, repository, tag)["status"] == "succeeded"
    made_public = admin.patch(f"/api/v1/repositories/{public}", json={"visibility": "public"})
    assert made_public.status_code == 200, brief(made_public)
    _, app_layer = layer_digests("python-app")[0]
    query = {"name": "requests", "version": "2.19.1", "limit": "500"}

    def matches(client: httpx.Client) -> dict[str, dict[str, Any]]:
        answer = client.get("/api/v1/components", params=query)
        assert answer.status_code == 200, brief(answer)
        return {
            item["repository"]: item
            for item in answer.json()["items"]
            if item["repository"] in (private, public)
        }

    everything = matches(admin)
    assert set(everything) == {private, public}
    item = everything[private]
    assert (item["digest"], item["tags"], item["platform"]) == (
        image_info("python-app")["digest"],
        ["v1"],
        "linux/amd64",
    )
    assert (item["ecosystem"], item["name"], item["version"]) == ("pypi", "requests", "2.19.1")
    assert item["purl"] == "pkg:pypi/requests@2.19.1"
    assert item["layer"] == app_layer
    assert item["location"]
    with client_for(registry, OUTSIDER) as outsider, client_for(registry, None) as anonymous:
        assert set(matches(outsider)) == {public}
        assert set(matches(anonymous)) == {public}
    with client_for(registry, READER) as reader:
        assert set(matches(reader)) == {private, public}
    by_purl = admin.get("/api/v1/components", params={"purl": "pkg:pypi/requests@2.19.1"})
    assert {i["repository"] for i in by_purl.json()["items"]} >= {private, public}
    nothing = admin.get("/api/v1/components", params={"version": "2.19.1"})
    assert "name or a package URL" in assert_problem(nothing, 422)


# --- hostile layers and events -------------------------------------------------------------------
def hostile_layer() -> bytes:
    """A gzip'ed tar whose second entry climbs out of the layer."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for name, data in (("etc/ok.txt", b"fine\n"), ("../../etc/evil", b"escaped\n")):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return gzip.compress(buffer.getvalue(), mtime=0)


def test_a_hostile_layer_fails_its_scan_and_the_registry_keeps_serving(
    registry: TrustyardServer, admin: httpx.Client, receiver: WebhookReceiver
) -> None:
    repository = new_repository("hostile")
    created = admin.post("/api/v1/repositories", json={"name": repository})
    assert created.status_code == 201, brief(created)
    hook = subscribe(
        admin, receiver, "/scans", ["SCAN_COMPLETED", "SCAN_FAILED"], repository=repository
    )
    layer = hostile_layer()
    config = encode(
        {
            "architecture": "amd64",
            "os": "linux",
            "rootfs": {"type": "layers", "diff_ids": [sha256(gzip.decompress(layer))]},
        }
    )
    push_blob(admin, repository, config)
    push_blob(admin, repository, layer)
    manifest = encode(
        image_manifest(descriptor(OCI_CONFIG, config), [descriptor(OCI_LAYER, layer)])
    )
    assert put_manifest(admin, repository, "evil", manifest).status_code == 201

    scan = wait_for_scan(admin, repository, "evil")
    assert scan["status"] == "failed", scan
    assert ".." in (scan["error"] or ""), scan
    detail = assert_problem(admin.get(scan_path(repository, "evil", "bom")), 409)
    assert "failed" in detail
    assert scan["error"] in detail

    # The registry goes on serving, this very image included.
    assert admin.get("/v2/").status_code == 200
    pulled = admin.get(f"/v2/{repository}/manifests/evil", headers={"Accept": OCI_MANIFEST})
    assert pulled.status_code == 200
    assert pulled.content == manifest
    blob = admin.get(f"/v2/{repository}/blobs/{sha256(layer)}")
    assert (blob.status_code, blob.content) == (200, layer)

    # The failure was an event, delivered to the repository's subscription.
    got = receiver.wait_for(lambda found: len(found) >= 1, path="/scans")
    body = got[0].json()
    assert body["type"] == "SCAN_FAILED"
    assert body["contents"]["repository"] == repository
    assert body["contents"]["digest"] == sha256(manifest)
    assert body["contents"]["error"] == scan["error"]
    assert got[0].signed_with(hook["secret"])


def _bomb() -> bytes:
    """1 GiB of zeros in about 1 MiB of gzip: past the ratio floor at over 1000:1."""
    return GzipZeroBomb(1 << 30).read()


HOSTILE: dict[str, tuple[Callable[[], bytes], str]] = {
    "absolute-path": (
        lambda: gzip_bytes(tar_bytes([file("etc/ok", b"ok"), file("/etc/passwd", b"x")])),
        "escapes the layer",
    ),
    "symlink-loop": (
        lambda: gzip_bytes(tar_bytes([symlink("a", "b"), symlink("b", "a")])),
        "symlink loop: a -> b -> a",
    ),
    "decompression-bomb": (_bomb, "compression ratio is over 1000:1"),
    "million-entries": (
        lambda: many_entries_layer(1_000_000).read_bytes(),
        "more than 500000 entries",
    ),
    # issue 9: 300,000 packages in a 1 MB layer made a 1.1 GB scan and a 222 MB BOM
    "huge-dpkg-status": (
        lambda: gzip_bytes(tar_bytes([file("var/lib/dpkg/status", dpkg_status(300_000))])),
        "var/lib/dpkg/status is 25277780 bytes, more than 16777216 (the max_metadata_bytes limit)",
    ),
    "too-many-packages": (
        lambda: gzip_bytes(tar_bytes([file("var/lib/dpkg/status", dpkg_status(50_001))])),
        "the layer has more than 50000 components (the max_layer_components limit)",
    ),
}


@pytest.mark.parametrize("kind", sorted(HOSTILE))
def test_each_kind_of_hostile_layer_fails_its_scan_and_the_registry_keeps_serving(
    registry: TrustyardServer, admin: httpx.Client, kind: str
) -> None:
    make, reason = HOSTILE[kind]
    layer = make()
    repository = new_repository(kind)
    assert admin.post("/api/v1/repositories", json={"name": repository}).status_code == 201
    config = encode(
        {
            "architecture": "amd64",
            "os": "linux",
            "rootfs": {"type": "layers", "diff_ids": [sha256(layer)]},  # not checked
        }
    )
    push_blob(admin, repository, config)
    push_blob(admin, repository, layer)
    manifest = encode(
        image_manifest(descriptor(OCI_CONFIG, config), [descriptor(OCI_LAYER, layer)])
    )
    assert put_manifest(admin, repository, kind, manifest).status_code == 201

    scan = wait_for_scan(admin, repository, kind)
    assert scan["status"] == "failed", scan
    assert reason in (scan["error"] or ""), scan
    assert reason in assert_problem(admin.get(scan_path(repository, kind, "bom")), 409)
    assert admin.get("/v2/").status_code == 200
    blob = admin.get(f"/v2/{repository}/blobs/{sha256(layer)}")
    assert (blob.status_code, blob.content) == (200, layer)


def test_a_finished_scan_is_an_event(
    registry: TrustyardServer,
    admin: httpx.Client,
    clients: Clients,
    receiver: WebhookReceiver,
) -> None:
    repository = new_repository("events")
    assert admin.post("/api/v1/repositories", json={"name": repository}).status_code == 201
    subscribe(admin, receiver, "/done", ["SCAN_COMPLETED"], repository=repository)
    tag = push(clients, registry, "go-binary", repository)
    assert wait_for_scan(admin, repository, tag)["status"] == "succeeded"
    got = receiver.wait_for(lambda found: len(found) >= 1, path="/done")
    contents = got[0].json()["contents"]
    assert got[0].json()["type"] == "SCAN_COMPLETED"
    assert (contents["repository"], contents["digest"]) == (
        repository,
        image_info("go-binary")["digest"],
    )
    assert contents["platforms"] == ["linux/amd64"]
    assert contents["components"] == len(truth("go-binary"))


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    with WebhookReceiver() as running:
        yield running


def test_artifacts_are_not_scanned(registry: TrustyardServer, admin: httpx.Client) -> None:
    repository = new_repository("artifacts")
    payload = json.dumps({"spdxVersion": "SPDX-2.3"}).encode()
    config = b"{}"
    push_blob(admin, repository, config)
    push_blob(admin, repository, payload)
    document = image_manifest(
        descriptor("application/vnd.oci.empty.v1+json", config),
        [descriptor("application/spdx+json", payload)],
        artifact_type="application/spdx+json",
    )
    assert put_manifest(admin, repository, "sbom", encode(document)).status_code == 201
    assert_problem(admin.get(scan_path(repository, "sbom")), 404)
    refused = admin.post(scan_path(repository, "sbom"))
    assert "not a container image" in assert_problem(refused, 409)
    assert_problem(admin.post(scan_path(repository, "no-such-tag")), 404)


def test_a_repository_may_attach_each_sbom_to_its_image(
    registry: TrustyardServer, admin: httpx.Client, clients: Clients
) -> None:
    repository = new_repository("sbom")
    assert admin.post("/api/v1/repositories", json={"name": repository}).status_code == 201
    changed = admin.patch(f"/api/v1/repositories/{repository}", json={"attach_sbom": True})
    assert changed.status_code == 200, brief(changed)
    assert changed.json()["attach_sbom"] is True
    tag = push(clients, registry, "go-binary", repository)
    scan = wait_for_scan(admin, repository, tag)
    assert scan["status"] == "succeeded", scan
    digest = image_info("go-binary")["digest"]

    listed = admin.get(f"/v2/{repository}/referrers/{digest}", params={"artifactType": CYCLONEDX})
    assert listed.status_code == 200, brief(listed)
    [referrer] = listed.json()["manifests"]
    assert referrer["artifactType"] == CYCLONEDX
    assert referrer["annotations"] == {"dev.trustyard.scan.id": str(scan["id"])}
    manifest = admin.get(
        f"/v2/{repository}/manifests/{referrer['digest']}", headers={"Accept": OCI_MANIFEST}
    )
    assert manifest.status_code == 200, brief(manifest)
    document = manifest.json()
    assert document["subject"]["digest"] == digest
    [layer] = document["layers"]
    assert layer["mediaType"] == CYCLONEDX
    sbom = admin.get(f"/v2/{repository}/blobs/{layer['digest']}")
    assert sbom.status_code == 200
    assert sha256(sbom.content) == layer["digest"]
    body = sbom.json()
    assert (body["bomFormat"], body["specVersion"]) == ("CycloneDX", "1.6")
    listed_names = {(c["name"], c.get("version")) for c in body.get("components", [])}
    assert {(n, v) for _, n, v in truth("go-binary")} <= listed_names
    # The SBOM artifact is not an image: it is not scanned in turn.
    assert_problem(admin.get(scan_path(repository, referrer["digest"])), 404)
    # Without the setting (the default), no SBOM is attached.
    plain = new_repository("plain")
    assert wait_for_scan(admin, plain, push(clients, registry, "go-binary", plain))
    none = admin.get(f"/v2/{plain}/referrers/{digest}").json()["manifests"]
    assert none == []
