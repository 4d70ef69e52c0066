"""Login throttling: slows password guessing without handing anyone a way to lock others out.

Failed password logins are counted (table `login_failures`, one row per key) under three keys:

- the pair (account, client address): after `PAIR_FREE_FAILURES` failures in a row the pair is
  locked for 1 s (`auth.login_first_lock_seconds`), 2 s, 4 s ... up to `MAX_LOCK`. Only that
  address is refused for that account: the account's owner, anywhere else, logs in as usual.
- the client address: after `ADDRESS_FREE_FAILURES` failures over all accounts (password
  spraying) the address is locked the same way, for every account. An address is shared by
  everyone behind one NAT, hence the larger allowance.
- the account: counted from every address, it never refuses anything. While an account has had
  `ACCOUNT_UNDER_ATTACK` failures or more (guessing spread over many addresses), each address
  gets a single free failure on it and then the longest lock at once (no ramp): every address
  of a botnet gets about two guesses per `MAX_LOCK`, while a right password from an address
  without failures on the account still logs in at the first try.

So a correct password from an address with no recent failures for the account is never
refused. Counts are forgotten `FAILURES_FORGOTTEN_AFTER` the last failure; a success clears
only its own pair (an attacker logging in to an account of their own must not wipe the count of
their address). Access and robot tokens are not throttled: their secrets are 256 random bits,
out of reach of guessing, and counting their failures would only let anyone sharing an address
lock its users out. Each throttle that starts is an audit event `login.throttle`.

Functions take the caller's connection and never commit.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Connection, delete, or_

from trustyard.auth import audit
from trustyard.auth.stores import AccessStore
from trustyard.db.tables import login_failures

PAIR_FREE_FAILURES = 4
ADDRESS_FREE_FAILURES = 50
ACCOUNT_UNDER_ATTACK = 20
FIRST_LOCK = timedelta(seconds=1)
MAX_LOCK = timedelta(minutes=15)
# A key whose last failure is older than this starts counting from zero again.
FAILURES_FORGOTTEN_AFTER = timedelta(hours=1)
# The address of callers without one (never a real address).
NO_ADDRESS = "-"


def account_key(username: str) -> str:
    return f"user:{username[:100]}"


def address_key(address: str) -> str:
    return f"addr:{address[:64]}"


def pair_key(username: str, address: str | None) -> str:
    # Account names never hold "@" (auth.accounts.NAME_RE; robots are org+robot).
    return f"pair:{username[:100]}@{(address or NO_ADDRESS)[:64]}"


def lock_duration(failures: int, free: int, first_lock: timedelta = FIRST_LOCK) -> timedelta | None:
    """How long a key is locked after its `failures`-th consecutive failure."""
    if failures <= free:
        return None
    exponent = min(failures - free - 1, 20)  # 2**20 s is far past the cap already
    duration: timedelta = first_lock * (1 << exponent)
    return min(duration, MAX_LOCK)


@dataclass(frozen=True, slots=True)
class Count:
    """A key's failures after one more, and the lock that follows (None: none)."""

    failures: int
    locked_until: datetime | None
    started: bool  # this failure started a lock (the key was not locked just before)


def count_failure(
    conn: Connection,
    key: str,
    now: datetime,
    *,
    free: int | None,
    full_lock: bool = False,
    store: AccessStore | None = None,
    first_lock: timedelta = FIRST_LOCK,
) -> Count:
    """Count a failure for `key`: the first `free` in a row cost nothing, then the lock doubles
    from `first_lock` (or is `MAX_LOCK` at once with `full_lock`); `free=None` never locks."""
    store = store or AccessStore()
    previous = store.login_failure(conn, key, lock=True)
    failures = 1
    was_locked = False
    if previous is not None and now - previous[1] <= FAILURES_FORGOTTEN_AFTER:
        failures = previous[0] + 1
        was_locked = previous[2] is not None and previous[2] > now
    duration = None if free is None else lock_duration(failures, free, first_lock)
    if duration is not None and full_lock:
        duration = MAX_LOCK
    until = None if duration is None else now + duration
    store.put_login_failure(conn, key, failures, now, until)
    return Count(failures, until, until is not None and not was_locked)


def locked_until(
    conn: Connection, key: str, now: datetime, store: AccessStore | None = None
) -> datetime | None:
    """Until when logins under `key` are refused, or None when they are allowed at `now`."""
    found = (store or AccessStore()).login_failure(conn, key)
    if found is None or found[2] is None or found[2] <= now:
        return None
    return found[2]


class LoginThrottle:
    """The three counts of password logins (see the module's text)."""

    def __init__(
        self, store: AccessStore | None = None, first_lock: timedelta = FIRST_LOCK
    ) -> None:
        self.store = store or AccessStore()
        self.first_lock = first_lock  # `auth.login_first_lock_seconds`

    def refused_until(
        self, conn: Connection, username: str, address: str | None, now: datetime
    ) -> datetime | None:
        """Until when a password login of `username` from `address` is refused without being
        checked (None: check it). The account's own count never refuses."""
        keys = [pair_key(username, address)] + ([address_key(address)] if address else [])
        locks = [until for key in keys if (until := locked_until(conn, key, now, self.store))]
        return max(locks) if locks else None

    def failed(self, conn: Connection, username: str, address: str | None, now: datetime) -> None:
        """Count a failed password login of `username` from `address`; audit any throttle
        this starts."""
        account = count_failure(conn, account_key(username), now, free=None, store=self.store)
        attacked = account.failures >= ACCOUNT_UNDER_ATTACK
        if account.failures == ACCOUNT_UNDER_ATTACK:
            _audit(conn, now, "account", "user", username, address, account.failures, None)
        free = 1 if attacked else PAIR_FREE_FAILURES
        pair = count_failure(
            conn,
            pair_key(username, address),
            now,
            free=free,
            full_lock=attacked,
            store=self.store,
            first_lock=self.first_lock,
        )
        if pair.started:
            _audit(conn, now, "pair", "user", username, address, pair.failures, pair.locked_until)
        if address:
            where = count_failure(
                conn,
                address_key(address),
                now,
                free=ADDRESS_FREE_FAILURES,
                store=self.store,
                first_lock=self.first_lock,
            )
            if where.started:
                _audit(
                    conn,
                    now,
                    "address",
                    "address",
                    address,
                    address,
                    where.failures,
                    where.locked_until,
                )

    def succeeded(self, conn: Connection, username: str, address: str | None) -> None:
        """A right password from `address`: its pair starts from zero again (the address and
        account counts stay: see the module's text)."""
        self.store.clear_login_failures(conn, pair_key(username, address))

    def forgive(self, conn: Connection, username: str) -> None:
        """Forget every count of `username` (its pairs and its account count), as after an
        administrator set a new password."""
        pairs = login_failures.c.key.startswith(f"pair:{username[:100]}@", autoescape=True)
        conn.execute(
            delete(login_failures).where(or_(pairs, login_failures.c.key == account_key(username)))
        )


def retry_after(until: datetime, now: datetime) -> int:
    """Whole seconds to wait (at least 1), for `Retry-After`."""
    return max(1, int((until - now).total_seconds()) + 1)


def _audit(
    conn: Connection,
    now: datetime,
    throttle: str,
    kind: str,
    resource: str,
    address: str | None,
    failures: int,
    until: datetime | None,
) -> None:
    detail: dict[str, object] = {"throttle": throttle, "failures": failures}
    if until is not None:
        detail["locked_until"] = until.isoformat()
        detail["seconds"] = retry_after(until, now)
    else:
        detail["note"] = "many failures from several addresses: each address is locked sooner"
    audit.record(
        conn,
        audit.AuditEvent(
            now, "", "anonymous", "login.throttle", kind, resource, "denied", address, None, detail
        ),
    )
