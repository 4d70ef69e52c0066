"""`trustyard scan PATH --vulns`: the vulnerabilities of a local image, from the registry's
imported OSV database, without a server.

The database is opened for reading only (SQLite's `query_only`, a read-only transaction on
PostgreSQL) and checked before the scan starts: a missing database, or one with no records,
is a `DatabaseUnusable` that says how to import one. The BOMs are matched by the one path the
registry uses too (`vulnerabilities/findings.py`: `image_components` over the BOMs' JSON,
`VulnerabilityService.index_for`, `match`), so both give the same findings.
"""

from __future__ import annotations

import io
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from trustyard.vulnerabilities.interfaces import Counts, ImageFinding, ImageVulnerabilities
from trustyard.vulnerabilities.severity import Bucket

if TYPE_CHECKING:
    from sqlalchemy import Connection, Engine

    from trustyard.config import Settings
    from trustyard.scanning.bom import ImageBom

IMPORT_HINT = (
    "import OSV bundles with `trustyard vulndb import BUNDLE...{where}` (osv.dev's "
    "<ecosystem>/all.zip, a .tar.gz or a folder of OSV .json records)"
)


class DatabaseUnusable(Exception):
    """No vulnerability database to match against (exit 2)."""


@dataclass(frozen=True, slots=True)
class Matched:
    """The result of matching an image's BOMs: its findings, and the components left out
    (with why)."""

    vulnerabilities: ImageVulnerabilities
    left_out: tuple[tuple[Mapping[str, Any], str], ...]
    components: int  # the components matched against the database

    @property
    def findings(self) -> tuple[ImageFinding, ...]:
        return self.vulnerabilities.findings


def open_database(settings: Settings, where: str) -> Engine:
    """An engine on the registry's metadata database, refused (`DatabaseUnusable`) when it is
    missing or holds no vulnerability records; `where` names it in the hint (`--data-dir D`)."""
    from trustyard.cli import preflight
    from trustyard.cli.jobs import _engine
    from trustyard.vulnerabilities.stores import VulnStore

    hint = IMPORT_HINT.format(where=where)
    try:
        preflight.existing_sqlite(settings)
    except preflight.PreflightError as problem:
        raise DatabaseUnusable(f"{problem}; then {hint}") from None
    engine = _engine(settings)  # an unreachable database: a PreflightError, exit 2 (main)
    try:
        with read_only(engine) as conn:
            status = VulnStore().status(conn)
    except BaseException:
        engine.dispose()
        raise
    if status.records == 0:
        engine.dispose()
        shown = engine.url.render_as_string(hide_password=True)
        raise DatabaseUnusable(f"the vulnerability database in {shown} has no records: {hint}")
    return engine


def match_boms(engine: Engine, boms: Sequence[ImageBom], name: str) -> Matched:
    """The findings of `boms` (the images of `name`), read in one read-only transaction."""
    from trustyard.vulnerabilities.findings import image_components, match, packages
    from trustyard.vulnerabilities.service import VulnerabilityService

    components, left_out = image_components([bom.to_json() for bom in boms])
    service = VulnerabilityService()
    with read_only(engine) as conn:
        version = service.version(conn)
        index = service.index_for(conn, packages(components))
    findings = match(index, components)
    digest = boms[0].manifest_digest if len(boms) == 1 else ""
    vulnerabilities = ImageVulnerabilities(
        repository=name,
        manifest_digest=digest,
        status="matched",
        scan_id=None,
        database_version=version,
        matched_at=datetime.now(UTC),
        error=None,
        findings=tuple(findings),
    )
    return Matched(vulnerabilities, tuple(left_out), len(components))


@contextmanager
def read_only(engine: Engine) -> Iterator[Connection]:
    """A read-only transaction: SQLite refuses writes on the connection (`query_only`: the
    engine is this command's own and only ever reads), PostgreSQL in the transaction."""
    from trustyard.db.engine import is_sqlite, read_tx

    with read_tx(engine) as conn:
        sql = "PRAGMA query_only = ON" if is_sqlite(engine) else "SET TRANSACTION READ ONLY"
        conn.exec_driver_sql(sql)
        yield conn


def fails(findings: Sequence[ImageFinding], threshold: Bucket) -> bool:
    """Whether any finding is at `threshold` or above. An unrated one (bucket unknown) may be
    of any severity: it fails the lowest threshold, minor ("any vulnerability"), only."""
    floor = Bucket.UNKNOWN.rank if threshold is Bucket.MINOR else threshold.rank
    return any(not f.suppressed and _bucket(f.bucket).rank >= floor for f in findings)


def _bucket(text: str) -> Bucket:
    try:
        return Bucket(text)
    except ValueError:
        return Bucket.UNKNOWN


def summary(counts: Counts) -> str:
    """`3 vulnerabilities: 1 critical, 2 major, 0 minor, 0 unknown`."""
    noun = "vulnerability" if counts.total == 1 else "vulnerabilities"
    return (
        f"{counts.total} {noun}: {counts.critical} critical, {counts.major} major, "
        f"{counts.minor} minor, {counts.unknown} unknown"
    )


def table(boms: Sequence[ImageBom], matched: Matched, name: str) -> str:
    """One table per platform image: component, version, layer, vulnerability, bucket,
    fixed-in and how it was matched; its summary by bucket below it."""
    from rich.console import Console
    from rich.table import Table

    out = io.StringIO()
    console = Console(file=out, width=200, color_system=None, highlight=False, soft_wrap=False)
    version = matched.vulnerabilities.database_version
    for bom in boms:
        mine = [f for f in matched.findings if f.component.platform == bom.platform]
        distro = f", {bom.distro.pretty_name or bom.distro.id}" if bom.distro else ""
        console.print(
            f"{name} {bom.platform} {bom.manifest_digest}{distro}, "
            f"vulnerability database version {version}",
            markup=False,
        )
        table = Table(caption=summary(Counts.of(mine)), caption_justify="left")
        for column in ("component", "version", "layer", "vulnerability", "bucket"):
            table.add_column(column, overflow="fold")
        table.add_column("fixed in", overflow="fold")
        table.add_column("via", overflow="fold")
        for finding in mine:
            component = finding.component
            via = str(component.target.via)
            if component.target.name != component.name:
                via = f"{via} {component.target.name} {component.target.version}"
            table.add_row(
                component.name,
                component.version,
                _short(component.layer),
                finding.vuln_id,
                finding.bucket,
                finding.fixed or "",
                via,
            )
        console.print(table)
    if len(boms) > 1:
        console.print(f"{name}: {summary(matched.vulnerabilities.counts)}", markup=False)
    reasons = Counter(reason for _, reason in matched.left_out)
    for reason, count in sorted(reasons.items()):
        noun = "component" if count == 1 else "components"
        console.print(f"note: {count} {noun} not matched: {reason}", markup=False)
    return out.getvalue()


def to_json(matched: Matched) -> dict[str, Any]:
    """The registry's JSON report of an image (`vulnerabilities/exports.py`)."""
    from trustyard.vulnerabilities.exports import to_json as report

    return report(matched.vulnerabilities)


def _short(digest: str) -> str:
    return digest.partition(":")[2][:12] or digest[:12]


def data_dir_hint(data_dir: Path | None, database_url: str | None) -> str:
    """How the user named the database, for the import hint."""
    if database_url:
        return " --database-url URL"
    if data_dir is not None:
        return f" --data-dir {data_dir}"
    return ""


def to_cyclonedx(boms: Sequence[ImageBom], matched: Matched) -> str:
    """The image's CycloneDX 1.6 BOM with its `vulnerabilities`, as the registry exports it."""
    from trustyard.scanning.cyclonedx import iter_cyclonedx
    from trustyard.vulnerabilities.exports import cyclonedx_sections

    found = matched.vulnerabilities
    chunks = iter_cyclonedx(boms, found.repository, sections=cyclonedx_sections(found))
    return b"".join(chunks).decode()
