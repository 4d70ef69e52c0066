"""scan component lists

Each succeeded scan keeps, next to its BOMs, the compact list of components the policy engine
reads (scans.components: ecosystem, name, version, licence identifiers and purl of each
distinct component, MessagePack), so that a policy run over a repository never decodes whole
BOMs. Scans stored before stay NULL and are read from their BOMs.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-08 02:10:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("scans", sa.Column("components", sa.LargeBinary(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("scans", recreate="never") as batch:
        batch.drop_column("components")
