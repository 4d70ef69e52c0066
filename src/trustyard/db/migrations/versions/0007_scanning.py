"""scanning

The repository setting attach_sbom, the layer cache shared by all images (scan_layers), the
scans of manifests with their progress and image BOMs (scans), and the components of each
manifest's latest scan for the search across the registry (scan_components).

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-30 08:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

DIGEST = sa.String(length=200)


def upgrade() -> None:
    # ADD COLUMN (no table rebuild): the access-generation triggers of 0004 stay.
    op.add_column(
        "repositories",
        sa.Column("attach_sbom", sa.Boolean(), server_default=sa.false(), nullable=False),
    )
    op.create_table(
        "scan_layers",
        sa.Column("digest", DIGEST, nullable=False),
        sa.Column("scanner_version", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("result", sa.LargeBinary(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("scanned_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("duration_seconds", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("digest", name=op.f("pk_scan_layers")),
    )
    op.create_table(
        "scans",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("repository_id", sa.Integer(), nullable=False),
        sa.Column("manifest_digest", DIGEST, nullable=False),
        sa.Column("job_id", sa.Integer(), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("trigger", sa.String(length=16), nullable=False),
        sa.Column("force", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("requested_by", sa.String(length=128), nullable=True),
        sa.Column("bytes_done", sa.BigInteger(), server_default=sa.text("0"), nullable=False),
        sa.Column("bytes_total", sa.BigInteger(), server_default=sa.text("0"), nullable=False),
        sa.Column("layers_done", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("layers_total", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("boms", sa.LargeBinary(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["repository_id"],
            ["repositories.id"],
            name=op.f("fk_scans_repository_id_repositories"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_scans")),
    )
    op.create_index(
        op.f("ix_scans_repository_id_manifest_digest_id"),
        "scans",
        ["repository_id", "manifest_digest", "id"],
    )
    op.create_index(op.f("ix_scans_job_id"), "scans", ["job_id"])
    op.create_table(
        "scan_components",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("scan_id", sa.Integer(), nullable=False),
        sa.Column("repository_id", sa.Integer(), nullable=False),
        sa.Column("manifest_digest", DIGEST, nullable=False),
        sa.Column("platform", sa.String(length=64), nullable=False),
        sa.Column("ecosystem", sa.String(length=32), nullable=False),
        sa.Column("name", sa.String(length=512), nullable=False),
        sa.Column("version", sa.String(length=255), nullable=False),
        sa.Column("purl", sa.String(length=1024), nullable=False),
        sa.Column("layer_digest", DIGEST, nullable=False),
        sa.Column("location", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["scan_id"],
            ["scans.id"],
            name=op.f("fk_scan_components_scan_id_scans"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_scan_components")),
    )
    op.create_index(op.f("ix_scan_components_name_version"), "scan_components", ["name", "version"])
    op.create_index(op.f("ix_scan_components_purl"), "scan_components", ["purl"])
    op.create_index(op.f("ix_scan_components_scan_id"), "scan_components", ["scan_id"])


def downgrade() -> None:
    op.drop_index(op.f("ix_scan_components_scan_id"), table_name="scan_components")
    op.drop_index(op.f("ix_scan_components_purl"), table_name="scan_components")
    op.drop_index(op.f("ix_scan_components_name_version"), table_name="scan_components")
    op.drop_table("scan_components")
    op.drop_index(op.f("ix_scans_job_id"), table_name="scans")
    op.drop_index(op.f("ix_scans_repository_id_manifest_digest_id"), table_name="scans")
    op.drop_table("scans")
    op.drop_table("scan_layers")
    with op.batch_alter_table("repositories", recreate="never") as batch:
        batch.drop_column("attach_sbom")
