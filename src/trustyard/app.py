"""Composition root: build every object once, from settings, and wire the HTTP edges."""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Sequence
from datetime import timedelta
from time import perf_counter

from sqlalchemy import Engine, text

from trustyard.api.app import PREFIX as API_PREFIX
from trustyard.api.app import create_api, guarded
from trustyard.auth.access import AccessPolicy, Authenticator
from trustyard.auth.authorize import open_policy
from trustyard.auth.gate import Accounts
from trustyard.auth.login_throttle import LoginThrottle
from trustyard.auth.registry_tokens import RegistryTokens
from trustyard.auth.signing import SigningKeys
from trustyard.background import make_queue
from trustyard.config import Settings
from trustyard.content.hotreads import HotReads, SqliteHotReads, StoreHotReads
from trustyard.content.manifests import ManifestService
from trustyard.content.stores import ContentStore
from trustyard.content.tags import TagService
from trustyard.content.uploads import HashStates, UploadService
from trustyard.db.engine import is_sqlite, make_engine
from trustyard.db.generation import access_generation_reader, credential_generation_reader
from trustyard.jobs.queue import SqlJobQueue
from trustyard.kit.asgi import ROUTE_KEY, Message, Receive, Scope, Send
from trustyard.kit.forwarded import client_address, networks
from trustyard.metrics.recorder import Recorder, method_label
from trustyard.metrics_http.endpoint import MetricsEndpoint, route_label
from trustyard.registry.app import RegistryApp
from trustyard.registry.context import RegistryContext
from trustyard.registry.http import JSON, Request, respond
from trustyard.registry.token_endpoint import token_endpoint
from trustyard.scanning.service import ScanService
from trustyard.wiring.common import make_driver, make_ldap, signing_passphrase
from trustyard.wiring.events import make_outbox, make_pull_recorder, make_webhook_service

log = logging.getLogger(__name__)


def make_hot_reads(engine: Engine, store: ContentStore) -> HotReads:
    if is_sqlite(engine) and engine.url.database:
        return SqliteHotReads(engine.url.database)
    return StoreHotReads(engine, store)


def make_accounts(settings: Settings, engine: Engine) -> Accounts | None:
    if not settings.auth.enabled:
        return None
    policy = AccessPolicy()
    keys = SigningKeys(signing_passphrase(settings))
    ttl = timedelta(seconds=settings.auth.token_ttl_seconds)
    return Accounts(
        engine=engine,
        authenticator=Authenticator(ldap=make_ldap(settings)),
        policy=policy,
        keys=keys,
        tokens=RegistryTokens(keys, policy, settings.auth.service, ttl),
        service=settings.auth.service,
        refresh_ttl=timedelta(seconds=settings.auth.refresh_token_ttl_seconds),
        generation=access_generation_reader(engine),
        credentials=credential_generation_reader(engine),
        throttle=LoginThrottle(
            first_lock=timedelta(seconds=settings.auth.login_first_lock_seconds)
        ),
    )


def make_context(settings: Settings, engine: Engine | None = None) -> RegistryContext:
    engine = engine or make_engine(settings.effective_database_url)
    driver = make_driver(settings)
    store = ContentStore()
    hot = make_hot_reads(engine, store)
    accounts = make_accounts(settings, engine)
    queue = make_queue(settings, engine)
    outbox = make_outbox(queue)
    scans = make_scan_service(settings, queue)
    return RegistryContext(
        engine=engine,
        store=store,
        uploads=UploadService(store, driver, HashStates()),
        manifests=ManifestService(store, hot),
        driver=driver,
        authorize=accounts.authorizer() if accounts is not None else open_policy,
        url_prefix=(settings.server.public_url or "").rstrip("/"),
        body_timeout=settings.server.body_timeout,
        accounts=accounts,
        events=outbox,
        pulls=make_pull_recorder(settings, engine, outbox),
        on_push=scans.on_push if scans.enabled else None,
    )


def make_scan_service(settings: Settings, queue: SqlJobQueue) -> ScanService:
    return ScanService(queue, enabled=settings.scanning.enabled)


class TrustyardApp:
    """Top-level ASGI router: /v2 to the registry, /api/v1, /auth/token, /healthz, /metrics,
    and 404 for the rest. With metrics on, every request is counted and timed by route.
    Behind `trusted_proxies`, the scope's client becomes the one X-Forwarded-For names."""

    def __init__(
        self,
        ctx: RegistryContext,
        metrics: MetricsEndpoint | None = None,
        trusted_proxies: Sequence[str] = (),
        api_body_limit: int = 1024 * 1024,
    ) -> None:
        self.ctx = ctx
        self.registry = RegistryApp(ctx)
        self.api = create_api(ctx.accounts) if ctx.accounts is not None else None
        if self.api is not None:
            self.api.state.tags = TagService(ctx.store, ctx.driver)
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
        elif self.api_guard is not None and (path == "/api/v1" or path.startswith("/api/v1/")):
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
    ctx = make_context(settings)
    endpoint = (
        MetricsEndpoint(settings.metrics, ctx.engine, Recorder())
        if settings.metrics.enabled
        else None
    )
    app = TrustyardApp(
        ctx,
        endpoint,
        settings.server.trusted_proxies,
        api_body_limit=settings.server.api_body_limit,
    )
    if app.api is not None and ctx.events is not None and ctx.events.queue is not None:
        app.api.state.events = ctx.events
        app.api.state.webhooks = make_webhook_service(settings, ctx.events.queue)
        app.api.state.scans = make_scan_service(settings, ctx.events.queue)
    return app


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
