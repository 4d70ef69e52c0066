"""credential freshness

A second counter, the credential generation, that triggers move whenever a remembered login
may have stopped being valid: a token revoked, expired early or deleted, a password changed, an
account renamed, deactivated or deleted, a robot deleted. Workers remember checked credentials
until it moves (the access generation of 0004 moves for far more, repository creation
included, and a password check costs an argon2 run: kept apart so pushes do not empty it).

Refresh tokens remember the client they were issued to (`access_tokens.client_id`, filled
from the token's name for those issued before), and those of deactivated users are revoked
(they stay dead when the user is reactivated).

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-07 14:00:00
"""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

WATCHED: dict[str, tuple[str, ...]] = {
    "access_tokens": ("DELETE", "UPDATE OF revoked_at, expires_at, secret_hash"),
    "users": ("DELETE", "UPDATE OF username, password_hash, is_active"),
    "robots": ("DELETE", "UPDATE OF name, organization_id"),
}
BUMP = "UPDATE credential_generation SET value = value + 1 WHERE id = 1"
FUNCTION = "trustyard_bump_credential_generation"
NAME_PREFIX = "refresh token ("  # refresh tokens were named "refresh token (<client_id>)"


def _trigger_name(table: str, event: str) -> str:
    return f"trg_credential_{table}_{event.split(maxsplit=1)[0].lower()}"


def upgrade() -> None:
    op.create_table(
        "credential_generation",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("value", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_credential_generation")),
    )
    op.execute("INSERT INTO credential_generation (id, value) VALUES (1, 0)")
    postgres = op.get_bind().dialect.name == "postgresql"
    if postgres:
        op.execute(
            f"CREATE FUNCTION {FUNCTION}() RETURNS trigger LANGUAGE plpgsql AS "
            f"$$ BEGIN {BUMP}; RETURN NULL; END $$"
        )
    action = f"FOR EACH ROW EXECUTE FUNCTION {FUNCTION}()" if postgres else f"BEGIN {BUMP}; END"
    for table, events in WATCHED.items():
        for event in events:
            name = _trigger_name(table, event)
            op.execute(f"CREATE TRIGGER {name} AFTER {event} ON {table} {action}")

    # ADD COLUMN (no table rebuild): the triggers on access_tokens stay.
    op.add_column("access_tokens", sa.Column("client_id", sa.String(length=64), nullable=True))
    start = len(NAME_PREFIX) + 1
    op.execute(
        f"UPDATE access_tokens SET client_id = substr(name, {start}, length(name) - {start}) "
        f"WHERE kind = 'rft' AND name LIKE '{NAME_PREFIX}%)' "
        f"AND name <> '{NAME_PREFIX}unnamed client)'"
    )
    inactive = sa.text(
        "UPDATE access_tokens SET revoked_at = :now WHERE kind = 'rft' AND revoked_at IS NULL "
        "AND user_id IN (SELECT id FROM users WHERE NOT is_active)"
    ).bindparams(sa.bindparam("now", type_=sa.DateTime(timezone=True)))
    op.get_bind().execute(inactive, {"now": datetime.now(UTC)})


def downgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    with op.batch_alter_table("access_tokens", recreate="never") as batch:
        batch.drop_column("client_id")
    for table, events in WATCHED.items():
        for event in events:
            name = _trigger_name(table, event)
            op.execute(f"DROP TRIGGER IF EXISTS {name}" + (f" ON {table}" if postgres else ""))
    if postgres:
        op.execute(f"DROP FUNCTION IF EXISTS {FUNCTION}()")
    op.drop_table("credential_generation")
