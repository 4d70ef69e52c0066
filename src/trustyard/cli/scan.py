"""`trustyard scan PATH`: the bill of materials of a local image, without a server.

PATH is an OCI image layout directory, an oci-archive or a docker-archive tarball. Every
platform of an index is scanned (or one, with --platform). The result goes to stdout (or
--output FILE); progress and messages go to stderr only, so `trustyard scan -f
cyclonedx-json IMG > sbom.json` is safe. Exit codes: 0 scanned, 2 bad input (no such path,
not an image, no such platform), 3 scan refused (a hostile or unreadable layer).

With --vulns the BOMs are matched against the registry's imported vulnerability database
(`cli/scan_vulns.py`, read only): exit 1 when a finding is at or above --fail-on, 2 when there
is no database to match against (checked before the scan starts).

Imports are lazy: `trustyard --help` must not pay for the scanner.
"""

from __future__ import annotations

import sys
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from collections.abc import Callable

    from rich.console import Console
    from rich.progress import Progress, TaskID
    from sqlalchemy import Engine

    from trustyard.scanning.bom import ImageBom

EXIT_FAILED = 1  # --fail-on: a vulnerability at or above the bucket
EXIT_BAD_INPUT = 2
EXIT_REFUSED = 3


class Format(StrEnum):
    table = "table"
    json = "json"
    cyclonedx_json = "cyclonedx-json"
    spdx_json = "spdx-json"


class FailOn(StrEnum):
    critical = "critical"
    major = "major"
    minor = "minor"


def scan(
    path: Annotated[
        Path,
        typer.Argument(
            metavar="PATH",
            help="OCI image layout directory, oci-archive or docker-archive tarball.",
        ),
    ],
    output_format: Annotated[
        Format,
        typer.Option(
            "--format", "-f", metavar="[table|json|cyclonedx-json|spdx-json]", help="What to write."
        ),
    ] = Format.table,
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", metavar="FILE", help="Write to FILE instead of stdout."),
    ] = None,
    platform: Annotated[
        str | None,
        typer.Option(
            metavar="PLATFORM",
            help="Scan only this platform of an index: os/arch or os/arch/variant.",
        ),
    ] = None,
    quiet: Annotated[
        bool, typer.Option("--quiet", "-q", help="No progress bar, no summary on stderr.")
    ] = False,
    vulns: Annotated[
        bool,
        typer.Option(
            "--vulns",
            help="Match the components against the registry's imported vulnerability "
            "database (`trustyard vulndb import`; no server needed) and report the "
            "vulnerabilities: a table, JSON, or CycloneDX with its vulnerabilities "
            "(spdx-json: the SBOM alone, with the summary on stderr).",
        ),
    ] = False,
    data_dir: Annotated[
        Path | None,
        typer.Option(
            "--data-dir",
            metavar="DIR",
            help="With --vulns: the registry's data folder, whose SQLite database holds the "
            "vulnerability database.  [default: ./data]",
        ),
    ] = None,
    database_url: Annotated[
        str | None,
        typer.Option(
            "--database-url",
            metavar="URL",
            help="With --vulns: the registry's database (postgresql://USER:PASSWORD@HOST/NAME) "
            "instead of the data folder's SQLite.",
        ),
    ] = None,
    fail_on: Annotated[
        FailOn | None,
        typer.Option(
            "--fail-on",
            metavar="[critical|major|minor]",
            help="With --vulns: exit 1 when a vulnerability is in this bucket or a worse one "
            "(critical: CVSS 7.0 and above, major: 4.0 to 6.9, minor: below 4.0). Unrated "
            "ones (no CVSS vector, no label) fail only at minor: any vulnerability fails it.",
        ),
    ] = None,
) -> None:
    """Scan a local image: which component each layer brings, where, under which licence;
    with --vulns, its vulnerabilities.

    Works without a server. The result goes to stdout (or --output),
    progress and messages to stderr. Exit status: 0 scanned, 1 a
    vulnerability at or above --fail-on, 2 bad input (no such path, not
    an image, no such platform, an option without --vulns, no vulnerability
    database), 3 scan refused (a hostile or unreadable layer).
    """
    from rich.console import Console

    err = Console(stderr=True, soft_wrap=True, highlight=False)
    if not vulns and (fail_on is not None or data_dir is not None or database_url is not None):
        err.print("trustyard scan: --fail-on, --data-dir and --database-url need --vulns")
        raise typer.Exit(EXIT_BAD_INPUT)
    engine = _vulnerability_database(data_dir, database_url, err) if vulns else None
    failed = False
    try:
        if engine is None:
            text = _scan(path, output_format, platform, quiet=quiet, err=err)
        else:
            text, failed = _scan_vulns(
                engine, path, output_format, platform, fail_on, quiet=quiet, err=err
            )
    except _BadInput as problem:
        err.print(f"trustyard scan: {problem}", markup=False)
        raise typer.Exit(EXIT_BAD_INPUT) from None
    except _Refused as problem:
        err.print(f"trustyard scan: scan refused: {problem}", markup=False)
        raise typer.Exit(EXIT_REFUSED) from None
    finally:
        if engine is not None:
            engine.dispose()
    if output is None:
        sys.stdout.write(text)
        sys.stdout.flush()
    else:
        try:
            output.write_text(text, encoding="utf-8")
        except OSError as problem:
            err.print(f"trustyard scan: cannot write {output}: {problem.strerror}", markup=False)
            raise typer.Exit(EXIT_BAD_INPUT) from None
    if failed:
        raise typer.Exit(EXIT_FAILED)


def _vulnerability_database(
    data_dir: Path | None, database_url: str | None, err: Console
) -> Engine:
    """The registry's database, checked to hold vulnerability records before the scan."""
    from trustyard.cli.jobs import _settings
    from trustyard.cli.scan_vulns import DatabaseUnusable, data_dir_hint, open_database

    settings = _settings(data_dir, database_url)
    try:
        return open_database(settings, data_dir_hint(data_dir, database_url))
    except DatabaseUnusable as problem:
        err.print(f"trustyard scan: {problem}", markup=False)
        raise typer.Exit(EXIT_BAD_INPUT) from None


def _scan_vulns(
    engine: Engine,
    path: Path,
    output_format: Format,
    platform: str | None,
    fail_on: FailOn | None,
    *,
    quiet: bool,
    err: Console,
) -> tuple[str, bool]:
    """The vulnerability report of `path` in `output_format`, and whether --fail-on fails."""
    from sqlalchemy.exc import SQLAlchemyError

    from trustyard.cli import scan_vulns
    from trustyard.vulnerabilities.severity import Bucket

    name = image_name(path)
    boms = _boms(path, platform, quiet=quiet, err=err)
    try:
        matched = scan_vulns.match_boms(engine, boms, name)
    except SQLAlchemyError as problem:
        first = str(getattr(problem, "orig", None) or problem).strip().splitlines()[0]
        raise _BadInput(f"cannot read the vulnerability database: {first}") from None
    counts = matched.vulnerabilities.counts
    if not quiet:
        err.print(f"{name}: {scan_vulns.summary(counts)}", markup=False)
    failed = fail_on is not None and scan_vulns.fails(matched.findings, Bucket(fail_on.value))
    if failed and not quiet:
        err.print(f"trustyard scan: vulnerabilities at or above {fail_on}: failing", markup=False)
    if output_format is Format.table:
        return scan_vulns.table(boms, matched, name), failed
    if output_format is Format.json:
        import json

        text = json.dumps(scan_vulns.to_json(matched), indent=2, ensure_ascii=False)
        return text + "\n", failed
    if output_format is Format.cyclonedx_json:
        return scan_vulns.to_cyclonedx(boms, matched) + "\n", failed
    return _render(boms, name, output_format), failed


class _BadInput(Exception):
    pass


class _Refused(Exception):
    pass


def image_name(path: Path) -> str:
    """What the documents call the image: the file or folder name without archive suffixes."""
    name = path.resolve().name or "image"
    for suffix in (".tar.gz", ".tgz", ".tar", ".oci"):
        if name.endswith(suffix) and len(name) > len(suffix):
            return name[: -len(suffix)]
    return name


def _scan(
    path: Path, output_format: Format, platform: str | None, *, quiet: bool, err: Console
) -> str:
    return _render(_boms(path, platform, quiet=quiet, err=err), image_name(path), output_format)


def _boms(path: Path, platform: str | None, *, quiet: bool, err: Console) -> list[ImageBom]:
    """The BOM of every image of `path` (or of `platform`'s), progress on `err`."""
    from trustyard.scanning.bom import assemble
    from trustyard.scanning.model import ScanRefused
    from trustyard.scanning.scanner import MemoryLayerCache, Scanner
    from trustyard.scanning.sources import open_path

    if not path.exists():
        raise _BadInput(f"{path}: no such file or directory")
    try:
        source = open_path(path)
        images = source.images()
    except (ScanRefused, ValueError, OSError) as problem:
        raise _BadInput(_about(path, problem)) from None
    try:
        if platform:
            chosen = [image for image in images if _platform_matches(image.platform, platform)]
            if not chosen:
                known = ", ".join(image.platform for image in images) or "none"
                raise _BadInput(f"{path}: no image for platform {platform} (it has: {known})")
            images = chosen
        if not images:
            raise _BadInput(f"{path}: no image in it")
        scanner = Scanner(cache=MemoryLayerCache())
        boms: list[ImageBom] = []
        show = not quiet and err.is_terminal
        with _progress(err, show) as bar:
            for image in images:
                label = image.platform if len(images) > 1 else ""
                try:
                    scans = scanner.scan_image(source, image, progress=bar.callback(label))
                except ScanRefused as problem:
                    where = f" ({image.platform})" if len(images) > 1 else ""
                    layer = f" layer {bar.current}:" if bar.current else ""
                    raise _Refused(f"{path}{where}:{layer} {_one_line(problem)}") from None
                boms.append(assemble(image, scans))
    finally:
        close = getattr(source, "close", None)
        if callable(close):
            close()
    if not quiet:
        for bom in boms:
            err.print(
                f"{image_name(path)} {bom.platform}: {_count(len(bom.components), 'component')} "
                f"in {_count(len(bom.layers), 'layer')}",
                markup=False,
            )
    return boms


def _one_line(problem: Exception) -> str:
    """The first line of a message (tarfile's errors list every method it tried)."""
    lines = str(problem).strip().splitlines() or [type(problem).__name__]
    return lines[0].rstrip(":")


def _about(path: Path, problem: Exception) -> str:
    text = _one_line(problem)
    return text if str(path) in text else f"{path}: {text}"


def _platform_matches(actual: str, wanted: str) -> bool:
    """`linux/arm64` matches `linux/arm64/v8`; `linux/arm64/v8` only itself."""
    actual_parts, wanted_parts = actual.split("/"), wanted.strip("/").split("/")
    return actual_parts[: len(wanted_parts)] == wanted_parts


def _render(boms: list[ImageBom], name: str, output_format: Format) -> str:
    if output_format is Format.cyclonedx_json:
        from trustyard.scanning.cyclonedx import to_cyclonedx

        return to_cyclonedx(boms, name) + "\n"
    if output_format is Format.spdx_json:
        from trustyard.scanning.spdx import to_spdx

        return to_spdx(boms, name) + "\n"
    if output_format is Format.json:
        import json

        document = {"name": name, "images": [bom.to_json() for bom in boms]}
        return json.dumps(document, indent=2, ensure_ascii=False) + "\n"
    return _table(boms, name)


def _table(boms: list[ImageBom], name: str) -> str:
    import io

    from rich.console import Console
    from rich.table import Table

    out = io.StringIO()
    console = Console(file=out, width=200, color_system=None, highlight=False, soft_wrap=False)
    for bom in boms:
        distro = f", {bom.distro.pretty_name or bom.distro.id}" if bom.distro else ""
        table = Table(
            title=f"{name} {bom.platform} {bom.manifest_digest}{distro}",
            title_justify="left",
            caption=f"{_count(len(bom.components), 'component')}, "
            f"{_count(len(bom.layers), 'layer')}",
            caption_justify="left",
        )
        for column in ("ecosystem", "name", "version", "layer", "licence", "location"):
            table.add_column(column, overflow="fold")
        for item in bom.components:
            component = item.component
            table.add_row(
                component.ecosystem,
                component.name,
                component.version,
                _short(item.layer),
                component.licenses or "",
                component.evidence,
            )
        console.print(table)
        notes = [(layer.digest, note) for layer in bom.layers for note in layer.notes]
        for digest, note in notes:
            console.print(f"note: layer {_short(digest)}: {note}", markup=False)
    return out.getvalue()


def _short(digest: str) -> str:
    return digest.partition(":")[2][:12] or digest[:12]


class _Bar:
    """rich progress on stderr, one task per layer (bytes read); nothing shown when hidden,
    but the layer being read is always known."""

    def __init__(self, progress: Progress | None) -> None:
        self.progress = progress
        self.tasks: dict[tuple[str, str], TaskID] = {}
        self.current = ""  # the layer being read (named when its scan is refused)

    def callback(self, label: str) -> Callable[[str, int, int], None]:
        progress = self.progress

        def update(digest: str, done: int, total: int) -> None:
            self.current = digest
            if progress is None:
                return
            key = (label, digest)
            task = self.tasks.get(key)
            if task is None:
                title = f"{label} {_short(digest)}".strip()
                task = progress.add_task(title, total=total or None)
                self.tasks[key] = task
            progress.update(task, completed=done, total=total or None)

        return update

    def __enter__(self) -> _Bar:
        if self.progress is not None:
            self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.progress is not None:
            self.progress.stop()


def _progress(err: Console, show: bool) -> _Bar:
    if not show:
        return _Bar(None)
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
        TransferSpeedColumn,
    )

    return _Bar(
        Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            DownloadColumn(),
            TransferSpeedColumn(),
            TimeRemainingColumn(),
            console=err,
            transient=True,
        )
    )


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"
