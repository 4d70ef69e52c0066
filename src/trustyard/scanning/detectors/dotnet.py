""".NET NuGet packages an application was built with: its `*.deps.json`.

`libraries` keys are `Name/Version`; packages (`"type": "package"`) and runtime packs (a
self-contained app's runtime, key `runtimepack.Name/Version`) are components, the app's own
projects and framework references are not. The assemblies a package contributes
(`targets`, next to the deps.json once published) follow the deps.json in its locations.
"""

from __future__ import annotations

import json
import posixpath
from collections.abc import Iterable
from typing import Any

from trustyard.scanning.detectors.per_file import FileDetector
from trustyard.scanning.interfaces import Detector, FileEntry, Limits, metadata_want
from trustyard.scanning.model import NUGET, Component
from trustyard.scanning.purls import purl_text

DETECTOR_NAME = "dotnet"
MAX_ASSEMBLIES = 100
_KINDS = frozenset({"package", "runtimepack"})
_RUNTIMEPACK = "runtimepack."


def libraries(doc: Any) -> list[tuple[str, str, str]]:
    """(key, name, version) of each package library."""
    if not isinstance(doc, dict):
        return []
    libs = doc.get("libraries")
    if not isinstance(libs, dict):
        return []
    out: list[tuple[str, str, str]] = []
    for key, value in libs.items():
        if not isinstance(key, str) or not isinstance(value, dict):
            continue
        kind = value.get("type")
        if not isinstance(kind, str) or kind not in _KINDS:
            continue
        name, sep, version = key.rpartition("/")
        if name.startswith(_RUNTIMEPACK):
            name = name[len(_RUNTIMEPACK) :]
        if sep and name and version and "\n" not in key:
            out.append((key, name, version))
    return out


def assemblies(doc: dict[str, Any], key: str) -> list[str]:
    """The file names of the assemblies `targets` lists for one library."""
    names: list[str] = []
    targets = doc.get("targets")
    if not isinstance(targets, dict):
        return names
    for target in targets.values():
        entry = target.get(key) if isinstance(target, dict) else None
        if not isinstance(entry, dict):
            continue
        for section in ("runtime", "native"):
            files = entry.get(section)
            if isinstance(files, dict):
                for path in files:
                    if isinstance(path, str):
                        base = path.rpartition("/")[2]
                        if base and base not in names:
                            names.append(base)
    return names[:MAX_ASSEMBLIES]


def purl_for(name: str, version: str) -> str | None:
    return purl_text(type="nuget", name=name, version=version)


def wants(entry: FileEntry, limits: Limits) -> int:
    if entry.path.endswith(".deps.json"):
        return metadata_want(entry, limits.max_metadata_bytes)
    return 0


def read(entry: FileEntry, data: bytes) -> Iterable[Component]:
    try:
        doc = json.loads(data)
    except (ValueError, RecursionError):
        return []
    directory = entry.path.rpartition("/")[0]
    components: list[Component] = []
    for key, name, version in libraries(doc):
        purl = purl_for(name, version)
        if purl is None:
            continue
        files = [posixpath.join(directory, base) for base in assemblies(doc, key)]
        components.append(
            Component(
                ecosystem=NUGET,
                name=name,
                version=version,
                purl=purl,
                locations=(entry.path, *files),
                detector=DETECTOR_NAME,
            )
        )
    return components


DETECTOR: Detector = FileDetector(DETECTOR_NAME, wants, read)
