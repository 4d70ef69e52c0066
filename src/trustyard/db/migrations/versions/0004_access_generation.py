"""access generation

One counter that moves whenever anything an access decision reads changes: accounts (created,
deleted, admin or active flag), organizations, owners, teams, members, grants, robots, robot
grants, and repositories (created, deleted, renamed, visibility). Database triggers keep it, so
no write path can forget it; workers remember decisions until it moves.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-28 04:10:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

# table -> the events that change access decisions ("UPDATE OF a, b" for column lists)
WATCHED: dict[str, tuple[str, ...]] = {
    "users": ("INSERT", "DELETE", "UPDATE OF username, is_admin, is_active"),
    "organizations": ("INSERT", "DELETE", "UPDATE OF name"),
    "organization_owners": ("INSERT", "DELETE", "UPDATE"),
    "teams": ("INSERT", "DELETE", "UPDATE OF name, organization_id"),
    "team_members": ("INSERT", "DELETE", "UPDATE"),
    "team_repository_grants": ("INSERT", "DELETE", "UPDATE"),
    "team_organization_grants": ("INSERT", "DELETE", "UPDATE"),
    "robots": ("INSERT", "DELETE", "UPDATE OF name, organization_id"),
    "robot_grants": ("INSERT", "DELETE", "UPDATE"),
    "repositories": ("INSERT", "DELETE", "UPDATE OF name, visibility"),
}
BUMP = "UPDATE access_generation SET value = value + 1 WHERE id = 1"
FUNCTION = "trustyard_bump_access_generation"


def _trigger_name(table: str, event: str) -> str:
    return f"trg_access_{table}_{event.split(maxsplit=1)[0].lower()}"


def upgrade() -> None:
    op.create_table(
        "access_generation",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("value", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_access_generation")),
    )
    op.execute("INSERT INTO access_generation (id, value) VALUES (1, 0)")
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            f"CREATE FUNCTION {FUNCTION}() RETURNS trigger LANGUAGE plpgsql AS "
            f"$$ BEGIN {BUMP}; RETURN NULL; END $$"
        )
        for table, events in WATCHED.items():
            for event in events:
                op.execute(
                    f"CREATE TRIGGER {_trigger_name(table, event)} AFTER {event} ON {table} "
                    f"FOR EACH ROW EXECUTE FUNCTION {FUNCTION}()"
                )
    else:
        for table, events in WATCHED.items():
            for event in events:
                op.execute(
                    f"CREATE TRIGGER {_trigger_name(table, event)} AFTER {event} ON {table} "
                    f"BEGIN {BUMP}; END"
                )


def downgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    for table, events in WATCHED.items():
        for event in events:
            name = _trigger_name(table, event)
            op.execute(f"DROP TRIGGER IF EXISTS {name}" + (f" ON {table}" if postgres else ""))
    if postgres:
        op.execute(f"DROP FUNCTION IF EXISTS {FUNCTION}()")
    op.drop_table("access_generation")
