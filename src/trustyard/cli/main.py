"""The `trustyard` command."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from typer.core import TyperArgument

from trustyard.cli import preflight
from trustyard.cli.jobs import DatabaseUrl, DataDir, embedded_worker, jobs_app, worker
from trustyard.cli.preflight import PreflightError
from trustyard.cli.scan import scan
from trustyard.cli.vulndb import vulndb_app
from trustyard.config import ServerSettings, Settings, load_settings

# Plain click help: paragraphs rewrapped to the terminal, type names as words, no boxes.
app = typer.Typer(
    help="trustyard: a trusted OCI container registry.",
    no_args_is_help=True,
    rich_markup_mode=None,
    context_settings={"show_default": True},
)
err = Console(stderr=True, soft_wrap=True)
DEFAULT = ServerSettings()
# An argument's help row is its metavar alone: typer would add `<str>`, `<int>` after it.
setattr(TyperArgument, "display_type_rich", lambda _self, ctx: None)  # noqa: B010


def _version(wanted: bool) -> None:
    if wanted:
        from importlib.metadata import version

        typer.echo(f"trustyard {version('trustyard')}")
        raise typer.Exit()


@app.callback()
def _main(
    _version_: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    """trustyard: a trusted OCI container registry."""


def _settings(data_dir: Path | None, database_url: str | None, **server: object) -> Settings:
    preflight.private_files()
    base = load_settings(data_dir=data_dir, database_url=database_url)
    wanted = {k: v for k, v in server.items() if v is not None}
    if wanted:
        base = base.model_copy(update={"server": base.server.model_copy(update=wanted)})
    return base


def _prepare(settings: Settings) -> None:
    from trustyard.db import migrate as migrations
    from trustyard.db.engine import make_engine

    for warning in preflight.data_dir(settings, create=True):
        err.print(f"warning: {warning}")
    engine = make_engine(preflight.database_url(settings))
    try:
        preflight.database(engine)
        migrations.upgrade(engine)
    finally:
        engine.dispose()


def _bootstrap_accounts(settings: Settings) -> None:
    """First start with accounts on: create `admin` and say once how to log in."""
    from trustyard.auth.accounts import AccountService
    from trustyard.db.engine import make_engine, write_tx
    from trustyard.wiring.common import signing_passphrase

    signing_passphrase(settings)  # created before the workers race for it
    configured = settings.admin_password.get_secret_value() if settings.admin_password else None
    engine = make_engine(settings.effective_database_url)
    try:
        with write_tx(engine) as conn:
            generated = AccountService().ensure_admin(conn, configured)
    finally:
        engine.dispose()
    if generated is not None:
        err.print(f"created the administrator: log in as admin with password {generated}")
        err.print(
            "(shown once; set TRUSTYARD_ADMIN_PASSWORD to choose it instead, "
            "or run `trustyard passwd admin` to set a new one)"
        )
    elif configured is None:
        err.print(
            "log in as admin with the password printed on first start "
            "(lost it? `trustyard passwd admin` sets a new one)"
        )
    else:
        err.print("log in as admin (its first password came from TRUSTYARD_ADMIN_PASSWORD)")


@app.command()
def serve(
    host: Annotated[
        str | None,
        typer.Option(metavar="ADDRESS", help=f"Address to listen on.  [default: {DEFAULT.host}]"),
    ] = None,
    port: Annotated[
        int | None, typer.Option(metavar="PORT", help=f"TCP port.  [default: {DEFAULT.port}]")
    ] = None,
    workers: Annotated[
        int | None,
        typer.Option(
            metavar="N",
            help=f"Worker processes, 0 for one per core.  [default: {DEFAULT.workers}]",
        ),
    ] = None,
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Run the registry (migrating the database first)."""
    from granian import Granian
    from granian.constants import Interfaces

    settings = _settings(data_dir, database_url, host=host, port=port, workers=workers)
    _check_ldap(settings)
    preflight.database_url(settings)
    preflight.port_free(settings.server.host, settings.server.port)
    preflight.data_dir(settings, create=True)
    lock = preflight.lock_data_dir(settings)  # held (open) until this process ends
    _prepare(settings)
    if settings.auth.enabled:
        _bootstrap_accounts(settings)
    if settings.metrics.enabled:
        from trustyard.metrics.recorder import wipe

        wipe(settings.metrics_dir)  # counters start again with the server's processes
    os.environ.update(settings.to_environment())
    count = settings.server.workers or os.cpu_count() or 1
    err.print(
        f"trustyard listening on http://{settings.server.host}:{settings.server.port} "
        f"({count} workers, data in {settings.data_dir.resolve()})"
    )
    creds = "--dest-creds admin:PASSWORD " if settings.auth.enabled else ""
    # The README's example: admin's own namespace (an open registry has no namespaces' owners).
    example = "admin/app" if settings.auth.enabled else "library/app"
    if settings.auth.enabled:
        err.print(
            f"log in: podman login --tls-verify=false -u admin "
            f"{settings.server.host}:{settings.server.port}"
        )
    err.print(
        f"push an image: skopeo copy {creds}--dest-tls-verify=false oci:DIR:TAG "
        f"docker://{settings.server.host}:{settings.server.port}/{example}:TAG"
    )
    with embedded_worker(settings):  # background jobs in a process of their own
        Granian(
            "trustyard.app:asgi_factory",
            address=settings.server.host,
            port=settings.server.port,
            interface=Interfaces.ASGI,
            workers=count,
            factory=True,
            log_access=False,
            log_level=settings.log_level,  # type: ignore[arg-type]
            respawn_failed_workers=True,
            backlog=2048,
        ).serve()
    if lock is not None:
        os.close(lock)


@app.command()
def passwd(
    username: Annotated[str, typer.Argument(metavar="USERNAME", help="The account.")] = "admin",
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="Read the new password from standard input.")
    ] = False,
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Set a local account's password (generated and printed unless read from stdin) and lift
    any login lock on it: the way back in when the admin password is lost."""
    import sys

    from trustyard.auth import secrets
    from trustyard.auth.accounts import AccountService
    from trustyard.auth.login_throttle import LoginThrottle
    from trustyard.db.engine import make_engine, write_tx
    from trustyard.errors import DomainError

    settings = _settings(data_dir, database_url)
    _prepare(settings)
    password = sys.stdin.readline().rstrip("\r\n") if password_stdin else None
    new = password if password else secrets.generate_password()
    engine = make_engine(settings.effective_database_url)
    try:
        with write_tx(engine) as conn:
            AccountService().change_password(conn, username, new)
            LoginThrottle().forgive(conn, username)
    except DomainError as problem:
        err.print(f"[red]cannot set the password of {username!r}: {problem}[/red]")
        raise typer.Exit(1) from None
    finally:
        engine.dispose()
    if password:
        err.print(f"password of {username!r} changed")
    else:
        typer.echo(f"new password of {username!r}: {new}")


@app.command()
def migrate(data_dir: DataDir = None, database_url: DatabaseUrl = None) -> None:
    """Bring the metadata database to the newest schema."""
    from trustyard.db import migrate as migrations

    settings = _settings(data_dir, database_url)
    _prepare(settings)
    err.print(f"database at revision {migrations.head_revision()}")


@app.command()
def fsck(
    repair: Annotated[bool, typer.Option(help="Remove corrupt and orphaned data.")] = False,
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Verify every stored blob against its digest and every manifest's references."""
    from trustyard.content.fsck import fsck as run_fsck
    from trustyard.content.stores import ContentStore
    from trustyard.db.engine import make_engine
    from trustyard.wiring.common import make_driver

    settings = _settings(data_dir, database_url)
    preflight.existing_sqlite(settings)
    engine = make_engine(preflight.database_url(settings))
    preflight.database(engine)
    with err.status("checking...") as status:
        report = run_fsck(
            engine,
            ContentStore(),
            make_driver(settings),
            repair=repair,
            progress=status.update,
        )
    for finding in report.findings:
        mark = "repaired" if finding.repaired else "PROBLEM" if finding.problem else "garbage"
        typer.echo(f"{mark}\t{finding.kind}\t{finding.subject}\t{finding.detail}")
    verdict = "clean" if report.clean else f"{len(report.problems)} problems"
    if report.garbage:
        verdict += (
            f" ({len(report.garbage)} leftovers of interrupted writes; --repair removes them)"
        )
    typer.echo(
        f"checked {report.blobs_checked} blobs and {report.manifests_checked} manifests: {verdict}"
    )
    raise typer.Exit(0 if report.clean else 1)


def _check_ldap(settings: Settings) -> None:
    """Refuse to start with LDAP settings the directory client would refuse later."""
    if not settings.ldap.enabled:
        return
    from trustyard.wiring.common import ldap_config

    try:
        ldap_config(settings.ldap)
    except ValueError as error:
        err.print(f"invalid LDAP settings (TRUSTYARD_LDAP__*): {error}")
        raise typer.Exit(2) from None
    if not settings.auth.enabled:
        err.print("LDAP is enabled but accounts are not (TRUSTYARD_AUTH__ENABLED): it is unused")


@app.command("ldap-sync")
def ldap_sync(data_dir: DataDir = None, database_url: DatabaseUrl = None) -> None:
    """Sync the LDAP-linked teams (and email, full name) of every directory account now."""
    from trustyard.auth.jobs import sync_ldap_teams
    from trustyard.auth.ldap import LdapUnavailable
    from trustyard.db.engine import make_engine
    from trustyard.wiring.common import make_ldap

    settings = _settings(data_dir, database_url)
    if not settings.ldap.enabled:
        err.print("LDAP is not enabled (TRUSTYARD_LDAP__ENABLED=true and its settings)")
        raise typer.Exit(2)
    _check_ldap(settings)
    ldap = make_ldap(settings)
    assert ldap is not None
    engine = make_engine(settings.effective_database_url)
    try:
        results = sync_ldap_teams(engine, ldap)
    except LdapUnavailable as error:
        err.print(f"LDAP sync failed, nothing changed: {error}")
        raise typer.Exit(1) from None
    finally:
        engine.dispose()
    for result in results:
        for team in result.joined:
            typer.echo(f"joined\t{result.username}\t{team}")
        for team in result.left:
            typer.echo(f"left\t{result.username}\t{team}")
        if not result.in_directory:
            typer.echo(f"missing\t{result.username}\tnot in the directory")
    joins = sum(len(result.joined) for result in results)
    leaves = sum(len(result.left) for result in results)
    missing = sum(not result.in_directory for result in results)
    typer.echo(
        f"synced {len(results)} directory accounts: {joins} team joins, {leaves} team leaves, "
        f"{missing} not in the directory"
    )


app.command()(worker)
app.command()(scan)
app.add_typer(jobs_app, name="jobs")
app.add_typer(vulndb_app, name="vulndb")


def main() -> None:
    from pydantic import ValidationError

    logging.basicConfig(level=logging.WARNING)
    try:
        app(prog_name="trustyard")
    except PreflightError as problem:
        err.print(f"trustyard: {problem}", markup=False, highlight=False)
        raise SystemExit(preflight.EXIT_CODE) from None
    except ValidationError as problem:
        wrong = "; ".join(
            f"{'.'.join(str(part) for part in error['loc'])}: {error['msg']}"
            for error in problem.errors()
        )
        err.print(f"trustyard: invalid settings: {wrong}", markup=False, highlight=False)
        raise SystemExit(preflight.EXIT_CODE) from None
