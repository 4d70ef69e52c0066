"""Vulnerability counts after triage of many images of one repository at once, for the
policy engine (which receives them through the composition root: features never import
each other).

The stored counts of each manifest's latest matched scan come in two queries (which scan,
then its findings counted by bucket through their scan index); then one query
reads the decisions that hold in the repository (its images', its own, its organization's).
Without any (the usual case) the stored counts are the answer. Otherwise only the images
with findings that some decision may touch are recounted, from their findings read in one
query, exactly as the tag list and the image's vulnerabilities count them (`triage.decide`).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import Connection

from trustyard.vulnerabilities.images import ImageStore
from trustyard.vulnerabilities.interfaces import Counts
from trustyard.vulnerabilities.triage import TriageStore, decide


class TriagedCounts:
    def __init__(self, images: ImageStore, triage: TriageStore | None = None) -> None:
        self.images = images
        self.triage = triage or TriageStore()

    def counts(
        self,
        conn: Connection,
        repository_id: int,
        namespace: str,
        digests: Iterable[str],
        now: datetime,
    ) -> dict[str, Counts]:
        """{digest: counts after triage at `now`}; a digest never matched is absent."""
        scans = self.images.latest_matched(conn, repository_id, digests)
        raw = self.images.counts_of_scans(conn, scans.values())
        counts = {digest: raw.get(scan_id, Counts()) for digest, scan_id in scans.items()}
        touched = [digest for digest, raw in counts.items() if raw.total]
        if not touched:
            return counts
        rows = self.triage.live_in(conn, repository_id, namespace, now)
        if not rows:
            return counts
        whole = [row for row in rows if row.manifest_digest is None]
        by_digest = {row.manifest_digest for row in rows if row.manifest_digest is not None}
        recount = [digest for digest in touched if whole or digest in by_digest]
        if not recount:
            return counts
        findings = self.images.findings_of_scans(conn, (scans[d] for d in recount))
        for digest in recount:
            scan_id = scans[digest]
            applicable = [r for r in rows if r.manifest_digest in (None, digest)]
            counts[digest] = Counts.of(decide(findings.get(scan_id, ()), applicable))
        return counts
