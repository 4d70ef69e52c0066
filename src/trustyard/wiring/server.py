"""What a server process serves with, built once from the settings: `build_services` makes
every service (the registry context, tags, scans, webhooks, the metrics recorder) exactly
once; `app.py` only assembles the ASGI app around them."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Engine

from trustyard.auth.authorize import open_policy
from trustyard.config import Settings
from trustyard.content.hotreads import HotReads, SqliteHotReads, StoreHotReads
from trustyard.content.manifests import ManifestService
from trustyard.content.stores import ContentStore
from trustyard.content.tags import TagService
from trustyard.content.uploads import HashStates, UploadService
from trustyard.db.engine import is_sqlite, make_engine
from trustyard.db.writer import make_writer
from trustyard.metrics.recorder import Recorder
from trustyard.policies.facts import FactsLoader
from trustyard.policies.promotion import PromotionService
from trustyard.policies.service import PolicyService
from trustyard.policies.triggers import PolicyTriggers
from trustyard.registry.context import RegistryContext
from trustyard.scanning.service import ScanService
from trustyard.vulnerabilities.service import VulnDbTools
from trustyard.webhooks.service import WebhookService
from trustyard.wiring.accounts import make_accounts
from trustyard.wiring.common import make_driver
from trustyard.wiring.events import make_outbox, make_pull_recorder, make_webhook_service
from trustyard.wiring.jobs import make_queue
from trustyard.wiring.policies import (
    make_facts_loader,
    make_policy_service,
    make_policy_triggers,
    make_promotion_service,
)
from trustyard.wiring.scanning import make_scan_service
from trustyard.wiring.vulnerabilities import make_vulndb_tools


@dataclass(frozen=True)
class Services:
    """One server process's services. `context` carries what /v2 needs (and the accounts
    gate, None for an open registry); /api/v1 also uses `tags`, `scans` and `webhooks`.
    `recorder` counts requests, None with metrics off."""

    context: RegistryContext
    tags: TagService
    scans: ScanService
    webhooks: WebhookService
    recorder: Recorder | None
    vulndb: VulnDbTools
    policies: PolicyService
    promotions: PromotionService
    policy_facts: FactsLoader
    policy_triggers: PolicyTriggers


def make_hot_reads(engine: Engine, store: ContentStore) -> HotReads:
    if is_sqlite(engine) and engine.url.database:
        return SqliteHotReads(engine.url.database)
    return StoreHotReads(engine, store)


def build_services(settings: Settings, engine: Engine | None = None) -> Services:
    """Every service of a server process, each built once (one queue, one outbox, one
    `ScanService` for the push hook and /api/v1 alike)."""
    engine = engine or make_engine(settings.effective_database_url)
    driver = make_driver(settings)
    store = ContentStore()
    accounts = make_accounts(settings, engine)
    queue = make_queue(settings, engine)
    scans = make_scan_service(settings, queue)
    triggers = make_policy_triggers(settings, queue, driver)
    # scan on push first: a policy that needs the scan waits for it when it is queued
    outbox = make_outbox(queue, inline=[scans, triggers] if scans.enabled else [triggers])
    context = RegistryContext(
        engine=engine,
        store=store,
        uploads=UploadService(store, driver, HashStates()),
        manifests=ManifestService(store, make_hot_reads(engine, store)),
        driver=driver,
        authorize=accounts.authorizer() if accounts is not None else open_policy,
        url_prefix=(settings.server.public_url or "").rstrip("/"),
        body_timeout=settings.server.body_timeout,
        accounts=accounts,
        events=outbox,
        pulls=make_pull_recorder(settings, engine, outbox),
        writer=make_writer(engine),
    )
    return Services(
        context=context,
        tags=TagService(store, driver),
        scans=scans,
        webhooks=make_webhook_service(settings, queue),
        recorder=Recorder() if settings.metrics.enabled else None,
        vulndb=make_vulndb_tools(settings, engine, queue),
        policies=make_policy_service(settings),
        promotions=make_promotion_service(),
        policy_facts=make_facts_loader(settings, scans, driver),
        policy_triggers=triggers,
    )
