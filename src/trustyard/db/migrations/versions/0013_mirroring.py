"""mirroring

Remote registries (remotes, their secret sealed), push and pull mirroring policies of a local
repository (mirror_policies), each run of a policy (mirror_runs), the per-tag state of each
policy (mirror_items, with tombstones of propagated deletes) and chunked uploads in progress
on a remote, for resuming them (mirror_uploads): issue 13.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-08 02:20:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

TABLES = ("mirror_uploads", "mirror_items", "mirror_runs", "mirror_policies", "remotes")


def upgrade() -> None:
    op.create_table(
        "mirror_uploads",
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("repository", sa.String(length=255), nullable=False),
        sa.Column("digest", sa.String(length=200), nullable=False),
        sa.Column("location", sa.Text(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("key", "repository", "digest", name=op.f("pk_mirror_uploads")),
    )
    op.create_table(
        "remotes",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("url", sa.String(length=2048), nullable=False),
        sa.Column("username", sa.String(length=255), nullable=True),
        sa.Column("secret", sa.Text(), nullable=True),
        sa.Column("tls_verify", sa.Boolean(), server_default=sa.true(), nullable=False),
        sa.Column("ca_certificate", sa.Text(), nullable=True),
        sa.Column("max_concurrency", sa.Integer(), server_default=sa.text("4"), nullable=False),
        sa.Column("description", sa.Text(), server_default="", nullable=False),
        sa.Column("created_by", sa.String(length=128), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_remotes")),
        sa.UniqueConstraint("name", name=op.f("uq_remotes_name")),
        sqlite_autoincrement=True,
    )
    op.create_table(
        "mirror_policies",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("direction", sa.String(length=8), nullable=False),
        sa.Column("repository_id", sa.Integer(), nullable=False),
        sa.Column("remote_id", sa.Integer(), nullable=False),
        sa.Column("remote_repository", sa.String(length=255), nullable=False),
        sa.Column("enabled", sa.Boolean(), server_default=sa.true(), nullable=False),
        sa.Column("rules", sa.Text(), nullable=True),
        sa.Column("expression", sa.Text(), nullable=True),
        sa.Column("tag_template", sa.String(length=255), server_default="%n", nullable=False),
        sa.Column("needs", sa.String(length=64), server_default="", nullable=False),
        sa.Column("propagate_deletes", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("with_referrers", sa.Boolean(), server_default=sa.true(), nullable=False),
        sa.Column("poll_interval_seconds", sa.Integer(), nullable=True),
        sa.Column("webhook_secret", sa.Text(), nullable=True),
        sa.Column("next_poll_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revision", sa.Integer(), server_default=sa.text("1"), nullable=False),
        sa.Column("created_by", sa.String(length=128), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_run_id", sa.Integer(), nullable=True),
        sa.Column("last_run_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["remote_id"],
            ["remotes.id"],
            name=op.f("fk_mirror_policies_remote_id_remotes"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["repository_id"],
            ["repositories.id"],
            name=op.f("fk_mirror_policies_repository_id_repositories"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_mirror_policies")),
        sqlite_autoincrement=True,
    )
    op.create_index(
        op.f("ix_mirror_policies_direction_next_poll_at"),
        "mirror_policies",
        ["direction", "next_poll_at"],
        unique=False,
    )
    op.create_index(
        op.f("ix_mirror_policies_remote_id"), "mirror_policies", ["remote_id"], unique=False
    )
    op.create_index(
        op.f("ix_mirror_policies_repository_id_direction"),
        "mirror_policies",
        ["repository_id", "direction"],
        unique=False,
    )
    op.create_table(
        "mirror_items",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("policy_id", sa.Integer(), nullable=False),
        sa.Column("tag", sa.String(length=128), nullable=False),
        sa.Column("target_tag", sa.String(length=128), nullable=False),
        sa.Column("digest", sa.String(length=200), nullable=True),
        sa.Column("action", sa.String(length=8), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("synced_digest", sa.String(length=200), nullable=True),
        sa.Column("attempts", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("run_id", sa.Integer(), nullable=True),
        sa.Column("bytes_moved", sa.BigInteger(), server_default=sa.text("0"), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["policy_id"],
            ["mirror_policies.id"],
            name=op.f("fk_mirror_items_policy_id_mirror_policies"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_mirror_items")),
        sa.UniqueConstraint("policy_id", "tag", name=op.f("uq_mirror_items_policy_id_tag")),
    )
    op.create_index(
        op.f("ix_mirror_items_policy_id_status"),
        "mirror_items",
        ["policy_id", "status"],
        unique=False,
    )
    op.create_table(
        "mirror_runs",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("policy_id", sa.Integer(), nullable=False),
        sa.Column("trigger", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("job_id", sa.Integer(), nullable=True),
        sa.Column("items_total", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("items_done", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("items_failed", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("items_skipped", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("bytes_moved", sa.BigInteger(), server_default=sa.text("0"), nullable=False),
        sa.Column("current", sa.Text(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["policy_id"],
            ["mirror_policies.id"],
            name=op.f("fk_mirror_runs_policy_id_mirror_policies"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_mirror_runs")),
        sqlite_autoincrement=True,
    )
    op.create_index(
        op.f("ix_mirror_runs_policy_id_id"), "mirror_runs", ["policy_id", "id"], unique=False
    )


def downgrade() -> None:
    for table in TABLES:
        op.drop_table(table)
