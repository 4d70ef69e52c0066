"""The one typed settings tree. This module is the only reader of the environment.

Sources, strongest first: explicit values (command-line flags), `TRUSTYARD_*` environment
variables (nested with `__`, e.g. `TRUSTYARD_SERVER__PORT`), a YAML file named by
`TRUSTYARD_CONFIG`, then defaults.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr
from pydantic_settings import (
    BaseSettings,
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
        default=None, description="URL clients use to reach the registry (for Location headers)"
    )
    body_timeout: float = Field(
        default=120.0, gt=0, description="seconds a request body may stall before it is dropped"
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
    signing_passphrase: SecretStr | None = Field(
        default=None,
        description="encrypts the token-signing key in the database; replicas must share it "
        "(default: generated once into DATA_DIR/signing.passphrase)",
    )


class StorageSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    driver: Literal["filesystem"] = "filesystem"
    fsync: bool = Field(default=True, description="fsync blobs before acknowledging them")


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
    server: ServerSettings = ServerSettings()
    storage: StorageSettings = StorageSettings()

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
    def effective_database_url(self) -> str:
        if self.database_url:
            return self.database_url
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
            elif value is not None:
                env[f"TRUSTYARD_{prefix}"] = (
                    str(value).lower() if isinstance(value, bool) else str(value)
                )

        walk("", self.model_dump())
        return env


def load_settings(**overrides: Any) -> Settings:
    return Settings(**{k: v for k, v in overrides.items() if v is not None})
