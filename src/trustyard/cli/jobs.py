"""`trustyard worker` (run background jobs) and `trustyard jobs list|show|retry|cancel`;
also the embedded worker process that `trustyard serve` starts and stops."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console

from trustyard.cli import preflight
from trustyard.config import Settings, load_settings
from trustyard.jobs.interfaces import Job, JobError, JobState

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from trustyard.jobs.admin import JobDetail

jobs_app = typer.Typer(help="Look at background jobs, retry or cancel them.", no_args_is_help=True)
err = Console(stderr=True, soft_wrap=True)

DataDir = Annotated[
    Path | None,
    typer.Option(
        "--data-dir",
        metavar="DIR",
        help="Folder for blobs and the SQLite database.  [default: ./data]",
    ),
]
DatabaseUrl = Annotated[
    str | None,
    typer.Option(
        "--database-url",
        metavar="URL",
        help="postgresql://USER:PASSWORD@HOST/NAME, or another SQLAlchemy URL.  "
        "[default: SQLite in the data folder]",
    ),
]
AsJson = Annotated[bool, typer.Option("--json", help="Print JSON.")]
EMBEDDED_NICENESS = 5


def _settings(data_dir: Path | None, database_url: str | None) -> Settings:
    preflight.private_files()
    return load_settings(data_dir=data_dir, database_url=database_url)


def _engine(settings: Settings, pool_size: int = 2) -> Engine:
    from trustyard.db import migrate as migrations
    from trustyard.db.engine import make_engine

    preflight.existing_sqlite(settings)
    engine = make_engine(preflight.database_url(settings), pool_size=pool_size)
    try:
        preflight.database(engine)
    except preflight.PreflightError:
        engine.dispose()
        raise
    current, head = migrations.current_revision(engine), migrations.head_revision()
    if current != head:
        engine.dispose()
        err.print(
            f"the database schema is at {current or 'nothing'}, this trustyard needs {head}: "
            "run `trustyard migrate` (or start `trustyard serve`) first"
        )
        raise typer.Exit(2)
    return engine


# --- the worker ----------------------------------------------------------------------------


def worker(
    concurrency: Annotated[
        int,
        typer.Option("--concurrency", "-c", min=1, max=256, metavar="N", help="Jobs run at once."),
    ] = 4,
    embedded: Annotated[
        bool, typer.Option("--embedded", hidden=True, help="Started by serve: end with it.")
    ] = False,
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Run background jobs (and fire due schedules) until SIGTERM or SIGINT; then finish or
    release the running jobs. Run several, on several machines, against one PostgreSQL."""
    from trustyard.metrics.recorder import Recorder
    from trustyard.wiring.jobs import make_worker

    settings = _settings(data_dir, database_url)
    logging.getLogger("trustyard").setLevel(settings.log_level.upper())
    engine = _engine(settings, pool_size=concurrency + 2)
    # Job runs count in the server's /metrics: only the embedded worker shares them.
    recorder = Recorder() if embedded and settings.metrics.enabled else None
    try:
        runner = make_worker(settings, engine, concurrency, recorder)

        def stop(signum: int, _frame: object) -> None:
            err.print(f"trustyard worker {runner.name}: {signal.Signals(signum).name}, stopping")
            runner.request_stop()

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        if embedded:
            os.nice(EMBEDDED_NICENESS)  # requests come first when the cores are busy
            _stop_with_parent(runner.request_stop)
            if recorder is not None:
                recorder.configure(settings.metrics_dir)
        kinds = ", ".join(runner.handlers)
        err.print(
            f"trustyard worker {runner.name} ready: {concurrency} jobs at once; kinds: {kinds}"
        )
        runner.run()
    finally:
        engine.dispose()


def _stop_with_parent(stop: Any) -> None:
    """An embedded worker stops when the `serve` that started it is gone (even if it was
    killed and could not say so)."""
    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1)
        stop()

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


@contextmanager
def embedded_worker(settings: Settings) -> Iterator[subprocess.Popen[bytes] | None]:
    """Run `trustyard worker` beside the HTTP server (its settings come through the TRUSTYARD_*
    environment `serve` exported); stop it, gracefully, when the server stops."""
    count = settings.jobs.embedded_workers
    if count == 0:
        yield None
        return
    command = [sys.executable, "-m", "trustyard", "worker", "--embedded", "-c", str(count)]
    process = subprocess.Popen(command)  # same environment, stderr and process group
    try:
        yield process
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=settings.jobs.shutdown_grace_seconds + 5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


# --- jobs list | show | retry | cancel -------------------------------------------------------


def job_json(job: Job) -> dict[str, Any]:
    def when(value: Any) -> str | None:
        return value.isoformat() if value is not None else None

    return {
        "id": job.id,
        "kind": job.kind,
        "state": job.state.value,
        "payload": dict(job.payload),
        "priority": job.priority,
        "attempts": job.attempts,
        "max_attempts": job.max_attempts,
        "run_after": when(job.run_after),
        "dedupe_key": job.dedupe_key,
        "schedule": job.schedule,
        "lease_owner": job.lease_owner,
        "lease_expires_at": when(job.lease_expires_at),
        "last_error": job.last_error,
        "created_at": when(job.created_at),
        "started_at": when(job.started_at),
        "finished_at": when(job.finished_at),
    }


def detail_json(detail: JobDetail) -> dict[str, Any]:
    body = job_json(detail.job)
    body["history"] = [
        {
            "attempt": attempt.attempt,
            "worker": attempt.worker,
            "outcome": attempt.outcome,
            "error": attempt.error,
            "started_at": attempt.started_at.isoformat(),
            "finished_at": attempt.finished_at.isoformat() if attempt.finished_at else None,
        }
        for attempt in detail.attempts
    ]
    return body


def _first_line(text: str | None) -> str:
    return (text or "").split("\n", 1)[0][:120]


HEADER = ("id", "state", "kind", "attempts", "due", "error")


def _line(job: Job) -> str:
    return "\t".join(
        (
            str(job.id),
            job.state.value,
            job.kind,
            f"{job.attempts}/{job.max_attempts}",
            job.run_after.isoformat(timespec="seconds"),
            _first_line(job.last_error),
        )
    )


@jobs_app.command("list")
def list_jobs(
    state: Annotated[
        list[JobState] | None,
        typer.Option(
            "--state",
            metavar="STATE",
            help="Only jobs in this state (repeat): queued, running, succeeded, failed, dead "
            "or cancelled.",
        ),
    ] = None,
    kind: Annotated[
        str | None, typer.Option(metavar="KIND", help="Only jobs of this kind.")
    ] = None,
    limit: Annotated[
        int, typer.Option(min=1, max=10_000, metavar="N", help="At most this many.")
    ] = 50,
    as_json: AsJson = False,
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
) -> None:
    """The newest jobs: id, state, kind, attempts/max, due time, first line of the error."""
    from trustyard.db.engine import read_tx
    from trustyard.jobs.admin import JobAdmin

    engine = _engine(_settings(data_dir, database_url))
    try:
        with read_tx(engine) as conn:
            found = JobAdmin().list(conn, limit=limit, states=state or (), kind=kind)
    finally:
        engine.dispose()
    if as_json:
        typer.echo(json.dumps([job_json(job) for job in found], indent=2))
        return
    typer.echo("\t".join(HEADER))
    for job in found:
        typer.echo(_line(job))


@jobs_app.command("show")
def show_job(
    job_id: Annotated[int, typer.Argument(metavar="ID", help="The job's id.")],
    as_json: AsJson = False,
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
) -> None:
    """One job with its payload, last error and every attempt."""
    from trustyard.db.engine import read_tx
    from trustyard.jobs.admin import JobAdmin

    engine = _engine(_settings(data_dir, database_url))
    try:
        with read_tx(engine) as conn:
            detail = JobAdmin().get(conn, job_id)
    except JobError as error:
        err.print(str(error))
        raise typer.Exit(1) from None
    finally:
        engine.dispose()
    body = detail_json(detail)
    if as_json:
        typer.echo(json.dumps(body, indent=2))
        return
    history = body.pop("history")
    last_error = body.pop("last_error")
    for key, value in body.items():
        typer.echo(f"{key}: {json.dumps(value) if isinstance(value, dict) else value}")
    for attempt in history:
        typer.echo(
            f"attempt {attempt['attempt']}: {attempt['outcome']} on {attempt['worker']} "
            f"({attempt['started_at']} .. {attempt['finished_at'] or ''})"
            + (f": {_first_line(attempt['error'])}" if attempt["error"] else "")
        )
    if last_error:
        typer.echo(f"last error:\n{last_error}")


def _change(job_id: int, action: str, settings: Settings) -> None:
    from trustyard.db.engine import write_tx
    from trustyard.jobs.admin import JobAdmin

    engine = _engine(settings)
    admin = JobAdmin()
    try:
        with write_tx(engine) as conn:
            job = admin.retry(conn, job_id) if action == "retry" else admin.cancel(conn, job_id)
    except JobError as error:
        err.print(str(error))
        raise typer.Exit(1) from None
    finally:
        engine.dispose()
    typer.echo(f"job {job.id} ({job.kind}) is {job.state.value}")


@jobs_app.command("retry")
def retry_job(
    job_id: Annotated[int, typer.Argument(metavar="ID", help="The job's id.")],
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Queue a failed or dead job again, due now, with all its attempts ahead of it."""
    _change(job_id, "retry", _settings(data_dir, database_url))


@jobs_app.command("cancel")
def cancel_job(
    job_id: Annotated[int, typer.Argument(metavar="ID", help="The job's id.")],
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Cancel a queued job."""
    _change(job_id, "cancel", _settings(data_dir, database_url))
