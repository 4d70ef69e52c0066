"""Job handlers by kind: the composition root registers them; workers claim only the kinds
they have a handler for (so a kind that no process here knows waits, untouched)."""

from __future__ import annotations

import re
from collections.abc import Iterator

from trustyard.jobs.interfaces import InvalidJob, JobHandler

# "domain.action": lowercase words with dots, dashes and underscores.
KIND = re.compile(r"[a-z][a-z0-9_-]*(\.[a-z][a-z0-9_-]*)*")
MAX_KIND = 64


def check_kind(kind: str) -> str:
    if len(kind) > MAX_KIND or not KIND.fullmatch(kind):
        raise InvalidJob(f"job kind {kind!r} must be lowercase words joined by dots")
    return kind


class HandlerRegistry:
    def __init__(self) -> None:
        self._handlers: dict[str, JobHandler] = {}

    def register(self, kind: str, handler: JobHandler) -> None:
        if check_kind(kind) in self._handlers:
            raise InvalidJob(f"a handler for {kind!r} is already registered")
        self._handlers[kind] = handler

    def get(self, kind: str) -> JobHandler | None:
        return self._handlers.get(kind)

    def kinds(self) -> frozenset[str]:
        return frozenset(self._handlers)

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self._handlers))

    def __len__(self) -> int:
        return len(self._handlers)
