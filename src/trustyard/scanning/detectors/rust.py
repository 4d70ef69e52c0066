"""Rust crates compiled into binaries built with `cargo auditable`: the `.dep-v0` section
(ELF, PE, Mach-O; any name or path) holds zlib-compressed JSON

    {"packages": [{"name", "version", "source", "kind", "dependencies", "root"}, ...]}

Every package is reported (ecosystem `cargo`, purl `pkg:cargo/name@version`), the root
package (the binary's own crate) included, as Syft does; except build-time dependencies
(`"kind": "build"`: build scripts, proc-macros), whose code is not in the binary. The root
carries a `root` property and every package its `source` (crates.io, git, local...).
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Iterable, Iterator
from typing import Any

from trustyard.scanning.binaries import wanted_bytes
from trustyard.scanning.binaries.executable import parse
from trustyard.scanning.detectors.per_file import FileDetector
from trustyard.scanning.interfaces import FileEntry
from trustyard.scanning.model import CARGO, Component
from trustyard.scanning.purls import purl_text

DETECTOR_NAME = "rust"
SECTION = ".dep-v0"
MAX_JSON_BYTES = 8 << 20  # cargo-auditable's own readers stop at 8 MiB too


def read_audit_packages(data: bytes | memoryview) -> list[dict[str, Any]] | None:
    """The package list of a binary's `.dep-v0` section, or None when it has none (or a
    corrupt one)."""
    for executable in parse(data):
        section = executable.section(SECTION)
        if section is None or not section.size:
            continue
        try:
            inflater = zlib.decompressobj()
            text = inflater.decompress(executable.contents(section), MAX_JSON_BYTES + 1)
            if len(text) > MAX_JSON_BYTES:
                return None
            document = json.loads(text)
        except (zlib.error, ValueError, RecursionError):
            return None
        packages = document.get("packages") if isinstance(document, dict) else None
        if isinstance(packages, list):
            return [package for package in packages if isinstance(package, dict)]
        return None
    return None


def components_of(packages: list[dict[str, Any]], path: str) -> Iterator[Component]:
    seen: set[tuple[str, str]] = set()
    for package in packages:
        name, version = package.get("name"), package.get("version")
        if not isinstance(name, str) or not isinstance(version, str) or not name or not version:
            continue
        if package.get("kind", "runtime") == "build" or (name, version) in seen:
            continue
        if any(c.isspace() for c in name + version):
            continue
        purl = purl_text(type="cargo", name=name, version=version)
        if purl is None:
            continue
        seen.add((name, version))
        properties: list[tuple[str, str]] = []
        source = package.get("source")
        if isinstance(source, str) and source:
            properties.append(("source", source))
        if package.get("root") is True:
            properties.append(("root", "true"))
        yield Component(
            ecosystem=CARGO,
            name=name,
            version=version,
            purl=purl,
            locations=(path,),
            detector=DETECTOR_NAME,
            properties=tuple(sorted(properties)),
        )


def read(entry: FileEntry, data: bytes) -> Iterable[Component]:
    try:
        packages = read_audit_packages(data)
        return list(components_of(packages, entry.path)) if packages else []
    except Exception:  # a corrupt binary is not a scan failure
        return []


DETECTOR = FileDetector(DETECTOR_NAME, wanted_bytes, read)
