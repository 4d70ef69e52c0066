"""The vulnerability database as the settings describe it: the importer of bundles (`trustyard
vulndb import`, the admin upload and the online update), the online update and its job, and
the service that reads it."""

from __future__ import annotations

from sqlalchemy import Connection, Engine

from trustyard import __version__
from trustyard.config import Settings
from trustyard.db.engine import read_tx
from trustyard.events.model import EventConsumer
from trustyard.jobs.queue import SqlJobQueue
from trustyard.jobs.registry import HandlerRegistry
from trustyard.jobs.scheduler import ScheduleSpec
from trustyard.scanning.stores import ScanStore
from trustyard.vulnerabilities.bundles import BundleLimits
from trustyard.vulnerabilities.images import ImageMatcher, ImageStore
from trustyard.vulnerabilities.importer import Importer, SwitchHook
from trustyard.vulnerabilities.interfaces import Package
from trustyard.vulnerabilities.online import OnlineUpdater, UpdateConfig
from trustyard.vulnerabilities.service import VulnDbTools, VulnerabilityService
from trustyard.wiring.policies import make_policy_triggers, policy_consumers


def bundle_limits(settings: Settings) -> BundleLimits:
    """The settings' bounds of one bundle (offline import, upload and download alike); the
    rest (one entry's size, names) are the reader's own."""
    vulnerabilities = settings.vulnerabilities
    return BundleLimits(
        entries=vulnerabilities.max_bundle_entries,
        total_bytes=vulnerabilities.max_bundle_bytes,
        ratio=vulnerabilities.max_bundle_ratio,
    )


def make_importer(settings: Settings, engine: Engine) -> Importer:
    """The importer every import goes through (CLI, upload, online update), bounded by the
    settings' bundle limits."""
    return Importer(
        engine, limits=bundle_limits(settings), on_switch=rematch_hook(settings, engine)
    )


def rematch_hook(settings: Settings, engine: Engine) -> SwitchHook | None:
    """With matching on: every switch enqueues, in its own transaction, the `vulns.rematch`
    jobs of the packages it changed (the queue only enqueues here: no worker settings)."""
    if not settings.vulnerabilities.enabled:
        return None
    from trustyard.vulnerabilities.rematch import enqueue_rematch

    queue = SqlJobQueue(engine, max_attempts=settings.jobs.max_attempts)

    def hook(conn: Connection, source: str, packages: frozenset[Package]) -> None:
        enqueue_rematch(queue, conn, source, packages)

    return hook


def make_vulnerability_service(settings: Settings) -> VulnerabilityService:
    del settings
    return VulnerabilityService()


def make_image_store() -> ImageStore:
    """The stored vulnerabilities of images (reads for /api/v1 and exports; writes for
    matching), reading scans through scanning's store."""
    return ImageStore(ScanStore())


def make_image_matcher(settings: Settings) -> ImageMatcher:
    return ImageMatcher(make_image_store(), make_vulnerability_service(settings))


def match_on_scan(settings: Settings, queue: SqlJobQueue) -> list[EventConsumer]:
    """The scan job's in-transaction consumers: matching each completed scan (matching on)."""
    if not settings.vulnerabilities.enabled:
        return []
    from trustyard.vulnerabilities.rematch import MatchOnScan

    return [MatchOnScan(make_image_matcher(settings), queue)]


def make_updater(settings: Settings, engine: Engine) -> OnlineUpdater:
    """The online update: the configured sources, or osv.dev's all.zip of every ecosystem
    the component index has seen; downloads under `<data_dir>/vulndb/downloads`."""
    vulnerabilities = settings.vulnerabilities
    scans = ScanStore()

    def seen() -> set[tuple[str, str]]:
        with read_tx(engine) as conn:
            return scans.ecosystems_seen(conn)

    config = UpdateConfig(
        downloads=settings.data_dir / "vulndb" / "downloads",
        timeout=vulnerabilities.update_timeout_seconds,
        max_bytes=vulnerabilities.max_bundle_bytes,
        user_agent=f"trustyard/{__version__} (vulnerability database update)",
    )
    return OnlineUpdater(
        engine,
        make_importer(settings, engine),
        config,
        sources=vulnerabilities.update_sources,
        base_url=vulnerabilities.update_base_url,
        seen=seen,
    )


def register_vulnerabilities(
    handlers: HandlerRegistry,
    schedules: list[ScheduleSpec],
    settings: Settings,
    engine: Engine,
    queue: SqlJobQueue | None = None,
) -> None:
    """The `vulndb.update` job (always: an admin may ask for one), scheduled by
    `vulnerabilities.update_cron` when it is set; with matching on (and a `queue` to publish
    through), `vulns.match` and `vulns.rematch`."""
    from trustyard.vulnerabilities.jobs import UPDATE_KIND, UpdateDatabase, update_schedule

    handlers.register(UPDATE_KIND, UpdateDatabase(make_updater(settings, engine)))
    if settings.vulnerabilities.enabled and queue is not None:
        from trustyard.vulnerabilities.jobs import MatchScan, RematchImages
        from trustyard.vulnerabilities.rematch import MATCH_KIND, REMATCH_KIND, Rematcher
        from trustyard.wiring.events import make_outbox

        matcher = make_image_matcher(settings)
        triggers = make_policy_triggers(settings, queue)

        def matched(conn: Connection, repository_id: int, digest: str) -> None:
            triggers.counts_changed(
                conn, repository_id=repository_id, digest=digest, trigger="vulnerabilities"
            )

        handlers.register(MATCH_KIND, MatchScan(engine, matcher, matched))
        outbox = make_outbox(queue, inline=policy_consumers(settings, queue))
        rematcher = Rematcher(engine, matcher, outbox)
        handlers.register(REMATCH_KIND, RematchImages(rematcher))
    if settings.vulnerabilities.update_cron:
        schedules.append(update_schedule(settings.vulnerabilities.update_cron))


def make_vulndb_tools(settings: Settings, engine: Engine, queue: SqlJobQueue) -> VulnDbTools:
    return VulnDbTools(
        importer=make_importer(settings, engine),
        queue=queue,
        service=make_vulnerability_service(settings),
        uploads=settings.data_dir / "vulndb" / "uploads",
        max_upload_bytes=settings.vulnerabilities.max_upload_bytes,
    )
