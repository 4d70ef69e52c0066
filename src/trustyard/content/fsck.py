"""Consistency check of metadata against storage: `trustyard fsck`.

Read-only unless `repair` is set. Repairs only remove what cannot be right (corrupt or
orphaned bytes, upload leftovers); they never invent content.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from sqlalchemy import Engine, delete

from trustyard.content.stores import ContentStore
from trustyard.db.engine import read_tx, write_tx
from trustyard.db.tables import blobs, repository_blobs
from trustyard.oci.digest import digest_bytes, new_hasher, parse_digest
from trustyard.storage.interfaces import BlobDriver, ContentMissing

# Leftovers of an interrupted write (a crash between the storage rename and the database
# commit, or a cancelled upload): bytes nothing refers to, never served. Listed, and removed by
# `repair`, but they do not make the store unclean. Everything else is a problem.
GARBAGE_KINDS = frozenset({"blob-orphan", "upload-orphan"})


@dataclass
class Finding:
    kind: str  # e.g. "blob-corrupt", "manifest-reference-missing"
    subject: str
    detail: str
    repaired: bool = False

    @property
    def problem(self) -> bool:
        return self.kind not in GARBAGE_KINDS


@dataclass
class FsckReport:
    blobs_checked: int = 0
    manifests_checked: int = 0
    findings: list[Finding] = field(default_factory=list)

    @property
    def problems(self) -> list[Finding]:
        """Unrepaired findings that mean wrong or missing content."""
        return [f for f in self.findings if f.problem and not f.repaired]

    @property
    def garbage(self) -> list[Finding]:
        return [f for f in self.findings if not f.problem and not f.repaired]

    @property
    def clean(self) -> bool:
        return not self.problems


Progress = Callable[[str], None]


def _verify_blob(driver: BlobDriver, digest_text: str, size: int) -> str | None:
    digest = parse_digest(digest_text)
    hasher = new_hasher(digest.algorithm)
    seen = 0
    try:
        for block in driver.read(digest):
            hasher.update(block)
            seen += len(block)
    except ContentMissing:
        return "missing from storage"
    if seen != size:
        return f"{seen} bytes stored, {size} recorded"
    if hasher.hexdigest() != digest.hex:
        return f"content hashes to {digest.algorithm}:{hasher.hexdigest()}"
    return None


def fsck(
    engine: Engine,
    store: ContentStore,
    driver: BlobDriver,
    repair: bool = False,
    progress: Progress | None = None,
) -> FsckReport:
    report = FsckReport()
    note = progress or (lambda _message: None)
    with read_tx(engine) as conn:
        recorded = dict(store.all_blobs(conn))
        manifest_rows = list(store.all_manifests(conn))
        references = list(store.all_references(conn))
        upload_ids = store.upload_ids(conn)
        dangling = store.dangling_tags(conn)
        linked: set[tuple[str, str]] = set()
        for repository, digest, _payload, _type in manifest_rows:
            linked.add((repository, digest))
        repo_blobs = store.repository_blob_pairs(conn)

    forgotten: set[str] = set()
    for index, (digest_text, size) in enumerate(sorted(recorded.items()), 1):
        note(f"blob {index}/{len(recorded)} {digest_text}")
        problem = _verify_blob(driver, digest_text, size)
        report.blobs_checked += 1
        if problem is not None:
            finding = Finding("blob-corrupt", digest_text, problem)
            if repair:
                _forget_blob(engine, driver, digest_text)
                finding.repaired = True
                forgotten.add(digest_text)
            report.findings.append(finding)
    # A manifest that needed a removed blob is now broken: the checks below must report it.
    for digest_text in forgotten:
        del recorded[digest_text]
    repo_blobs = {pair for pair in repo_blobs if pair[1] not in forgotten}

    for stored in driver.iter_blobs():
        if str(stored) not in recorded:
            # A later push of the same digest adopts the stored file, so its bytes must be right.
            damage = _verify_blob(driver, str(stored), driver.stat(stored) or 0)
            finding = (
                Finding("blob-orphan", str(stored), "stored but not recorded")
                if damage is None
                else Finding("blob-orphan-corrupt", str(stored), f"not recorded, {damage}")
            )
            if repair:
                driver.delete(stored)
                finding.repaired = True
            report.findings.append(finding)

    for repository, digest, payload, _media_type in manifest_rows:
        report.manifests_checked += 1
        algorithm = digest.split(":", 1)[0]
        if str(digest_bytes(payload, algorithm)) != digest:
            report.findings.append(
                Finding("manifest-corrupt", f"{repository}@{digest}", "payload does not match")
            )
    for repository, digest, kind, target in references:
        present = (repository, target) in (repo_blobs if kind == "blob" else linked)
        if not present or (kind == "blob" and target not in recorded):
            report.findings.append(
                Finding(
                    f"manifest-{kind}-missing",
                    f"{repository}@{digest}",
                    f"references {kind} {target}, which is not in the repository",
                )
            )

    for repository, tag in dangling:
        report.findings.append(Finding("tag-dangling", f"{repository}:{tag}", "no manifest"))

    stored_uploads = set(driver.iter_uploads())
    for upload_id in sorted(stored_uploads - upload_ids):
        finding = Finding("upload-orphan", upload_id, "upload data without a session")
        if repair:
            driver.delete_upload(upload_id)
            finding.repaired = True
        report.findings.append(finding)
    return report


def _forget_blob(engine: Engine, driver: BlobDriver, digest_text: str) -> None:
    """Remove a corrupt blob everywhere, so it is never served; clients must push it again."""
    with write_tx(engine) as conn:
        conn.execute(delete(repository_blobs).where(repository_blobs.c.digest == digest_text))
        conn.execute(delete(blobs).where(blobs.c.digest == digest_text))
    driver.delete(parse_digest(digest_text))
