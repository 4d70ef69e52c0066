"""A detector whose components each come from one file read on its own (a Go binary, a
Composer `installed.json`, a gemspec...): the module gives `wants` and `read` functions, this
class is the collector every such detector would otherwise write again."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from trustyard.scanning.interfaces import Collector, FileEntry, Limits, ScanContext
from trustyard.scanning.model import Component

Wants = Callable[[FileEntry, Limits], int]
Read = Callable[[FileEntry, bytes], Iterable[Component]]


class FileDetector:
    def __init__(self, name: str, wants: Wants, read: Read) -> None:
        self.name = name
        self._wants = wants
        self._read = read

    def collector(self, context: ScanContext) -> Collector:
        return _PerFileCollector(self._wants, self._read, context.limits)


class _PerFileCollector:
    def __init__(self, wants: Wants, read: Read, limits: Limits) -> None:
        self._wants = wants
        self._read = read
        self._limits = limits
        self._components: list[Component] = []

    def wants(self, entry: FileEntry) -> int:
        return self._wants(entry, self._limits)

    def take(self, entry: FileEntry, data: bytes) -> None:
        self._components.extend(self._read(entry, data))

    def finish(self) -> Iterable[Component]:
        return self._components
