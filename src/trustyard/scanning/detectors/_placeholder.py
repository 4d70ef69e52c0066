"""A detector that finds nothing (for modules not written yet)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from trustyard.scanning.interfaces import Collector, FileEntry, ScanContext
from trustyard.scanning.model import Component


class _Nothing:
    def wants(self, entry: FileEntry) -> int:
        return 0

    def take(self, entry: FileEntry, data: bytes) -> None:
        return None

    def finish(self) -> Iterable[Component]:
        return ()


@dataclass(frozen=True)
class Placeholder:
    name: str

    def collector(self, context: ScanContext) -> Collector:
        return _Nothing()
