"""Pull events without a database write per pull.

A manifest GET is the hottest request there is, and a read: it must not pay a write. So a
server process records `MANIFEST_PULL` events only while some active subscription wants them
(`interest`, asked at most once per `check_seconds` and remembered: a new subscription counts
within that delay), keeps them in memory, and a flusher thread writes them to the outbox in
one transaction per `flush_seconds`. Pull events are therefore best effort: the events still in
memory when the process crashes are lost, and when the buffer is full (the database is down
for long) the oldest are dropped. Every other event type is written in the transaction of its
change and is never lost.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable

from sqlalchemy import Engine

from trustyard.db.engine import write_tx
from trustyard.events.model import Event
from trustyard.events.outbox import Outbox

log = logging.getLogger(__name__)


class PullRecorder:
    def __init__(
        self,
        engine: Engine,
        outbox: Outbox,
        interest: Callable[[], bool],
        *,
        check_seconds: float = 5.0,
        flush_seconds: float = 1.0,
        capacity: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.engine = engine
        self.outbox = outbox
        self.interest = interest
        self.check_seconds = check_seconds
        self.flush_seconds = flush_seconds
        self.clock = clock
        self.dropped = 0  # events lost to a full buffer
        self._buffer: deque[Event] = deque(maxlen=capacity)
        self._wanted = False
        self._until = 0.0
        self._thread: threading.Thread | None = None
        self._start = threading.Lock()
        self._stop = threading.Event()

    def wanted(self) -> bool:
        """Whether pulls are to be recorded now (one cheap query per `check_seconds`)."""
        now = self.clock()
        if now < self._until:
            return self._wanted
        self._until = now + self.check_seconds
        try:
            self._wanted = self.interest()
        except Exception:  # a database hiccup must not fail the pull
            log.warning("could not tell whether pull events are wanted", exc_info=True)
        return self._wanted

    def record(self, event: Event) -> None:
        """Keep a pull event for the next flush (never blocks, never touches the database)."""
        if len(self._buffer) == self._buffer.maxlen:
            self.dropped += 1
        self._buffer.append(event)
        if self._thread is None:
            self._start_flusher()

    def _start_flusher(self) -> None:
        with self._start:
            if self._thread is None and not self._stop.is_set():
                self._thread = threading.Thread(target=self._run, name="pull-events", daemon=True)
                self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.flush_seconds):
            self.flush()

    def flush(self) -> int:
        """Write what is buffered (one transaction); returns how many events."""
        taken: list[Event] = []
        while True:
            try:
                taken.append(self._buffer.popleft())
            except IndexError:
                break
        if not taken:
            return 0
        try:
            with write_tx(self.engine) as conn:
                self.outbox.publish(conn, *taken)
        except Exception:
            log.warning("could not write %d pull events; kept for the next try", len(taken))
            self._buffer.extendleft(reversed(taken))
            return 0
        return len(taken)

    def close(self) -> None:
        """Stop the flusher and write what is left (a clean shutdown loses nothing)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        try:
            self.flush()
        except Exception:
            log.warning("pull events lost at shutdown", exc_info=True)
