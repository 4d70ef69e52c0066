"""refresh tokens

Refresh tokens live in access_tokens (kind "rft"); they remember the token they were obtained
with and a fingerprint of the owner's password hash.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-29 10:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("access_tokens", schema=None) as batch_op:
        batch_op.add_column(sa.Column("parent_id", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("credential_stamp", sa.String(length=64), nullable=True))
        batch_op.create_foreign_key(
            batch_op.f("fk_access_tokens_parent_id_access_tokens"),
            "access_tokens",
            ["parent_id"],
            ["id"],
            ondelete="CASCADE",
        )


def downgrade() -> None:
    op.execute("DELETE FROM access_tokens WHERE kind = 'rft'")
    with op.batch_alter_table("access_tokens", schema=None) as batch_op:
        batch_op.drop_constraint(
            batch_op.f("fk_access_tokens_parent_id_access_tokens"), type_="foreignkey"
        )
        batch_op.drop_column("credential_stamp")
        batch_op.drop_column("parent_id")
