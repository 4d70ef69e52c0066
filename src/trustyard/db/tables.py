"""All metadata tables, as SQLAlchemy Core tables (the migrations create the same shape)."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Float,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    UniqueConstraint,
    false,
    text,
    true,
)

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

DIGEST = String(200)

repositories = Table(
    "repositories",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(255), nullable=False, unique=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    # Managed-object settings (identity issue; scanning and immutability use them later).
    Column("visibility", String(16), nullable=False, server_default=text("'private'")),
    Column("description", Text, nullable=False, server_default=text("''")),
    Column("scan_on_push", Boolean, nullable=False, server_default=true()),
    Column("immutable_tags", Boolean, nullable=False, server_default=false()),
    # Push each scan's CycloneDX SBOM into the repository as a referrer of the image.
    Column("attach_sbom", Boolean, nullable=False, server_default=false()),
)

blobs = Table(
    "blobs",
    metadata,
    Column("digest", DIGEST, primary_key=True),
    Column("size", BigInteger, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

repository_blobs = Table(
    "repository_blobs",
    metadata,
    Column(
        "repository_id",
        Integer,
        ForeignKey("repositories.id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("digest", DIGEST, ForeignKey("blobs.digest"), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    PrimaryKeyConstraint("repository_id", "digest"),
    Index(None, "digest"),
)

manifests = Table(
    "manifests",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column(
        "repository_id",
        Integer,
        ForeignKey("repositories.id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("digest", DIGEST, nullable=False),
    Column("media_type", String(255), nullable=False),
    Column("artifact_type", String(255)),
    Column("subject_digest", DIGEST),
    Column("annotations", Text),
    Column("size", BigInteger, nullable=False),
    Column("payload", LargeBinary, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    UniqueConstraint("repository_id", "digest"),
    Index(None, "repository_id", "subject_digest"),
)

# What a manifest points at: kind is "blob" (config, layers) or "manifest" (index children).
manifest_references = Table(
    "manifest_references",
    metadata,
    Column("manifest_id", Integer, ForeignKey("manifests.id", ondelete="CASCADE"), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("digest", DIGEST, nullable=False),
    PrimaryKeyConstraint("manifest_id", "kind", "digest"),
    Index(None, "digest"),
)

tags = Table(
    "tags",
    metadata,
    Column("repository_id", Integer, nullable=False),
    Column("name", String(128), nullable=False),
    Column("manifest_id", Integer, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    PrimaryKeyConstraint("repository_id", "name"),
    ForeignKeyConstraint(["repository_id"], ["repositories.id"], ondelete="CASCADE"),
    ForeignKeyConstraint(["manifest_id"], ["manifests.id"], ondelete="CASCADE"),
    Index(None, "manifest_id"),
)

uploads = Table(
    "uploads",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("repository", String(255), nullable=False),
    Column("offset", BigInteger, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)


# --- identity and access -------------------------------------------------------------------

ROLE = String(16)  # "read-only" | "read-write" | "admin"

users = Table(
    "users",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("username", String(64), nullable=False, unique=True),
    Column("password_hash", String(255)),  # None: no local password (LDAP, or disabled)
    Column("email", String(255)),
    Column("full_name", String(255)),
    Column("is_admin", Boolean, nullable=False, server_default=false()),
    Column("is_active", Boolean, nullable=False, server_default=true()),
    Column("source", String(16), nullable=False, server_default=text("'local'")),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("last_login_at", DateTime(timezone=True)),
)

organizations = Table(
    "organizations",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(64), nullable=False, unique=True),
    Column("description", Text, nullable=False, server_default=text("''")),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

organization_owners = Table(
    "organization_owners",
    metadata,
    Column(
        "organization_id",
        Integer,
        ForeignKey("organizations.id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("user_id", Integer, ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    PrimaryKeyConstraint("organization_id", "user_id"),
)

teams = Table(
    "teams",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column(
        "organization_id",
        Integer,
        ForeignKey("organizations.id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("name", String(64), nullable=False),
    Column("description", Text, nullable=False, server_default=text("''")),
    Column("ldap_group", String(512)),  # members synced from this directory group
    Column("created_at", DateTime(timezone=True), nullable=False),
    UniqueConstraint("organization_id", "name"),
)

team_members = Table(
    "team_members",
    metadata,
    Column("team_id", Integer, ForeignKey("teams.id", ondelete="CASCADE"), nullable=False),
    Column("user_id", Integer, ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    PrimaryKeyConstraint("team_id", "user_id"),
    Index(None, "user_id"),
)

team_repository_grants = Table(
    "team_repository_grants",
    metadata,
    Column("team_id", Integer, ForeignKey("teams.id", ondelete="CASCADE"), nullable=False),
    Column(
        "repository_id",
        Integer,
        ForeignKey("repositories.id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("role", ROLE, nullable=False),
    PrimaryKeyConstraint("team_id", "repository_id"),
    Index(None, "repository_id"),
)

# A team's role on every repository of its organization.
team_organization_grants = Table(
    "team_organization_grants",
    metadata,
    Column("team_id", Integer, ForeignKey("teams.id", ondelete="CASCADE"), primary_key=True),
    Column("role", ROLE, nullable=False),
)

robots = Table(
    "robots",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column(
        "organization_id",
        Integer,
        ForeignKey("organizations.id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("name", String(64), nullable=False),
    Column("description", Text, nullable=False, server_default=text("''")),
    Column("created_at", DateTime(timezone=True), nullable=False),
    UniqueConstraint("organization_id", "name"),
)

# A robot's role on repositories of its organization matching a name or a "team/*" pattern.
robot_grants = Table(
    "robot_grants",
    metadata,
    Column("robot_id", Integer, ForeignKey("robots.id", ondelete="CASCADE"), nullable=False),
    Column("repository_pattern", String(255), nullable=False),
    Column("role", ROLE, nullable=False),
    PrimaryKeyConstraint("robot_id", "repository_pattern"),
)

# Personal access tokens and robot tokens: shown once, stored as a hash of their secret.
access_tokens = Table(
    "access_tokens",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("public_id", String(32), nullable=False, unique=True),
    Column("secret_hash", String(64), nullable=False),
    Column("kind", String(8), nullable=False),  # "pat" | "rbt" | "rft" (refresh token)
    Column("name", String(128), nullable=False),
    Column("user_id", Integer, ForeignKey("users.id", ondelete="CASCADE")),
    Column("robot_id", Integer, ForeignKey("robots.id", ondelete="CASCADE")),
    Column("scopes", Text, nullable=False),  # JSON list of scope strings
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("expires_at", DateTime(timezone=True)),
    Column("revoked_at", DateTime(timezone=True)),
    Column("last_used_at", DateTime(timezone=True)),
    # Refresh tokens (kind "rft", auth/refresh_tokens.py): the token they were obtained with
    # (they die with it), and a fingerprint of the owner's password hash when obtained with
    # the password (they die when it changes).
    Column("parent_id", Integer, ForeignKey("access_tokens.id", ondelete="CASCADE")),
    Column("credential_stamp", String(64)),
    # The OAuth2 client a refresh token was issued to: only it may exchange the token.
    Column("client_id", String(64)),
)

# Append-only: every mutation and every denied request.
audit_events = Table(
    "audit_events",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("actor", String(128), nullable=False),
    Column("actor_kind", String(16), nullable=False),
    Column("action", String(64), nullable=False),
    Column("resource_kind", String(32), nullable=False),
    Column("resource", String(512), nullable=False),
    Column("organization", String(64)),
    Column("outcome", String(16), nullable=False),
    Column("address", String(64)),
    Column("detail", Text),
    Index(None, "at"),
    Index(None, "organization", "at"),
)

# Token-signing keys, shared by every replica through the database (private key encrypted).
signing_keys = Table(
    "signing_keys",
    metadata,
    Column("kid", String(64), primary_key=True),
    Column("algorithm", String(16), nullable=False),
    Column("private_key", Text, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("retired_at", DateTime(timezone=True)),
)

# One row (id 1) whose value moves whenever anything an access decision reads changes; kept by
# database triggers (migration 0004), read by workers to know when remembered decisions are stale.
access_generation = Table(
    "access_generation",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("value", BigInteger, nullable=False),
)

# One row (id 1) whose value moves whenever a remembered login may have become invalid (a token
# revoked or deleted, a password changed, an account deactivated...): triggers of migration
# 0008; workers drop remembered credentials when it moves.
credential_generation = Table(
    "credential_generation",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("value", BigInteger, nullable=False),
)

# Failed logins per (account, address) pair, per address and per account (auth/login_throttle).
login_failures = Table(
    "login_failures",
    metadata,
    Column("key", String(200), primary_key=True),
    Column("failures", Integer, nullable=False),
    Column("last_failure_at", DateTime(timezone=True), nullable=False),
    Column("locked_until", DateTime(timezone=True)),
)


# --- background jobs (trustyard.jobs) ------------------------------------------------------

# States: queued | running | succeeded | failed (the handler said it can never succeed) |
# dead (max_attempts used up) | cancelled (by an admin, while queued).
jobs = Table(
    "jobs",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("kind", String(64), nullable=False),
    Column("payload", Text, nullable=False),  # JSON object
    Column("state", String(16), nullable=False),
    Column("priority", Integer, nullable=False, server_default=text("0")),  # higher runs first
    Column("attempts", Integer, nullable=False, server_default=text("0")),
    Column("max_attempts", Integer, nullable=False),
    Column("run_after", DateTime(timezone=True), nullable=False),
    # Enqueuing work whose key a queued or running job already has does nothing.
    Column("dedupe_key", String(255)),
    Column("schedule", String(64)),  # the schedule that enqueued it, if any
    Column("lease_owner", String(128)),  # the worker running it
    Column("lease_token", String(32)),  # this claim's fence: finishing needs it
    Column("lease_expires_at", DateTime(timezone=True)),
    Column("last_error", Text),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("started_at", DateTime(timezone=True)),
    Column("finished_at", DateTime(timezone=True)),
    Index("ix_jobs_claim", "state", "priority", "run_after"),
    Index("ix_jobs_state_lease_expires_at", "state", "lease_expires_at"),
    Index("ix_jobs_kind_state", "kind", "state"),
    Index("ix_jobs_lease_token", "lease_token"),
    Index(
        "uq_jobs_live_dedupe_key",
        "dedupe_key",
        unique=True,
        sqlite_where=text("state IN ('queued', 'running')"),
        postgresql_where=text("state IN ('queued', 'running')"),
    ),
)

# One row per claim of a job: who ran it, when, and how it ended
# (running | succeeded | failed | lost (the lease expired) | released (a clean stop)).
job_attempts = Table(
    "job_attempts",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("job_id", Integer, ForeignKey("jobs.id", ondelete="CASCADE"), nullable=False),
    Column("attempt", Integer, nullable=False),
    Column("worker", String(128), nullable=False),
    Column("lease_token", String(32), nullable=False),
    Column("outcome", String(16), nullable=False),
    Column("error", Text),
    Column("started_at", DateTime(timezone=True), nullable=False),
    Column("finished_at", DateTime(timezone=True)),
    Index(None, "job_id", "lease_token"),
)

# Cron schedules: each period is claimed by moving next_run_at (guarded by its old value), so
# one job per period is enqueued cluster-wide.
job_schedules = Table(
    "job_schedules",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("cron", String(128), nullable=False),  # 5 fields, or 6 with seconds last
    Column("kind", String(64), nullable=False),
    Column("payload", Text, nullable=False),
    Column("enabled", Boolean, nullable=False, server_default=true()),
    Column("next_run_at", DateTime(timezone=True), nullable=False),
    Column("last_run_at", DateTime(timezone=True)),
    Column("last_job_id", Integer),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)


# --- domain events and webhooks (trustyard.events, trustyard.webhooks) --------------------

# The outbox: every domain event, written in the transaction of the change it describes.
# The dispatcher hands undispatched events (dispatched_at IS NULL) to the consumers in id
# order and stamps them; dispatched events are pruned after the retention period (oldest ids
# first). One index besides the key: every index is one more page written (and fsynced) by
# every push.
event_outbox = Table(
    "event_outbox",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("event_id", String(32), nullable=False),  # uuid4 hex: the CloudEvents id
    Column("type", String(32), nullable=False),  # e.g. TAG_PUSH
    Column("repository", String(255)),  # None: a registry-wide event
    Column("namespace", String(255)),
    Column("actor", String(128)),
    Column("contents", Text, nullable=False),  # JSON object
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("dispatched_at", DateTime(timezone=True)),
    Index(
        "ix_event_outbox_undispatched",
        "id",
        sqlite_where=text("dispatched_at IS NULL"),
        postgresql_where=text("dispatched_at IS NULL"),
    ),
)

# A subscription belongs to its scope: a repository or a namespace (by name: it outlives the
# repository, so its deletion is delivered) or the whole registry (target "").
webhook_subscriptions = Table(
    "webhook_subscriptions",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("public_id", String(32), nullable=False, unique=True),  # wh_...: the API's id
    Column("scope", String(16), nullable=False),  # repository | namespace | registry
    Column("target", String(255), nullable=False),
    Column("url", Text, nullable=False),
    Column("format", String(16), nullable=False),  # dtr | cloudevents
    Column("event_types", Text, nullable=False),  # JSON list of event type names
    Column("secret", Text, nullable=False),  # encrypted with a key outside the database
    Column("ca_bundle", Text),  # PEM certificates to trust instead of the system's
    Column("tls_verify", Boolean, nullable=False, server_default=true()),
    Column("description", Text, nullable=False, server_default=text("''")),
    Column("active", Boolean, nullable=False, server_default=true()),
    Column("inactive_reason", Text),
    Column("inactive_since", DateTime(timezone=True)),
    Column("failing_since", DateTime(timezone=True)),  # first failure after the last success
    Column("last_success_at", DateTime(timezone=True)),
    Column("last_failure_at", DateTime(timezone=True)),
    Column("created_by", String(128), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Index(None, "scope", "target"),
)

# One event to send to one subscription (kind: event | test | redelivery), sent in id order.
webhook_deliveries = Table(
    "webhook_deliveries",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column(
        "subscription_id",
        Integer,
        ForeignKey("webhook_subscriptions.id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("event_id", Integer, ForeignKey("event_outbox.id", ondelete="CASCADE"), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("redelivery_of", Integer),
    Column("state", String(16), nullable=False),  # pending | delivered
    Column("attempts", Integer, nullable=False, server_default=text("0")),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("delivered_at", DateTime(timezone=True)),
    Column("last_attempt_at", DateTime(timezone=True)),
    Column("last_status", Integer),
    Column("last_error", Text),
    Index(None, "subscription_id", "state", "id"),
    Index(None, "subscription_id", "id"),
    Index(None, "event_id"),
)

# Every attempt of a delivery: when, the answer's status, how long it took, what went wrong.
webhook_attempts = Table(
    "webhook_attempts",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column(
        "delivery_id",
        Integer,
        ForeignKey("webhook_deliveries.id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("attempt", Integer, nullable=False),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("status_code", Integer),  # None: no answer (refused, timeout, TLS failure)
    Column("latency_ms", Integer),
    Column("error", Text),
    Column("response_excerpt", Text),
    Index(None, "delivery_id"),
)


# --- scanning (trustyard.scanning) ----------------------------------------------------------

# The layer cache shared by every image: what one layer holds on its own (a LayerScan as
# zlib-compressed JSON), keyed by the layer's digest; valid for the scanner version that made
# it. status: succeeded | failed (the refusal's reason in `error`, for operators).
scan_layers = Table(
    "scan_layers",
    metadata,
    Column("digest", DIGEST, primary_key=True),
    Column("scanner_version", String(64), nullable=False),
    Column("status", String(16), nullable=False),
    Column("result", LargeBinary),
    Column("error", Text),
    Column("scanned_at", DateTime(timezone=True), nullable=False),
    Column("duration_seconds", Float, nullable=False),
)

# One scan of one manifest (an image, or an index: every platform) of a repository; the
# latest one per manifest is the one shown. status: queued | running | succeeded | failed.
# `job_id` links it to the job that runs it (jobs are pruned: no foreign key).
scans = Table(
    "scans",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column(
        "repository_id",
        Integer,
        ForeignKey("repositories.id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("manifest_digest", DIGEST, nullable=False),
    Column("job_id", Integer),
    Column("status", String(16), nullable=False),
    Column("trigger", String(16), nullable=False),  # push | request | rescan
    Column("force", Boolean, nullable=False, server_default=false()),
    Column("requested_by", String(128)),
    Column("bytes_done", BigInteger, nullable=False, server_default=text("0")),
    Column("bytes_total", BigInteger, nullable=False, server_default=text("0")),
    Column("layers_done", Integer, nullable=False, server_default=text("0")),
    Column("layers_total", Integer, nullable=False, server_default=text("0")),
    Column("error", Text),
    Column("boms", LargeBinary),  # zlib-compressed JSON list of ImageBom.to_json()
    # What policies read of the BOMs, written with them (scanning/compact.py); NULL for a
    # scan stored before migration 0012 (read from its BOMs then).
    Column("components", LargeBinary),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("started_at", DateTime(timezone=True)),
    Column("finished_at", DateTime(timezone=True)),
    Index(None, "repository_id", "manifest_digest", "id"),
    Index(None, "job_id"),
)

# The components of each manifest's latest succeeded scan, one row per (platform, component),
# for the search across the registry ("which images contain openssl 3.0.11?").
scan_components = Table(
    "scan_components",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("scan_id", Integer, ForeignKey("scans.id", ondelete="CASCADE"), nullable=False),
    Column("repository_id", Integer, nullable=False),
    Column("manifest_digest", DIGEST, nullable=False),
    Column("platform", String(64), nullable=False),
    Column("ecosystem", String(32), nullable=False),
    Column("name", String(512), nullable=False),
    Column("version", String(255), nullable=False),
    Column("purl", String(1024), nullable=False),
    Column("layer_digest", DIGEST, nullable=False),
    Column("location", Text, nullable=False),
    Index(None, "name", "version"),
    Index(None, "purl"),
    Index(None, "scan_id"),
)


# --- vulnerabilities (trustyard.vulnerabilities) --------------------------------------------

# One row: `generation` is the last generation number handed out (every import of any source
# takes the next one, so a generation names one source's records alone), `version` counts the
# switches (the database's version: it moves whenever what matching sees changes).
vuln_database = Table(
    "vuln_database",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("generation", Integer, nullable=False),
    Column("version", Integer, nullable=False),
    Column("updated_at", DateTime(timezone=True)),
)

# Where records come from (a bundle's name, later a URL). `generation` is the one readers see
# (None before the first import); `pending_generation` the import being written, claimed until
# `pending_since` grows old (each batch renews it).
vuln_sources = Table(
    "vuln_sources",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(128), nullable=False, unique=True),
    Column("url", Text),
    Column("etag", String(512)),
    Column("last_modified", String(128)),
    Column("bundle_sha256", String(64)),
    Column("generation", Integer),
    Column("pending_generation", Integer),
    Column("pending_since", DateTime(timezone=True)),
    Column("records", Integer, nullable=False, server_default=text("0")),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True)),
    Column("failed_at", DateTime(timezone=True)),
    Column("error", Text),
)

# One OSV record of one generation of a source: its JSON as imported (zlib), the sha256 of
# that JSON (what an import compares), and what lists show without reading it.
vuln_records = Table(
    "vuln_records",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("source_id", Integer, ForeignKey("vuln_sources.id", ondelete="CASCADE"), nullable=False),
    Column("generation", Integer, nullable=False),
    Column("osv_id", String(128), nullable=False),
    Column("modified", DateTime(timezone=True), nullable=False),
    Column("sha256", String(64), nullable=False),
    Column("severity", String(32)),
    Column("aliases", Text, nullable=False),  # JSON list
    Column("data", LargeBinary, nullable=False),
    UniqueConstraint("source_id", "generation", "osv_id"),
)

# The packages each record names, one row per (record, ecosystem, name) with the name in the
# ecosystem's normal form (matching.package_key): what a lookup by component reads.
vuln_affected = Table(
    "vuln_affected",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("record_id", Integer, ForeignKey("vuln_records.id", ondelete="CASCADE"), nullable=False),
    Column("ecosystem", String(128), nullable=False),
    Column("name", String(1024), nullable=False),
    Column("generation", Integer, nullable=False),
    Index(None, "ecosystem", "name", "generation"),
    Index(None, "record_id"),
)

# --- vulnerabilities of images (trustyard.vulnerabilities) ----------------------------------

# One row per matched scan: the database version its findings are from, when, and how it went
# (`matched`, or `failed` with the error). A scan without a row is not matched yet.
vuln_image_matches = Table(
    "vuln_image_matches",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("scan_id", Integer, ForeignKey("scans.id", ondelete="CASCADE"), nullable=False),
    Column("repository_id", Integer, nullable=False),
    Column("manifest_digest", DIGEST, nullable=False),
    Column("status", String(16), nullable=False),
    Column("database_version", Integer, nullable=False),
    Column("components", Integer, nullable=False, server_default=text("0")),
    Column("matched_at", DateTime(timezone=True), nullable=False),
    Column("error", Text),
    UniqueConstraint("scan_id"),
    Index(None, "repository_id", "manifest_digest"),
)

# The components of a matched scan as the database knows them: the BOM's component (platform,
# ecosystem, name, version, purl, the layer that brought it) and what it is looked up as
# (target_*: OSV ecosystem with release, advisory name, version; `via` how). Re-matching after
# an update reads the rows of the packages the update touched, by (target_ecosystem, target_name).
vuln_image_packages = Table(
    "vuln_image_packages",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("scan_id", Integer, ForeignKey("scans.id", ondelete="CASCADE"), nullable=False),
    Column("repository_id", Integer, nullable=False),
    Column("manifest_digest", DIGEST, nullable=False),
    Column("platform", String(64), nullable=False),
    Column("ecosystem", String(32), nullable=False),
    Column("name", String(512), nullable=False),
    Column("version", String(255), nullable=False),
    Column("purl", String(1024), nullable=False),
    Column("layer_digest", DIGEST, nullable=False),
    Column("target_ecosystem", String(64), nullable=False),
    Column("target_name", String(512), nullable=False),
    Column("target_version", String(255), nullable=False),
    Column("via", String(16), nullable=False),
    Index(None, "target_ecosystem", "target_name"),
    Index(None, "scan_id"),
)

# One vulnerability of one image component: `vuln_id` the finding's id (the first of its
# merged records), `record_ids` and `aliases` JSON lists (a CVE named by two records is one
# row), DTR's bucket with the CVSS score, the version to upgrade to. Triage is applied when
# read (it may expire), never written here.
vuln_findings = Table(
    "vuln_findings",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column(
        "package_id",
        Integer,
        ForeignKey("vuln_image_packages.id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("scan_id", Integer, ForeignKey("scans.id", ondelete="CASCADE"), nullable=False),
    Column("vuln_id", String(128), nullable=False),
    Column("record_ids", Text, nullable=False),
    Column("aliases", Text, nullable=False),
    Column("bucket", String(16), nullable=False),
    Column("score", Float),
    Column("vector", String(512)),
    Column("fixed", String(255)),
    Column("found_at", DateTime(timezone=True), nullable=False),
    UniqueConstraint("package_id", "vuln_id"),
    Index(None, "scan_id"),
)

# An OpenVEX document as imported (zlib JSON), kept for export and audit; its statements
# are rows of vuln_triage.
vex_documents = Table(
    "vex_documents",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("document_id", String(512), nullable=False),
    Column("author", String(512), nullable=False),
    Column("version", Integer, nullable=False, server_default=text("1")),
    Column("issued_at", DateTime(timezone=True)),
    Column("data", LargeBinary, nullable=False),
    Column("imported_by", String(128)),
    Column("imported_at", DateTime(timezone=True), nullable=False),
    UniqueConstraint("document_id"),
)

# One triage decision: DTR's override (`source` override) or an OpenVEX statement (`source`
# vex, with its document). Scope: `image` (repository + manifest digest), `repository`, or
# `organization` (`namespace`); `component_purl` None for every component. `status` is
# OpenVEX's (not_affected, affected, fixed, under_investigation), with its justification and
# statement; `expires_at` ends it.
vuln_triage = Table(
    "vuln_triage",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("scope", String(16), nullable=False),
    Column("repository_id", Integer, ForeignKey("repositories.id", ondelete="CASCADE")),
    Column("manifest_digest", DIGEST),
    Column("namespace", String(255)),
    Column("vuln_id", String(128), nullable=False),
    Column("component_purl", String(1024)),
    Column("status", String(32), nullable=False),
    Column("justification", String(64)),
    Column("statement", Text),
    Column("source", String(16), nullable=False),
    Column("document_id", Integer, ForeignKey("vex_documents.id", ondelete="CASCADE")),
    Column("expires_at", DateTime(timezone=True)),
    Column("created_by", String(128)),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Index(None, "vuln_id"),
    Index(None, "repository_id"),
)


# --- policies and promotion (trustyard.policies) ---------------------------------------------

# A promotion policy of a source repository: when an image of it meets `rules` (a JSON list of
# {field, operator, values}) or `expression` (CEL; exactly one of the two is set), it is copied
# into `target_repository_id` under the tag `tag_template` makes. `needs` lists the facts the
# rules read beyond the manifest (`scan`, `vulnerabilities`, `config`, comma-separated), so a
# push triggers at once only policies that need no scan. `revision` counts edits (a run records
# the revision it used); `created_by` is who the policy promotes as.
promotion_policies = Table(
    "promotion_policies",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column(
        "source_repository_id",
        Integer,
        ForeignKey("repositories.id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column(
        "target_repository_id",
        Integer,
        ForeignKey("repositories.id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("enabled", Boolean, nullable=False, server_default=true()),
    Column("rules", Text),  # JSON list, as given (canonical field and operator names)
    Column("expression", Text),
    Column("tag_template", String(255), nullable=False),
    Column("needs", String(64), nullable=False, server_default=""),
    Column("revision", Integer, nullable=False, server_default=text("1")),
    Column("created_by", String(128)),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Column("last_promoted_at", DateTime(timezone=True)),
    Column("last_error", Text),  # why the last run could not promote (None: it could)
    Index(None, "source_repository_id"),
    Index(None, "target_repository_id"),
    sqlite_autoincrement=True,  # ids never reused: history and job keys name policies by id
)

# Every promotion that moved a tag (a repeat of the same image to the same tag writes none):
# the image's history in its target, kept while the target repository exists. Source names are
# stored as text: the source may be deleted later and the history still reads right.
promotions = Table(
    "promotions",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column(
        "target_repository_id",
        Integer,
        ForeignKey("repositories.id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("target_tag", String(128), nullable=False),
    Column("manifest_digest", DIGEST, nullable=False),
    Column("source_repository", String(255), nullable=False),
    Column("source_repository_id", Integer),  # no FK: history outlives the source
    Column("source_reference", String(255), nullable=False),  # the tag or digest promoted
    Column("policy_id", Integer),  # None: manual; no FK, history outlives the policy
    Column("policy_revision", Integer),
    Column("trigger", String(16), nullable=False),  # manual | push | scan | vulnerabilities | ...
    Column("depth", Integer, nullable=False, server_default=text("0")),
    Column("actor", String(128)),  # who asked (manual) or who pushed (policy)
    Column("promoted_as", String(128)),  # whose authority wrote the target (policy: its owner)
    Column("previous_digest", DIGEST),  # what the target tag named before, if anything
    Column("created_at", DateTime(timezone=True), nullable=False),
    Index(None, "target_repository_id", "manifest_digest"),
    Index(None, "source_repository_id", "manifest_digest"),
    sqlite_autoincrement=True,
)

# --- mirroring (issue 13) ------------------------------------------------------------------

# Remote registries: mirroring's (and later caching's) peers. `secret` is the password or token,
# sealed (webhooks/signing.SecretBox under auth.signing_passphrase): never stored in clear.
remotes = Table(
    "remotes",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(64), nullable=False, unique=True),
    Column("url", String(2048), nullable=False),  # scheme://host[:port]
    Column("username", String(255)),
    Column("secret", Text),  # sealed
    Column("tls_verify", Boolean, nullable=False, server_default=true()),
    Column("ca_certificate", Text),  # PEM
    Column("max_concurrency", Integer, nullable=False, server_default=text("4")),
    Column("description", Text, nullable=False, server_default=""),
    Column("created_by", String(128)),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    sqlite_autoincrement=True,
)

# Push and pull mirroring policies of a local repository. A remote named by a policy cannot be
# deleted (RESTRICT: RemoteInUse). `needs`: the policy engine's Need values the rules read.
mirror_policies = Table(
    "mirror_policies",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("direction", String(8), nullable=False),  # push | pull
    Column(
        "repository_id",
        Integer,
        ForeignKey("repositories.id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("remote_id", Integer, ForeignKey("remotes.id", ondelete="RESTRICT"), nullable=False),
    Column("remote_repository", String(255), nullable=False),
    Column("enabled", Boolean, nullable=False, server_default=true()),
    Column("rules", Text),  # JSON list (canonical names), or NULL
    Column("expression", Text),  # CEL, or NULL; neither: every tag
    Column("tag_template", String(255), nullable=False, server_default="%n"),
    Column("needs", String(64), nullable=False, server_default=""),
    Column("propagate_deletes", Boolean, nullable=False, server_default=false()),
    Column("with_referrers", Boolean, nullable=False, server_default=true()),
    Column("poll_interval_seconds", Integer),  # pull only
    Column("webhook_secret", Text),  # pull only, sealed
    Column("next_poll_at", DateTime(timezone=True)),  # pull only
    Column("revision", Integer, nullable=False, server_default=text("1")),
    Column("created_by", String(128)),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Column("last_run_id", Integer),
    Column("last_run_at", DateTime(timezone=True)),
    Column("last_error", Text),
    Index(None, "repository_id", "direction"),
    Index(None, "remote_id"),
    Index(None, "direction", "next_poll_at"),
    sqlite_autoincrement=True,
)

# One run of a policy: what it did and what it is doing (`current`: JSON of the blob in flight).
mirror_runs = Table(
    "mirror_runs",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column(
        "policy_id",
        Integer,
        ForeignKey("mirror_policies.id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("trigger", String(16), nullable=False),
    Column("status", String(16), nullable=False),
    Column("job_id", Integer),
    Column("items_total", Integer, nullable=False, server_default=text("0")),
    Column("items_done", Integer, nullable=False, server_default=text("0")),
    Column("items_failed", Integer, nullable=False, server_default=text("0")),
    Column("items_skipped", Integer, nullable=False, server_default=text("0")),
    Column("bytes_moved", BigInteger, nullable=False, server_default=text("0")),
    Column("current", Text),
    Column("error", Text),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("started_at", DateTime(timezone=True)),
    Column("finished_at", DateTime(timezone=True)),
    Index(None, "policy_id", "id"),
    sqlite_autoincrement=True,
)

# Per (policy, source tag): what the destination should hold and how the last attempt went;
# `synced_digest` stays after a propagated delete (a tombstone: a pull does not bring back a
# tag deleted here while the remote still names the same image).
mirror_items = Table(
    "mirror_items",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column(
        "policy_id",
        Integer,
        ForeignKey("mirror_policies.id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("tag", String(128), nullable=False),
    Column("target_tag", String(128), nullable=False),
    Column("digest", DIGEST),
    Column("action", String(8), nullable=False),  # copy | delete
    Column("status", String(16), nullable=False),
    Column("synced_digest", DIGEST),
    Column("attempts", Integer, nullable=False, server_default=text("0")),
    Column("last_error", Text),
    Column("run_id", Integer),
    Column("bytes_moved", BigInteger, nullable=False, server_default=text("0")),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    UniqueConstraint("policy_id", "tag"),
    Index(None, "policy_id", "status"),
)

# Chunked uploads in progress on a remote (push), so that a retry or another worker resumes one
# instead of sending the blob again from its start. `key` is the remote's limit key (its id).
mirror_uploads = Table(
    "mirror_uploads",
    metadata,
    Column("key", String(64), primary_key=True),
    Column("repository", String(255), primary_key=True),
    Column("digest", DIGEST, primary_key=True),
    Column("location", Text, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)
