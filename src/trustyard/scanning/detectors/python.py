"""Python distributions: `*.dist-info/METADATA`, `*.egg-info/PKG-INFO`, `*.egg-info` files.

A distribution is named exactly as its metadata's `Name` says (`PyYAML`, even from a
`pyyaml-5.3.dist-info` directory); the purl carries the normalised name (PEP 503). The
files it installed (`RECORD`, `installed-files.txt`) become its further locations.
"""

from __future__ import annotations

import csv
import posixpath
import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from trustyard.scanning.interfaces import (
    Collector,
    Detector,
    FileEntry,
    Limits,
    ScanContext,
    metadata_want,
)
from trustyard.scanning.licenses import any_of, spdx_expression
from trustyard.scanning.model import PYPI, Component
from trustyard.scanning.purls import purl_text

MAX_OWNED_LOCATIONS = 1000  # files listed after the evidence; the rest are left out

_METADATA_SUFFIXES = (
    ".dist-info/METADATA",
    ".egg-info/PKG-INFO",
    ".egg-info",  # a file: distutils' and Debian's single-file egg-info
    ".egg/EGG-INFO/PKG-INFO",
)
_FILES_SUFFIXES = (".dist-info/RECORD", ".egg-info/installed-files.txt")
_WANTED = frozenset({"name", "version", "license", "license-expression", "classifier"})
_NORMALISE = re.compile(r"[-_.]+")
_LICENSE_PREFIX = "License :: "

# Trove classifiers (their last part) whose SPDX identifier `licenses.spdx_expression`
# cannot guess from the words.
_CLASSIFIERS = {
    "MIT License": "MIT",
    "MIT No Attribution License (MIT-0)": "MIT-0",
    "ISC License (ISCL)": "ISC",
    "The Unlicense (Unlicense)": "Unlicense",
    "Mozilla Public License 1.1 (MPL 1.1)": "MPL-1.1",
    "Mozilla Public License 2.0 (MPL 2.0)": "MPL-2.0",
    "GNU General Public License v2 (GPLv2)": "GPL-2.0-only",
    "GNU General Public License v2 or later (GPLv2+)": "GPL-2.0-or-later",
    "GNU General Public License v3 (GPLv3)": "GPL-3.0-only",
    "GNU General Public License v3 or later (GPLv3+)": "GPL-3.0-or-later",
    "GNU Lesser General Public License v2 (LGPLv2)": "LGPL-2.0-only",
    "GNU Lesser General Public License v2 or later (LGPLv2+)": "LGPL-2.0-or-later",
    "GNU Lesser General Public License v3 (LGPLv3)": "LGPL-3.0-only",
    "GNU Lesser General Public License v3 or later (LGPLv3+)": "LGPL-3.0-or-later",
    "GNU General Public License (GPL)": "GPL-2.0-or-later",
    "GNU Library or Lesser General Public License (LGPL)": "LGPL-2.0-or-later",
    "GNU Affero General Public License v3": "AGPL-3.0-only",
    "GNU Affero General Public License v3 or later (AGPLv3+)": "AGPL-3.0-or-later",
    "Eclipse Public License 1.0 (EPL-1.0)": "EPL-1.0",
    "Eclipse Public License 2.0 (EPL-2.0)": "EPL-2.0",
    "European Union Public Licence 1.2 (EUPL 1.2)": "EUPL-1.2",
    "Boost Software License 1.0 (BSL-1.0)": "BSL-1.0",
    "Historical Permission Notice and Disclaimer (HPND)": "HPND",
    "Universal Permissive License (UPL)": "UPL-1.0",
    "Zope Public License": "ZPL-2.1",
    "zlib/libpng License": "Zlib",
    "CC0 1.0 Universal (CC0 1.0) Public Domain Dedication": "CC0-1.0",
}


def parse_headers(data: bytes) -> dict[str, list[str]]:
    """The headers of a METADATA / PKG-INFO file (RFC 822 style) that name, version and
    license a distribution: lower-cased keys -> values. Stops at the first blank line (the
    body is the description); continuation lines extend the previous value."""
    end = data.find(b"\n\n")
    text = (data if end < 0 else data[:end]).decode("utf-8", "replace")
    fields: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in text.splitlines():
        if not line:
            break  # a line of spaces inside an old PKG-INFO's Description continues it
        if line[0] in " \t":
            if current is not None:
                current[-1] += "\n" + line.strip()
            continue
        key, sep, value = line.partition(":")
        key = key.strip().lower()
        if not sep or key not in _WANTED:
            current = None
            continue
        current = fields.setdefault(key, [])
        current.append(value.strip())
    return fields


def license_of(fields: dict[str, list[str]]) -> str | None:
    """PEP 639's License-Expression, else a short License field (a whole licence text is
    no identifier), else the licence classifiers (several of them: a choice, OR); the
    classifiers also win over a License field that maps to no SPDX identifier."""
    expression = fields.get("license-expression")
    if expression and expression[0]:
        return spdx_expression(expression[0])
    declared: str | None = None
    license_field = fields.get("license")
    if license_field:
        text = license_field[0]
        if text and "\n" not in text and len(text) <= 100:
            declared = spdx_expression(text)
    if declared and not declared.startswith("LicenseRef-"):
        return declared
    return _classifier_license(fields) or declared


def _classifier_license(fields: dict[str, list[str]]) -> str | None:
    found: list[str | None] = []
    for classifier in fields.get("classifier", ()):
        if not classifier.startswith(_LICENSE_PREFIX):
            continue
        last = classifier.rpartition(" :: ")[2].strip()
        if last != "OSI Approved":
            found.append(_CLASSIFIERS.get(last) or spdx_expression(last))
    return any_of(found)


def purl_for(name: str, version: str) -> str | None:
    normal = _NORMALISE.sub("-", name).lower()
    return purl_text(type="pypi", name=normal, version=version)


@dataclass
class _Dist:
    evidence: str = ""  # METADATA / PKG-INFO / the .egg-info file
    fields: dict[str, list[str]] = field(default_factory=dict)
    files_list: str = ""  # RECORD / installed-files.txt
    files: list[str] = field(default_factory=list)


def _record_paths(data: bytes, base: str, own_dir: str) -> list[str]:
    """RECORD rows (`path,hash,size`) -> image paths, without the .pyc caches and the
    dist-info directory's own files; at most MAX_OWNED_LOCATIONS."""
    out: list[str] = []
    lines = data.decode("utf-8", "replace").splitlines()
    try:
        for row in csv.reader(lines):
            if not row or not row[0] or row[0].endswith(".pyc"):
                continue
            path = _resolve(base, row[0])
            if path and not path.startswith(own_dir):
                out.append(path)
                if len(out) >= MAX_OWNED_LOCATIONS:
                    break
    except csv.Error:
        pass
    return out


def _installed_files(data: bytes, egg_dir: str) -> list[str]:
    """installed-files.txt: paths relative to the .egg-info directory."""
    out: list[str] = []
    for raw in data.decode("utf-8", "replace").splitlines():
        line = raw.strip()
        if not line or line.endswith(".pyc") or line.startswith("./"):
            continue
        path = _resolve(egg_dir, line)
        if path:
            out.append(path)
            if len(out) >= MAX_OWNED_LOCATIONS:
                break
    return out


def _resolve(base: str, relative: str) -> str | None:
    if relative.startswith("/"):
        path = posixpath.normpath(relative).lstrip("/")
    else:
        path = posixpath.normpath(posixpath.join(base, relative))
    if path.startswith("../") or path in {"", ".", ".."}:
        return None
    return path


class _PythonCollector:
    def __init__(self, limits: Limits) -> None:
        self._metadata_max = limits.max_metadata_bytes
        self._dists: dict[str, _Dist] = {}

    def wants(self, entry: FileEntry) -> int:
        path = entry.path
        if path.endswith(_METADATA_SUFFIXES) or path.endswith(_FILES_SUFFIXES):
            return metadata_want(entry, self._metadata_max)
        return 0

    def take(self, entry: FileEntry, data: bytes) -> None:
        path = entry.path
        key = path if path.endswith(".egg-info") else path.rpartition("/")[0]
        dist = self._dists.setdefault(key, _Dist())
        name = entry.name
        if name == "RECORD":
            dist.files_list = path
            dist.files = _record_paths(data, key.rpartition("/")[0], key + "/")
        elif name == "installed-files.txt":
            dist.files_list = path
            dist.files = _installed_files(data, key)
        else:
            dist.evidence = path
            dist.fields = parse_headers(data)

    def finish(self) -> Iterable[Component]:
        found: list[Component] = []
        for dist in self._dists.values():
            component = _component(dist)
            if component is not None:
                found.append(component)
        return found


def _component(dist: _Dist) -> Component | None:
    names = dist.fields.get("name")
    versions = dist.fields.get("version")
    if not dist.evidence or not names or not versions:
        return None
    name, version = names[0].strip(), versions[0].strip()
    if not name or not version or "\n" in name or "\n" in version:
        return None
    purl = purl_for(name, version)
    if purl is None:
        return None
    locations = [dist.evidence]
    if dist.files_list:
        locations.append(dist.files_list)
    locations.extend(p for p in dist.files if p not in (dist.evidence, dist.files_list))
    return Component(
        ecosystem=PYPI,
        name=name,
        version=version,
        purl=purl,
        locations=tuple(dict.fromkeys(locations)),
        detector=PythonDetector.name,
        licenses=license_of(dist.fields),
    )


class PythonDetector:
    name = "python"

    def collector(self, context: ScanContext) -> Collector:
        return _PythonCollector(context.limits)


DETECTOR: Detector = PythonDetector()
