"""Re-matching as a user sees it (issue 11): a real server scans and matches a pushed image
against an imported bundle; `trustyard vulndb import` of a newer bundle, run beside the
server, re-matches the stored image without its layers (their files are deleted first), and
a webhook receiver on loopback gets VULNERABILITY_FOUND for exactly the new advisory, then
SCANNER_UPDATE_COMPLETED."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.integration.oci_helpers import (
    OCI_CONFIG,
    OCI_LAYER,
    brief,
    descriptor,
    encode,
    image_manifest,
    push_blob,
    put_manifest,
    sha256,
)
from tests.integration.webhook_helpers import ADMIN_PASSWORD, FAST, eventually, subscribe, unique
from tests.support.server import TrustyardServer
from tests.support.webhook_receiver import WebhookReceiver
from tests.support.workers import trustyard
from tests.unit.scanning.test_scan_job import layer_bytes
from tests.unit.vulnerabilities.fixture_db import VULNDB
from trustyard.content.stores import ContentStore
from trustyard.db.engine import make_engine, read_tx
from trustyard.scanning.stores import ScanStore
from trustyard.vulnerabilities.images import ImageStore

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("vuln-rematch")]

NEW = "PYSEC-2023-212"  # the advisory only the newer bundle has
SITE = "usr/local/lib/python3.11/site-packages"


@pytest.fixture(scope="module")
def server(start_server: Callable[..., TrustyardServer]) -> TrustyardServer:
    return start_server("vulns", TRUSTYARD_SCANNING__ENABLED="true", **FAST)


@pytest.fixture(scope="module")
def admin(server: TrustyardServer) -> Iterator[httpx.Client]:
    auth = httpx.BasicAuth("admin", ADMIN_PASSWORD)
    with httpx.Client(base_url=server.url, timeout=60, auth=auth) as client:
        yield client


@pytest.fixture(scope="module")
def receiver() -> Iterator[WebhookReceiver]:
    with WebhookReceiver() as running:
        yield running


@pytest.fixture(scope="module")
def bundles(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """Folders of the fixture's records naming urllib3, the older one without NEW."""
    root = tmp_path_factory.mktemp("vuln-bundles")
    older, newer = root / "older" / "pypi", root / "newer" / "pypi"
    older.mkdir(parents=True)
    newer.mkdir(parents=True)
    for path in sorted((VULNDB / "pypi").glob("*.json")):
        record = json.loads(path.read_text())
        if any(a.get("package", {}).get("name") == "urllib3" for a in record["affected"]):
            shutil.copy(path, newer)
            if record["id"] != NEW:
                shutil.copy(path, older)
    return older, newer


def vulndb_import(server: TrustyardServer, bundle: Path) -> None:
    done = trustyard(
        server.data_dir, server.database_url, "vulndb", "import", str(bundle), "--source", "pypi"
    )
    assert done.returncode == 0, done.stderr


def push_python_image(client: httpx.Client, repository: str) -> tuple[str, list[str]]:
    """An image with urllib3 1.24.1, tagged v1; its digest and its blobs' digests."""
    metadata = b"Metadata-Version: 2.1\nName: urllib3\nVersion: 1.24.1\n"
    layer = layer_bytes({f"{SITE}/urllib3-1.24.1.dist-info/METADATA": metadata})
    config = encode(
        {"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": []}}
    )
    push_blob(client, repository, config)
    push_blob(client, repository, layer)
    document = image_manifest(descriptor(OCI_CONFIG, config), [descriptor(OCI_LAYER, layer)])
    answer = put_manifest(client, repository, "v1", encode(document))
    assert answer.status_code == 201, brief(answer)
    return sha256(encode(document)), [sha256(config), sha256(layer)]


def findings(server: TrustyardServer, repository: str, digest: str) -> Any:
    url = server.database_url or f"sqlite:///{server.data_dir / 'trustyard.db'}"
    engine = make_engine(url)
    try:
        with read_tx(engine) as conn:
            repository_id = ContentStore().repository_id(conn, repository)
            if repository_id is None:
                return None
            return ImageStore(ScanStore()).image_vulnerabilities(
                conn, repository_id, repository, digest
            )
    finally:
        engine.dispose()


def test_an_import_of_a_newer_bundle_announces_the_new_advisory(
    server: TrustyardServer,
    admin: httpx.Client,
    receiver: WebhookReceiver,
    bundles: tuple[Path, Path],
) -> None:
    older, newer = bundles
    vulndb_import(server, older)
    repository = f"{unique('vulns')}/app"
    path = f"/{repository}"  # the receiver serves both backends' servers
    digest, blobs = push_python_image(admin, repository)

    def matched() -> Any:
        image = findings(server, repository, digest)
        return image if image is not None and image.status == "matched" else None

    image = eventually(matched, timeout=300, what="the pushed image scanned and matched")
    before = {f.vuln_id for f in image.findings}
    assert before
    assert NEW not in before
    subscribe(
        admin,
        receiver,
        path,
        ["VULNERABILITY_FOUND", "VULNERABILITY_RESOLVED", "SCANNER_UPDATE_COMPLETED"],
        registry=True,
    )
    for blob in blobs:  # re-matching must not need a layer (nor the config)
        found = list((server.data_dir / "storage").rglob(blob.removeprefix("sha256:")))
        assert found, f"no file of {blob} under the storage folder"
        for each in found:
            each.unlink()

    vulndb_import(server, newer)
    got = receiver.wait_for(
        lambda requests: any(r.json()["type"] == "SCANNER_UPDATE_COMPLETED" for r in requests),
        timeout=120,
        path=path,
    )
    types = [r.json()["type"] for r in got]
    assert types == ["VULNERABILITY_FOUND", "SCANNER_UPDATE_COMPLETED"], types
    contents = got[0].json()["contents"]
    assert (contents["repository"], contents["digest"], contents["tags"]) == (
        repository,
        digest,
        ["v1"],
    )
    assert [v["id"] for v in contents["vulnerabilities"]] == [NEW]
    assert contents["vulnerabilities"][0]["component"]["name"] == "urllib3"
    update = got[1].json()["contents"]
    assert (update["images"], update["found"], update["resolved"]) == (1, 1, 0)
    after = findings(server, repository, digest)
    assert {f.vuln_id for f in after.findings} == before | {NEW}
    assert after.database_version == update["databaseVersion"]
