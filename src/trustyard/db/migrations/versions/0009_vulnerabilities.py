"""vulnerabilities

The OSV database (issue 11): the one-row generation counter and database version
(vuln_database), the sources records come from with their current and pending generation
(vuln_sources), the records of each generation with their JSON (vuln_records), and the
packages they name, indexed by (ecosystem, name, generation) for lookups by component
(vuln_affected).

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-07 18:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "vuln_database",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("generation", sa.Integer(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_vuln_database")),
    )
    op.execute("INSERT INTO vuln_database (id, generation, version) VALUES (1, 0, 0)")
    op.create_table(
        "vuln_sources",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("url", sa.Text(), nullable=True),
        sa.Column("etag", sa.String(length=512), nullable=True),
        sa.Column("last_modified", sa.String(length=128), nullable=True),
        sa.Column("bundle_sha256", sa.String(length=64), nullable=True),
        sa.Column("generation", sa.Integer(), nullable=True),
        sa.Column("pending_generation", sa.Integer(), nullable=True),
        sa.Column("pending_since", sa.DateTime(timezone=True), nullable=True),
        sa.Column("records", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("failed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_vuln_sources")),
        sa.UniqueConstraint("name", name=op.f("uq_vuln_sources_name")),
    )
    op.create_table(
        "vuln_records",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("source_id", sa.Integer(), nullable=False),
        sa.Column("generation", sa.Integer(), nullable=False),
        sa.Column("osv_id", sa.String(length=128), nullable=False),
        sa.Column("modified", sa.DateTime(timezone=True), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("severity", sa.String(length=32), nullable=True),
        sa.Column("aliases", sa.Text(), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.ForeignKeyConstraint(
            ["source_id"],
            ["vuln_sources.id"],
            name=op.f("fk_vuln_records_source_id_vuln_sources"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_vuln_records")),
        sa.UniqueConstraint(
            "source_id",
            "generation",
            "osv_id",
            name=op.f("uq_vuln_records_source_id_generation_osv_id"),
        ),
    )
    op.create_table(
        "vuln_affected",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("record_id", sa.Integer(), nullable=False),
        sa.Column("ecosystem", sa.String(length=128), nullable=False),
        sa.Column("name", sa.String(length=1024), nullable=False),
        sa.Column("generation", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["record_id"],
            ["vuln_records.id"],
            name=op.f("fk_vuln_affected_record_id_vuln_records"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_vuln_affected")),
    )
    op.create_index(
        op.f("ix_vuln_affected_ecosystem_name_generation"),
        "vuln_affected",
        ["ecosystem", "name", "generation"],
    )
    op.create_index(op.f("ix_vuln_affected_record_id"), "vuln_affected", ["record_id"])


def downgrade() -> None:
    op.drop_index(op.f("ix_vuln_affected_record_id"), table_name="vuln_affected")
    op.drop_index(op.f("ix_vuln_affected_ecosystem_name_generation"), table_name="vuln_affected")
    op.drop_table("vuln_affected")
    op.drop_table("vuln_records")
    op.drop_table("vuln_sources")
    op.drop_table("vuln_database")
