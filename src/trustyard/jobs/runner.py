"""A worker: claims due jobs for its free slots, runs each handler on a thread, records the
outcomes, renews the leases of the jobs it holds, and on a clean stop finishes or gives back
what it holds.

Threads: the caller's (dispatch: reap expired leases, scheduler ticks, claim), one per slot
(run handlers), a reporter (records the outcomes that slots hand it, as many per transaction
as are waiting: a group commit, so a busy worker pays one commit for several jobs), and a
heartbeat (renews leases every third of the lease). Handler threads are daemons: a handler
still running when the grace period ends has its job released and is abandoned with the
process (the job runs again elsewhere; handlers are idempotent).
"""

from __future__ import annotations

import logging
import os
import queue
import socket
import threading
import time
import traceback
from collections.abc import Callable, Sequence
from functools import partial

from trustyard.jobs.interfaces import (
    Claim,
    JobContext,
    JobInterrupted,
    JobQueue,
    Outcome,
    PermanentJobError,
    Result,
)
from trustyard.jobs.registry import HandlerRegistry

log = logging.getLogger(__name__)

# Told of every run of a handler: (kind, outcome, seconds); outcome is a `Result` value.
RunObserver = Callable[[str, str, float], None]

REPORT_TRIES = 5
REPORT_BATCH = 256


def default_worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{os.urandom(3).hex()}"


def describe(error: BaseException) -> str:
    """An error as stored in last_error: the message first, then the traceback."""
    message = f"{type(error).__name__}: {error}"
    trace = "".join(traceback.format_exception(error)).rstrip()
    return f"{message}\n{trace}"


class Worker:
    def __init__(
        self,
        jobs: JobQueue,
        handlers: HandlerRegistry,
        *,
        concurrency: int = 1,
        poll_seconds: float = 1.0,
        lease_seconds: float = 60.0,
        grace_seconds: float = 10.0,
        name: str | None = None,
        ticks: Sequence[Callable[[], object]] = (),
        tick_seconds: float = 1.0,
        observe: RunObserver | None = None,
    ) -> None:
        if concurrency < 1:
            raise ValueError("a worker runs at least one job at a time")
        self.jobs = jobs
        self.handlers = handlers
        self.concurrency = concurrency
        self.poll_seconds = poll_seconds
        self.lease_seconds = lease_seconds
        self.grace_seconds = grace_seconds
        self.name = name or default_worker_name()
        self.ticks = tuple(ticks)
        self.tick_seconds = tick_seconds
        self.observe = observe  # metrics: the embedded worker's recorder
        self.reap_seconds = min(max(lease_seconds / 4, 0.5), 15.0)
        # Claims from the moment they are taken until their outcome is recorded.
        self._held: dict[tuple[int, str], Claim] = {}
        self._lock = threading.Lock()
        self._inbox: queue.SimpleQueue[Claim | None] = queue.SimpleQueue()
        self._outbox: queue.SimpleQueue[Outcome | None] = queue.SimpleQueue()
        self._stop = threading.Event()  # no more claims
        self._stopping = threading.Event()  # handed to handlers
        self._wake = threading.Event()  # a slot became free
        self._heartbeat_stop = threading.Event()

    # -- control ---------------------------------------------------------------------------

    def request_stop(self) -> None:
        """Stop claiming, tell handlers, and let `run` finish or release what it holds.
        Safe from signal handlers and other threads."""
        self._stop.set()
        self._stopping.set()
        self._wake.set()

    def held(self) -> list[Claim]:
        with self._lock:
            return list(self._held.values())

    def run(self) -> None:
        """Work until `request_stop`; then return once every held job is finished or
        released (after at most the grace period)."""
        kinds = self.handlers.kinds()
        log.info(
            "job worker %s: %d slots, kinds %s",
            self.name,
            self.concurrency,
            ", ".join(sorted(kinds)),
        )
        slots = [
            threading.Thread(target=self._slot, name=f"job-slot-{index}", daemon=True)
            for index in range(self.concurrency)
        ]
        reporter = threading.Thread(target=self._reporter, name="job-reporter", daemon=True)
        heartbeat = threading.Thread(target=self._heartbeat, name="job-heartbeat", daemon=True)
        for thread in (*slots, reporter, heartbeat):
            thread.start()
        try:
            self._dispatch(kinds)
        finally:
            self._shutdown(slots, reporter, heartbeat)

    # -- dispatch --------------------------------------------------------------------------

    def _dispatch(self, kinds: frozenset[str]) -> None:
        next_reap = next_tick = 0.0
        while not self._stop.is_set():
            self._wake.clear()
            now = time.monotonic()
            if now >= next_reap:
                self._guard("reap expired leases", self.jobs.reap)
                next_reap = now + self.reap_seconds
            if now >= next_tick:
                for tick in self.ticks:
                    self._guard("scheduler tick", tick)
                next_tick = now + self.tick_seconds
            free = self.concurrency - len(self.held())
            claims: list[Claim] = []
            if free > 0:
                claimed = self._guard("claim", partial(self.jobs.claim, self.name, kinds, free))
                claims = claimed if isinstance(claimed, list) else []
                for claim in claims:
                    with self._lock:
                        self._held[(claim.id, claim.token)] = claim
                    self._inbox.put(claim)
            if free <= 0 or (claims and len(claims) == free):
                # Probably more work waiting: claim again as soon as a slot is free.
                self._wake.wait(self.poll_seconds)
            else:
                self._stop.wait(self.poll_seconds)

    def _guard(self, what: str, action: Callable[[], object]) -> object:
        """Run a dispatcher step; a database hiccup is logged, never fatal."""
        try:
            return action()
        except Exception:
            log.exception("job worker %s: %s failed", self.name, what)
            self._stop.wait(self.poll_seconds)
            return None

    # -- slots -----------------------------------------------------------------------------

    def _slot(self) -> None:
        while True:
            claim = self._inbox.get()
            if claim is None:
                return
            if self._stopping.is_set():  # claimed just before the stop: give it back
                self._outbox.put(Outcome(claim, Result.RELEASED))
            else:
                began = time.perf_counter()
                outcome = self._execute(claim)
                if self.observe is not None:
                    self.observe(claim.kind, outcome.result.value, time.perf_counter() - began)
                self._outbox.put(outcome)

    def _execute(self, claim: Claim) -> Outcome:
        handler = self.handlers.get(claim.kind)
        context = JobContext(
            claim.id,
            claim.kind,
            claim.payload,
            claim.attempt,
            claim.max_attempts,
            self.name,
            self._stopping,
        )
        try:
            if handler is None:  # claimed only for registered kinds; kept for safety
                raise PermanentJobError(f"no handler for job kind {claim.kind!r}")
            handler(context)
        except JobInterrupted:
            log.info("job %d (%s) interrupted by the stop: released", claim.id, claim.kind)
            return Outcome(claim, Result.RELEASED)
        except PermanentJobError as error:
            log.warning("job %d (%s) failed for good: %s", claim.id, claim.kind, error)
            return Outcome(claim, Result.PERMANENT, describe(error))
        except Exception as error:
            log.warning(
                "job %d (%s) attempt %d/%d failed: %s",
                claim.id,
                claim.kind,
                claim.attempt,
                claim.max_attempts,
                error,
            )
            return Outcome(claim, Result.FAILED, describe(error))
        return Outcome(claim, Result.SUCCEEDED)

    # -- outcomes --------------------------------------------------------------------------

    def _reporter(self) -> None:
        while True:
            first = self._outbox.get()
            if first is None:
                return
            batch = [first]
            while len(batch) < REPORT_BATCH:
                try:
                    more = self._outbox.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    self._outbox.put(None)  # seen after this batch
                    break
                batch.append(more)
            self._report(batch)

    def _report(self, outcomes: list[Outcome]) -> None:
        """Record outcomes, retrying while the database does not answer. If it never does,
        the leases expire and the jobs run again (handlers are idempotent)."""
        try:
            for attempt in range(1, REPORT_TRIES + 1):
                try:
                    states = self.jobs.report(outcomes)
                except Exception:
                    log.exception("job worker %s: recording outcomes (try %d)", self.name, attempt)
                    time.sleep(min(0.2 * 2**attempt, 5.0))
                    continue
                for outcome, state in zip(outcomes, states, strict=True):
                    if state is None:
                        log.warning(
                            "job %d: its lease had expired; another run took over",
                            outcome.claim.id,
                        )
                return
        finally:
            with self._lock:
                for outcome in outcomes:
                    self._held.pop((outcome.claim.id, outcome.claim.token), None)
            self._wake.set()

    # -- leases ----------------------------------------------------------------------------

    def _heartbeat(self) -> None:
        interval = self.lease_seconds / 3
        while not self._heartbeat_stop.wait(interval):
            tokens = {claim.token for claim in self.held()}
            if not tokens:
                continue
            try:
                self.jobs.renew(tokens)
            except Exception:
                log.exception("job worker %s: renewing leases failed", self.name)

    # -- stop ------------------------------------------------------------------------------

    def _shutdown(
        self, slots: list[threading.Thread], reporter: threading.Thread, heartbeat: threading.Thread
    ) -> None:
        self._stop.set()
        self._stopping.set()
        deadline = time.monotonic() + self.grace_seconds
        while self.held() and time.monotonic() < deadline:
            self._wake.wait(0.05)
            self._wake.clear()
        for _ in slots:
            self._inbox.put(None)
        self._outbox.put(None)
        reporter.join(timeout=30)
        left = self.held()
        if left:
            log.warning(
                "job worker %s: %d jobs still running after the grace period: released",
                self.name,
                len(left),
            )
            self._report([Outcome(claim, Result.RELEASED) for claim in left])
        self._heartbeat_stop.set()
        heartbeat.join(timeout=5)
        for slot in slots:
            slot.join(timeout=0.05 if left else 5)
        log.info("job worker %s stopped", self.name)
