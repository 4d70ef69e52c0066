"""Composition root: build every object once, from settings, and wire the HTTP edges."""

from __future__ import annotations

import json
import logging
import os
import secrets
from collections.abc import Awaitable, Sequence
from datetime import timedelta
from time import perf_counter

from sqlalchemy import Engine, text

from trustyard.api.app import PREFIX as API_PREFIX
from trustyard.api.app import create_api, guarded
from trustyard.auth.access import AccessPolicy, Authenticator
from trustyard.auth.authorize import open_policy
from trustyard.auth.ldap import LdapConfig, LdapDirectory
from trustyard.auth.ldap_accounts import LdapAccounts
from trustyard.auth.login_throttle import LoginThrottle
from trustyard.auth.registry_tokens import RegistryTokens
from trustyard.auth.signing import SigningKeys
from trustyard.background import make_queue
from trustyard.config import LdapSettings, Settings
from trustyard.content.hotreads import HotReads, SqliteHotReads, StoreHotReads
from trustyard.content.manifests import ManifestService
from trustyard.content.stores import ContentStore
from trustyard.content.tags import TagService
from trustyard.content.uploads import HashStates, UploadService
from trustyard.db.engine import is_sqlite, make_engine
from trustyard.db.generation import access_generation_reader, credential_generation_reader
from trustyard.event_wiring import make_outbox, make_pull_recorder, make_webhook_service
from trustyard.jobs.queue import SqlJobQueue
from trustyard.kit.asgi import ROUTE_KEY, Message, Receive, Scope, Send
from trustyard.kit.forwarded import client_address, networks
from trustyard.metrics import configure as configure_metrics
from trustyard.metrics import flush as flush_metrics
from trustyard.metrics import method_label, observe_request
from trustyard.metrics_endpoint import MetricsEndpoint, route_label
from trustyard.registry.access import Accounts
from trustyard.registry.app import RegistryApp
from trustyard.registry.context import RegistryContext
from trustyard.registry.http import JSON, Request, respond
from trustyard.registry.token_endpoint import token_endpoint
from trustyard.scanning.service import ScanService
from trustyard.storage.filesystem import FilesystemDriver
from trustyard.storage.interfaces import BlobDriver

log = logging.getLogger(__name__)


def make_driver(settings: Settings) -> BlobDriver:
    return FilesystemDriver(settings.blob_root, fsync=settings.storage.fsync)


def make_hot_reads(engine: Engine, store: ContentStore) -> HotReads:
    if is_sqlite(engine) and engine.url.database:
        return SqliteHotReads(engine.url.database)
    return StoreHotReads(engine, store)


def signing_passphrase(settings: Settings) -> str:
    """The passphrase of the token-signing key: configured, or generated once per data folder."""
    if settings.auth.signing_passphrase is not None:
        return settings.auth.signing_passphrase.get_secret_value()
    path = settings.data_dir / "signing.passphrase"
    if not path.exists():
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_urlsafe(32))
    return path.read_text().strip()


def ldap_config(ldap: LdapSettings) -> LdapConfig:
    """The directory settings as `LdapConfig`; ValueError names what is wrong with them."""
    if not (ldap.url and ldap.user_base_dn and ldap.group_base_dn):
        raise ValueError("LDAP needs url, user_base_dn and group_base_dn")
    return LdapConfig(
        url=ldap.url,
        user_base_dn=ldap.user_base_dn,
        group_base_dn=ldap.group_base_dn,
        bind_dn=ldap.bind_dn,
        bind_password=ldap.bind_password.get_secret_value() if ldap.bind_password else None,
        user_filter=ldap.user_filter,
        username_attribute=ldap.username_attribute,
        email_attribute=ldap.email_attribute,
        display_name_attribute=ldap.display_name_attribute,
        group_filter=ldap.group_filter,
        group_name_attribute=ldap.group_name_attribute,
        start_tls=ldap.start_tls,
        ca_file=str(ldap.ca_file) if ldap.ca_file else None,
        timeout=ldap.timeout,
    )


def make_ldap(settings: Settings) -> LdapAccounts | None:
    if not settings.ldap.enabled:
        return None
    return LdapAccounts(LdapDirectory(ldap_config(settings.ldap)))


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
        self.proxies = networks(trusted_proxies)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            if scope["type"] == "lifespan":
                await self._lifespan(receive, send)
            return
        if self.proxies and scope.get("client"):
            self._forwarded_client(scope)
        if self.metrics is None:
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
            observe_request(route, method, status, perf_counter() - began)

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
                flush_metrics()
                self.ctx.engine.dispose()
                await send({"type": "lifespan.shutdown.complete"})
                return


def create_app(settings: Settings) -> TrustyardApp:
    ctx = make_context(settings)
    endpoint = MetricsEndpoint(settings.metrics, ctx.engine) if settings.metrics.enabled else None
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
    if settings.metrics.enabled:  # add this process's counts to the server's
        configure_metrics(settings.metrics_dir)
    return create_app(settings)
