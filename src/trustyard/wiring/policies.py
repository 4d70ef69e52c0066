"""Promotion policies as the settings describe them: the service (create, change, compile),
promotion, the facts loader with what the other features hand it (scanning's components,
vulnerabilities' counts after triage, a scan on request), the triggers (an outbox consumer)
and the jobs a worker runs. Features never import each other: the adapters below turn their
plain values into the policy engine's facts."""

from __future__ import annotations

import gc
import threading
from collections import OrderedDict
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime

from sqlalchemy import Connection, Engine

from trustyard.config import Settings
from trustyard.content.images import ImageReads
from trustyard.events.model import EventConsumer
from trustyard.jobs.queue import SqlJobQueue
from trustyard.jobs.registry import HandlerRegistry
from trustyard.policies.facts import FactsLoader
from trustyard.policies.interfaces import ComponentFact, VulnCounts
from trustyard.policies.promotion import PromotionService
from trustyard.policies.service import PolicyService
from trustyard.policies.stores import PolicyStore
from trustyard.policies.triggers import PolicyTriggers
from trustyard.scanning.compact import ComponentTuple
from trustyard.scanning.policy_facts import ScanComponents
from trustyard.scanning.service import ScanService
from trustyard.scanning.stores import ScanStore
from trustyard.storage.interfaces import BlobDriver
from trustyard.vulnerabilities.images import ImageStore
from trustyard.vulnerabilities.ordering import component_version_order
from trustyard.vulnerabilities.policy_counts import TriagedCounts
from trustyard.wiring.common import make_driver

# Components kept in memory per process, over all cached scans (a scan's BOM never changes):
# about 36 MiB for 300,000 components of 1,000 images, their strings interned.
CACHED_COMPONENTS = 400_000


class ScanComponentFacts:
    """A `ComponentSource` over scanning's stored BOMs: each manifest's latest succeeded
    scan's components, converted once per scan and kept (bounded) since a scan never
    changes."""

    def __init__(self, reader: ScanComponents, limit: int = CACHED_COMPONENTS) -> None:
        self.reader = reader
        self.limit = limit
        self._held = 0
        self._cache: OrderedDict[tuple[int, int, str], tuple[ComponentFact, ...]] = OrderedDict()
        self._lock = threading.Lock()

    def components(
        self, conn: Connection, repository_id: int, digests: Sequence[str]
    ) -> Mapping[str, Sequence[ComponentFact]]:
        latest = self.reader.latest(conn, repository_id, digests)
        found: dict[str, tuple[ComponentFact, ...]] = {}
        missing: dict[int, str] = {}
        with self._lock:
            for digest, scan_id in latest.items():
                held = self._cache.get((scan_id, repository_id, digest))
                if held is None:
                    missing[scan_id] = digest
                else:
                    self._cache.move_to_end((scan_id, repository_id, digest))
                    found[digest] = held
        if missing:
            with _collection_paused():
                converted = self.reader.components(conn, missing, _fact)
            for scan_id, listed in converted.items():
                facts = tuple(listed)
                found[missing[scan_id]] = facts
                self._keep((scan_id, repository_id, missing[scan_id]), facts)
        return found

    def _keep(self, key: tuple[int, int, str], facts: tuple[ComponentFact, ...]) -> None:
        with self._lock:
            if key in self._cache or len(facts) > self.limit:
                return
            self._cache[key] = facts
            self._held += len(facts)
            while self._held > self.limit:
                _, dropped = self._cache.popitem(last=False)
                self._held -= len(dropped)


@contextmanager
def _collection_paused() -> Iterator[None]:
    """No cyclic garbage collection while BOMs become records: a repository's worth makes
    hundreds of thousands of acyclic objects, and each collection the allocations trigger
    walks every one of them again for nothing (a third of a cold load of 1,000 images: 0.5 s
    of 1.7 s, bench/policy_eval.py). Reference counting still frees as usual; the collector
    runs again afterwards."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


# One shared record per distinct component: images share most of theirs (a base image's
# packages), so the per-scan cache holds each once. A record is its own key. Emptied when it
# grows past the bound.
_SHARED: dict[ComponentFact, ComponentFact] = {}
_SHARED_LIMIT = 1 << 20


def _fact(key: ComponentTuple) -> ComponentFact:
    # a named tuple equals its plain tuple
    found: ComponentFact | None = _SHARED.get(key)  # type: ignore[call-overload]
    if found is None:
        if len(_SHARED) >= _SHARED_LIMIT:
            _SHARED.clear()
        found = _MAKE(key)  # tuple.__new__ in C, not the named tuple's Python __new__
        _SHARED[found] = found
    return found


_MAKE = ComponentFact._make


class TriagedCountFacts:
    """A `CountSource` over vulnerabilities' stored findings, after triage."""

    def __init__(self, counts: TriagedCounts) -> None:
        self.counts_after_triage = counts

    def counts(
        self,
        conn: Connection,
        repository_id: int,
        namespace: str,
        digests: Sequence[str],
        now: datetime,
    ) -> Mapping[str, VulnCounts]:
        found = self.counts_after_triage.counts(conn, repository_id, namespace, digests, now)
        return {
            digest: VulnCounts(c.critical, c.major, c.minor, c.unknown)
            for digest, c in found.items()
        }


def make_policy_service(settings: Settings) -> PolicyService:
    return PolicyService(PolicyStore(), settings.policies, component_version_order)


def make_promotion_service() -> PromotionService:
    return PromotionService()


def make_facts_loader(
    settings: Settings, scans: ScanService, driver: BlobDriver | None = None
) -> FactsLoader:
    """Facts of stored images; components when scanning is on, counts when matching is."""
    images = ImageReads(driver or make_driver(settings))
    components = ScanComponentFacts(ScanComponents(scans)) if settings.scanning.enabled else None
    counts = (
        TriagedCountFacts(TriagedCounts(ImageStore(ScanStore())))
        if settings.vulnerabilities.enabled
        else None
    )
    return FactsLoader(images, components, counts)


def make_policy_triggers(
    settings: Settings, queue: SqlJobQueue, driver: BlobDriver | None = None
) -> PolicyTriggers:
    return PolicyTriggers(
        queue, ImageReads(driver or make_driver(settings)), scan_on_push=settings.scanning.enabled
    )


def policy_consumers(settings: Settings, queue: SqlJobQueue) -> list[EventConsumer]:
    """The in-transaction consumers that start policy runs (for any outbox that publishes
    pushes, scan ends or re-matches)."""
    return [make_policy_triggers(settings, queue)]


def register_policies(
    handlers: HandlerRegistry,
    settings: Settings,
    engine: Engine,
    queue: SqlJobQueue,
    scans: ScanService,
) -> None:
    """`policies.push`, `policies.evaluate` and `policies.run`; their promotions are
    published through an outbox whose in-transaction consumers are scan on push and the
    triggers (chains)."""
    from trustyard.policies.jobs import (
        EVALUATE_KIND,
        PUSH_KIND,
        RUN_KIND,
        EvaluatePolicy,
        PushPolicies,
        RunPolicy,
    )
    from trustyard.policies.runner import CreatorCheck, PolicyRunner
    from trustyard.wiring.events import make_outbox

    driver = make_driver(settings)
    triggers = make_policy_triggers(settings, queue, driver)
    inline: list[EventConsumer] = [scans] if scans.enabled else []
    may_push = None
    if settings.auth.enabled:
        from trustyard.auth.access import AccessPolicy, Authenticator

        may_push = CreatorCheck(Authenticator(), AccessPolicy())
    runner = PolicyRunner(
        engine,
        make_policy_service(settings),
        make_facts_loader(settings, scans, driver),
        make_promotion_service(),
        make_outbox(queue, inline=[*inline, triggers]),
        triggers,
        max_depth=settings.policies.max_depth,
        requester=ScanComponents(scans) if scans.enabled else None,
        may_push=may_push,
    )
    handlers.register(PUSH_KIND, PushPolicies(engine, triggers))
    handlers.register(EVALUATE_KIND, EvaluatePolicy(runner))
    handlers.register(RUN_KIND, RunPolicy(runner))
