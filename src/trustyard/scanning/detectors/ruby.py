"""Ruby gems: the gemspecs RubyGems writes for installed gems (`specifications/*.gemspec`,
default gems under `specifications/default/`).

The file is Ruby code; it is read with patterns for the lines RubyGems itself writes
(`s.name = "rake".freeze`, `s.version = "13.0.6"`, `s.licenses = ["MIT".freeze]`) and
never evaluated. The `# stub: NAME VERSION ...` comment is the fallback for name and version.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from trustyard.scanning.detectors.per_file import FileDetector
from trustyard.scanning.interfaces import Detector, FileEntry, Limits
from trustyard.scanning.licenses import any_of, spdx_expression
from trustyard.scanning.model import GEM, Component
from trustyard.scanning.purls import purl_text

DETECTOR_NAME = "ruby"
GEMSPEC_MAX_BYTES = 1 << 20

_STRING = r"""(?:"([^"\n]*)"|'([^'\n]*)'|%q\{([^}\n]*)\})"""
_NAME = re.compile(r"^\s*\w+\.name\s*=\s*" + _STRING, re.MULTILINE)
_VERSION = re.compile(r"^\s*\w+\.version\s*=\s*(?:Gem::Version\.new\(\s*)?" + _STRING, re.MULTILINE)
_LICENSES = re.compile(r"^\s*\w+\.licenses?\s*=\s*(.*)$", re.MULTILINE)
_QUOTED = re.compile(r"""["']([^"'\n]+)["']""")
_STUB = re.compile(r"^# stub: (\S+) (\S+)", re.MULTILINE)


def parse_gemspec(text: str) -> tuple[str, str, list[str]] | None:
    """(name, version, licences) of an installed gemspec, None when it names no gem."""
    name = _first(_NAME.search(text))
    version = _first(_VERSION.search(text))
    if not name or not version:
        stub = _STUB.search(text)
        if stub is None:
            return None
        name, version = name or stub.group(1), version or stub.group(2)
    licenses: list[str] = []
    for line in _LICENSES.finditer(text):
        licenses.extend(m.group(1) for m in _QUOTED.finditer(line.group(1)))
    return name.strip(), version.strip(), licenses


def _first(match: re.Match[str] | None) -> str:
    if match is None:
        return ""
    return next((g for g in match.groups() if g), "")


def license_of(licenses: list[str]) -> str | None:
    """A gem's licences are a choice between them (OR)."""
    return any_of(spdx_expression(text) for text in licenses)


def purl_for(name: str, version: str) -> str | None:
    return purl_text(type="gem", name=name, version=version)


def wants(entry: FileEntry, limits: Limits) -> int:
    path = entry.path
    if path.endswith(".gemspec") and "specifications/" in path:
        return min(GEMSPEC_MAX_BYTES, limits.max_file_bytes)
    return 0


def read(entry: FileEntry, data: bytes) -> Iterable[Component]:
    parent = entry.path.rpartition("/")[0]
    if not (parent.endswith("specifications") or parent.endswith("specifications/default")):
        return ()
    parsed = parse_gemspec(data.decode("utf-8", "replace"))
    if parsed is None:
        return ()
    name, version, licenses = parsed
    purl = purl_for(name, version) if name and version else None
    if purl is None:
        return ()
    return (
        Component(
            ecosystem=GEM,
            name=name,
            version=version,
            purl=purl,
            locations=(entry.path,),
            detector=DETECTOR_NAME,
            licenses=license_of(licenses),
        ),
    )


DETECTOR: Detector = FileDetector(DETECTOR_NAME, wants, read)
