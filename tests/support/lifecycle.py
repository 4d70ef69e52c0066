"""`with Server() as s:` for the throw-away servers the tests start."""

from __future__ import annotations

from types import TracebackType
from typing import Self


class StartStop:
    """start() on entering the block, stop() on leaving it, whatever happened inside."""

    def start(self) -> None:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
