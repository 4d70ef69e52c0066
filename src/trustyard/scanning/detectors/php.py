"""PHP packages Composer installed: `vendor/composer/installed.json` (Composer 1 writes a
list of packages, Composer 2 `{"packages": [...]}`). The version is kept as Composer wrote it
(`v5.4.0`); a list of licences is a choice between them (OR), as Composer defines it."""

from __future__ import annotations

import json
import posixpath
from collections.abc import Iterable
from typing import Any

from trustyard.scanning.detectors.per_file import FileDetector
from trustyard.scanning.interfaces import Detector, FileEntry, Limits, metadata_want
from trustyard.scanning.licenses import any_of, spdx_expression
from trustyard.scanning.model import COMPOSER, Component
from trustyard.scanning.purls import purl_text

DETECTOR_NAME = "php"
_SUFFIX = "vendor/composer/installed.json"


def packages_of(doc: Any) -> list[dict[str, Any]]:
    if isinstance(doc, dict):
        doc = doc.get("packages")
    if not isinstance(doc, list):
        return []
    return [p for p in doc if isinstance(p, dict)]


def license_of(declared: Any) -> str | None:
    if isinstance(declared, str):
        declared = [declared]
    if not isinstance(declared, list):
        return None
    return any_of(spdx_expression(t) if isinstance(t, str) else None for t in declared)


def purl_for(name: str, version: str) -> str | None:
    vendor, _, package = name.rpartition("/")
    return purl_text(type="composer", namespace=vendor or None, name=package, version=version)


def wants(entry: FileEntry, limits: Limits) -> int:
    path = entry.path
    if path.endswith(_SUFFIX) and (len(path) == len(_SUFFIX) or path[-len(_SUFFIX) - 1] == "/"):
        return metadata_want(entry, limits.max_metadata_bytes)
    return 0


def read(entry: FileEntry, data: bytes) -> Iterable[Component]:
    try:
        doc = json.loads(data)
    except (ValueError, RecursionError):
        return []
    composer_dir = entry.path.rpartition("/")[0]
    components: list[Component] = []
    for package in packages_of(doc):
        name, version = package.get("name"), package.get("version")
        if not isinstance(name, str) or not isinstance(version, str):
            continue
        if not name or not version or "\n" in name or "\n" in version:
            continue
        purl = purl_for(name, version)
        if purl is None:
            continue
        locations = [entry.path]
        install_path = package.get("install-path")
        if isinstance(install_path, str) and install_path:
            where = posixpath.normpath(posixpath.join(composer_dir, install_path))
            if not where.startswith("..") and where != ".":
                locations.append(where)
        components.append(
            Component(
                ecosystem=COMPOSER,
                name=name,
                version=version,
                purl=purl,
                locations=tuple(locations),
                detector=DETECTOR_NAME,
                licenses=license_of(package.get("license")),
            )
        )
    return components


DETECTOR: Detector = FileDetector(DETECTOR_NAME, wants, read)
