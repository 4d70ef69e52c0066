"""The one typed settings tree. This module is the only reader of the environment.

Sources, strongest first: explicit values (command-line flags), `TRUSTYARD_*` environment
variables (nested with `__`, e.g. `TRUSTYARD_SERVER__PORT`), a YAML file named by
`TRUSTYARD_CONFIG`, then defaults.
"""

from __future__ import annotations

import ipaddress
import json
import os
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    ValidationInfo,
    field_validator,
)
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    YamlConfigSettingsSource,
)


class ServerSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")  # a misspelt setting is an error

    host: str = "127.0.0.1"
    port: int = Field(default=5000, ge=0, le=65535)
    workers: int = Field(default=0, ge=0, description="0 means one per CPU core")
    public_url: str | None = Field(
        default=None,
        description="URL clients use to reach the registry (for Location headers and the token "
        "realm; unset: the realm comes from a Host header that is a plain host[:port], else "
        "from the listening address)",
    )
    body_timeout: float = Field(
        default=120.0, gt=0, description="seconds a request body may stall before it is dropped"
    )
    api_body_limit: int = Field(
        default=1024 * 1024,
        ge=1024,
        description="largest request body /api/v1 reads, in bytes (413 beyond it); a route "
        "that takes uploads may allow more",
    )
    trusted_proxies: Networks = Field(
        default_factory=list,
        description="reverse proxies (CIDRs, comma-separated in the environment) whose "
        "X-Forwarded-For names the client (for login throttling, the audit log, metrics "
        "access); from any other peer the header is ignored",
    )


class AuthSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    enabled: bool = Field(
        default=True,
        description="require accounts on /v2 (Basic and the Docker token flow) and serve the "
        "management API; false runs an open registry (anyone may push) for local experiments",
    )
    service: str = Field(default="trustyard", description="the `service` of registry tokens")
    token_ttl_seconds: int = Field(default=300, ge=30, le=3600)
    refresh_token_ttl_seconds: int = Field(
        default=30 * 24 * 3600,
        ge=60,
        le=366 * 24 * 3600,
        description="lifetime of the refresh tokens the token endpoint hands out on request "
        "(`offline_token=true`, OAuth2 `access_type=offline`): 30 days; never longer than the "
        "access token they were obtained with",
    )
    login_first_lock_seconds: float = Field(
        default=1.0,
        ge=0.1,
        le=900,
        description="how long an (account, address) pair or an address is locked after its "
        "free failed password logins; each further failure doubles it, up to 15 minutes",
    )
    signing_passphrase: SecretStr | None = Field(
        default=None,
        description="encrypts the token-signing key in the database; replicas must share it "
        "(default: generated once into DATA_DIR/signing.passphrase)",
    )


class StorageSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    driver: Literal["filesystem"] = "filesystem"
    fsync: bool = Field(default=True, description="fsync blobs before acknowledging them")


class LdapSettings(BaseModel):
    """Login against an LDAP directory, and team members synced from its groups.

    Checks sit on settings that are not secret, so no error ever echoes the service password.
    """

    model_config = ConfigDict(extra="forbid")

    enabled: bool = Field(
        default=False,
        description="check the passwords of users unknown here and of directory users against "
        "the directory (local users such as admin never reach it)",
    )
    url: str | None = Field(
        default=None, validate_default=True, description="ldap://HOST[:PORT] or ldaps://HOST[:PORT]"
    )
    bind_password: SecretStr | None = Field(default=None, description="the service account's")
    bind_dn: str | None = Field(
        default=None,
        validate_default=True,
        description="service account that searches users and groups (default: anonymous)",
    )
    user_base_dn: str | None = Field(default=None, validate_default=True)
    user_filter: str = Field(
        default="(uid={username})", description="finds the login name; may use {username}"
    )
    username_attribute: str = "uid"
    email_attribute: str = "mail"
    display_name_attribute: str = "cn"
    group_base_dn: str | None = Field(default=None, validate_default=True)
    group_filter: str = Field(
        default="(|(member={dn})(uniqueMember={dn}))",
        description="finds the user's groups; may use {dn} (the user's DN) and {username}",
    )
    group_name_attribute: str = Field(
        default="cn", description="a team's ldap_group may name a group by this or by its DN"
    )
    start_tls: bool = Field(default=False, description="StartTLS on an ldap:// URL")
    ca_file: Path | None = Field(
        default=None, description="CA certificates (PEM) to trust; default: the system's"
    )
    sync_cron: str | None = Field(
        default=None,
        description="cron expression (UTC) of the full group -> team sync job, e.g. "
        "'0 * * * *' hourly; default: only at login and with `trustyard ldap-sync`",
    )
    timeout: float = Field(
        default=5.0, gt=0, le=120, description="seconds to connect and per directory request"
    )

    @field_validator("url", "user_base_dn", "group_base_dn")
    @classmethod
    def _needed_when_enabled(cls, value: str | None, info: ValidationInfo) -> str | None:
        if info.data.get("enabled") and not (value and value.strip()):
            variable = f"TRUSTYARD_LDAP__{(info.field_name or '').upper()}"
            raise ValueError(f"needed when LDAP is enabled (set {variable})")
        return value

    @field_validator("bind_dn")
    @classmethod
    def _bind_dn_with_password(cls, value: str | None, info: ValidationInfo) -> str | None:
        password: SecretStr | None = info.data.get("bind_password")
        empty = password is not None and not password.get_secret_value()
        if (value is None) != (password is None) or empty:
            # A DN with an empty password is an "unauthenticated bind": servers treat it as
            # anonymous, so a forgotten password would silently search anonymously.
            raise ValueError(
                "bind_dn and a non-empty bind_password go together (neither: anonymous search)"
            )
        return value

    @field_validator("ca_file")
    @classmethod
    def _ca_file_exists(cls, value: Path | None) -> Path | None:
        if value is not None and not value.is_file():
            raise ValueError(f"{value} is not a file")
        return value


class JobsSettings(BaseModel):
    """Background jobs (trustyard.jobs): the queue's timings and the embedded worker."""

    model_config = ConfigDict(extra="forbid")

    embedded_workers: int = Field(
        default=4,
        ge=0,
        le=64,
        description="jobs `trustyard serve` runs at once in its own worker process; 0 runs none "
        "(then run `trustyard worker` processes)",
    )
    lease_seconds: float = Field(
        default=60.0,
        ge=1,
        le=3600,
        description="a claimed job's lease, renewed while its handler runs; a job whose worker "
        "died is claimed again this long after the last renewal",
    )
    poll_seconds: float = Field(
        default=1.0, gt=0, le=60, description="how often an idle worker looks for due jobs"
    )
    max_attempts: int = Field(
        default=5, ge=1, le=100, description="attempts before a failing job is parked as dead"
    )
    retry_base_seconds: float = Field(
        default=10.0, ge=0, le=3600, description="delay before the first retry (then doubled)"
    )
    retry_max_seconds: float = Field(
        default=3600.0, ge=0, le=7 * 24 * 3600, description="longest delay between retries"
    )
    shutdown_grace_seconds: float = Field(
        default=10.0,
        ge=0,
        le=3600,
        description="on SIGTERM, how long running jobs may finish before they are released",
    )
    retention_days: int = Field(
        default=14, ge=1, le=3650, description="finished jobs are deleted after this many days"
    )
    test_kinds: bool = Field(
        default=False,
        description="run the test.* job kinds (for trustyard's own tests; never in production)",
    )


class EventsSettings(BaseModel):
    """Domain events (trustyard.events): the outbox and pull events."""

    model_config = ConfigDict(extra="forbid")

    retention_days: int = Field(
        default=14,
        ge=1,
        le=3650,
        description="dispatched events are deleted after this many days, with their webhook "
        "deliveries and delivery history",
    )
    pull_check_seconds: float = Field(
        default=5.0,
        gt=0,
        le=3600,
        description="how long a server process trusts its answer to `does any active "
        "subscription want pull events?` (pulls are recorded only when one does)",
    )
    pull_flush_seconds: float = Field(
        default=1.0,
        gt=0,
        le=60,
        description="pull events are buffered in memory and written in batches this often "
        "(best effort: a crash loses the buffer)",
    )


class ScanningSettings(BaseModel):
    """Image scanning (trustyard.scanning): whether pushes are scanned, how many scans a worker
    process runs at once, and the limits past which a layer is refused as hostile."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = Field(
        default=True,
        description="scan images (on push where the repository asks for it, and on request)",
    )
    max_concurrent_scans: int = Field(
        default=2,
        ge=1,
        le=64,
        description="scans one worker process runs at once (more wait, holding a job slot)",
    )
    progress_seconds: float = Field(
        default=1.0, gt=0, le=60, description="how often a running scan records its progress"
    )
    retention_days: int = Field(
        default=30,
        ge=1,
        description="days a superseded scan (not its manifest's latest) is kept; cached layer "
        "results of other scanner versions are dropped at once",
    )
    max_layer_bytes: int = Field(
        default=32 << 30, ge=1 << 20, description="uncompressed size of one layer"
    )
    max_ratio: int = Field(
        default=1000, ge=2, description="uncompressed : compressed size of a layer"
    )
    ratio_floor_bytes: int = Field(
        default=256 << 20, ge=0, description="the ratio is checked beyond this many bytes"
    )
    max_entries: int = Field(default=500_000, ge=1, description="tar entries in one layer")
    max_path_bytes: int = Field(default=4096, ge=64, description="length of one path")
    max_path_depth: int = Field(default=256, ge=1, description="directory levels of one path")
    max_nesting: int = Field(default=4, ge=0, description="archives inside archives")
    max_file_bytes: int = Field(
        default=512 << 20, ge=1 << 10, description="the most a detector reads of one file"
    )
    max_metadata_bytes: int = Field(
        default=16 << 20,
        ge=1 << 10,
        description="size of one package list or manifest a detector parses (dpkg status, "
        "apk installed, package-lock.json, deps.json, METADATA...); past it the scan is refused",
    )
    max_rpmdb_bytes: int = Field(
        default=128 << 20, ge=1 << 10, description="size of rpm's package database"
    )
    max_layer_components: int = Field(default=50_000, ge=1, description="components of a layer")
    max_image_components: int = Field(
        default=50_000, ge=1, description="components of one platform's BOM"
    )
    max_bom_bytes: int = Field(
        default=64 << 20, ge=1 << 10, description="a scan's stored BOMs (JSON, all platforms)"
    )


class VulnerabilitiesSettings(BaseModel):
    """The vulnerability database (trustyard.vulnerabilities): matching scanned images, the
    online update of the OSV sources, and the limits of a bundle (offline import, upload and
    download alike)."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = Field(
        default=True,
        description="match every scanned image against the database, and again when it changes",
    )
    update_cron: str | None = Field(
        default="41 */6 * * *",
        description="when the online update runs (UTC cron); empty or null: never (air-gapped "
        "sites import bundles with `trustyard vulndb import` or the admin upload instead)",
    )
    update_sources: list[str] = Field(
        default_factory=list,
        description="URLs of OSV bundles (zip of records) the online update fetches; empty: "
        "the per-ecosystem all.zip of `update_base_url` for every ecosystem the registry has seen",
    )
    update_base_url: str = Field(
        default="https://osv-vulnerabilities.storage.googleapis.com",
        description="where `<ecosystem>/all.zip` is fetched from when `update_sources` is empty",
    )
    update_timeout_seconds: float = Field(
        default=60.0, gt=0, le=3600, description="the most one read of a download may wait"
    )
    max_bundle_bytes: int = Field(
        default=2 << 30,
        ge=1 << 20,
        description="decompressed size of one bundle, every entry counted (and of one download)",
    )
    max_bundle_entries: int = Field(default=1_000_000, ge=1, description="entries of one bundle")
    max_bundle_ratio: int = Field(
        default=100, ge=2, description="decompressed : compressed size of a bundle"
    )
    max_upload_bytes: int = Field(
        default=1 << 30, ge=1 << 10, description="size of one bundle uploaded through /api/v1"
    )

    @field_validator("update_cron")
    @classmethod
    def _blank_is_never(cls, value: str | None) -> str | None:
        return value.strip() or None if value is not None else None


def _split_networks(value: Any) -> Any:
    """CIDRs from the environment: comma-separated, or a JSON list."""
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            return json.loads(text)
        return [part.strip() for part in text.split(",") if part.strip()]
    return value


def _check_networks(value: list[str]) -> list[str]:
    for network in value:
        try:
            ipaddress.ip_network(network, strict=False)
        except ValueError:
            raise ValueError(f"{network!r} is not a network (CIDR)") from None
    return value


# A list of networks (CIDRs) as a setting.
Networks = Annotated[
    list[str], NoDecode, BeforeValidator(_split_networks), AfterValidator(_check_networks)
]


class PoliciesSettings(BaseModel):
    """The policy engine and promotion (trustyard.policies): the limits every rule list,
    expression and run is held to."""

    model_config = ConfigDict(extra="forbid")

    max_depth: int = Field(
        default=10,
        ge=1,
        le=100,
        description="the most promotions one push may cause in a chain (a -> b -> c ...); a "
        "run past it stops with a logged error (cycles are refused at creation)",
    )
    max_rules: int = Field(default=50, ge=1, le=1000, description="rules in one policy")
    max_values: int = Field(default=100, ge=1, le=10000, description="values in one rule")
    max_expression_chars: int = Field(
        default=4096, ge=64, le=65536, description="the length of a CEL expression"
    )
    regex_timeout_ms: int = Field(
        default=100,
        ge=1,
        le=10000,
        description="the time limit of patterns: the most the `matches` rules of one policy "
        "together may spend on one image (or one CEL matches() call); a pattern that runs "
        "longer fails its rule with a clear reason",
    )
    max_policies_per_repository: int = Field(
        default=100, ge=1, le=10000, description="promotion policies of one source repository"
    )


class WebhooksSettings(BaseModel):
    """Webhooks (trustyard.webhooks): where deliveries may go, and how long they may fail."""

    model_config = ConfigDict(extra="forbid")

    allowed_networks: Networks = Field(
        default_factory=list,
        description="networks (CIDRs, comma-separated in the environment) that webhook "
        "destinations may resolve to besides global addresses: loopback, link-local, private "
        "and other non-global addresses are refused unless listed here",
    )
    timeout_seconds: float = Field(
        default=10.0, gt=0, le=120, description="seconds to connect and to wait for an answer"
    )
    inactive_after_days: float = Field(
        default=3.0,
        gt=0,
        le=365,
        description="a subscription whose deliveries fail without a success for longer than "
        "this is marked inactive (with the reason); its owner turns it on again",
    )


class MetricsSettings(BaseModel):
    """GET /metrics (Prometheus) and who may read it."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = Field(default=True, description="serve GET /metrics")
    token: SecretStr | None = Field(
        default=None,
        min_length=16,
        description="when set, every caller must present it (`Authorization: Bearer TOKEN`) "
        "and allow_from no longer applies",
    )
    allow_from: Networks = Field(
        default_factory=lambda: ["127.0.0.0/8", "::1/128"],
        description="without a token: the networks (CIDRs, comma-separated in the "
        "environment) whose callers may read /metrics; an empty list allows no one",
    )


class MirroringSettings(BaseModel):
    """Mirroring between registries (trustyard.mirroring) and the OCI client it talks to
    remotes with (trustyard.ociclient)."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = Field(
        default=True, description="run mirroring policies (their API answers either way)"
    )
    poll_interval_seconds: int = Field(
        default=1800,
        ge=60,
        le=7 * 24 * 3600,
        description="how often a pull mirroring policy polls its remote unless it says",
    )
    poll_check_seconds: int = Field(
        default=60,
        ge=1,
        le=3600,
        description="how often the scheduler looks for pull policies that are due",
    )
    max_policies_per_repository: int = Field(default=50, ge=1, le=10000)
    max_concurrency: int = Field(
        default=4, ge=1, le=64, description="a new remote's requests in flight, per process"
    )
    connect_timeout_seconds: float = Field(default=10.0, gt=0, le=300)
    read_timeout_seconds: float = Field(
        default=60.0,
        gt=0,
        le=3600,
        description="the longest wait for a byte from a remote: a remote that hangs fails",
    )
    max_attempts: int = Field(
        default=5, ge=1, le=20, description="tries of one request (retryable failures only)"
    )
    max_retry_after_seconds: float = Field(
        default=120.0,
        ge=0,
        le=3600,
        description="the longest Retry-After honoured; longer fails the item as rate limited",
    )
    chunk_bytes: int = Field(
        default=16 * 1024 * 1024,
        ge=64 * 1024,
        le=1024 * 1024 * 1024,
        description="one PATCH of a chunked upload to a remote (a resumed upload restarts "
        "from the last chunk the remote acknowledged)",
    )
    max_tags_per_run: int = Field(
        default=10000, ge=1, le=1_000_000, description="tags one pull run reads from a remote"
    )
    max_referrers: int = Field(
        default=100, ge=0, le=10000, description="referrers carried per image (recursively)"
    )


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="TRUSTYARD_", env_nested_delimiter="__", extra="forbid"
    )

    data_dir: Path = Path("./data")
    database_url: str | None = Field(
        default=None, description="SQLAlchemy URL; default: SQLite in the data folder"
    )
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    admin_password: SecretStr | None = Field(
        default=None, description="password of the first `admin` (default: generated, printed once)"
    )
    auth: AuthSettings = AuthSettings()
    events: EventsSettings = EventsSettings()
    jobs: JobsSettings = JobsSettings()
    ldap: LdapSettings = LdapSettings()
    metrics: MetricsSettings = MetricsSettings()
    mirroring: MirroringSettings = MirroringSettings()
    policies: PoliciesSettings = PoliciesSettings()
    scanning: ScanningSettings = ScanningSettings()
    server: ServerSettings = ServerSettings()
    storage: StorageSettings = StorageSettings()
    vulnerabilities: VulnerabilitiesSettings = VulnerabilitiesSettings()
    webhooks: WebhooksSettings = WebhooksSettings()

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        config_file = os.environ.get("TRUSTYARD_CONFIG")
        if config_file:
            if not Path(config_file).is_file():
                raise FileNotFoundError(f"TRUSTYARD_CONFIG names {config_file}: not a file")
            sources.append(YamlConfigSettingsSource(settings_cls, yaml_file=config_file))
        return tuple(sources)

    @property
    def blob_root(self) -> Path:
        return self.data_dir / "storage"

    @property
    def metrics_dir(self) -> Path:
        """Where the server's processes share their metrics (wiped when `serve` starts)."""
        return self.data_dir / "metrics"

    @property
    def effective_database_url(self) -> str:
        if self.database_url:
            return with_driver(self.database_url)
        return f"sqlite:///{(self.data_dir / 'trustyard.db').resolve()}"

    def to_environment(self) -> dict[str, str]:
        """Flatten to TRUSTYARD_* variables, so worker processes rebuild the same tree."""
        env: dict[str, str] = {}

        def walk(prefix: str, value: Any) -> None:
            if isinstance(value, SecretStr):
                value = value.get_secret_value()
            if isinstance(value, dict):
                for key, inner in value.items():
                    walk(f"{prefix}__{key.upper()}" if prefix else key.upper(), inner)
            elif isinstance(value, list):
                env[f"TRUSTYARD_{prefix}"] = json.dumps(value)
            elif value is not None:
                env[f"TRUSTYARD_{prefix}"] = (
                    str(value).lower() if isinstance(value, bool) else str(value)
                )

        walk("", self.model_dump())
        return env


def with_driver(url: str) -> str:
    """`postgres://` (as most tools write it) and a bare `postgresql://` mean the installed
    psycopg 3 driver; SQLAlchemy would reject the first and look for psycopg2 on the second."""
    scheme, sep, rest = url.partition("://")
    if sep and scheme in ("postgres", "postgresql"):
        return f"postgresql+psycopg://{rest}"
    return url


def load_settings(**overrides: Any) -> Settings:
    return Settings(**{k: v for k, v in overrides.items() if v is not None})
