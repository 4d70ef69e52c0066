"""create_app: the ASGI app assembled around services built once per process."""

from __future__ import annotations

from pathlib import Path

from trustyard.app import create_app
from trustyard.config import Settings
from trustyard.db import migrate
from trustyard.db.engine import make_engine


def test_the_api_asks_the_services_that_react_to_pushes(tmp_path: Path) -> None:
    """One scan service and one set of policy triggers per process: the API's are the very
    objects the outbox calls in a push's transaction (scanning first: a policy run then sees
    whether the push queued a scan)."""
    settings = Settings(data_dir=tmp_path / "data")
    settings.data_dir.mkdir()
    engine = make_engine(settings.effective_database_url)
    migrate.upgrade(engine)
    engine.dispose()
    app = create_app(settings)
    try:
        assert app.api is not None
        assert app.ctx.events is not None
        assert app.ctx.events.inline == (app.api.state.scans, app.api.state.policy_triggers)
        assert app.api.state.webhooks.queue is app.api.state.scans.queue
    finally:
        app.ctx.engine.dispose()
