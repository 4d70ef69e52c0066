"""npm packages: installed `node_modules/**/package.json`, and the lock files of a project
(`package-lock.json` v1-v3, `npm-shrinkwrap.json`, npm's hidden
`node_modules/.package-lock.json`, `yarn.lock`, `pnpm-lock.yaml`).

A package installed and also named by a lock is one component (the installed package.json
first in its locations, then the locks). A project's lock entries count on their own only when
nothing of that project is installed in the layer (an image that ships the lock but bundles
its code): with node_modules present, the installed tree is the truth (a lock also lists
optional packages for other platforms). The project itself (its own package.json, the lock's
root entry) is not a dependency; neither are dev-only lock entries nor workspace links.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from trustyard.scanning.interfaces import (
    Collector,
    Detector,
    FileEntry,
    Limits,
    ScanContext,
    metadata_want,
)
from trustyard.scanning.licenses import any_of, spdx_expression
from trustyard.scanning.model import NPM, Component
from trustyard.scanning.purls import purl_text

PACKAGE_JSON_MAX_BYTES = 4 << 20

_NM = "node_modules/"
_LOCK_NAMES = frozenset({"package-lock.json", "npm-shrinkwrap.json", "yarn.lock", "pnpm-lock.yaml"})
_SUFFIXES = ("/package.json", *_LOCK_NAMES)  # `.package-lock.json` included
_HIDDEN_LOCK = "node_modules/.package-lock.json"
_LOCAL_VERSION = ("file:", "link:", "workspace:", "portal:")


def installed_position(path: str) -> bool:
    """`node_modules/<name>/package.json` or `node_modules/@scope/<name>/package.json`
    (at any depth); not a package.json deeper inside a package (test fixtures...)."""
    if not path.endswith("/package.json"):
        return False
    directory = path[: -len("/package.json")]
    cut = directory.rfind("/" + _NM)
    if cut >= 0:
        rest = directory[cut + 1 + len(_NM) :]
    elif directory.startswith(_NM):
        rest = directory[len(_NM) :]
    else:
        return False
    if not rest or rest.startswith("."):
        return False
    slash = rest.find("/")
    if slash < 0:
        return not rest.startswith("@")
    return rest.startswith("@") and rest.find("/", slash + 1) < 0 and slash + 1 < len(rest)


def project_root(path: str) -> str:
    """The directory of the project a file belongs to: what comes before its first
    `node_modules/` (or the lock file's directory)."""
    if path.startswith(_NM):
        return ""
    cut = path.find("/" + _NM)
    if cut >= 0:
        return path[:cut]
    return path.rpartition("/")[0]


def license_of(data: dict[str, Any]) -> str | None:
    """`license` (a string, or the old `{"type": ...}`) or the legacy `licenses` list
    (a choice between them: OR)."""
    declared = data.get("license")
    if isinstance(declared, dict):
        declared = declared.get("type")
    if isinstance(declared, str):
        return spdx_expression(declared)
    listed = data.get("licenses")
    if isinstance(listed, str):
        return spdx_expression(listed)
    if not isinstance(listed, list):
        return None
    texts = (item.get("type") if isinstance(item, dict) else item for item in listed)
    return any_of(spdx_expression(t) if isinstance(t, str) else None for t in texts)


def purl_for(name: str, version: str) -> str | None:
    namespace, _, bare = name.rpartition("/")
    return purl_text(type="npm", namespace=namespace or None, name=bare, version=version)


def _load_json(data: bytes) -> Any:
    try:
        return json.loads(data)
    except (ValueError, RecursionError):
        return None


def _valid(name: Any, version: Any) -> bool:
    return (
        isinstance(name, str)
        and isinstance(version, str)
        and bool(name)
        and bool(version)
        and len(name) <= 214
        and not version.startswith(_LOCAL_VERSION)
        and "\n" not in name
        and "\n" not in version
    )


def _name_from_key(key: str) -> str:
    cut = key.rfind(_NM)
    return key[cut + len(_NM) :] if cut >= 0 else ""


# --- lock files -> (name, version, license) ---------------------------------------------


def package_lock_entries(doc: Any) -> Iterator[tuple[str, str, str | None]]:
    """package-lock.json / npm-shrinkwrap.json: `packages` keyed by install path (v2, v3),
    else v1's nested `dependencies`."""
    if not isinstance(doc, dict):
        return
    packages = doc.get("packages")
    if isinstance(packages, dict):
        for key, entry in packages.items():
            if not isinstance(key, str) or _NM not in key or not isinstance(entry, dict):
                continue
            if entry.get("link") or entry.get("dev") is True:
                continue
            name = entry.get("name") or _name_from_key(key)
            version = entry.get("version")
            if _valid(name, version):
                yield str(name), str(version), license_of(entry)
        return
    stack: list[Any] = [doc.get("dependencies")]
    seen = 0
    while stack:
        deps = stack.pop()
        if not isinstance(deps, dict):
            continue
        for name, entry in deps.items():
            seen += 1
            if seen > 1_000_000 or not isinstance(entry, dict):
                continue
            stack.append(entry.get("dependencies"))
            if entry.get("dev") is True:
                continue
            version = entry.get("version")
            if _valid(name, version):
                yield str(name), str(version), None


_YARN_VERSION = re.compile(r'^\s+version:?\s+"?([^"\s]+)"?\s*$')


def yarn_lock_entries(text: str) -> Iterator[tuple[str, str, str | None]]:
    """yarn.lock, v1 (`"a@^1", a@~1:` then `  version "1.2.3"`) and berry
    (`"a@npm:^1":` then `  version: 1.2.3`); workspace and patch entries are left out."""
    name: str | None = None
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        if not line[0].isspace():
            name = _yarn_name(line) if line.endswith(":") else None
            continue
        if name is None:
            continue
        match = _YARN_VERSION.match(line)
        if match:
            version = match.group(1)
            if _valid(name, version) and not version.startswith("0.0.0-use.local"):
                yield name, version, None
            name = None


def _yarn_name(header: str) -> str | None:
    first = header[:-1].split(",", maxsplit=1)[0].strip().strip('"')
    if first.startswith("__metadata") or "@workspace:" in first or "@patch:" in first:
        return None
    at = first.find("@", 1)
    return first[:at] if at > 0 else None


_PNPM_KEY = re.compile(r"^  '?(/?(?:@[^/@\s']+/)?[^/@\s'(]+)[@/]([^()\s':_]+)")


def pnpm_lock_entries(text: str) -> Iterator[tuple[str, str, str | None]]:
    """pnpm-lock.yaml's `packages:` keys: `/a/1.0.0` (v5), `/a@1.0.0` (v6),
    `a@1.0.0` (v9), peer suffixes `(b@2)` / `_b@2` ignored."""
    inside = False
    for line in text.splitlines():
        if not line or line.lstrip().startswith("#"):
            continue
        if not line[0].isspace():
            inside = line.startswith("packages:")
            continue
        if not inside or not line.endswith(":") or line.startswith("   "):
            continue
        match = _PNPM_KEY.match(line)
        if match:
            name, version = match.group(1).lstrip("/"), match.group(2)
            if _valid(name, version):
                yield name, version, None


# --- the collector -----------------------------------------------------------------------


@dataclass
class _Found:
    name: str
    version: str
    installed: list[str] = field(default_factory=list)
    locks: list[str] = field(default_factory=list)
    license: str | None = None


class _NpmCollector:
    def __init__(self, limits: Limits) -> None:
        self._json_max = min(PACKAGE_JSON_MAX_BYTES, limits.max_file_bytes)
        self._lock_max = limits.max_metadata_bytes
        # (project root, name, version) -> what was found
        self._found: dict[tuple[str, str, str], _Found] = {}
        self._installed_roots: set[str] = set()

    def wants(self, entry: FileEntry) -> int:
        if not entry.path.endswith(_SUFFIXES):
            return 0
        name = entry.name
        if name == "package.json":
            return self._json_max if _NM in entry.path else 0
        if name in _LOCK_NAMES or name == ".package-lock.json":
            return metadata_want(entry, self._lock_max)
        return 0

    def take(self, entry: FileEntry, data: bytes) -> None:
        path = entry.path
        name = entry.name
        if name == "package.json":
            self._take_installed(path, data)
        elif name == ".package-lock.json":
            if path == _HIDDEN_LOCK or path.endswith("/" + _HIDDEN_LOCK):
                self._take_lock(path, package_lock_entries(_load_json(data)))
        elif _NM in path:
            return  # a lock a package ships for its own development
        elif name in {"package-lock.json", "npm-shrinkwrap.json"}:
            self._take_lock(path, package_lock_entries(_load_json(data)))
        elif name == "yarn.lock":
            self._take_lock(path, yarn_lock_entries(data.decode("utf-8", "replace")))
        else:
            self._take_lock(path, pnpm_lock_entries(data.decode("utf-8", "replace")))

    def _take_installed(self, path: str, data: bytes) -> None:
        if not installed_position(path):
            return
        doc = _load_json(data)
        if not isinstance(doc, dict):
            return
        name, version = doc.get("name"), doc.get("version")
        if not _valid(name, version):
            return
        name, version = str(name), str(version)
        root = project_root(path)
        self._installed_roots.add(root)
        found = self._found.setdefault((root, name, version), _Found(name, version))
        found.installed.append(path)
        found.license = found.license or license_of(doc)

    def _take_lock(self, path: str, entries: Iterable[tuple[str, str, str | None]]) -> None:
        root = project_root(path)
        try:
            for name, version, license in entries:
                found = self._found.setdefault((root, name, version), _Found(name, version))
                if path not in found.locks:
                    found.locks.append(path)
                found.license = found.license or license
        except (ValueError, TypeError, AttributeError, RecursionError):
            return

    def finish(self) -> Iterable[Component]:
        out: list[Component] = []
        for (root, _, _), found in self._found.items():
            if not found.installed and root in self._installed_roots:
                continue
            purl = purl_for(found.name, found.version)
            if purl is None:
                continue
            out.append(
                Component(
                    ecosystem=NPM,
                    name=found.name,
                    version=found.version,
                    purl=purl,
                    locations=tuple(sorted(found.installed)) + tuple(sorted(found.locks)),
                    detector=NpmDetector.name,
                    licenses=found.license,
                )
            )
        return out


class NpmDetector:
    name = "npm"

    def collector(self, context: ScanContext) -> Collector:
        return _NpmCollector(context.limits)


DETECTOR: Detector = NpmDetector()
