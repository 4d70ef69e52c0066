"""What counting and timing a request costs, in microseconds per request (best of 5 runs).

Each way runs in a process of its own (prometheus_client picks its multiprocess mode when it
is first imported):

  prom-memory      prometheus_client, one process: Counter.labels().inc() and
                   Histogram.labels().observe() (what a plain setup does per request)
  prom-mp          the same in multiprocess mode (PROMETHEUS_MULTIPROC_DIR): every
                   increment goes through an mmap'ed file
  prom-mp-cached   multiprocess mode with the labelled children cached by label values
  trustyard        a Recorder's request table, as the ASGI router counts a request
                   (trustyard.metrics.recorder: counts in memory, files written by a thread
                   once a second)
  asgi             whole in-process requests through trustyard's top-level ASGI app (GET /v2/
                   and a manifest GET by tag, the hot path), with metrics off and on: the
                   difference is everything metrics add to a request (the status-watching
                   `send`, the route and method labels, the count); the server's own (Rust)
                   share of a request is not in these figures

Example (from the repository root):
  /tmp/probe/bin/python bench/metrics_cost.py
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
import timeit
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
WAYS = ("prom-memory", "prom-mp", "prom-mp-cached", "trustyard", "asgi")
ROUTE, METHOD, STATUS, SECONDS = "manifest", "GET", "200", 0.0003


def best_us(action: Callable[[], object], number: int) -> float:
    return min(timeit.repeat(action, number=number, repeat=5)) / number * 1e6


def prometheus(cached: bool, number: int) -> float:
    from prometheus_client import CollectorRegistry, Counter, Histogram

    from trustyard.metrics.recorder import REQUEST_BUCKETS

    registry = CollectorRegistry()
    counter = Counter("r_total", "requests", ["route", "method", "status"], registry=registry)
    histogram = Histogram(
        "r_seconds", "latency", ["route", "method"], buckets=REQUEST_BUCKETS, registry=registry
    )
    children: dict[tuple[str, str, str], tuple[Any, Any]] = {}

    def plain() -> None:
        counter.labels(ROUTE, METHOD, STATUS).inc()
        histogram.labels(ROUTE, METHOD).observe(SECONDS)

    def with_cache() -> None:
        key = (ROUTE, METHOD, STATUS)
        pair = children.get(key)
        if pair is None:
            pair = children[key] = (counter.labels(*key), histogram.labels(ROUTE, METHOD))
        pair[0].inc()
        pair[1].observe(SECONDS)

    return best_us(with_cache if cached else plain, number)


def trustyard_metrics(number: int, directory: Path) -> float:
    from trustyard.metrics.recorder import Recorder

    recorder = Recorder()
    recorder.configure(directory)
    requests = recorder.requests
    return best_us(lambda: requests.observe((ROUTE, METHOD, 200), SECONDS), number)


Message = dict[str, Any]


async def call(app: Any, method: str, path: str, body: bytes = b"") -> tuple[int, bytes]:
    """One request through an ASGI app in this process: (status, body)."""
    sent: list[Message] = []
    path, _, query = path.partition("?")

    async def receive() -> Message:
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: Message) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "method": method,
        "path": path,
        "query_string": query.encode(),
        "headers": [(b"host", b"localhost"), (b"content-length", str(len(body)).encode())],
        "client": ("127.0.0.1", 40000),
    }
    await app(scope, receive, send)
    start = next(m for m in sent if m["type"] == "http.response.start")
    data = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return start["status"], data


async def push_image(app: Any) -> str:
    """A config blob and a manifest tagged v1 in bench/app; returns the manifest path."""
    config = b"{}"
    digest = f"sha256:{hashlib.sha256(config).hexdigest()}"
    status, _ = await call(app, "POST", f"/v2/bench/app/blobs/uploads/?digest={digest}", config)
    assert status == 201, status
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": digest,
                "size": len(config),
            },
            "layers": [],
        }
    ).encode()
    status, _ = await call(app, "PUT", "/v2/bench/app/manifests/v1", manifest)
    assert status == 201, status
    return "/v2/bench/app/manifests/v1"


def asgi(number: int, directory: Path) -> dict[str, tuple[float, float]]:
    """Microseconds per request through trustyard's top-level ASGI app, metrics off and on,
    for GET /v2/ and for a manifest GET by tag (the hot path)."""
    from trustyard.app import TrustyardApp
    from trustyard.config import Settings
    from trustyard.db import migrate
    from trustyard.db.engine import make_engine
    from trustyard.metrics.recorder import Recorder
    from trustyard.metrics_http.endpoint import MetricsEndpoint
    from trustyard.wiring.server import build_services

    settings = Settings(data_dir=directory / "data", auth={"enabled": False})
    settings.data_dir.mkdir(parents=True)
    engine = make_engine(settings.effective_database_url)
    migrate.upgrade(engine)
    engine.dispose()
    services = build_services(settings)
    ctx = services.context
    recorder = Recorder()
    recorder.configure(directory / "metrics")
    plain = TrustyardApp(services)
    measured = TrustyardApp(services, MetricsEndpoint(settings.metrics, ctx.engine, recorder))

    async def run(app: TrustyardApp, path: str) -> float:
        best = float("inf")
        for _ in range(5):
            began = time.perf_counter()
            for _ in range(number):
                await call(app, "GET", path)
            best = min(best, (time.perf_counter() - began) / number * 1e6)
        return best

    async def both() -> dict[str, tuple[float, float]]:
        manifest = await push_image(plain)
        results = {}
        for name, path in (("GET /v2/", "/v2/"), ("manifest GET", manifest)):
            # Alternate to share the machine's noise fairly; keep each one's best.
            off, on = float("inf"), float("inf")
            for _ in range(3):
                off = min(off, await run(plain, path))
                on = min(on, await run(measured, path))
            results[name] = (off, on)
        return results

    return asyncio.run(both())


def one(way: str, number: int) -> str:
    with tempfile.TemporaryDirectory(prefix="metrics-cost-") as temporary:
        directory = Path(temporary)
        if way == "prom-memory":
            return f"{prometheus(False, number):.2f}"
        if way in ("prom-mp", "prom-mp-cached"):
            return f"{prometheus(way == 'prom-mp-cached', number):.2f}"
        if way == "trustyard":
            return f"{trustyard_metrics(number, directory):.2f}"
        return "; ".join(
            f"{name}: +{on - off:.2f} ({off:.1f} off, {on:.1f} on)"
            for name, (off, on) in asgi(number // 20, directory).items()
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--number", type=int, default=200_000, help="calls per timing")
    parser.add_argument("--way", choices=WAYS, help="(internal) measure one way here")
    args = parser.parse_args()
    if args.way:
        print(one(args.way, args.number))
        return
    print(f"load average before: {os.getloadavg()}")
    for way in WAYS:
        env = {k: v for k, v in os.environ.items() if not k.startswith("TRUSTYARD_")}
        env.pop("PROMETHEUS_MULTIPROC_DIR", None)
        with tempfile.TemporaryDirectory(prefix="metrics-cost-mp-") as mp_dir:
            if way.startswith("prom-mp"):
                env["PROMETHEUS_MULTIPROC_DIR"] = mp_dir
            done = subprocess.run(
                [sys.executable, __file__, "--way", way, "--number", str(args.number)],
                env=env,
                capture_output=True,
                text=True,
                check=True,
                cwd=REPO_ROOT,
            )
        print(f"{way:15s} {done.stdout.strip()} us per request")
    print(f"load average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
