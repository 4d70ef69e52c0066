"""Background work of the access domain: the full LDAP group -> team sync, and the pruning of
login-failure counts nobody reads any more.

Logins sync one user's teams at a time; this job does it for every directory account at once,
so that someone who left a group loses the team (and its access tokens' reach) without waiting
for their next login. `trustyard ldap-sync` runs it, and so do workers on the
`ldap.sync_cron` schedule (job kind `ldap.sync`).
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Engine

from trustyard.auth.ldap_accounts import LDAP_SOURCE, SYNC_JOB, LdapAccounts
from trustyard.auth.login_throttle import FAILURES_FORGOTTEN_AFTER
from trustyard.auth.stores import AccessStore
from trustyard.db.engine import read_tx, write_tx
from trustyard.jobs.housekeeping import BatchedPrune
from trustyard.jobs.scheduler import ScheduleSpec


@dataclass(frozen=True, slots=True)
class UserSync:
    """What the sync changed for one directory account."""

    username: str
    in_directory: bool  # False: no entry matches any more; the user left every linked team
    joined: tuple[str, ...]  # "org/team"
    left: tuple[str, ...]


def sync_ldap_teams(engine: Engine, ldap: LdapAccounts) -> list[UserSync]:
    """Bring every directory account's linked teams, email and full name in line with the
    directory. The directory is read first, outside any transaction; when it cannot answer
    (`LdapUnavailable`) nothing is changed. Local accounts are never touched."""
    with read_tx(engine) as conn:
        usernames = [user.username for user in ldap.store.users_from(conn, LDAP_SOURCE)]
    identities = {name: ldap.directory.lookup(name) for name in usernames}
    results: list[UserSync] = []
    with write_tx(engine) as conn:
        for name, identity in identities.items():
            user = ldap.store.user(conn, name)
            if user is None or user.source != LDAP_SOURCE:
                continue  # deleted (or replaced) since it was read
            groups: frozenset[str] = frozenset()
            if identity is not None:
                user = ldap.refresh(conn, user, identity)
                groups = identity.groups
            plan = ldap.sync_teams(conn, user, groups, SYNC_JOB)
            results.append(
                UserSync(
                    name, identity is not None, tuple(sorted(plan.add)), tuple(sorted(plan.remove))
                )
            )
    return results


LDAP_SYNC_KIND = "ldap.sync"


class LdapSyncJob:
    """The scheduled full sync as a job handler. Idempotent: syncing twice changes nothing
    the second time. A directory that does not answer fails the run (retried later)."""

    def __init__(self, engine: Engine, ldap: LdapAccounts) -> None:
        self.engine = engine
        self.ldap = ldap

    def __call__(self, job: object) -> None:
        sync_ldap_teams(self.engine, self.ldap)


PRUNE_LOGIN_FAILURES_KIND = "auth.prune_login_failures"
# Hourly: failed logins of made-up names from made-up addresses must not pile up.
PRUNE_LOGIN_FAILURES_SCHEDULE = ScheduleSpec(
    "auth.prune_login_failures", "41 * * * *", PRUNE_LOGIN_FAILURES_KIND
)


def prune_login_failures(engine: Engine, store: AccessStore | None = None) -> BatchedPrune:
    """Deletes login-failure counts whose last failure is older than the throttle remembers
    (`FAILURES_FORGOTTEN_AFTER`) and whose lock is over: they would count from zero anyway."""
    return BatchedPrune(
        engine, FAILURES_FORGOTTEN_AFTER, (store or AccessStore()).prune_login_failures
    )
