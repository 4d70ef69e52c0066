"""The vulnerability database as the settings describe it: the importer of offline bundles
(`trustyard vulndb import`, later the admin upload and the online update) and the service
that reads it."""

from __future__ import annotations

from sqlalchemy import Engine

from trustyard.config import Settings
from trustyard.vulnerabilities.importer import Importer
from trustyard.vulnerabilities.service import VulnerabilityService


def make_importer(settings: Settings, engine: Engine) -> Importer:
    """The bundle limits are the importer's defaults until the settings name them."""
    del settings
    return Importer(engine)


def make_vulnerability_service(settings: Settings) -> VulnerabilityService:
    del settings
    return VulnerabilityService()
