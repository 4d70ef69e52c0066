"""Scanning as the settings describe it: the service the server asks (on push and from
/api/v1), and the jobs a worker runs."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import Engine

from trustyard.config import Settings
from trustyard.jobs.queue import SqlJobQueue
from trustyard.jobs.registry import HandlerRegistry
from trustyard.jobs.scheduler import ScheduleSpec
from trustyard.scanning.interfaces import Limits
from trustyard.scanning.service import SCAN_KIND, ScanService
from trustyard.wiring.common import make_driver
from trustyard.wiring.events import make_outbox
from trustyard.wiring.policies import policy_consumers
from trustyard.wiring.vulnerabilities import match_on_scan


def make_scan_service(settings: Settings, queue: SqlJobQueue) -> ScanService:
    return ScanService(queue, enabled=settings.scanning.enabled)


def scan_limits(settings: Settings) -> Limits:
    scanning = settings.scanning
    return Limits(
        max_layer_bytes=scanning.max_layer_bytes,
        max_ratio=scanning.max_ratio,
        ratio_floor_bytes=scanning.ratio_floor_bytes,
        max_entries=scanning.max_entries,
        max_path_bytes=scanning.max_path_bytes,
        max_path_depth=scanning.max_path_depth,
        max_nesting=scanning.max_nesting,
        max_file_bytes=scanning.max_file_bytes,
        max_metadata_bytes=scanning.max_metadata_bytes,
        max_rpmdb_bytes=scanning.max_rpmdb_bytes,
        max_layer_components=scanning.max_layer_components,
        max_image_components=scanning.max_image_components,
        max_bom_bytes=scanning.max_bom_bytes,
    )


def register_scanning(
    handlers: HandlerRegistry,
    schedules: list[ScheduleSpec],
    settings: Settings,
    engine: Engine,
    queue: SqlJobQueue,
) -> None:
    """The `scan.image` job (images scanned from the registry's own storage) and the daily
    pruning of superseded scans and of layer results no scanner version reads."""
    from trustyard.scanning.jobs import PRUNE_KIND, PRUNE_SCHEDULE, ScanImage, prune_scans

    handler = ScanImage(
        engine,
        make_driver(settings),
        # matching first: the policies it triggers read the counts it stores
        make_outbox(
            queue, inline=[*match_on_scan(settings, queue), *policy_consumers(settings, queue)]
        ),
        limits=scan_limits(settings),
        max_concurrent=settings.scanning.max_concurrent_scans,
        progress_seconds=settings.scanning.progress_seconds,
    )
    handlers.register(SCAN_KIND, handler)
    retention = timedelta(days=settings.scanning.retention_days)
    handlers.register(PRUNE_KIND, prune_scans(engine, retention))
    schedules.append(PRUNE_SCHEDULE)
