"""Login throttling: an attacker's address is slowed down, the account's owner elsewhere never
is (issue 9, item 15: five wrong passwords from one address used to lock the account for every
address)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import Connection, select

from trustyard.auth import audit
from trustyard.auth.login_throttle import (
    ACCOUNT_UNDER_ATTACK,
    ADDRESS_FREE_FAILURES,
    MAX_LOCK,
    PAIR_FREE_FAILURES,
    LoginThrottle,
    account_key,
    address_key,
    count_failure,
    locked_until,
    pair_key,
)
from trustyard.db.tables import login_failures

T0 = datetime(2030, 1, 1, tzinfo=UTC)
ATTACKER = "198.51.100.7"
OWNER = "203.0.113.9"


def throttle_events(conn: Connection) -> list[audit.AuditEvent]:
    return audit.search(conn, action="login.throttle")


def test_failures_lock_with_exponential_backoff(conn: Connection) -> None:
    key = pair_key("alice", ATTACKER)
    for n in range(4):
        count = count_failure(conn, key, T0 + timedelta(seconds=n), free=4)
        assert count.locked_until is None
        assert not count.started
        assert locked_until(conn, key, T0 + timedelta(seconds=n)) is None
    at = T0 + timedelta(seconds=10)
    expected = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 900, 900, 900]
    for seconds in expected:
        count = count_failure(conn, key, at, free=4)
        until = count.locked_until
        assert until == at + timedelta(seconds=seconds)
        assert count.started  # each lock had ended when the next failure came
        assert locked_until(conn, key, at) == until
        assert locked_until(conn, key, until - timedelta(microseconds=1)) == until
        assert locked_until(conn, key, until) is None
        at = until
    assert not count_failure(conn, key, at - timedelta(seconds=1), free=4).started  # still on


def test_old_failures_are_forgotten_and_an_account_count_never_locks(conn: Connection) -> None:
    key = address_key("2001:db8::1")
    for _ in range(5):
        count_failure(conn, key, T0, free=4)
    assert locked_until(conn, key, T0) == T0 + timedelta(seconds=1)
    later = T0 + timedelta(hours=1, seconds=1)
    assert count_failure(conn, key, later, free=4).locked_until is None
    for _ in range(100):
        assert count_failure(conn, account_key("bob"), T0, free=None).locked_until is None
    assert (account_key("alice"), address_key("192.0.2.1")) == ("user:alice", "addr:192.0.2.1")
    assert pair_key("alice", "2001:db8::1") == "pair:alice@2001:db8::1"


def test_wrong_passwords_from_one_address_never_refuse_the_owner_elsewhere(
    conn: Connection,
) -> None:
    throttle = LoginThrottle()
    for n in range(PAIR_FREE_FAILURES):
        throttle.failed(conn, "admin", ATTACKER, T0 + timedelta(seconds=n))
        assert throttle.refused_until(conn, "admin", ATTACKER, T0 + timedelta(seconds=n)) is None
    at = T0 + timedelta(seconds=10)
    for _ in range(15):  # months of one failure per lock period would change nothing either
        throttle.failed(conn, "admin", ATTACKER, at)
        until = throttle.refused_until(conn, "admin", ATTACKER, at)
        assert until is not None
        assert until > at
        assert throttle.refused_until(conn, "admin", OWNER, at) is None
        assert throttle.refused_until(conn, "admin", None, at) is None
        assert throttle.refused_until(conn, "bob", ATTACKER, at) is None  # other accounts
        assert until - at <= MAX_LOCK
        at = until
    events = throttle_events(conn)  # each lock is audited (one per period at most)
    assert len(events) == 15
    for event in events:
        assert (event.resource_kind, event.resource, event.address) == ("user", "admin", ATTACKER)
        assert event.detail is not None
        assert event.detail["throttle"] == "pair"


def test_a_success_clears_its_pair_only(conn: Connection) -> None:
    throttle = LoginThrottle()
    for address in (ATTACKER, OWNER):
        for _ in range(3):
            throttle.failed(conn, "alice", address, T0)
    throttle.succeeded(conn, "alice", OWNER)
    keys = set(conn.scalars(select(login_failures.c.key)))
    assert pair_key("alice", OWNER) not in keys
    assert {pair_key("alice", ATTACKER), account_key("alice"), address_key(ATTACKER)} <= keys


def test_an_address_trying_many_accounts_is_throttled_for_all_of_them(conn: Connection) -> None:
    throttle = LoginThrottle()
    for n in range(ADDRESS_FREE_FAILURES + 1):
        throttle.failed(conn, f"user{n}", ATTACKER, T0)
    assert throttle.refused_until(conn, "somebody", ATTACKER, T0) is not None
    assert throttle.refused_until(conn, "somebody", OWNER, T0) is None
    [event] = throttle_events(conn)
    assert (event.resource_kind, event.resource) == ("address", ATTACKER)
    assert event.detail is not None
    assert event.detail["failures"] == ADDRESS_FREE_FAILURES + 1


def test_guessing_spread_over_many_addresses_locks_each_address_sooner(
    conn: Connection,
) -> None:
    throttle = LoginThrottle()
    for n in range(ACCOUNT_UNDER_ATTACK):
        throttle.failed(conn, "admin", f"10.0.{n}.1", T0)
    [alert] = throttle_events(conn)
    assert (alert.resource_kind, alert.resource) == ("user", "admin")
    assert alert.detail is not None
    assert alert.detail["throttle"] == "account"
    # A fresh address of the botnet: one free failure, then the longest lock at once.
    throttle.failed(conn, "admin", "10.9.9.9", T0)
    assert throttle.refused_until(conn, "admin", "10.9.9.9", T0) is None
    throttle.failed(conn, "admin", "10.9.9.9", T0)
    assert throttle.refused_until(conn, "admin", "10.9.9.9", T0) == T0 + MAX_LOCK
    # The owner's address, without failures of its own, is never refused.
    assert throttle.refused_until(conn, "admin", OWNER, T0) is None


def test_forgiving_an_account_forgets_its_pairs_and_nothing_else(conn: Connection) -> None:
    throttle = LoginThrottle()
    for name in ("al", "al.x", "bob"):
        for _ in range(6):
            throttle.failed(conn, name, ATTACKER, T0)
    throttle.forgive(conn, "al")
    keys = set(conn.scalars(select(login_failures.c.key)))
    assert not {pair_key("al", ATTACKER), account_key("al")} & keys
    assert {pair_key("al.x", ATTACKER), pair_key("bob", ATTACKER), address_key(ATTACKER)} <= keys


def test_stale_counts_are_pruned_and_live_ones_kept(conn: Connection) -> None:
    from trustyard.auth.login_throttle import FAILURES_FORGOTTEN_AFTER
    from trustyard.auth.stores import AccessStore

    store = AccessStore()
    now = T0 + timedelta(days=1)
    old = now - FAILURES_FORGOTTEN_AFTER - timedelta(seconds=1)
    store.put_login_failure(conn, pair_key("gone", ATTACKER), 3, old, None)
    store.put_login_failure(
        conn, address_key("192.0.2.1"), 60, old, old + timedelta(milliseconds=500)
    )
    store.put_login_failure(conn, pair_key("recent", ATTACKER), 2, now, None)
    # An old last failure whose lock still runs is kept until the lock is over too.
    store.put_login_failure(conn, pair_key("locked", ATTACKER), 9, old, now + timedelta(minutes=1))
    cutoff = now - FAILURES_FORGOTTEN_AFTER
    assert store.prune_login_failures(conn, cutoff, limit=1) == 1
    assert store.prune_login_failures(conn, cutoff) == 1
    assert store.prune_login_failures(conn, cutoff) == 0
    left = set(conn.scalars(select(login_failures.c.key)))
    assert left == {pair_key("recent", ATTACKER), pair_key("locked", ATTACKER)}
