"""`trustyard vulndb import PATH...` (offline OSV bundles into the metadata database),
`trustyard vulndb update` (the online update, now, in the foreground) and `trustyard vulndb
status` (its version, each source's records, last update and failure)."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Annotated, Any

import typer

from trustyard.cli.jobs import AsJson, DatabaseUrl, DataDir, _engine, _settings, err

vulndb_app = typer.Typer(
    help="The vulnerability database: import OSV bundles, update it online, show its state.",
    no_args_is_help=True,
)


def _when(value: Any) -> str | None:
    return value.isoformat(timespec="seconds") if value is not None else None


def _sha256(value: str, bundle: Path) -> str:
    """A digest given as 64 hex digits, or a SHA-256 file (`sha256sum` output) naming it."""
    from trustyard.vulnerabilities.bundles import expected_sha256

    candidate = Path(value)
    if candidate.is_file():
        return expected_sha256(candidate.read_text(errors="replace"), bundle)
    return value


@vulndb_app.command("import")
def import_bundles(
    paths: Annotated[
        list[Path],
        typer.Argument(
            metavar="PATH...",
            help="OSV bundles: zips like osv.dev's <ecosystem>/all.zip, .tar.gz files, or "
            "folders of .json records. Each replaces the records of its source.",
        ),
    ],
    source: Annotated[
        str | None,
        typer.Option(
            metavar="NAME",
            help="The source the bundle replaces (one PATH only).  [default: the bundle's "
            "name without its suffix; the folder's name for all.zip]",
        ),
    ] = None,
    sha256: Annotated[
        str | None,
        typer.Option(
            metavar="HEX|FILE",
            help="The bundle's SHA-256, or a file of `sha256sum` lines naming it (one PATH "
            "only): checked before anything is written.",
        ),
    ] = None,
    as_json: AsJson = False,
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Import offline OSV bundles, each atomically: readers see the source's old records
    until its new ones are all written; a bundle that fails changes nothing."""
    from trustyard.errors import DomainError
    from trustyard.wiring.vulnerabilities import make_importer

    if (source is not None or sha256 is not None) and len(paths) != 1:
        err.print("--source and --sha256 name one bundle: give one PATH with them")
        raise typer.Exit(2)
    settings = _settings(data_dir, database_url)
    engine = _engine(settings)
    failed = False
    reports = []
    try:
        importer = make_importer(settings, engine)
        for path in paths:
            try:
                expected = _sha256(sha256, path) if sha256 is not None else None
                report = importer.import_bundle(path, source=source, sha256=expected)
            except DomainError as error:
                err.print(f"{path}: {error.message}", markup=False, highlight=False)
                failed = True
                continue
            reports.append(report)
            if not as_json:
                typer.echo(
                    f"{report.source}: {report.records} records ({report.added} added, "
                    f"{report.changed} changed, {report.unchanged} unchanged, {report.removed} "
                    f"removed; {report.withdrawn} withdrawn left out), "
                    f"{len(report.changed_packages)} packages changed, "
                    f"{report.warning_count} warnings, {report.seconds:.1f} s"
                )
                for warning in report.warnings:
                    typer.echo(f"  warning: {warning}")
    finally:
        engine.dispose()
    if as_json:
        body = [
            {
                **{k: v for k, v in asdict(r).items() if k != "changed_packages"},
                "warnings": list(r.warnings),
                "changed_packages": sorted(list(p) for p in r.changed_packages),
            }
            for r in reports
        ]
        typer.echo(json.dumps(body, indent=2))
    if failed:
        raise typer.Exit(1)


@vulndb_app.command("update")
def update(
    sources: Annotated[
        list[str] | None,
        typer.Option(
            "--source",
            metavar="URL",
            help="An OSV bundle to fetch (repeatable).  [default: the settings' "
            "vulnerabilities.update_sources, else osv.dev's all.zip of every ecosystem seen]",
        ),
    ] = None,
    as_json: AsJson = False,
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Run the online update now, in the foreground: fetch each source (conditionally,
    resuming a download cut off), import what changed. Progress goes to stderr with --json.
    Refused while the update job is queued or running."""
    from trustyard.db.engine import read_tx
    from trustyard.jobs.stores import JobStore
    from trustyard.vulnerabilities.jobs import UPDATE_DEDUPE_KEY
    from trustyard.wiring.vulnerabilities import make_updater

    settings = _settings(data_dir, database_url)
    engine = _engine(settings)
    try:
        with read_tx(engine) as conn:
            live = JobStore().live_id(conn, UPDATE_DEDUPE_KEY)
        if live is not None:
            err.print(f"an update is queued or running as job {live}: wait for it to end")
            raise typer.Exit(1)

        def say(line: str) -> None:
            if as_json:
                err.print(line, markup=False, highlight=False)
            else:
                typer.echo(line)

        result = make_updater(settings, engine).run(sources or None, progress=say)
    finally:
        engine.dispose()
    if as_json:
        body = [
            {
                "source": o.source,
                "url": o.url,
                "status": o.status,
                "error": o.error,
                "downloaded_bytes": o.downloaded_bytes,
                "resumed_from": o.resumed_from,
                "records": o.report.records if o.report else None,
                "changed_packages": len(o.report.changed_packages) if o.report else None,
            }
            for o in result.outcomes
        ]
        typer.echo(json.dumps(body, indent=2))
    elif not result.outcomes:
        typer.echo(result.summary())
    if result.failed:
        raise typer.Exit(1)


@vulndb_app.command("status")
def status(
    as_json: AsJson = False,
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
) -> None:
    """The database's version, and per source: records, last update, last failure."""
    from trustyard.db.engine import read_tx
    from trustyard.wiring.vulnerabilities import make_vulnerability_service

    settings = _settings(data_dir, database_url)
    engine = _engine(settings)
    try:
        with read_tx(engine) as conn:
            found = make_vulnerability_service(settings).status(conn)
    finally:
        engine.dispose()
    sources = [
        {
            "name": s.name,
            "url": s.url,
            "generation": s.generation,
            "records": s.records,
            "bundle_sha256": s.bundle_sha256,
            "updated_at": _when(s.updated_at),
            "failed_at": _when(s.failed_at),
            "error": s.error,
            "importing": s.importing,
        }
        for s in found.sources
    ]
    if as_json:
        body = {
            "version": found.version,
            "updated_at": _when(found.updated_at),
            "records": found.records,
            "sources": sources,
        }
        typer.echo(json.dumps(body, indent=2))
        return
    typer.echo(
        f"database version {found.version}, {found.records} records, updated "
        f"{_when(found.updated_at) or 'never'}"
    )
    typer.echo("\t".join(("source", "records", "updated", "failed", "error")))
    for s in sources:
        typer.echo(
            "\t".join(
                (
                    str(s["name"]) + (" (importing)" if s["importing"] else ""),
                    str(s["records"]),
                    str(s["updated_at"] or "never"),
                    str(s["failed_at"] or ""),
                    str(s["error"] or "").split("\n", 1)[0][:120],
                )
            )
        )
