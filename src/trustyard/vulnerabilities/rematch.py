"""Keeping the stored vulnerabilities of images current, without reading a layer.

- **On scan completion** (`MatchOnScan`, an in-transaction consumer of the scan job's
  outbox): a SCAN_COMPLETED event is matched in the scan's own transaction, under a
  SAVEPOINT, so it costs no write transaction of its own (pushes share SQLite's one writer
  with it). If matching fails, the savepoint is rolled back, the image says `failed`, and a
  `vulns.match` job (dedupe key per scan) tries again: the scan's success is never lost.
- **After an import** (`enqueue_rematch`, called by the importer in the transaction that
  switches the source to its new generation): `vulns.rematch` jobs carry the (ecosystem,
  name) packages the import changed, at most `PAYLOAD_BYTES` of them each, so they exist
  exactly when the switch commits. `Rematcher` reads only the stored components of those
  packages (vuln_image_packages by (target_ecosystem, target_name)), re-evaluates them with
  one `index_for` per batch of images, writes what changed, and publishes per image
  VULNERABILITY_FOUND / VULNERABILITY_RESOLVED in the batch's transaction, then one
  SCANNER_UPDATE_COMPLETED per job. A finding is the same finding when their record ids
  meet (a new GHSA merged with a known PYSEC record changes the id shown, not the finding):
  it is rewritten, keeping its found_at, and announced as neither.
"""

from __future__ import annotations

import json
import logging
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Engine, text

from trustyard.content.reads import ContentReads
from trustyard.db.engine import read_tx, write_tx
from trustyard.events import model as events
from trustyard.events.model import Event, EventType
from trustyard.events.outbox import Outbox
from trustyard.jobs.interfaces import JobInterrupted
from trustyard.jobs.queue import SqlJobQueue
from trustyard.vulnerabilities.components import Target
from trustyard.vulnerabilities.findings import finding_of
from trustyard.vulnerabilities.images import (
    ImageMatcher,
    ImageStore,
    StoredFinding,
    hold_matching,
    hold_switch,
)
from trustyard.vulnerabilities.index import Finding
from trustyard.vulnerabilities.interfaces import ImageComponent, ImageFinding, Package

log = logging.getLogger(__name__)

MATCH_KIND = "vulns.match"
REMATCH_KIND = "vulns.rematch"
PAYLOAD_BYTES = 48 * 1024  # of packages per vulns.rematch job (the queue takes 64 KiB)
SCANS_PER_BATCH = 50  # images re-matched per write transaction


def match_dedupe_key(scan_id: int) -> str:
    return f"{MATCH_KIND}:{scan_id}"


class MatchOnScan:
    """The outbox consumer that matches a completed scan in the scan's transaction."""

    def __init__(self, matcher: ImageMatcher, queue: SqlJobQueue) -> None:
        self.matcher = matcher
        self.queue = queue

    def consume(self, conn: Connection, happened: Sequence[Event]) -> None:
        for event in happened:
            scan_id = event.facts.get("scan_id")
            if event.type is not EventType.SCAN_COMPLETED or not isinstance(scan_id, int):
                continue
            try:
                with conn.begin_nested():
                    self.matcher.match_scan(conn, scan_id)
            except Exception as error:
                log.exception("matching scan %d failed; a %s job will retry", scan_id, MATCH_KIND)
                self._retry(conn, scan_id, f"{type(error).__name__}: {error}")

    def _retry(self, conn: Connection, scan_id: int, message: str) -> None:
        try:
            with conn.begin_nested():
                store = self.matcher.store
                scan = store.scans.get(conn, scan_id)
                if scan is not None:
                    version = self.matcher.service.version(conn)
                    store.mark_failed(conn, scan, version, f"matching failed, retrying: {message}")
                self.queue.enqueue(
                    conn, MATCH_KIND, {"scan_id": scan_id}, dedupe_key=match_dedupe_key(scan_id)
                )
        except Exception:  # the scan's own result still commits
            log.exception("recording the failed match of scan %d", scan_id)


def enqueue_rematch(
    queue: SqlJobQueue, conn: Connection, source: str, packages: Iterable[Package]
) -> int:
    """In the switch's transaction: the `vulns.rematch` jobs for `packages` (several when
    their names pass `PAYLOAD_BYTES`; one, empty, when none changed: it still stamps the
    version and announces the update). Takes the lock that waits for matches in progress
    (see `images.hold_switch`). Returns how many jobs."""
    hold_switch(conn)
    wanted = sorted(set(packages))
    parts: list[list[list[str]]] = [[]]
    size = 0
    for ecosystem, name in wanted:
        cost = len(json.dumps([ecosystem, name])) + 1
        if parts[-1] and size + cost > PAYLOAD_BYTES:
            parts.append([])
            size = 0
        parts[-1].append([ecosystem, name])
        size += cost
    for number, part in enumerate(parts, 1):
        payload = {"source": source[:128], "part": number, "parts": len(parts), "packages": part}
        queue.enqueue(conn, REMATCH_KIND, payload)
    return len(parts)


@dataclass(slots=True)
class RematchResult:
    images: int = 0  # images holding a touched component, looked at
    changed: int = 0  # images whose findings changed
    found: int = 0
    resolved: int = 0
    database_version: int = 0


@dataclass(slots=True)
class _Diff:
    found: list[ImageFinding]
    resolved: list[tuple[ImageComponent, StoredFinding]]


# Re-match batches exclude each other on PostgreSQL (SQLite has one writer): two jobs
# comparing the same stored findings with different generations must not interleave. "tyvr".
_REMATCH_LOCK = 0x74797672


class Rematcher:
    """Re-matches the stored components of a set of packages (a `vulns.rematch` job)."""

    def __init__(
        self,
        engine: Engine,
        matcher: ImageMatcher,
        outbox: Outbox | None,
        content: ContentReads | None = None,
        scans_per_batch: int = SCANS_PER_BATCH,
    ) -> None:
        self.engine = engine
        self.matcher = matcher
        self.outbox = outbox
        self.content = content or ContentReads()
        self.scans_per_batch = scans_per_batch

    @property
    def store(self) -> ImageStore:
        return self.matcher.store

    def run(
        self,
        packages: Iterable[Package],
        sources: Sequence[str] = (),
        should_stop: Callable[[], bool] = lambda: False,
    ) -> RematchResult:
        wanted = set(packages)
        result = RematchResult()
        with read_tx(self.engine) as conn:
            scan_ids = self.store.touched_scans(conn, wanted) if wanted else []
        for start in range(0, len(scan_ids), self.scans_per_batch):
            if should_stop():
                raise JobInterrupted("the worker is stopping")
            with write_tx(self.engine) as conn:
                self._batch(conn, scan_ids[start : start + self.scans_per_batch], wanted, result)
        with write_tx(self.engine) as conn:
            result.database_version = self.matcher.service.version(conn)
            self.store.stamp(conn, result.database_version)
            if self.outbox is not None:
                self.outbox.publish(
                    conn,
                    events.scanner_update_completed(
                        result.database_version,
                        sources,
                        result.images,
                        result.found,
                        result.resolved,
                    ),
                )
        return result

    def _batch(
        self, conn: Connection, scan_ids: Sequence[int], wanted: set[Package], result: RematchResult
    ) -> None:
        if conn.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _REMATCH_LOCK})
        hold_matching(conn)
        version = self.matcher.service.version(conn)
        rows = self.store.touched_components(conn, scan_ids, wanted)
        result.images += len({scan_id for _, scan_id, _ in rows})
        index = self.matcher.service.index_for(
            conn, {(c.target.ecosystem, c.target.name) for _, _, c in rows}
        )
        stored: dict[int, list[StoredFinding]] = defaultdict(list)
        for finding in self.store.findings_of(conn, [row_id for row_id, _, _ in rows]):
            stored[finding.package_id].append(finding)
        known: dict[Target, list[Finding]] = {}
        doomed: list[int] = []
        added: list[tuple[int, int, ImageFinding]] = []
        diffs: dict[int, _Diff] = defaultdict(lambda: _Diff([], []))
        for row_id, scan_id, component in rows:
            target = component.target
            if target not in known:
                known[target] = index.findings(target.ecosystem, target.name, target.version)
            now = [finding_of(component, f) for f in known[target]]
            old = stored.get(row_id, [])
            gone, new, rewritten = _compare(old, now)
            doomed += [f.id for f in gone] + [f.id for f, _ in rewritten]
            added += [(scan_id, row_id, f) for f in new]
            added += [(scan_id, row_id, f) for _, f in rewritten]
            if new or gone:
                diffs[scan_id].found += new
                diffs[scan_id].resolved += [(component, f) for f in gone]
        self.store.delete_findings(conn, doomed)
        self.store.insert_findings(conn, added)
        if diffs:
            self._announce(conn, diffs, version, result)

    def _announce(
        self, conn: Connection, diffs: Mapping[int, _Diff], version: int, result: RematchResult
    ) -> None:
        images = self.store.describe(conn, list(diffs))
        tags = self.content.manifest_tags(
            conn, [(i.repository_id, i.manifest_digest) for i in images]
        )
        happened: list[Event] = []
        for image in images:
            diff = diffs[image.scan_id]
            named = tags.get((image.repository_id, image.manifest_digest), [])
            result.changed += 1
            result.found += len(diff.found)
            result.resolved += len(diff.resolved)
            if diff.found:
                items = [
                    _item(
                        f.component, f.vuln_id, f.record_ids, f.aliases, f.bucket, f.score, f.fixed
                    )
                    for f in diff.found
                ]
                happened.append(
                    events.vulnerabilities_found(
                        image.repository, image.manifest_digest, named, items, version
                    )
                )
            if diff.resolved:
                items = [
                    _item(c, f.vuln_id, f.record_ids, f.aliases, f.bucket, f.score, f.fixed)
                    for c, f in diff.resolved
                ]
                happened.append(
                    events.vulnerabilities_resolved(
                        image.repository, image.manifest_digest, named, items, version
                    )
                )
        if self.outbox is not None and happened:
            self.outbox.publish(conn, *happened)


def _compare(
    old: Sequence[StoredFinding], now: Sequence[ImageFinding]
) -> tuple[list[StoredFinding], list[ImageFinding], list[tuple[StoredFinding, ImageFinding]]]:
    """(resolved, found, rewritten: the same finding with something changed). Findings are
    paired when their record ids meet."""
    unpaired = list(old)
    found: list[ImageFinding] = []
    rewritten: list[tuple[StoredFinding, ImageFinding]] = []
    for finding in now:
        ids = set(finding.record_ids) | {finding.vuln_id}
        match = next((o for o in unpaired if ids & ({o.vuln_id} | set(o.record_ids))), None)
        if match is None:
            found.append(finding)
            continue
        unpaired.remove(match)
        same = (
            match.vuln_id == finding.vuln_id
            and match.record_ids == finding.record_ids
            and match.aliases == finding.aliases
            and match.bucket == finding.bucket
            and match.score == finding.score
            and match.vector == finding.vector
            and match.fixed == finding.fixed
        )
        if not same:
            kept = ImageFinding(
                component=finding.component,
                vuln_id=finding.vuln_id,
                record_ids=finding.record_ids,
                aliases=finding.aliases,
                bucket=finding.bucket,
                score=finding.score,
                vector=finding.vector,
                fixed=finding.fixed,
                found_at=match.found_at,
            )
            rewritten.append((match, kept))
    return unpaired, found, rewritten


def _item(
    component: ImageComponent,
    vuln_id: str,
    record_ids: Sequence[str],
    aliases: Sequence[str],
    bucket: str,
    score: float | None,
    fixed: str | None,
) -> dict[str, Any]:
    return {
        "id": vuln_id,
        "aliases": sorted((set(record_ids) | set(aliases)) - {vuln_id}),
        "bucket": bucket,
        "score": score,
        "fixed": fixed,
        "component": {
            "platform": component.platform,
            "ecosystem": component.ecosystem,
            "name": component.name,
            "version": component.version,
            "purl": component.purl,
            "layer": component.layer,
        },
    }
