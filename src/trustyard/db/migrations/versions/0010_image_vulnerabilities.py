"""image vulnerabilities

The vulnerabilities of scanned images (issue 11): which scans are matched and against which
database version (vuln_image_matches), their components as the database knows them, indexed
by the advisory package for re-matching (vuln_image_packages), the findings per component
(vuln_findings), and triage: OpenVEX documents (vex_documents) and decisions, overrides and
VEX statements alike (vuln_triage).

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-07 19:45:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

DIGEST = sa.String(length=200)


def upgrade() -> None:
    op.create_table(
        "vuln_image_matches",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("scan_id", sa.Integer(), nullable=False),
        sa.Column("repository_id", sa.Integer(), nullable=False),
        sa.Column("manifest_digest", DIGEST, nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("database_version", sa.Integer(), nullable=False),
        sa.Column("components", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("matched_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["scan_id"],
            ["scans.id"],
            name=op.f("fk_vuln_image_matches_scan_id_scans"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_vuln_image_matches")),
        sa.UniqueConstraint("scan_id", name=op.f("uq_vuln_image_matches_scan_id")),
    )
    op.create_index(
        op.f("ix_vuln_image_matches_repository_id_manifest_digest"),
        "vuln_image_matches",
        ["repository_id", "manifest_digest"],
    )
    op.create_table(
        "vuln_image_packages",
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
        sa.Column("target_ecosystem", sa.String(length=64), nullable=False),
        sa.Column("target_name", sa.String(length=512), nullable=False),
        sa.Column("target_version", sa.String(length=255), nullable=False),
        sa.Column("via", sa.String(length=16), nullable=False),
        sa.ForeignKeyConstraint(
            ["scan_id"],
            ["scans.id"],
            name=op.f("fk_vuln_image_packages_scan_id_scans"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_vuln_image_packages")),
    )
    op.create_index(
        op.f("ix_vuln_image_packages_target_ecosystem_target_name"),
        "vuln_image_packages",
        ["target_ecosystem", "target_name"],
    )
    op.create_index(op.f("ix_vuln_image_packages_scan_id"), "vuln_image_packages", ["scan_id"])
    op.create_table(
        "vuln_findings",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("package_id", sa.Integer(), nullable=False),
        sa.Column("scan_id", sa.Integer(), nullable=False),
        sa.Column("vuln_id", sa.String(length=128), nullable=False),
        sa.Column("record_ids", sa.Text(), nullable=False),
        sa.Column("aliases", sa.Text(), nullable=False),
        sa.Column("bucket", sa.String(length=16), nullable=False),
        sa.Column("score", sa.Float(), nullable=True),
        sa.Column("vector", sa.String(length=512), nullable=True),
        sa.Column("fixed", sa.String(length=255), nullable=True),
        sa.Column("found_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["package_id"],
            ["vuln_image_packages.id"],
            name=op.f("fk_vuln_findings_package_id_vuln_image_packages"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["scan_id"],
            ["scans.id"],
            name=op.f("fk_vuln_findings_scan_id_scans"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_vuln_findings")),
        sa.UniqueConstraint(
            "package_id", "vuln_id", name=op.f("uq_vuln_findings_package_id_vuln_id")
        ),
    )
    op.create_index(op.f("ix_vuln_findings_scan_id"), "vuln_findings", ["scan_id"])
    op.create_table(
        "vex_documents",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("document_id", sa.String(length=512), nullable=False),
        sa.Column("author", sa.String(length=512), nullable=False),
        sa.Column("version", sa.Integer(), server_default=sa.text("1"), nullable=False),
        sa.Column("issued_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.Column("imported_by", sa.String(length=128), nullable=True),
        sa.Column("imported_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_vex_documents")),
        sa.UniqueConstraint("document_id", name=op.f("uq_vex_documents_document_id")),
    )
    op.create_table(
        "vuln_triage",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("scope", sa.String(length=16), nullable=False),
        sa.Column("repository_id", sa.Integer(), nullable=True),
        sa.Column("manifest_digest", DIGEST, nullable=True),
        sa.Column("namespace", sa.String(length=255), nullable=True),
        sa.Column("vuln_id", sa.String(length=128), nullable=False),
        sa.Column("component_purl", sa.String(length=1024), nullable=True),
        sa.Column("status", sa.String(length=32), nullable=False),
        sa.Column("justification", sa.String(length=64), nullable=True),
        sa.Column("statement", sa.Text(), nullable=True),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("document_id", sa.Integer(), nullable=True),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_by", sa.String(length=128), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["document_id"],
            ["vex_documents.id"],
            name=op.f("fk_vuln_triage_document_id_vex_documents"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["repository_id"],
            ["repositories.id"],
            name=op.f("fk_vuln_triage_repository_id_repositories"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_vuln_triage")),
    )
    op.create_index(op.f("ix_vuln_triage_vuln_id"), "vuln_triage", ["vuln_id"])
    op.create_index(op.f("ix_vuln_triage_repository_id"), "vuln_triage", ["repository_id"])


def downgrade() -> None:
    op.drop_index(op.f("ix_vuln_triage_repository_id"), table_name="vuln_triage")
    op.drop_index(op.f("ix_vuln_triage_vuln_id"), table_name="vuln_triage")
    op.drop_table("vuln_triage")
    op.drop_table("vex_documents")
    op.drop_index(op.f("ix_vuln_findings_scan_id"), table_name="vuln_findings")
    op.drop_table("vuln_findings")
    op.drop_index(op.f("ix_vuln_image_packages_scan_id"), table_name="vuln_image_packages")
    op.drop_index(
        op.f("ix_vuln_image_packages_target_ecosystem_target_name"),
        table_name="vuln_image_packages",
    )
    op.drop_table("vuln_image_packages")
    op.drop_index(
        op.f("ix_vuln_image_matches_repository_id_manifest_digest"),
        table_name="vuln_image_matches",
    )
    op.drop_table("vuln_image_matches")
