"""build_services: a server process's services, each built once from the settings."""

from __future__ import annotations

from pathlib import Path

import pytest

from trustyard.config import Settings
from trustyard.db import migrate
from trustyard.db.engine import make_engine
from trustyard.db.writer import GroupWriter
from trustyard.wiring.server import Services, build_services


def services(tmp_path: Path, **settings: object) -> Services:
    config = Settings(data_dir=tmp_path / "data", **settings)
    config.data_dir.mkdir()
    engine = make_engine(config.effective_database_url)
    migrate.upgrade(engine)
    return build_services(config, engine)


def test_one_scan_service_reacts_to_pushes_and_answers_the_api(tmp_path: Path) -> None:
    built = services(tmp_path)
    try:
        # Scan on push, then the promotion policies' triggers, react in the push's
        # transaction, as consumers of the one outbox (the same objects the API asks).
        assert built.context.events is not None
        assert built.context.events.inline == (built.scans, built.policy_triggers)
        # One job queue behind the outbox, the scans and the webhooks.
        assert built.scans.queue is built.context.events.queue
        assert built.webhooks.queue is built.scans.queue
        assert built.context.accounts is not None  # accounts on by default
        # SQLite on a file: the registry's writes go through group commits.
        assert isinstance(built.context.writer, GroupWriter)
    finally:
        built.context.engine.dispose()


@pytest.mark.parametrize("enabled", [True, False])
def test_metrics_decide_whether_a_recorder_is_built(tmp_path: Path, enabled: bool) -> None:
    built = services(tmp_path, metrics={"enabled": enabled})
    try:
        assert (built.recorder is not None) is enabled
    finally:
        built.context.engine.dispose()


def test_scanning_off_leaves_pushes_to_the_policies_alone(tmp_path: Path) -> None:
    built = services(tmp_path, scanning={"enabled": False})
    try:
        assert built.context.events is not None
        assert built.context.events.inline == (built.policy_triggers,)
        assert not built.scans.enabled
    finally:
        built.context.engine.dispose()
