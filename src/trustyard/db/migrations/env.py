"""Alembic environment: runs on the connection handed over by trustyard.db.migrate."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection

from trustyard.db.tables import metadata


def run() -> None:
    connection: Connection | None = context.config.attributes.get("connection")
    if connection is None:
        raise RuntimeError("run migrations through `trustyard migrate` or trustyard.db.migrate")
    context.configure(
        connection=connection,
        target_metadata=metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


run()
