"""Prometheus metrics: counted in memory by every process, added up across processes at scrape.

Why not prometheus_client's multiprocess mode: `labels()` validates its arguments on every
call and every increment goes through an mmap'ed file behind a lock and a pid check; measured
with bench/metrics_cost.py that is 5-10x the cost of what is done here, on the hot path of
every request. Instead each process keeps its counts in plain lists (one dict lookup, one
bisect, an uncontended lock), and a daemon thread writes the process's whole snapshot, when it
changed, to `<directory>/<pid>-<nonce>.json` at most every `FLUSH_SECONDS` (atomic rename).

A scrape writes the answering process's snapshot first, then adds up every file in the folder:
the server's worker processes, the embedded job worker, and processes that died (their counts
stay in the totals, so a counter never goes down until `serve` starts again and wipes the
folder). Another process's counts are at most `FLUSH_SECONDS` old. prometheus_client renders
the exposition formats.

Every measurement is one kind of event with labels and a duration: an HTTP request, a job
run, a webhook delivery. Each kind exports a counter over all its labels and a duration
histogram over some of them. Labels are a small, fixed vocabulary (route names, never paths or
URLs): the caller maps what it observes onto it.

This module imports nothing from the rest of trustyard and builds nothing at import time: the
composition root builds one `Recorder` per process (build_services for a server process, the
`worker` command for the embedded job worker) and hands it to whoever observes (the ASGI
router, the job Worker, the webhook delivery job). A recorder starts no thread and touches no
file until `configure` is called (by the server's worker processes and the embedded job
worker). exposition.py renders the totals.
"""

from __future__ import annotations

import atexit
import json
import logging
import os
import secrets
import tempfile
import threading
from bisect import bisect_left
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

FLUSH_SECONDS = 1.0
Key = tuple[str | int, ...]

# Upper bounds of the duration buckets, in seconds (+Inf is implied). Requests run from
# tens of microseconds (a cached manifest) to minutes (a large upload).
REQUEST_BUCKETS = (
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
    0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0,
)  # fmt: skip
JOB_BUCKETS = (0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0)
WEBHOOK_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)

# Label values the callers may use where the vocabulary is closed.
UNMATCHED = "unmatched"  # a request no route took
METHODS = frozenset({"GET", "HEAD", "PUT", "POST", "PATCH", "DELETE", "OPTIONS"})
OTHER_METHOD = "other"
WEBHOOK_OUTCOMES = frozenset({"success", "http_error", "network_error", "refused"})


@dataclass(frozen=True, slots=True)
class EventKind:
    """One kind of measured event: a counter over `labels`, a duration histogram over the
    first `histogram_labels` of them (the others are summed away)."""

    key: str  # its name in the shared files
    counter: str
    counter_help: str
    labels: tuple[str, ...]
    histogram: str
    histogram_help: str
    histogram_labels: int
    bounds: tuple[float, ...]


HTTP_REQUESTS = EventKind(
    "http",
    "trustyard_http_requests",
    "HTTP requests answered, by route (a route name, an /api/v1 path template, or "
    "'unmatched'), method and status",
    ("route", "method", "status"),
    "trustyard_http_request_duration_seconds",
    "Time from a request's arrival until its response was handed to the server",
    2,
    REQUEST_BUCKETS,
)
JOB_RUNS = EventKind(
    "jobs",
    "trustyard_jobs_runs",
    "Background job runs, by kind and outcome (succeeded, failed: retried or dead, "
    "permanent: failed for good, released: given back at a stop)",
    ("kind", "outcome"),
    "trustyard_jobs_run_duration_seconds",
    "Time a job's handler ran",
    1,
    JOB_BUCKETS,
)
WEBHOOK_DELIVERIES = EventKind(
    "webhooks",
    "trustyard_webhook_deliveries",
    "Webhook delivery attempts, by outcome (success, http_error, network_error, refused)",
    ("outcome",),
    "trustyard_webhook_delivery_duration_seconds",
    "Time a webhook delivery attempt took",
    1,
    WEBHOOK_BUCKETS,
)
KINDS = (HTTP_REQUESTS, JOB_RUNS, WEBHOOK_DELIVERIES)


class Table:
    """The counts of one event kind in one process: per label key, the sum of the
    durations followed by one count per bucket (not cumulative; the last is +Inf)."""

    __slots__ = ("bounds", "changed", "lock", "series", "width")

    def __init__(self, bounds: Sequence[float]) -> None:
        self.bounds = tuple(bounds)
        self.width = len(self.bounds) + 2
        self.lock = threading.Lock()
        self.series: dict[Key, list[float]] = {}
        self.changed = False

    def observe(self, key: Key, seconds: float) -> None:
        lock = self.lock
        lock.acquire()  # (a `with` block costs twice as much on Python 3.11)
        try:
            series = self.series.get(key)
            if series is None:
                series = self.series[key] = [0.0] * self.width
            series[0] += seconds
            series[1 + bisect_left(self.bounds, seconds)] += 1
            self.changed = True
        finally:
            lock.release()

    def snapshot(self) -> list[tuple[Key, list[float]]]:
        """A copy of the counts; marks them as seen."""
        with self.lock:
            self.changed = False
            return [(key, list(values)) for key, values in self.series.items()]

    def reset(self) -> None:
        """Forget everything, without waiting for a lock another thread held at a fork."""
        self.lock = threading.Lock()
        self.series = {}
        self.changed = False


class Recorder:
    """This process's counts, and (once configured) their file in the shared folder."""

    def __init__(self) -> None:
        self.tables = {kind.key: Table(kind.bounds) for kind in KINDS}
        self.requests = self.tables[HTTP_REQUESTS.key]  # observed on every request
        self._jobs = self.tables[JOB_RUNS.key]
        self._webhooks = self.tables[WEBHOOK_DELIVERIES.key]
        self._forks_reset = False
        self.directory: Path | None = None
        self.path: Path | None = None
        self._flush_lock = threading.Lock()  # one writer at a time, snapshots in order
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def changed(self) -> bool:
        return any(table.changed for table in self.tables.values())

    # -- sharing ----------------------------------------------------------------------------

    def configure(self, directory: Path, interval: float = FLUSH_SECONDS) -> None:
        """Share this process's counts through `directory` (created if missing), written
        at most every `interval` seconds and at exit."""
        directory.mkdir(parents=True, exist_ok=True)
        self.directory = directory
        self.path = directory / f"{os.getpid()}-{secrets.token_hex(4)}.json"
        self.flush()  # announce the process even before its first event
        if self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(
                target=self._run, args=(interval,), name="metrics-flush", daemon=True
            )
            self._thread.start()
            atexit.register(self.close)
        if not self._forks_reset:  # a forked child shares neither the thread nor the file
            self._forks_reset = True
            os.register_at_fork(after_in_child=self.reset_after_fork)

    def close(self) -> None:
        """Stop the flushing thread after a last flush."""
        self._stop.set()
        try:
            self.flush()
        except OSError as error:  # the folder went away (a test's, or `serve` restarting)
            log.warning("cannot write metrics to %s: %s", self.path, error)

    def reset_after_fork(self) -> None:
        """A forked child starts with no counts (its parent's stay the parent's) and must
        configure itself. The tables stay the same objects (callers hold them)."""
        for table in self.tables.values():
            table.reset()
        self._flush_lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = None
        self.directory = self.path = None

    def _run(self, interval: float) -> None:
        while not self._stop.wait(interval):
            if self.changed:
                try:
                    self.flush()
                except Exception:  # keep flushing: the next try may work
                    log.exception("cannot write metrics to %s", self.path)

    def flush(self) -> None:
        """Write this process's counts to its file (atomically), if it has one."""
        path = self.path
        if path is None:
            return
        with self._flush_lock:
            document = {
                "pid": os.getpid(),
                "tables": {
                    key: [[list(labels), values] for labels, values in table.snapshot()]
                    for key, table in self.tables.items()
                },
            }
            data = json.dumps(document, separators=(",", ":")).encode()
            fd, temporary = tempfile.mkstemp(prefix=".tmp-", dir=path.parent)
            try:
                with os.fdopen(fd, "wb") as handle:
                    handle.write(data)
                os.replace(temporary, path)
            except BaseException:
                Path(temporary).unlink(missing_ok=True)
                raise

    # -- what the rest of trustyard calls ----------------------------------------------------

    def observe_request(self, route: str, method: str, status: int, seconds: float) -> None:
        """One answered HTTP request. `route` is a route's name or path template (never the
        raw path), `method` one of METHODS or 'other' (see `method_label`). The ASGI router
        calls `requests.observe((route, method, status), seconds)` directly (one call less)."""
        self.requests.observe((route, method, status), seconds)

    def observe_job_run(self, kind: str, outcome: str, seconds: float) -> None:
        """One run of a job's handler; outcome: succeeded, failed, permanent or released."""
        self._jobs.observe((kind, outcome), seconds)

    def observe_webhook_delivery(self, outcome: str, seconds: float) -> None:
        """One webhook delivery attempt. outcome: success (2xx), http_error (the receiver
        answered with another status), network_error (no answer: connection, TLS, timeout),
        refused (not attempted: the URL is not allowed)."""
        if outcome not in WEBHOOK_OUTCOMES:
            raise ValueError(f"unknown webhook delivery outcome {outcome!r}")
        self._webhooks.observe((outcome,), seconds)

    # -- reading ----------------------------------------------------------------------------

    def totals(self) -> dict[str, dict[Key, list[float]]]:
        """Every process's counts added up: the shared files (after writing this process's
        own), or only this process's when it shares nothing."""
        if self.directory is None:
            return {key: dict(table.snapshot()) for key, table in self.tables.items()}
        try:
            self.flush()
        except OSError as error:
            log.warning("cannot write metrics to %s: %s", self.path, error)
        merged: dict[str, dict[Key, list[float]]] = {kind.key: {} for kind in KINDS}
        for path in sorted(self.directory.glob("*.json")):
            for key, labels, values in _read_file(path):
                width = self.tables[key].width
                if len(values) != width:
                    continue  # written by another version
                into = merged[key].setdefault(labels, [0.0] * width)
                for index, value in enumerate(values):
                    into[index] += value
        return merged


def _read_file(path: Path) -> Iterator[tuple[str, Key, list[float]]]:
    try:
        document = json.loads(path.read_bytes())
        tables = document["tables"]
        for kind in KINDS:
            for labels, values in tables.get(kind.key, []):
                yield kind.key, tuple(labels), [float(value) for value in values]
    except FileNotFoundError:
        return
    except (OSError, ValueError, TypeError, KeyError) as error:
        log.warning("skipping unreadable metrics file %s: %s", path, error)


def wipe(directory: Path) -> None:
    """Forget the counts of a previous run: `serve` calls this before it starts any
    process."""
    if directory.is_dir():
        for path in directory.iterdir():
            if path.suffix == ".json" or path.name.startswith(".tmp-"):
                path.unlink(missing_ok=True)
    directory.mkdir(parents=True, exist_ok=True)


def method_label(method: str) -> str:
    """An HTTP method as a label: the standard ones as they are, anything else 'other'."""
    return method if method in METHODS else OTHER_METHOD
