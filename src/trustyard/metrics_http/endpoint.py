"""GET /metrics: who may read it, the job queue's state read at scrape time, and the labels
the top-level router gives requests.

Access: with `metrics.token` set, every caller must present it as a Bearer token (and the
address no longer matters); without one, only callers whose address is in
`metrics.allow_from` (default: loopback) may read. Behind a reverse proxy on the same host
every caller looks local: set a token there, or keep /metrics off the proxy.
"""

from __future__ import annotations

import asyncio
import hmac
import ipaddress
import json
import logging
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime

from prometheus_client.metrics_core import GaugeMetricFamily, Metric
from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from trustyard.config import MetricsSettings
from trustyard.db.engine import read_tx
from trustyard.jobs.stats import KindStats, queue_stats
from trustyard.kit.asgi import ROUTE_KEY, Receive, Scope, Send
from trustyard.metrics.exposition import render
from trustyard.metrics.recorder import UNMATCHED, Recorder

log = logging.getLogger(__name__)

JSON_TYPE = (b"content-type", b"application/json")
IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


def route_label(scope: Scope, api_prefix: str) -> str:
    """The route label of an answered request: the name the router or the registry put in
    the scope, the path template of the /api/v1 (or DTR's /api/v0) route FastAPI chose, or
    'unmatched'."""
    name = scope.get(ROUTE_KEY)
    if name is not None:
        return str(name)
    route = scope.get("route")  # set by Starlette's router when a route took the request
    template = getattr(route, "path_format", None)
    if isinstance(template, str) and template:
        return template if template.startswith((api_prefix, "/api/v0/")) else api_prefix + template
    return UNMATCHED


def _bearer(scope: Scope) -> bytes | None:
    for name, value in scope.get("headers", ()):
        if name == b"authorization":
            scheme, _, token = bytes(value).partition(b" ")
            if scheme.lower() == b"bearer" and token.strip():
                return token.strip()
            return None
    return None


class MetricsAccess:
    """Decides whether a request may read /metrics: None (yes), or the status to refuse
    it with (401 without the configured token, 403 from an address outside allow_from)."""

    def __init__(self, token: str | None, allow_from: Sequence[str]) -> None:
        self.token = token.encode() if token else None
        self.networks: list[IpNetwork] = [
            ipaddress.ip_network(network, strict=False) for network in allow_from
        ]

    def refusal(self, scope: Scope) -> int | None:
        if self.token is not None:
            given = _bearer(scope)
            return None if given is not None and hmac.compare_digest(given, self.token) else 401
        client = scope.get("client")
        if not client:
            return 403
        try:
            address = ipaddress.ip_address(str(client[0]))
        except ValueError:
            return 403
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        return None if any(address in network for network in self.networks) else 403


def job_families(stats: Iterable[KindStats]) -> list[Metric]:
    depth = GaugeMetricFamily(
        "trustyard_jobs_queue_depth",
        "Jobs waiting (queued: due or waiting for a retry) or running, by kind and state",
        labels=["kind", "state"],
    )
    oldest = GaugeMetricFamily(
        "trustyard_jobs_oldest_due_age_seconds",
        "How long the oldest due queued job of a kind has waited for a worker (0: none due)",
        labels=["kind"],
    )
    dead = GaugeMetricFamily(
        "trustyard_jobs_dead",
        "Jobs parked as dead after their last attempt failed (until retried or pruned)",
        labels=["kind"],
    )
    for row in stats:
        depth.add_metric([row.kind, "queued"], row.queued)
        depth.add_metric([row.kind, "running"], row.running)
        oldest.add_metric([row.kind], row.oldest_due_seconds)
        dead.add_metric([row.kind], row.dead)
    return [depth, oldest, dead]


class MetricsEndpoint:
    """GET|HEAD /metrics in the Prometheus text (or OpenMetrics) format: the counts of
    `recorder` (every process's, once it is configured) and the job queue's state."""

    def __init__(self, settings: MetricsSettings, engine: Engine, recorder: Recorder) -> None:
        token = settings.token.get_secret_value() if settings.token is not None else None
        self.access = MetricsAccess(token, settings.allow_from)
        self.engine = engine
        self.recorder = recorder

    def exposition(self, accept: str | None) -> tuple[bytes, str]:
        """Every process's counts and the job queue's state (read now)."""
        try:
            with read_tx(self.engine) as conn:
                stats = queue_stats(conn, datetime.now(UTC))
        except SQLAlchemyError as error:
            log.warning("metrics: cannot read the job queue: %s", error)
            stats = []
        return render(self.recorder, accept, job_families(stats))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        refusal = self.access.refusal(scope)
        if refusal == 401:
            await _respond(
                send,
                401,
                {"detail": "a bearer token is required"},
                [(b"www-authenticate", b'Bearer realm="trustyard metrics"')],
            )
            return
        if refusal is not None:
            detail = "metrics are served to the networks in metrics.allow_from only"
            await _respond(send, 403, {"detail": detail})
            return
        method = scope["method"]
        if method not in ("GET", "HEAD"):
            await _respond(send, 405, {"detail": "not allowed"}, [(b"allow", b"GET, HEAD")])
            return
        accept = None
        for name, value in scope.get("headers", ()):
            if name == b"accept":
                accept = bytes(value).decode("latin-1")
        body, content_type = await asyncio.to_thread(self.exposition, accept)
        headers = [
            (b"content-type", content_type.encode()),
            (b"content-length", str(len(body)).encode()),
            (b"cache-control", b"no-store"),
        ]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": b"" if method == "HEAD" else body})


async def _respond(
    send: Send,
    status: int,
    body: dict[str, str],
    headers: list[tuple[bytes, bytes]] | None = None,
) -> None:
    data = json.dumps(body).encode()
    all_headers = [JSON_TYPE, (b"content-length", str(len(data)).encode()), *(headers or [])]
    await send({"type": "http.response.start", "status": status, "headers": all_headers})
    await send({"type": "http.response.body", "body": data})
