"""The access generation moves on every change an access decision depends on (workers keep
their decisions until it does), and stays put for content writes (so pushes keep the cache).

A change that does not move it would let a worker serve a stale decision: for example a removed
member still pushing. Each case below is one such change.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from sqlalchemy import Connection, select, update

from tests.unit.auth.conftest import CHEAP_HASHER, MakeRepository
from trustyard.auth.accounts import AccountService
from trustyard.content.stores import ContentStore
from trustyard.db.tables import access_generation, repositories, users


def generation(conn: Connection) -> int:
    return int(conn.scalar(select(access_generation.c.value).where(access_generation.c.id == 1)))


@pytest.fixture
def service() -> AccountService:
    return AccountService(hasher=CHEAP_HASHER)


@pytest.fixture
def seeded(conn: Connection, service: AccountService, make_repository: MakeRepository) -> None:
    for name in ("olga", "bob"):
        service.create_user(conn, name, "a password long enough")
    service.create_organization(conn, "acme", "olga")
    service.create_team(conn, "acme", "devs")
    service.create_robot(conn, "acme", "ci")
    make_repository("acme/app")


Change = Callable[[Connection, AccountService], object]

CHANGES: dict[str, Change] = {
    "user created": lambda c, s: s.create_user(c, "carol", "a password long enough"),
    "user deactivated": lambda c, s: s.deactivate_user(c, "bob"),
    "user made admin": lambda c, s: c.execute(
        update(users).where(users.c.username == "bob").values(is_admin=True)
    ),
    "user deleted": lambda c, s: s.delete_user(c, "bob"),
    "organization created": lambda c, s: s.create_organization(c, "other", "bob"),
    "owner added": lambda c, s: s.add_owner(c, "acme", "bob"),
    "team created": lambda c, s: s.create_team(c, "acme", "ops"),
    "team deleted": lambda c, s: s.delete_team(c, "acme", "devs"),
    "member added": lambda c, s: s.add_member(c, "acme", "devs", "bob"),
    "repository grant": lambda c, s: s.set_team_repository_grant(
        c, "acme", "devs", "acme/app", "read-write"
    ),
    "organization grant": lambda c, s: s.set_team_organization_grant(
        c, "acme", "devs", "read-only"
    ),
    "robot created": lambda c, s: s.create_robot(c, "acme", "deploy"),
    "robot grant": lambda c, s: s.set_robot_grant(c, "acme", "ci", "acme/*", "read-write"),
    "repository created by a push": lambda c, s: ContentStore().ensure_repository(c, "acme/new"),
    "repository made public": lambda c, s: c.execute(
        update(repositories).where(repositories.c.name == "acme/app").values(visibility="public")
    ),
    "repository deleted": lambda c, s: c.execute(
        repositories.delete().where(repositories.c.name == "acme/app")
    ),
}


@pytest.mark.usefixtures("seeded")
@pytest.mark.parametrize("change", sorted(CHANGES))
def test_every_change_of_access_moves_the_generation(
    conn: Connection, service: AccountService, change: str
) -> None:
    before = generation(conn)
    CHANGES[change](conn, service)
    assert generation(conn) > before


@pytest.mark.usefixtures("seeded")
def test_content_writes_and_logins_leave_it_alone(
    conn: Connection, service: AccountService
) -> None:
    store = ContentStore()
    before = generation(conn)
    assert store.ensure_repository(conn, "acme/app") > 0  # exists: nothing created
    conn.execute(
        update(repositories).where(repositories.c.name == "acme/app").values(description="x")
    )
    service.change_password(conn, "bob", "another password long enough")
    conn.execute(update(users).where(users.c.username == "bob").values(email="b@example.org"))
    assert generation(conn) == before
