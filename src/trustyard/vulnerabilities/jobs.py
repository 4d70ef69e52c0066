"""The `vulndb.update` job: the online update of the vulnerability database (online.py).

Never more than one update at a time cluster-wide, by the job queue's dedupe key: the cron
schedule is named `vulndb.update`, so the scheduler enqueues its runs under
`schedule:vulndb.update`, and `enqueue_update` (the admin's `POST /api/v1/vulndb/updates`)
uses that same key. The queue keeps at most one queued or running job per key (a unique
index in the database), so a second request answers the live job, and a period whose run
has not finished adds nothing. What is left to a running update is per source: the
importer's claim refuses a second import of a source, and a file lock keeps two processes of
one host off the same download (`trustyard vulndb update`, run by hand, refuses to start
while the job is live).

Idempotent: a source that did not change answers 304, one that did is imported again; a
download cut off resumes. One source failing does not stop the others; the job then fails
with a message naming every source's outcome (its `last_error`): retried after a backoff when
a failure may pass (the network, a 5xx, a cut-off), failed for good when none may (a corrupt
bundle, a 404: the next scheduled run tries again). A job that succeeds logs the outcomes.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from sqlalchemy import Connection, Engine

from trustyard.db.engine import write_tx
from trustyard.jobs.interfaces import (
    Enqueued,
    JobContext,
    JobInterrupted,
    PermanentJobError,
)
from trustyard.jobs.queue import SqlJobQueue
from trustyard.jobs.scheduler import ScheduleSpec
from trustyard.vulnerabilities.images import ImageMatcher
from trustyard.vulnerabilities.online import OnlineUpdater
from trustyard.vulnerabilities.rematch import MATCH_KIND, REMATCH_KIND, Rematcher

log = logging.getLogger(__name__)

UPDATE_KIND = "vulndb.update"
UPDATE_SCHEDULE_NAME = "vulndb.update"
UPDATE_DEDUPE_KEY = f"schedule:{UPDATE_SCHEDULE_NAME}"  # the scheduler's key for it
UPDATE_ATTEMPTS = 3


def update_schedule(cron: str) -> ScheduleSpec:
    return ScheduleSpec(UPDATE_SCHEDULE_NAME, cron, UPDATE_KIND)


def enqueue_update(queue: SqlJobQueue, conn: Connection) -> Enqueued:
    """Ask for an update in the caller's transaction; while one is queued or running, that
    one's id (`created` False)."""
    return queue.enqueue(
        conn, UPDATE_KIND, dedupe_key=UPDATE_DEDUPE_KEY, max_attempts=UPDATE_ATTEMPTS
    )


class UpdateFailed(Exception):
    """Some sources failed, one of them perhaps for a passing reason: the job is retried."""


class UpdateDatabase:
    def __init__(self, updater: OnlineUpdater) -> None:
        self.updater = updater

    def __call__(self, job: JobContext) -> None:
        result = self.updater.run(should_stop=job.should_stop)
        if result.stopped:
            raise JobInterrupted
        summary = result.summary()
        if not result.failed:
            log.info("vulnerability database update: %s", summary)
            return
        message = f"{len(result.failed)} of {len(result.outcomes)} sources failed: {summary}"
        if any(outcome.transient for outcome in result.failed):
            raise UpdateFailed(message)
        raise PermanentJobError(message)


# --- matching images (rematch.py) ---------------------------------------------------------


# Told, in the matching transaction, that an image (repository id, digest) was matched.
Matched = Callable[[Connection, int, str], None]


class MatchScan:
    """`vulns.match` {scan_id}: match a scan whose matching on completion failed (its own
    write transaction). Idempotent: the scan's rows are replaced; a scan gone or not
    succeeded is left alone. `matched` (given by the composition root) hears of the image
    in the same transaction (promotion policies judging its counts run again)."""

    def __init__(
        self, engine: Engine, matcher: ImageMatcher, matched: Matched | None = None
    ) -> None:
        self.engine = engine
        self.matcher = matcher
        self.matched = matched

    def __call__(self, job: JobContext) -> None:
        scan_id = job.payload.get("scan_id")
        if not isinstance(scan_id, int):
            raise PermanentJobError(f"{MATCH_KIND} needs an integer scan_id")
        with write_tx(self.engine) as conn:
            done = self.matcher.match_scan(conn, scan_id)
            scan = self.matcher.store.scans.get(conn, scan_id) if done is not None else None
            if scan is not None and self.matched is not None:
                self.matched(conn, scan.repository_id, scan.manifest_digest)


class RematchImages:
    """`vulns.rematch` {source, part, parts, packages: [[ecosystem, name]...]}: re-match the
    stored components of the packages an import changed (rematch.Rematcher). Idempotent: a
    second run finds nothing changed (a run cut short announces, on its rerun, only what
    the first one had not written)."""

    def __init__(self, rematcher: Rematcher) -> None:
        self.rematcher = rematcher

    def __call__(self, job: JobContext) -> None:
        raw = job.payload.get("packages")
        if not isinstance(raw, list) or not all(
            isinstance(p, list) and len(p) == 2 and all(isinstance(x, str) for x in p) for p in raw
        ):
            raise PermanentJobError(f"{REMATCH_KIND} needs packages as [ecosystem, name] pairs")
        source = job.payload.get("source")
        result = self.rematcher.run(
            [(ecosystem, name) for ecosystem, name in raw],
            [source] if isinstance(source, str) else [],
            should_stop=job.should_stop,
        )
        log.info(
            "re-matched %d images after database version %d: %d found, %d resolved",
            result.images,
            result.database_version,
            result.found,
            result.resolved,
        )
