"""The server's ASGI app: the router over the HTTP edges, assembled around the services that
`wiring.server.build_services` builds once per process from the settings."""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Sequence
from time import perf_counter

from sqlalchemy import text

from trustyard.api.app import PREFIX as API_PREFIX
from trustyard.api.app import create_api, guarded
from trustyard.config import Settings
from trustyard.kit.asgi import ROUTE_KEY, Message, Receive, Scope, Send
from trustyard.kit.forwarded import client_address, networks
from trustyard.metrics.recorder import method_label
from trustyard.metrics_http.endpoint import MetricsEndpoint, route_label
from trustyard.registry.app import RegistryApp
from trustyard.registry.http import JSON, Request, respond
from trustyard.registry.token_endpoint import token_endpoint
from trustyard.wiring.server import Services, build_services

log = logging.getLogger(__name__)


class TrustyardApp:
    """Top-level ASGI router: /v2 to the registry, /api/v1 (and DTR's /api/v0 routes, served
    by the same API), /auth/token, /healthz, /metrics, and 404 for the rest. With metrics
    on, every request is counted and timed by route. Behind `trusted_proxies`, the scope's
    client becomes the one X-Forwarded-For names."""

    def __init__(
        self,
        services: Services,
        metrics: MetricsEndpoint | None = None,
        trusted_proxies: Sequence[str] = (),
        api_body_limit: int = 1024 * 1024,
    ) -> None:
        self.ctx = ctx = services.context
        self.registry = RegistryApp(ctx)
        self.api = create_api(ctx.accounts) if ctx.accounts is not None else None
        if self.api is not None:
            self.api.state.tags = services.tags
            self.api.state.events = ctx.events
            self.api.state.webhooks = services.webhooks
            self.api.state.scans = services.scans
            self.api.state.vulndb = services.vulndb
            self.api.state.policies = services.policies
            self.api.state.promotions = services.promotions
            self.api.state.policy_facts = services.policy_facts
            self.api.state.policy_triggers = services.policy_triggers
        self.api_guard = (
            guarded(self.api, max_body=api_body_limit, body_timeout=ctx.body_timeout)
            if self.api is not None
            else None
        )
        self.metrics = metrics
        # The table every request is counted in (the recorder's, held here: no lookup per request).
        self.requests = metrics.recorder.requests if metrics is not None else None
        self.proxies = networks(trusted_proxies)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            if scope["type"] == "lifespan":
                await self._lifespan(receive, send)
            return
        if self.proxies and scope.get("client"):
            self._forwarded_client(scope)
        requests = self.requests
        if requests is None:
            await self._route(scope, receive, send)
            return
        began = perf_counter()
        status = 0  # no response started

        def watch(message: Message) -> Awaitable[None]:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            return send(message)  # its awaitable: no extra coroutine per message

        try:
            await self._route(scope, receive, watch)
        except BaseException:
            status = status or 500
            raise
        finally:
            route = route_label(scope, API_PREFIX)
            method = method_label(scope["method"])
            requests.observe((route, method, status), perf_counter() - began)

    def _forwarded_client(self, scope: Scope) -> None:
        values = [v.decode("latin-1") for k, v in scope["headers"] if k == b"x-forwarded-for"]
        host = scope["client"][0]
        client = client_address(host, ",".join(values), self.proxies)
        if client != host:
            scope["client"] = (client, 0)

    async def _route(self, scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope["path"]
        if path == "/v2" or path.startswith("/v2/"):
            await self.registry(scope, receive, send)
        elif self.api_guard is not None and (
            path == "/api/v1" or path.startswith(("/api/v1/", "/api/v0/"))
        ):
            await self.api_guard(scope, receive, send)
        elif path == "/healthz":
            scope[ROUTE_KEY] = "healthz"
            await self._health(send)
        elif path == "/metrics" and self.metrics is not None:
            scope[ROUTE_KEY] = "metrics"
            await self.metrics(scope, receive, send)
        elif path == "/auth/token" and self.ctx.accounts is not None:
            scope[ROUTE_KEY] = "auth_token"
            request = Request(scope, receive, self.ctx.body_timeout)
            await token_endpoint(self.ctx.accounts, request, send)
        else:
            body = json.dumps({"detail": "not found"}).encode()
            await respond(send, 404, [JSON], body)

    async def _health(self, send: Send) -> None:
        problems = []
        try:
            with self.ctx.engine.connect() as conn:
                conn.execute(text("SELECT 1"))
        except Exception as exc:  # any failure means unhealthy
            problems.append(f"database: {type(exc).__name__}")
        try:
            next(iter(self.ctx.driver.iter_uploads()), None)
        except OSError as exc:
            problems.append(f"storage: {exc.strerror}")
        status = 503 if problems else 200
        body = json.dumps({"status": "fail" if problems else "ok", "problems": problems})
        await respond(send, status, [JSON], body.encode())

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                if self.ctx.pulls is not None:
                    self.ctx.pulls.close()  # write the buffered pull events
                if self.metrics is not None:
                    self.metrics.recorder.flush()
                self.ctx.engine.dispose()
                await send({"type": "lifespan.shutdown.complete"})
                return


def create_app(settings: Settings) -> TrustyardApp:
    """The server's app; with metrics on, it counts requests in a recorder of its own (shared
    with the other processes once `asgi_factory` configures it)."""
    services = build_services(settings)
    endpoint = (
        MetricsEndpoint(settings.metrics, services.context.engine, services.recorder)
        if services.recorder is not None
        else None
    )
    return TrustyardApp(
        services,
        endpoint,
        settings.server.trusted_proxies,
        api_body_limit=settings.server.api_body_limit,
    )


def asgi_factory() -> TrustyardApp:
    """Entry point for server worker processes: settings come from TRUSTYARD_* variables."""
    settings = Settings()
    logging.basicConfig(level=settings.log_level.upper())
    # A worker forked from `serve` inherits its root logger (WARNING), where basicConfig does
    # nothing: the setting is applied to trustyard's own loggers.
    logging.getLogger("trustyard").setLevel(settings.log_level.upper())
    app = create_app(settings)
    if app.metrics is not None:  # add this process's counts to the server's
        app.metrics.recorder.configure(settings.metrics_dir)
    return app
