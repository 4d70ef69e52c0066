"""Crash safety: SIGKILL the registry mid-write, restart it, and check what clients rely on.

What must hold after any crash:
- everything the registry acknowledged (201, 202 + Range) is still there, byte for byte;
- nothing is ever served with bytes that do not hash to its digest;
- an upload resumes from its last acknowledged byte, never from a half-received chunk;
- `trustyard fsck` calls the store clean: crash leftovers are garbage (warnings), not problems.

The tests watch the upload's file in the data folder (filesystem driver layout:
`storage/uploads/<id>`, `storage/blobs/<algorithm>/<xx>/<hex>`) only to know when a chunk is
really in flight on the server, or to plant the exact leftovers a crash can produce.
"""

from __future__ import annotations

import hashlib
import json
import random
import socket
import threading
import time
from collections.abc import Callable, Iterator

import httpx
import pytest

from tests.support.ports import LOOPBACK
from tests.support.server import TrustyardServer

pytestmark = pytest.mark.integration

MiB = 1024 * 1024
CHUNK = 8 * MiB
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"


def seeded(seed: str, size: int) -> bytes:
    return random.Random(seed).randbytes(size)


def sha256(data: bytes) -> str:
    return f"sha256:{hashlib.sha256(data).hexdigest()}"


def upload_id_of(location: str) -> str:
    return location.rstrip("/").rsplit("/", 1)[1].split("?", 1)[0]


@pytest.fixture
def http(fresh_server: TrustyardServer) -> Iterator[httpx.Client]:
    """A client that follows the server across restarts (the port changes on each start)."""
    with httpx.Client(timeout=60) as client:
        yield client


def url(server: TrustyardServer, path: str) -> str:
    return f"{server.url}{path}"


def start_session(http: httpx.Client, server: TrustyardServer, repo: str) -> str:
    response = http.post(url(server, f"/v2/{repo}/blobs/uploads/"))
    assert response.status_code == 202, response.text
    location = response.headers["location"]
    assert location.startswith("/v2/"), location
    return location


def patch_chunk(
    http: httpx.Client, server: TrustyardServer, location: str, data: bytes, start: int
) -> str:
    response = http.patch(
        url(server, location),
        content=data,
        headers={
            "content-type": "application/octet-stream",
            "content-range": f"{start}-{start + len(data) - 1}",
        },
    )
    assert response.status_code == 202, response.text
    assert response.headers["range"] == f"0-{start + len(data) - 1}"
    return response.headers["location"]


def finish(http: httpx.Client, server: TrustyardServer, location: str, digest: str) -> None:
    response = http.put(url(server, location), params={"digest": digest})
    assert response.status_code == 201, response.text
    assert response.headers["docker-content-digest"] == digest


def push_blob(http: httpx.Client, server: TrustyardServer, repo: str, data: bytes) -> str:
    digest = sha256(data)
    response = http.post(
        url(server, f"/v2/{repo}/blobs/uploads/"),
        params={"digest": digest},
        content=data,
        headers={"content-type": "application/octet-stream"},
    )
    assert response.status_code == 201, response.text
    return digest


def assert_blob(http: httpx.Client, server: TrustyardServer, repo: str, data: bytes) -> None:
    digest = sha256(data)
    head = http.head(url(server, f"/v2/{repo}/blobs/{digest}"))
    assert head.status_code == 200
    assert head.headers["content-length"] == str(len(data))
    assert head.headers["docker-content-digest"] == digest
    got = http.get(url(server, f"/v2/{repo}/blobs/{digest}"))
    assert got.status_code == 200
    assert got.content == data


def assert_blob_unknown(
    http: httpx.Client, server: TrustyardServer, repo: str, digest: str
) -> None:
    assert http.head(url(server, f"/v2/{repo}/blobs/{digest}")).status_code == 404
    got = http.get(url(server, f"/v2/{repo}/blobs/{digest}"))
    assert got.status_code == 404
    assert got.json()["errors"][0]["code"] == "BLOB_UNKNOWN"


def assert_fsck_clean(server: TrustyardServer) -> str:
    result = server.cli("fsck", check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    summary = result.stdout.strip().splitlines()[-1]
    assert summary.endswith(": clean") or ": clean (" in summary, result.stdout
    assert "PROBLEM" not in result.stdout, result.stdout
    return result.stdout


def wait_for(condition: Callable[[], bool], what: str, timeout: float = 30) -> None:
    """Poll a condition the test needs before it acts (a sync point, not a speed check)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"gave up waiting for {what}")
        time.sleep(0.02)


def send_partial_patch(
    server: TrustyardServer, location: str, chunk: bytes, start: int, sent: int
) -> socket.socket:
    """Open a PATCH declaring the whole chunk but send only its first `sent` bytes."""
    sock = socket.create_connection((LOOPBACK, server.port), timeout=30)
    head = (
        f"PATCH {location} HTTP/1.1\r\n"
        f"Host: {server.host}\r\n"
        "Content-Type: application/octet-stream\r\n"
        f"Content-Length: {len(chunk)}\r\n"
        f"Content-Range: {start}-{start + len(chunk) - 1}\r\n"
        "\r\n"
    )
    sock.sendall(head.encode() + chunk[:sent])
    return sock


# --- 1. SIGKILL while a large chunk is in flight ---------------------------------------------


@pytest.mark.parametrize("recovery", ["resume", "start-over"])
def test_kill_during_chunk_upload_resumes_from_last_acknowledged_byte(
    fresh_server: TrustyardServer, http: httpx.Client, repo: str, recovery: str
) -> None:
    server = fresh_server
    blob = seeded("crash-chunked", 4 * CHUNK + 12345)
    digest = sha256(blob)
    chunks = [blob[i : i + CHUNK] for i in range(0, len(blob), CHUNK)]
    acknowledged = 2 * CHUNK
    location = start_session(http, server, repo)
    upload_id = upload_id_of(location)
    for index in range(2):
        location = patch_chunk(http, server, location, chunks[index], index * CHUNK)

    upload_file = server.data_dir / "storage" / "uploads" / upload_id
    in_flight = 3 * MiB
    sock = send_partial_patch(server, location, chunks[2], acknowledged, in_flight)
    try:
        wait_for(
            lambda: upload_file.stat().st_size >= acknowledged + in_flight,
            "the half chunk to reach the server's upload file",
        )
        server.kill()
    finally:
        sock.close()
    assert upload_file.stat().st_size == acknowledged + in_flight  # the crash left it there
    server.start()

    status = http.get(url(server, location))
    assert status.status_code == 204
    assert status.headers["range"] == f"0-{acknowledged - 1}"
    assert status.headers["docker-upload-uuid"] == upload_id
    assert_blob_unknown(http, server, repo, digest)

    # A chunk that skips what was lost is refused with the true offset.
    skipping = http.patch(
        url(server, location),
        content=chunks[3],
        headers={"content-range": f"{3 * CHUNK}-{3 * CHUNK + len(chunks[3]) - 1}"},
    )
    assert skipping.status_code == 416
    assert skipping.headers["range"] == f"0-{acknowledged - 1}"

    if recovery == "resume":
        # The half chunk is still on disk; the next chunk goes where the registry said.
        assert upload_file.stat().st_size == acknowledged + in_flight
        for index in (2, 3, 4):
            location = patch_chunk(http, server, location, chunks[index], index * CHUNK)
        assert_blob_unknown(http, server, repo, digest)
        finish(http, server, location, digest)
    else:
        # The half chunk never counts: closing with the digest of "acknowledged + half" fails
        # and leaves the session where it was.
        with_half = sha256(blob[: acknowledged + in_flight])
        early = http.put(url(server, location), params={"digest": with_half})
        assert early.status_code == 400
        assert early.json()["errors"][0]["code"] == "DIGEST_INVALID"
        assert_blob_unknown(http, server, repo, with_half)
        status = http.get(url(server, location))
        assert status.status_code == 204
        assert status.headers["range"] == f"0-{acknowledged - 1}"
        # The client gives up on the session and starts over.
        cancelled = http.delete(url(server, location))
        assert cancelled.status_code == 204
        gone = http.get(url(server, location))
        assert gone.status_code == 404
        assert gone.json()["errors"][0]["code"] == "BLOB_UPLOAD_UNKNOWN"
        assert not upload_file.exists()
        location = start_session(http, server, repo)
        for index, chunk in enumerate(chunks):
            location = patch_chunk(http, server, location, chunk, index * CHUNK)
        finish(http, server, location, digest)

    assert_blob(http, server, repo, blob)
    ranged = http.get(
        url(server, f"/v2/{repo}/blobs/{digest}"),
        headers={"range": f"bytes={acknowledged - 10}-{acknowledged + in_flight + 9}"},
    )
    assert ranged.status_code == 206
    assert ranged.content == blob[acknowledged - 10 : acknowledged + in_flight + 10]
    assert_fsck_clean(server)


# --- 2. SIGKILL during many concurrent manifest PUTs ------------------------------------------


class Pushers:
    """Threads that push until the server dies; they record what it acknowledged."""

    def __init__(self, count: int, job: Callable[[httpx.Client, int, int], None]) -> None:
        self.acknowledged = 0
        self.lock = threading.Lock()
        self.enough = threading.Event()
        self.stop = threading.Event()
        self.unexpected: list[str] = []
        self._job = job
        self._threads = [threading.Thread(target=self._run, args=(n,)) for n in range(count)]

    def _run(self, worker: int) -> None:
        with httpx.Client(timeout=30) as client:
            attempt = 0
            while not self.stop.is_set():
                try:
                    self._job(client, worker, attempt)
                except httpx.HTTPError:
                    return  # the server died under us: expected
                except Exception as exc:  # recorded, so the test fails with it
                    with self.lock:
                        self.unexpected.append(f"worker {worker}: {exc!r}")
                    return
                attempt += 1

    def acked(self, wanted: int) -> None:
        with self.lock:
            self.acknowledged += 1
            if self.acknowledged >= wanted:
                self.enough.set()

    def __enter__(self) -> Pushers:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop.set()
        for thread in self._threads:
            thread.join(timeout=60)
        assert not any(t.is_alive() for t in self._threads)


def image_manifest(config: bytes, layer: bytes, note: str) -> bytes:
    body = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "digest": sha256(config), "size": len(config)},
        "layers": [{"mediaType": OCI_LAYER, "digest": sha256(layer), "size": len(layer)}],
        "annotations": {"test.note": note},
    }
    return json.dumps(body, indent=1).encode()


def test_kill_during_concurrent_manifest_puts_keeps_tags_consistent(
    fresh_server: TrustyardServer, http: httpx.Client, repo: str
) -> None:
    server = fresh_server
    config = json.dumps({"architecture": "amd64", "os": "linux"}).encode()
    layers = [seeded(f"layer-{n}", 3000 + 70_000 * n) for n in range(4)]
    push_blob(http, server, repo, config)
    for layer in layers:
        push_blob(http, server, repo, layer)
    known_blobs = {sha256(b): b for b in [config, *layers]}
    acked_tags: dict[str, str] = {}
    base = server.url

    def push(client: httpx.Client, worker: int, attempt: int) -> None:
        tag = f"w{worker}-{attempt}"
        body = image_manifest(config, layers[(worker + attempt) % len(layers)], tag)
        response = client.put(
            f"{base}/v2/{repo}/manifests/{tag}",
            content=body,
            headers={"content-type": OCI_MANIFEST},
        )
        if response.status_code != 201:
            raise AssertionError(f"PUT {tag}: {response.status_code} {response.text}")
        assert response.headers["docker-content-digest"] == sha256(body)
        with pushers.lock:
            acked_tags[tag] = sha256(body)
        pushers.acked(60)

    pushers = Pushers(8, push)
    with pushers:
        assert pushers.enough.wait(timeout=30), "the registry acknowledged too few manifests"
        server.kill()
    assert not pushers.unexpected, pushers.unexpected
    server.start()

    listed = http.get(url(server, f"/v2/{repo}/tags/list"))
    assert listed.status_code == 200
    tags = listed.json()["tags"]
    assert set(acked_tags) <= set(tags)
    for tag in tags:
        by_tag = http.get(url(server, f"/v2/{repo}/manifests/{tag}"))
        assert by_tag.status_code == 200, tag
        digest = by_tag.headers["docker-content-digest"]
        assert sha256(by_tag.content) == digest
        assert tag not in acked_tags or acked_tags[tag] == digest
        by_digest = http.get(url(server, f"/v2/{repo}/manifests/{digest}"))
        assert by_digest.status_code == 200
        assert by_digest.content == by_tag.content
        manifest = json.loads(by_tag.content)
        assert manifest["annotations"]["test.note"] == tag
        for descriptor in [manifest["config"], *manifest["layers"]]:
            assert_blob(http, server, repo, known_blobs[descriptor["digest"]])
    assert_fsck_clean(server)


# --- 3. SIGKILL while many small blob uploads commit ------------------------------------------


def test_kill_during_concurrent_blob_commits_serves_only_exact_bytes(
    fresh_server: TrustyardServer, http: httpx.Client, repo: str
) -> None:
    server = fresh_server
    attempted: dict[str, bytes] = {}
    acked: set[str] = set()
    base = server.url

    def push(client: httpx.Client, worker: int, attempt: int) -> None:
        seed = f"small-{worker}-{attempt}"
        data = seeded(seed, random.Random(seed).randint(1, 150_000))
        digest = sha256(data)
        with pushers.lock:
            attempted[digest] = data
        response = client.post(
            f"{base}/v2/{repo}/blobs/uploads/",
            params={"digest": digest},
            content=data,
            headers={"content-type": "application/octet-stream"},
        )
        if response.status_code != 201:
            raise AssertionError(f"POST {seed}: {response.status_code} {response.text}")
        with pushers.lock:
            acked.add(digest)
        pushers.acked(50)

    pushers = Pushers(8, push)
    with pushers:
        assert pushers.enough.wait(timeout=30), "the registry acknowledged too few blobs"
        server.kill()
    assert not pushers.unexpected, pushers.unexpected
    server.start()

    assert len(attempted) > len(acked) >= 50
    served = 0
    for digest, data in sorted(attempted.items()):
        response = http.get(url(server, f"/v2/{repo}/blobs/{digest}"))
        if digest in acked:
            assert response.status_code == 200, digest
        assert response.status_code in (200, 404), digest
        if response.status_code == 200:
            served += 1
            assert response.content == data, digest
            head = http.head(url(server, f"/v2/{repo}/blobs/{digest}"))
            assert head.headers["content-length"] == str(len(data))
    assert served >= len(acked)
    assert_fsck_clean(server)

    # A blob whose upload the crash cut short can simply be pushed again.
    for digest, data in sorted(attempted.items()):
        if digest not in acked:
            push_blob(http, server, repo, data)
            assert_blob(http, server, repo, data)
    assert_fsck_clean(server)


# --- 4. what fsck calls garbage and what it calls a problem -----------------------------------


def test_fsck_calls_crash_leftovers_garbage_but_damage_a_problem(
    fresh_server: TrustyardServer, http: httpx.Client, repo: str
) -> None:
    server = fresh_server
    config = b'{"architecture":"amd64","os":"linux"}'
    layer = seeded("fsck-layer", 200_000)
    push_blob(http, server, repo, config)
    push_blob(http, server, repo, layer)
    body = image_manifest(config, layer, "fsck")
    put = http.put(
        url(server, f"/v2/{repo}/manifests/v1"),
        content=body,
        headers={"content-type": OCI_MANIFEST},
    )
    assert put.status_code == 201

    # Leftovers of crashes: an upload with unacknowledged bytes past its offset (its session
    # exists), and a verified blob renamed into place whose database row never committed.
    location = start_session(http, server, repo)
    patch_chunk(http, server, location, seeded("fsck-partial", 5000), 0)
    storage = server.data_dir / "storage"
    with (storage / "uploads" / upload_id_of(location)).open("ab") as handle:
        handle.write(b"half a chunk")
    orphan = seeded("fsck-orphan", 7000)
    orphan_path = storage / "blobs" / "sha256" / sha256(orphan)[7:9] / sha256(orphan)[7:]
    orphan_path.parent.mkdir(parents=True, exist_ok=True)
    orphan_path.write_bytes(orphan)
    stray_upload = storage / "uploads" / ("ab" * 16)  # upload data whose session is gone
    stray_upload.write_bytes(b"stray")

    output = assert_fsck_clean(server)
    assert f"garbage\tblob-orphan\t{sha256(orphan)}\t" in output
    assert f"garbage\tupload-orphan\t{stray_upload.name}\t" in output
    assert upload_id_of(location) not in output
    assert output.strip().endswith(
        "clean (2 leftovers of interrupted writes; --repair removes them)"
    )
    assert_blob_unknown(http, server, repo, sha256(orphan))  # garbage is never served

    # Damage is always a problem: a recorded blob whose bytes changed, a manifest whose blob
    # left the repository, and an unrecorded file whose bytes do not match its name (a later
    # push of that digest would adopt it, so it is not mere garbage).
    layer_path = storage / "blobs" / "sha256" / sha256(layer)[7:9] / sha256(layer)[7:]
    damaged = bytearray(layer)
    damaged[1000] ^= 0xFF
    layer_path.write_bytes(bytes(damaged))
    assert http.delete(url(server, f"/v2/{repo}/blobs/{sha256(config)}")).status_code == 202
    orphan_path.write_bytes(orphan[:-1] + b"!")
    damage = server.cli("fsck", check=False)
    assert damage.returncode == 1, damage.stdout
    assert f"PROBLEM\tblob-corrupt\t{sha256(layer)}\t" in damage.stdout
    assert f"PROBLEM\tmanifest-blob-missing\t{repo}@{sha256(body)}\t" in damage.stdout
    assert f"PROBLEM\tblob-orphan-corrupt\t{sha256(orphan)}\t" in damage.stdout
    assert f"garbage\tupload-orphan\t{stray_upload.name}\t" in damage.stdout
    assert damage.stdout.strip().endswith(
        ": 3 problems (1 leftovers of interrupted writes; --repair removes them)"
    )

    # Repair removes garbage and bad bytes but cannot bring back a missing blob.
    repaired = server.cli("fsck", "--repair", check=False)
    assert repaired.returncode == 1, repaired.stdout
    assert not orphan_path.exists()
    assert not stray_upload.exists()
    assert not layer_path.exists()
    assert "PROBLEM\tblob-corrupt" not in repaired.stdout
    assert f"PROBLEM\tmanifest-blob-missing\t{repo}@{sha256(body)}\t" in repaired.stdout
    assert_blob_unknown(http, server, repo, sha256(layer))  # never served with wrong bytes


# --- 5. an upload survives a plain restart ---------------------------------------------------


def test_upload_survives_restart(
    fresh_server: TrustyardServer, http: httpx.Client, repo: str
) -> None:
    server = fresh_server
    blob = seeded("restart-upload", 10 * MiB + 777)
    half = 5 * MiB
    digest = sha256(blob)
    location = start_session(http, server, repo)
    location = patch_chunk(http, server, location, blob[:half], 0)

    server.restart()

    status = http.get(url(server, location))
    assert status.status_code == 204
    assert status.headers["range"] == f"0-{half - 1}"
    assert_blob_unknown(http, server, repo, digest)
    location = patch_chunk(http, server, location, blob[half:], half)
    finish(http, server, location, digest)
    assert_blob(http, server, repo, blob)
    assert_fsck_clean(server)
