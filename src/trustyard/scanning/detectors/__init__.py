"""The detectors, one module each; every module exposes `DETECTOR` (a `Detector`)."""

from __future__ import annotations

import importlib

from trustyard.scanning.interfaces import Detector

MODULES = (
    "os_release",
    "dpkg",
    "apk",
    "rpm",
    "python",
    "npm",
    "java",
    "ruby",
    "php",
    "dotnet",
    "golang",
    "rust",
    "fingerprints",
)


def default_detectors() -> list[Detector]:
    """Every detector, in a fixed order (OS packages first: they own files)."""
    detectors: list[Detector] = []
    for module in MODULES:
        detectors.append(importlib.import_module(f"{__name__}.{module}").DETECTOR)
    return detectors
