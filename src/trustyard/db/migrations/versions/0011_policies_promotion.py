"""policies and promotion

Promotion policies of source repositories (promotion_policies: rules or a CEL expression, the
target repository, the tag template, the facts the rules need) and the record of every
promotion that moved a tag (promotions), which is also the promoted image's history (issue 12).

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-07 23:05:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

DIGEST = sa.String(length=200)


def upgrade() -> None:
    op.create_table(
        "promotion_policies",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("source_repository_id", sa.Integer(), nullable=False),
        sa.Column("target_repository_id", sa.Integer(), nullable=False),
        sa.Column("enabled", sa.Boolean(), server_default=sa.true(), nullable=False),
        sa.Column("rules", sa.Text(), nullable=True),
        sa.Column("expression", sa.Text(), nullable=True),
        sa.Column("tag_template", sa.String(length=255), nullable=False),
        sa.Column("needs", sa.String(length=64), server_default="", nullable=False),
        sa.Column("revision", sa.Integer(), server_default=sa.text("1"), nullable=False),
        sa.Column("created_by", sa.String(length=128), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_promoted_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["source_repository_id"],
            ["repositories.id"],
            name=op.f("fk_promotion_policies_source_repository_id_repositories"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["target_repository_id"],
            ["repositories.id"],
            name=op.f("fk_promotion_policies_target_repository_id_repositories"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_promotion_policies")),
        sqlite_autoincrement=True,  # ids never reused: history and job keys name them
    )
    op.create_index(
        op.f("ix_promotion_policies_source_repository_id"),
        "promotion_policies",
        ["source_repository_id"],
    )
    op.create_index(
        op.f("ix_promotion_policies_target_repository_id"),
        "promotion_policies",
        ["target_repository_id"],
    )
    op.create_table(
        "promotions",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("target_repository_id", sa.Integer(), nullable=False),
        sa.Column("target_tag", sa.String(length=128), nullable=False),
        sa.Column("manifest_digest", DIGEST, nullable=False),
        sa.Column("source_repository", sa.String(length=255), nullable=False),
        sa.Column("source_repository_id", sa.Integer(), nullable=True),
        sa.Column("source_reference", sa.String(length=255), nullable=False),
        sa.Column("policy_id", sa.Integer(), nullable=True),
        sa.Column("policy_revision", sa.Integer(), nullable=True),
        sa.Column("trigger", sa.String(length=16), nullable=False),
        sa.Column("depth", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("actor", sa.String(length=128), nullable=True),
        sa.Column("promoted_as", sa.String(length=128), nullable=True),
        sa.Column("previous_digest", DIGEST, nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["target_repository_id"],
            ["repositories.id"],
            name=op.f("fk_promotions_target_repository_id_repositories"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_promotions")),
        sqlite_autoincrement=True,
    )
    op.create_index(
        op.f("ix_promotions_target_repository_id_manifest_digest"),
        "promotions",
        ["target_repository_id", "manifest_digest"],
    )
    op.create_index(
        op.f("ix_promotions_source_repository_id_manifest_digest"),
        "promotions",
        ["source_repository_id", "manifest_digest"],
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_promotions_source_repository_id_manifest_digest"), "promotions")
    op.drop_index(op.f("ix_promotions_target_repository_id_manifest_digest"), "promotions")
    op.drop_table("promotions")
    op.drop_index(op.f("ix_promotion_policies_target_repository_id"), "promotion_policies")
    op.drop_index(op.f("ix_promotion_policies_source_repository_id"), "promotion_policies")
    op.drop_table("promotion_policies")
