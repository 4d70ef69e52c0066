"""Cost per request of trustyard's /v2 handlers, measured in-process (no HTTP server).

Drives the ASGI app directly on one event loop, so the numbers are the Python cost of one
request inside a worker: routing, handler, database, storage, without granian's HTTP parsing
and without any network. Then profiles each kind of request with cProfile and splits its time
by where it goes (SQLAlchemy, sqlite3, trustyard code, JSON, hashing, file system calls, ...).

  /tmp/probe/bin/python bench/profile_requests.py [--count 3000] [--kind manifest-get ...]
        [--auth basic|bearer]

--auth turns accounts on and sends every request as user `bench` (read-write through an
organization team grant, as bench/run.py --auth does) with Basic credentials or a registry
token from /auth/token.

SQLite in a temporary folder, fsync as configured (TRUSTYARD_STORAGE__FSYNC). The profiler's
own overhead inflates the per-call cost of many small Python functions: read the split as
shares, and the "us/request" column (timed without the profiler) as the cost.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import cProfile
import hashlib
import json
import os
import pstats
import shutil
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from trustyard.app import create_app
from trustyard.config import Settings
from trustyard.db import migrate
from trustyard.db.engine import make_engine
from trustyard.kit.asgi import ASGIApp, Message

MANIFEST_TYPE = "application/vnd.oci.image.manifest.v1+json"
REPO = "regbench/profile"  # an organization the --auth user writes to through a team

Call = Callable[[int], Awaitable[None]]


class Client:
    """Calls the ASGI app like a server would; returns (status, headers, body)."""

    def __init__(self, app: ASGIApp, authorization: str | None = None) -> None:
        self.app = app
        self.authorization = authorization

    async def request(
        self,
        method: str,
        path: str,
        body: bytes = b"",
        headers: dict[str, str] | None = None,
        query: str = "",
    ) -> tuple[int, dict[str, str], bytes]:
        all_headers = {"content-length": str(len(body)), **(headers or {})}
        if self.authorization:
            all_headers["authorization"] = self.authorization
        scope: dict[str, Any] = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": method,
            "path": path,
            "raw_path": path.encode(),
            "query_string": query.encode(),
            "headers": [(k.encode(), v.encode()) for k, v in all_headers.items()],
            "extensions": {"http.response.pathsend": {}},
        }
        delivered = False
        out: list[Message] = []

        async def receive() -> Message:
            nonlocal delivered
            if delivered:
                await asyncio.sleep(3600)
            delivered = True
            return {"type": "http.request", "body": body, "more_body": False}

        async def send(message: Message) -> None:
            out.append(message)

        await self.app(scope, receive, send)
        start = out[0]
        data = b"".join(m.get("body", b"") for m in out[1:])
        hdrs = {k.decode().lower(): v.decode() for k, v in start["headers"]}
        return int(start["status"]), hdrs, data


def digest_of(data: bytes) -> str:
    return f"sha256:{hashlib.sha256(data).hexdigest()}"


async def push_blob(client: Client, data: bytes) -> str:
    digest = digest_of(data)
    status, headers, _ = await client.request("POST", f"/v2/{REPO}/blobs/uploads/")
    assert status == 202, status
    location = headers["location"]
    status, _, body = await client.request(
        "PUT",
        location,
        data,
        {"content-type": "application/octet-stream"},
        query=f"digest={digest}",
    )
    assert status == 201, (status, body)
    return digest


def manifest_for(config: tuple[str, int], layer: tuple[str, int], nonce: int) -> bytes:
    doc = {
        "schemaVersion": 2,
        "mediaType": MANIFEST_TYPE,
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": config[0],
            "size": config[1],
        },
        "layers": [
            {
                "mediaType": "application/vnd.oci.image.layer.v1.tar",
                "digest": layer[0],
                "size": layer[1],
            }
        ],
        "annotations": {"nonce": str(nonce)},
    }
    return json.dumps(doc).encode()


async def prepare(client: Client) -> dict[str, Call]:
    """Push one image; return the request kinds to measure, each a call taking an index."""
    config = json.dumps({"architecture": "amd64", "os": "linux"}).encode()
    layer = os.urandom(4096)
    cfg, blob = await push_blob(client, config), await push_blob(client, layer)
    descriptors = ((cfg, len(config)), (blob, len(layer)))
    manifest = manifest_for(*descriptors, nonce=0)
    put_headers = {"content-type": MANIFEST_TYPE}
    status, _, _ = await client.request("PUT", f"/v2/{REPO}/manifests/v1", manifest, put_headers)
    assert status == 201
    manifest_digest = digest_of(manifest)
    accept = {"accept": MANIFEST_TYPE}

    async def manifest_get(i: int) -> None:
        status, _h, body = await client.request("GET", f"/v2/{REPO}/manifests/v1", headers=accept)
        assert status == 200
        assert body == manifest

    async def manifest_head(i: int) -> None:
        path = f"/v2/{REPO}/manifests/{manifest_digest}"
        status, _h, _b = await client.request("HEAD", path, headers=accept)
        assert status == 200

    async def blob_get(i: int) -> None:
        status, _h, body = await client.request("GET", f"/v2/{REPO}/blobs/{blob}")
        assert status == 200
        assert len(body) == 4096

    async def manifest_put(i: int) -> None:
        body = manifest_for(*descriptors, nonce=i + 1)
        path = f"/v2/{REPO}/manifests/t{i}"
        status, _h, _b = await client.request("PUT", path, body, put_headers)
        assert status == 201

    async def blob_push(i: int) -> None:
        await push_blob(client, i.to_bytes(8, "big") + layer[8:])

    for i in range(300):  # a repository with 300 tags for the listing
        body = manifest_for(*descriptors, nonce=-i)
        path = f"/v2/{REPO}/manifests/p{i:03d}"
        status, _h, _b = await client.request("PUT", path, body, put_headers)
        assert status == 201

    async def tags_page(i: int) -> None:
        path = f"/v2/{REPO}/tags/list"
        query = "n=100&last=p099"  # the second page: a cursor, as a paginating client sends
        status, _h, body = await client.request("GET", path, query=query)
        assert status == 200
        assert len(json.loads(body)["tags"]) == 100

    return {
        "manifest-get": manifest_get,
        "manifest-head": manifest_head,
        "blob-get": blob_get,
        "manifest-put": manifest_put,
        "blob-push": blob_push,
        "tags-list-page": tags_page,
    }


BUCKETS = (
    ("select.epoll", "event loop waiting (threads: fsync, file I/O)"),
    ("sqlalchemy", "SQLAlchemy"),
    ("sqlite3", "sqlite3 (C)"),
    ("/trustyard/", "trustyard"),
    ("json", "json"),
    ("hashlib", "hashing"),
    ("posix", "os calls (write/fsync/open/stat)"),
    ("io.", "os calls (write/fsync/open/stat)"),
    ("pathlib", "pathlib"),
    ("asyncio", "asyncio"),
    ("threading", "threads (to_thread)"),
    ("concurrent", "threads (to_thread)"),
    ("urllib", "urllib (query parsing)"),
    ("re.", "regular expressions"),
    ("_sre", "regular expressions"),
    ("uuid", "uuid"),
    ("datetime", "datetime"),
)


def bucket(func: tuple[str, int, str]) -> str:
    filename, _, name = func
    where = f"{filename} {name}"
    if "bench/profile_requests.py" in filename:
        return "this harness (fake ASGI server)"
    for needle, label in BUCKETS:
        if needle in where:
            return label
    return "other"


def split(profile: cProfile.Profile) -> tuple[dict[str, float], list[str]]:
    """Own time per bucket, and the largest functions of the "other" bucket."""
    stats = pstats.Stats(profile)
    raw: dict[tuple[str, int, str], tuple[int, int, float, float, Any]] = stats.stats  # type: ignore[attr-defined]
    totals: dict[str, float] = {}
    others: list[tuple[float, str]] = []
    for func, (_, _, tottime, _, _) in raw.items():
        label = bucket(func)
        totals[label] = totals.get(label, 0.0) + tottime
        if label == "other":
            others.append((tottime, f"{Path(func[0]).name}:{func[2]}"))
    return totals, [name for _, name in sorted(others, reverse=True)[:5]]


async def measure(calls: dict[str, Call], kinds: list[str], count: int) -> dict[str, Any]:
    results: dict[str, Any] = {}
    offset = 0
    for kind in kinds:
        call = calls[kind]
        for i in range(min(200, count)):  # warm caches and the connection pool
            await call(offset + i)
        offset += count
        t0 = time.perf_counter()
        for i in range(count):
            await call(offset + i)
        per_request_us = (time.perf_counter() - t0) / count * 1e6
        offset += count
        profile = cProfile.Profile()
        profile.enable()
        for i in range(count):
            await call(offset + i)
        profile.disable()
        offset += count
        shares, others = split(profile)
        total = sum(shares.values()) or 1.0
        results[kind] = {
            "us_per_request": per_request_us,
            "split_pct": {
                k: round(100 * v / total, 1) for k, v in sorted(shares.items(), key=lambda x: -x[1])
            },
            "largest_other": others,
        }
        top = ", ".join(f"{k} {v:.0f}%" for k, v in list(results[kind]["split_pct"].items())[:6])
        print(f"{kind:<16}{per_request_us:>9.0f} us/request   {top}", flush=True)
        print(f"{'':<16}other: {', '.join(others[:3])}", flush=True)
    return results


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--count", type=int, default=3000, help="requests per kind and pass")
    p.add_argument("--kind", action="append", help="request kind (repeatable; default: all)")
    p.add_argument("--json", type=Path, help="write the results here")
    p.add_argument("--auth", choices=("basic", "bearer"), help="accounts on; credentials to send")
    args = p.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="trustyard-profile-"))
    try:
        settings = Settings(data_dir=workdir, auth={"enabled": bool(args.auth)})
        engine = make_engine(settings.effective_database_url)
        migrate.upgrade(engine)
        engine.dispose()
        client = Client(create_app(settings))
        if args.auth:
            from run import BENCH_PASSWORD, BENCH_USER, seed_bench_accounts

            seed_bench_accounts(settings.effective_database_url)
            basic = base64.b64encode(f"{BENCH_USER}:{BENCH_PASSWORD}".encode()).decode()
            client.authorization = f"Basic {basic}"
            if args.auth == "bearer":
                scope = f"repository:{REPO}:pull,push"
                status, _, body = asyncio.run(
                    client.request("GET", "/auth/token", query=f"service=trustyard&scope={scope}")
                )
                assert status == 200, body
                client.authorization = f"Bearer {json.loads(body)['token']}"

        async def run() -> dict[str, Any]:
            calls = await prepare(client)
            return await measure(calls, args.kind or list(calls), args.count)

        results = asyncio.run(run())
        if args.json:
            args.json.write_text(json.dumps(results, indent=1) + "\n")
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
