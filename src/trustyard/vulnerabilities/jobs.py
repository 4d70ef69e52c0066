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

from sqlalchemy import Connection

from trustyard.jobs.interfaces import (
    Enqueued,
    JobContext,
    JobInterrupted,
    PermanentJobError,
)
from trustyard.jobs.queue import SqlJobQueue
from trustyard.jobs.scheduler import ScheduleSpec
from trustyard.vulnerabilities.online import OnlineUpdater

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
