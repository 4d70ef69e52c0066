"""The settings tree: defaults, YAML file, TRUSTYARD_* variables, flags, and their order."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from pydantic import ValidationError

from trustyard.config import Settings, load_settings


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No TRUSTYARD_* variable of the caller leaks in; relative paths resolve in tmp_path."""
    for name in list(os.environ):
        if name.startswith("TRUSTYARD_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)


def write_yaml(tmp_path: Path, text: str, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "trustyard.yaml"
    path.write_text(text, encoding="utf-8")
    monkeypatch.setenv("TRUSTYARD_CONFIG", str(path))
    return path


def test_defaults_serve_locally_with_sqlite_in_the_data_folder(tmp_path: Path) -> None:
    settings = Settings()
    assert settings.data_dir == Path("data")
    assert settings.server.host == "127.0.0.1"
    assert settings.server.port == 5000
    assert settings.server.workers == 0
    assert settings.server.public_url is None
    assert settings.storage.driver == "filesystem"
    assert settings.storage.fsync is True
    assert settings.auth.enabled is True  # accounts on: nobody pushes anonymously by default
    assert settings.log_level == "info"
    assert settings.blob_root == Path("data") / "storage"
    assert settings.effective_database_url == f"sqlite:///{tmp_path / 'data' / 'trustyard.db'}"


def test_database_url_when_given_is_used_as_is() -> None:
    url = "postgresql+psycopg://trustyard@db/trustyard"
    assert Settings(database_url=url).effective_database_url == url


def test_environment_variables_set_nested_values(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRUSTYARD_DATA_DIR", "/srv/registry")
    monkeypatch.setenv("TRUSTYARD_SERVER__PORT", "8080")
    monkeypatch.setenv("TRUSTYARD_SERVER__PUBLIC_URL", "https://registry.example")
    monkeypatch.setenv("TRUSTYARD_STORAGE__FSYNC", "false")
    monkeypatch.setenv("TRUSTYARD_LOG_LEVEL", "debug")
    settings = Settings()
    assert settings.data_dir == Path("/srv/registry")
    assert settings.blob_root == Path("/srv/registry/storage")
    assert settings.server.port == 8080
    assert settings.server.public_url == "https://registry.example"
    assert settings.storage.fsync is False
    assert settings.log_level == "debug"
    assert settings.effective_database_url == "sqlite:////srv/registry/trustyard.db"


def test_yaml_file_named_by_trustyard_config(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_yaml(
        tmp_path,
        "data_dir: /var/lib/trustyard\n"
        "database_url: postgresql+psycopg://trustyard@db/trustyard\n"
        "server: {host: 0.0.0.0, port: 5001, workers: 4}\n",
        monkeypatch,
    )
    settings = Settings()
    assert settings.data_dir == Path("/var/lib/trustyard")
    assert settings.effective_database_url == "postgresql+psycopg://trustyard@db/trustyard"
    assert (settings.server.host, settings.server.port, settings.server.workers) == (
        "0.0.0.0",
        5001,
        4,
    )


def test_flags_beat_environment_which_beats_the_file_key_by_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_yaml(
        tmp_path,
        "data_dir: /from/file\nserver: {host: 10.0.0.1, port: 6000, workers: 3}\n",
        monkeypatch,
    )
    monkeypatch.setenv("TRUSTYARD_SERVER__PORT", "7000")
    monkeypatch.setenv("TRUSTYARD_DATA_DIR", "/from/env")
    settings = load_settings(data_dir=Path("/from/flag"), database_url=None)
    assert settings.data_dir == Path("/from/flag")  # flag over environment
    assert settings.server.port == 7000  # environment over file
    assert settings.server.host == "10.0.0.1"  # the file's other keys of `server` stay
    assert settings.server.workers == 3
    assert settings.database_url is None  # a flag left unset overrides nothing


def test_misspelt_top_level_key_in_the_file_is_an_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_yaml(tmp_path, "data_dri: /x\n", monkeypatch)
    with pytest.raises(ValidationError, match="data_dri"):
        Settings()


def test_misspelt_nested_key_in_the_file_is_an_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_yaml(tmp_path, "server: {prot: 80}\n", monkeypatch)
    with pytest.raises(ValidationError, match="prot"):
        Settings()


def test_misspelt_nested_environment_variable_is_an_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TRUSTYARD_STORAGE__FSINC", "false")
    with pytest.raises(ValidationError, match="fsinc"):
        Settings()


def test_missing_config_file_is_an_error_not_silently_the_defaults(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TRUSTYARD_CONFIG", str(tmp_path / "nope.yaml"))
    with pytest.raises(FileNotFoundError, match=r"nope\.yaml"):
        Settings()


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("TRUSTYARD_SERVER__PORT", "65536"),
        ("TRUSTYARD_SERVER__PORT", "-1"),
        ("TRUSTYARD_SERVER__PORT", "http"),
        ("TRUSTYARD_SERVER__WORKERS", "-2"),
        ("TRUSTYARD_STORAGE__FSYNC", "sometimes"),
        ("TRUSTYARD_STORAGE__DRIVER", "floppy"),
        ("TRUSTYARD_LOG_LEVEL", "verbose"),
    ],
)
def test_invalid_values_are_refused(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ValidationError):
        Settings()


@pytest.mark.parametrize(("text", "expected"), [("1", True), ("true", True), ("0", False)])
def test_boolean_spellings(monkeypatch: pytest.MonkeyPatch, text: str, expected: bool) -> None:
    monkeypatch.setenv("TRUSTYARD_STORAGE__FSYNC", text)
    assert Settings().storage.fsync is expected


def test_to_environment_rebuilds_the_same_tree_in_a_worker(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_yaml(tmp_path, "server: {workers: 2, public_url: 'https://r.example'}\n", monkeypatch)
    original = load_settings(
        data_dir=tmp_path / "data", database_url="postgresql+psycopg://u@h:5433/db"
    )
    original = original.model_copy(
        update={"storage": original.storage.model_copy(update={"fsync": False})}
    )
    exported = original.to_environment()
    assert all(name.startswith("TRUSTYARD_") for name in exported)
    assert exported["TRUSTYARD_STORAGE__FSYNC"] == "false"
    assert exported["TRUSTYARD_SERVER__PUBLIC_URL"] == "https://r.example"

    # The worker sees only the exported variables (no config file).
    monkeypatch.delenv("TRUSTYARD_CONFIG")
    for name, value in exported.items():
        monkeypatch.setenv(name, value)
    assert Settings() == original


def test_to_environment_leaves_unset_optional_values_out() -> None:
    exported = Settings().to_environment()
    assert "TRUSTYARD_DATABASE_URL" not in exported
    assert "TRUSTYARD_SERVER__PUBLIC_URL" not in exported


@pytest.mark.parametrize(
    "variable", ["TRUSTYARD_WEBHOOKS__ALLOWED_NETWORKS", "TRUSTYARD_METRICS__ALLOW_FROM"]
)
def test_network_lists_come_comma_separated_or_as_json_and_must_be_cidrs(
    monkeypatch: pytest.MonkeyPatch, variable: str
) -> None:
    field = variable.rsplit("__", 1)[1].lower()
    section = "webhooks" if "WEBHOOKS" in variable else "metrics"

    monkeypatch.setenv(variable, " 127.0.0.1/32, 10.0.0.0/8 ,")
    assert getattr(getattr(Settings(), section), field) == ["127.0.0.1/32", "10.0.0.0/8"]
    monkeypatch.setenv(variable, '["::1/128"]')
    assert getattr(getattr(Settings(), section), field) == ["::1/128"]
    monkeypatch.setenv(variable, "127.0.0.1/32,not-a-network")
    with pytest.raises(ValidationError, match="'not-a-network' is not a network"):
        Settings()
