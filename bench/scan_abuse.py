"""A hostile layer against a real `trustyard serve` (SQLite, scanning on), old code or new.

Builds one gzip'ed layer holding a `var/lib/dpkg/status` of ENTRIES installed packages (about
40 MB for 300,000), pushes it as an image to a fresh server, waits for its scan and reports:
  - the scan's status and error, and how long it took from the push;
  - the peak resident memory (VmHWM) of every server process, the job worker's named (the
    worker is a child process of `serve`; its VmHWM is read from /proc/<pid>/status);
  - the growth of the database files (trustyard.db and its -wal) from before the push;
  - GET .../manifests/v1/bom (json): status, size and time; with --formats also cyclonedx-json.

Run from the repository root; `--src ../before/src` runs the old code (PYTHONPATH; make it
with `git worktree add ../before <commit>`):
  .venv/bin/python bench/scan_abuse.py
  .venv/bin/python bench/scan_abuse.py --src ../before/src
  .venv/bin/python bench/scan_abuse.py --entries 88   # a small, accepted status file
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import io
import json
import random
import sys
import tarfile
import tempfile
import time
from pathlib import Path

import httpx

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from tests.support.server import TrustyardServer  # noqa: E402

ADMIN = ("admin", "bench-admin-password-1")
MIB = 1 << 20
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"


def status_file(entries: int) -> bytes:
    rng = random.Random(9)
    paragraphs = [
        f"Package: bench-pkg-{index:06d}\nStatus: install ok installed\nPriority: optional\n"
        f"Architecture: amd64\nVersion: 1.{index}-{rng.getrandbits(32):08x}\n"
        f"Maintainer: Bench <bench@example.com>\nDescription: p\n"
        for index in range(entries)
    ]
    return "\n".join(paragraphs).encode()


def layer(entries: int) -> tuple[bytes, int]:
    data = status_file(entries)
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        info = tarfile.TarInfo("var/lib/dpkg/status")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    return gzip.compress(buffer.getvalue(), mtime=0), len(data)


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def start_server(src: str | None) -> TrustyardServer:
    """`trustyard serve` (accounts and scanning on, one worker per core, SQLite) from this
    tree or from `--src`."""
    environment = {
        "TRUSTYARD_AUTH__ENABLED": "true",
        "TRUSTYARD_ADMIN_PASSWORD": ADMIN[1],
        "TRUSTYARD_SCANNING__ENABLED": "true",
        "TRUSTYARD_JOBS__POLL_SECONDS": "0.2",
    }
    if src:
        environment["PYTHONPATH"] = src
    data = Path(tempfile.mkdtemp(prefix="trustyard-scan-abuse-")) / "d"
    # workers=0: one per CPU core, serve's default
    return TrustyardServer(data_dir=data, workers=0, extra_env=environment).start()


def processes(server: TrustyardServer) -> list[int]:
    assert server.process is not None
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    tree, frontier = [server.process.pid], [server.process.pid]
    while frontier:
        frontier = [pid for pid, parent in parents.items() if parent in frontier]
        tree += frontier
    return tree


def peaks(server: TrustyardServer) -> dict[int, tuple[str, float]]:
    """(command line, VmHWM in MiB) of each process of the server."""
    found = {}
    for pid in processes(server):
        try:
            status = Path(f"/proc/{pid}/status").read_text()
            command = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
        except OSError:
            continue
        for line in status.splitlines():
            if line.startswith("VmHWM:"):
                found[pid] = (
                    command.decode(errors="replace")[:90],
                    int(line.split()[1]) / 1024,
                )
    return found


def database_bytes(server: TrustyardServer) -> int:
    folder = server.data_dir
    return sum(path.stat().st_size for path in folder.glob("trustyard.db*") if path.is_file())


def push_blob(client: httpx.Client, repository: str, data: bytes) -> None:
    started = client.post(f"/v2/{repository}/blobs/uploads/")
    assert started.status_code == 202, started.text
    location = started.headers["location"]
    done = client.put(
        location,
        params={"digest": sha256(data)},
        content=data,
        headers={"Content-Type": "application/octet-stream"},
    )
    assert done.status_code == 201, done.text


def show_peaks(server: TrustyardServer, label: str) -> None:
    print(f"peak RSS (VmHWM) {label}:")
    for pid, (command, mib) in sorted(peaks(server).items()):
        print(f"  {pid:>7}  {mib:8.1f} MiB  {command}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--src", help="PYTHONPATH for the server (the old code's src)")
    parser.add_argument("--entries", type=int, default=300_000)
    parser.add_argument("--formats", action="store_true", help="also GET the cyclonedx BOM")
    args = parser.parse_args()

    blob, status_size = layer(args.entries)
    print(
        f"layer: var/lib/dpkg/status of {args.entries} entries, {status_size / 1e6:.1f} MB, "
        f"{len(blob) / 1e6:.1f} MB gzipped"
    )
    server = start_server(args.src)
    try:
        with httpx.Client(base_url=server.url, auth=httpx.BasicAuth(*ADMIN), timeout=600) as c:
            repository = "bench/status"
            made = c.post("/api/v1/repositories", json={"name": repository})
            assert made.status_code == 201, made.text
            show_peaks(server, "at start")
            config = json.dumps(
                {
                    "architecture": "amd64",
                    "os": "linux",
                    "rootfs": {"type": "layers", "diff_ids": [sha256(gzip.decompress(blob))]},
                }
            ).encode()
            push_blob(c, repository, config)
            push_blob(c, repository, blob)
            manifest = json.dumps(
                {
                    "schemaVersion": 2,
                    "mediaType": OCI_MANIFEST,
                    "config": {
                        "mediaType": "application/vnd.oci.image.config.v1+json",
                        "digest": sha256(config),
                        "size": len(config),
                    },
                    "layers": [
                        {
                            "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                            "digest": sha256(blob),
                            "size": len(blob),
                        }
                    ],
                }
            ).encode()
            database_before = database_bytes(server)
            began = time.monotonic()
            put = c.put(
                f"/v2/{repository}/manifests/v1",
                content=manifest,
                headers={"Content-Type": OCI_MANIFEST},
            )
            assert put.status_code == 201, put.text
            scan_path = f"/api/v1/repositories/{repository}/manifests/v1/scan"
            while True:
                answer = c.get(scan_path)
                if answer.status_code == 200 and answer.json()["status"] in (
                    "succeeded",
                    "failed",
                ):
                    scan = answer.json()
                    break
                time.sleep(0.5)
            took = time.monotonic() - began
            print(f"scan: {scan['status']} in {took:.1f} s; error: {scan['error']}")
            show_peaks(server, "after the scan")
            grown = database_bytes(server) - database_before
            print(f"database growth: {grown / MIB:.1f} MiB ({grown} bytes)")
            formats = ["json", "cyclonedx-json"] if args.formats else ["json"]
            for name in formats:
                began = time.perf_counter()
                size = 0
                with c.stream("GET", f"{scan_path[:-5]}/bom", params={"format": name}) as got:
                    for chunk in got.iter_bytes():
                        size += len(chunk)
                took = time.perf_counter() - began
                print(f"GET bom ({name}): {got.status_code}, {size / 1e6:.1f} MB in {took:.2f} s")
                show_peaks(server, f"after the BOM GET ({name})")
    finally:
        server.stop()


if __name__ == "__main__":
    main()
