"""The vulnerability database as the settings describe it: the importer of offline bundles
(`trustyard vulndb import`, later the admin upload and the online update) and the service
that reads it."""

from __future__ import annotations

from sqlalchemy import Engine

from trustyard.config import Settings
from trustyard.vulnerabilities.bundles import BundleLimits
from trustyard.vulnerabilities.importer import Importer
from trustyard.vulnerabilities.service import VulnerabilityService


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
    return Importer(engine, limits=bundle_limits(settings))


def make_vulnerability_service(settings: Settings) -> VulnerabilityService:
    del settings
    return VulnerabilityService()
