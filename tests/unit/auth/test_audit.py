"""The audit log on a real database: events round-trip, and `search` pages and filters them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy import Connection

from trustyard.auth import audit
from trustyard.auth.authorize import ANONYMOUS, Subject
from trustyard.auth.permissions import Principal

T0 = datetime(2030, 1, 1, 12, tzinfo=UTC)


def event(at: datetime, actor: str, action: str, organization: str | None) -> audit.AuditEvent:
    return audit.AuditEvent(
        at, actor, "user", action, "repository", f"{organization}/app", "ok", "10.0.0.1",
        organization, {"tag": "v1"},
    )  # fmt: skip


@pytest.fixture
def logged(conn: Connection) -> list[audit.AuditEvent]:
    """Six events, one minute apart, oldest first, as read back (ids set)."""
    for minute, (actor, action, org) in enumerate(
        [
            ("olga", "manifest.push", "acme"),
            ("ivan", "manifest.push", "initech"),
            ("olga", "tag.delete", "acme"),
            ("olga", "user.update", None),
            ("ivan", "tag.delete", "initech"),
            ("rita", "manifest.push", "acme"),
        ]
    ):
        audit.record(conn, event(T0 + timedelta(minutes=minute), actor, action, org))
    return list(reversed(audit.search(conn, limit=100)))


def test_events_come_back_whole_newest_first(
    conn: Connection, logged: list[audit.AuditEvent]
) -> None:
    first = logged[0]
    assert first.id is not None
    assert first == audit.AuditEvent(
        T0, "olga", "user", "manifest.push", "repository", "acme/app", "ok", "10.0.0.1", "acme",
        {"tag": "v1"}, first.id,
    )  # fmt: skip
    ids = [e.id for e in logged]
    assert ids == sorted(ids)  # type: ignore[type-var]
    assert audit.recent(conn, limit=2) == logged[:-3:-1]
    assert audit.recent(conn, organization="initech") == [logged[4], logged[1]]


def test_search_pages_by_id_and_filters(conn: Connection, logged: list[audit.AuditEvent]) -> None:
    newest_first = logged[::-1]
    page = audit.search(conn, limit=4)
    assert page == newest_first[:4]
    rest = audit.search(conn, limit=4, before=page[-1].id)
    assert rest == newest_first[4:]
    assert [e.actor for e in audit.search(conn, actor="olga")] == ["olga"] * 3
    assert [e.action for e in audit.search(conn, action="tag.delete")] == ["tag.delete"] * 2
    assert audit.search(conn, organization="acme", actor="olga", action="tag.delete") == [logged[2]]
    assert audit.search(conn, since=T0 + timedelta(minutes=4)) == newest_first[:2]
    # the same instant in another zone, and a naive time taken as UTC
    naive = T0.replace(tzinfo=None) + timedelta(minutes=4)
    assert audit.search(conn, since=naive) == newest_first[:2]
    eastern = (T0 + timedelta(minutes=5)).astimezone(timezone(timedelta(hours=5)))
    assert eastern.hour == 17
    assert audit.search(conn, since=eastern) == newest_first[:1]
    assert audit.search(conn, actor="nobody") == []


def test_long_values_are_cut_to_their_columns(conn: Connection) -> None:
    audit.record(
        conn,
        audit.AuditEvent(
            T0, "a" * 300, "user", "x" * 100, "repository", "r" * 600, "ok", "1" * 80, "o" * 80
        ),
    )
    stored = audit.search(conn, limit=1)[0]
    assert (len(stored.actor), len(stored.action), len(stored.resource)) == (128, 64, 512)
    assert (stored.address, stored.organization) == ("1" * 64, "o" * 64)
    assert stored.detail is None


def test_actor_of_a_v2_subject() -> None:
    olga = Principal.user("olga")
    assert audit.actor_of(Subject("olga", olga)) == ("olga", "user")
    assert audit.actor_of(Subject("acme+ci", Principal.robot("acme", "ci"))) == ("acme+ci", "robot")
    assert audit.actor_of(Subject("olga", None, bearer=True)) == ("olga", "user")
    assert audit.actor_of(Subject("acme+ci", None, bearer=True)) == ("acme+ci", "robot")
    assert audit.actor_of(ANONYMOUS) == ("", "anonymous")
