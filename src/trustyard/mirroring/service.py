"""Mirroring policies as managed objects: created, changed, deleted and read, each change
checked before it is stored, and the webhook secret of pull policies.

A push policy may have rules or a CEL expression of the policy engine (none: every tag); a
pull policy only rules over the field `tag` (the remote's images have no facts here before
they are copied). Refusals are MirrorInvalid naming the field. Every change bumps the
revision; `compiled` keeps each (id, revision)'s condition. A pull policy's webhook secret is
generated at creation (or given at rotation), shown once and sealed at rest; a hook call is
accepted with it as a Bearer token or as the HMAC-SHA256 signature of the body under it.
Whoever may do what is the edge's business; the caller's connection is used, never committed.
"""

from __future__ import annotations

import hmac
import threading
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import Any, Final

from sqlalchemy import Connection

from trustyard.config import MirroringSettings, PoliciesSettings
from trustyard.content.interfaces import Repository
from trustyard.errors import Invalid, StateConflict
from trustyard.kit.clock import Clock, utc_now
from trustyard.mirroring.interfaces import (
    Direction,
    HookRefused,
    MirrorInvalid,
    MirrorPolicyNotFound,
    MirrorPolicyRecord,
)
from trustyard.mirroring.remotes import RemoteStore
from trustyard.mirroring.stores import MirrorPolicyStore, policy_columns
from trustyard.oci.names import check_name as check_repository_name
from trustyard.policies.engine import compile_condition
from trustyard.policies.interfaces import Condition, PolicyInvalid, VersionOrder
from trustyard.policies.rules import RuleList
from trustyard.policies.templates import check_template
from trustyard.webhooks.interfaces import SecretUnreadable
from trustyard.webhooks.signing import SecretBox, generate_secret
from trustyard.webhooks.signing import signature as sign

_CACHED = 1024
MIN_POLL_SECONDS = 60
MAX_POLL_SECONDS = 7 * 24 * 3600
MIN_SECRET = 16
MAX_SECRET = 256
_REFUSED = "a valid webhook secret is required"


class _Unset:
    def __repr__(self) -> str:
        return "UNSET"


UNSET: Final = _Unset()


def _flag(where: str, value: object) -> bool:
    if not isinstance(value, bool):
        raise MirrorInvalid(where, "true or false")
    return value


def check_secret(secret: object) -> str:
    """A webhook secret chosen by its owner: 16 to 256 printable ASCII characters without
    spaces (it travels in an Authorization header)."""
    if (
        not isinstance(secret, str)
        or not MIN_SECRET <= len(secret) <= MAX_SECRET
        or any(not "!" <= c <= "~" for c in secret)
    ):
        raise MirrorInvalid(
            "webhookSecret",
            f"{MIN_SECRET} to {MAX_SECRET} printable ASCII characters, without spaces",
        )
    return secret


class MirrorPolicyService:
    def __init__(
        self,
        store: MirrorPolicyStore,
        remotes: RemoteStore,
        box: SecretBox,
        settings: MirroringSettings,
        policies: PoliciesSettings,
        order: VersionOrder,
        clock: Clock = utc_now,
    ) -> None:
        self.store = store
        self.remotes = remotes
        self.box = box
        self.settings = settings
        self.limits = policies
        self.order = order
        self.clock = clock
        self._compiled: OrderedDict[tuple[int, int], Condition | None] = OrderedDict()
        self._lock = threading.Lock()

    # --- checks ------------------------------------------------------------------------------
    def check_condition(
        self,
        direction: Direction,
        rules: Sequence[Mapping[str, Any]] | None,
        expression: str | None,
    ) -> tuple[Condition | None, list[dict[str, Any]] | None]:
        """The compiled condition (None: every tag) and the canonical rules to store; for a
        pull policy, rules over `tag` only."""
        if rules is not None and not isinstance(rules, list | tuple):
            raise MirrorInvalid("rules", "a list of rules")
        if rules is not None and len(rules) == 0:
            rules = None
        if expression is not None and direction is Direction.PULL:
            raise MirrorInvalid(
                "expression",
                "a pull policy filters on the tag only: give rules over the field 'tag'",
            )
        if rules is None and expression is None:
            return None, None
        try:
            condition = compile_condition(
                [dict(rule) if isinstance(rule, Mapping) else rule for rule in rules]
                if rules is not None
                else None,
                expression,
                self.limits,
                self.order,
            )
        except PolicyInvalid as error:
            raise MirrorInvalid(error.where, error.reason) from None
        canonical = condition.canonical if isinstance(condition, RuleList) else None
        if direction is Direction.PULL and canonical is not None:
            for index, rule in enumerate(canonical):
                if rule["field"] != "tag":
                    raise MirrorInvalid(
                        f"rules[{index}].field",
                        f"a pull policy filters on the tag only, not on {rule['field']!r} "
                        "(the remote's images have no facts here before they are copied)",
                    )
        return condition, canonical

    @staticmethod
    def check_template(template: object) -> str:
        try:
            return check_template(template)
        except PolicyInvalid as error:
            raise MirrorInvalid("tagTemplate", error.reason) from None

    @staticmethod
    def check_remote_repository(name: object) -> str:
        if not isinstance(name, str) or not name:
            raise MirrorInvalid(
                "remoteRepository", "the remote repository's name, such as 'team/app'"
            )
        try:
            return check_repository_name(name)
        except Invalid:
            raise MirrorInvalid(
                "remoteRepository",
                "not a repository name (lowercase path components such as 'team/app')",
            ) from None

    def check_poll_interval(self, direction: Direction, seconds: object) -> int | None:
        if seconds is None:
            return None
        if direction is Direction.PUSH:
            raise MirrorInvalid("pollIntervalSeconds", "only pull policies poll")
        if (
            isinstance(seconds, bool)
            or not isinstance(seconds, int)
            or not MIN_POLL_SECONDS <= seconds <= MAX_POLL_SECONDS
        ):
            raise MirrorInvalid(
                "pollIntervalSeconds",
                f"a whole number of seconds from {MIN_POLL_SECONDS} to {MAX_POLL_SECONDS}",
            )
        return seconds

    def _remote_id(self, conn: Connection, remote: object) -> int:
        if not isinstance(remote, str) or not remote:
            raise MirrorInvalid("remote", "the name of a remote registry")
        found = self.remotes.get(conn, remote)
        if found is None:
            raise MirrorInvalid("remote", f"no remote named {remote!r} (create it first)")
        return found.id

    def interval(self, record: MirrorPolicyRecord) -> int:
        """A pull policy's poll interval in seconds (its own, else the settings')."""
        return record.poll_interval_seconds or self.settings.poll_interval_seconds

    # --- changes -----------------------------------------------------------------------------
    def create(
        self,
        conn: Connection,
        repository: Repository,
        *,
        direction: Direction | str,
        remote: str,
        remote_repository: str,
        enabled: bool = True,
        rules: Sequence[Mapping[str, Any]] | None = None,
        expression: str | None = None,
        tag_template: str = "%n",
        propagate_deletes: bool = False,
        with_referrers: bool = True,
        poll_interval_seconds: int | None = None,
        actor: str | None,
    ) -> tuple[MirrorPolicyRecord, str | None]:
        """A new policy of `repository` (revision 1) and, for a pull policy, its webhook
        secret (shown this once; sealed at rest)."""
        try:
            direction = Direction(direction)
        except ValueError:
            raise MirrorInvalid("direction", "'push' or 'pull'") from None
        condition, canonical = self.check_condition(direction, rules, expression)
        columns = policy_columns(
            remote_id=self._remote_id(conn, remote),
            remote_repository=self.check_remote_repository(remote_repository),
            enabled=_flag("enabled", enabled),
            rules=canonical,
            expression=expression if canonical is None and condition is not None else None,
            tag_template=self.check_template(tag_template),
            needs=condition.needs if condition is not None else (),
            propagate_deletes=_flag("propagateDeletes", propagate_deletes),
            with_referrers=_flag("withReferrers", with_referrers),
            poll_interval_seconds=self.check_poll_interval(direction, poll_interval_seconds),
        )
        most = self.settings.max_policies_per_repository
        if self.store.count_of_repository(conn, repository.id) >= most:
            raise StateConflict(
                f"{repository.name!r} has {most} mirroring policies already (the most a "
                "repository may have): delete one first"
            )
        now = self.clock()
        secret: str | None = None
        next_poll = None
        if direction is Direction.PULL:
            secret = generate_secret()
            seconds = poll_interval_seconds or self.settings.poll_interval_seconds
            next_poll = now + timedelta(seconds=seconds)
        policy_id = self.store.insert(
            conn,
            direction,
            repository.id,
            columns,
            webhook_secret=self.box.seal(secret) if secret is not None else None,
            next_poll_at=next_poll,
            created_by=actor,
            now=now,
        )
        return self._read(conn, policy_id), secret

    def update(
        self,
        conn: Connection,
        repository_id: int,
        policy_id: int,
        *,
        actor: str | None,
        enabled: bool | _Unset = UNSET,
        remote: str | _Unset = UNSET,
        remote_repository: str | _Unset = UNSET,
        rules: Sequence[Mapping[str, Any]] | _Unset | None = UNSET,
        expression: str | _Unset | None = UNSET,
        tag_template: str | _Unset = UNSET,
        propagate_deletes: bool | _Unset = UNSET,
        with_referrers: bool | _Unset = UNSET,
        poll_interval_seconds: int | _Unset | None = UNSET,
    ) -> MirrorPolicyRecord:
        """Change what is given (not given: kept), checked as at creation, with the next
        revision. Giving `rules` drops the expression and the other way round; rules None
        (or []) and no expression: every tag. `poll_interval_seconds` None: the settings'."""
        current = self.get(conn, policy_id, repository_id, lock=True)
        direction = current.direction
        if not isinstance(rules, _Unset) and rules and isinstance(expression, str):
            raise MirrorInvalid("rules", "give rules or an expression, not both")
        if not isinstance(rules, _Unset):
            new_rules, new_expression = rules, None
            if not isinstance(expression, _Unset) and not rules:
                new_expression = expression
        elif not isinstance(expression, _Unset):
            new_rules, new_expression = None, expression
        else:
            new_rules, new_expression = current.rules, current.expression
        condition, canonical = self.check_condition(direction, new_rules, new_expression)
        interval = (
            current.poll_interval_seconds
            if isinstance(poll_interval_seconds, _Unset)
            else self.check_poll_interval(direction, poll_interval_seconds)
        )
        columns = policy_columns(
            remote_id=current.remote_id
            if isinstance(remote, _Unset)
            else self._remote_id(conn, remote),
            remote_repository=current.remote_repository
            if isinstance(remote_repository, _Unset)
            else self.check_remote_repository(remote_repository),
            enabled=current.enabled if isinstance(enabled, _Unset) else _flag("enabled", enabled),
            rules=canonical,
            expression=new_expression if canonical is None and condition is not None else None,
            tag_template=current.tag_template
            if isinstance(tag_template, _Unset)
            else self.check_template(tag_template),
            needs=condition.needs if condition is not None else (),
            propagate_deletes=current.propagate_deletes
            if isinstance(propagate_deletes, _Unset)
            else _flag("propagateDeletes", propagate_deletes),
            with_referrers=current.with_referrers
            if isinstance(with_referrers, _Unset)
            else _flag("withReferrers", with_referrers),
            poll_interval_seconds=interval,
        )
        now = self.clock()
        if direction is Direction.PULL and interval != current.poll_interval_seconds:
            seconds = interval or self.settings.poll_interval_seconds
            self.store.set_next_poll(conn, current.id, now + timedelta(seconds=seconds))
        self.store.update(conn, current.id, columns, now=now)
        return self._read(conn, current.id)

    def delete(self, conn: Connection, repository_id: int, policy_id: int) -> MirrorPolicyRecord:
        """Delete the policy (its runs and items go with it)."""
        current = self.get(conn, policy_id, repository_id, lock=True)
        self.store.delete(conn, current.id)
        return current

    # --- webhook secrets ---------------------------------------------------------------------
    def rotate_webhook_secret(
        self, conn: Connection, policy_id: int, secret: str | None = None
    ) -> str:
        """A new webhook secret for a pull policy (the one given, checked, else generated);
        the old one stops working at once. Shown this once."""
        current = self.get(conn, policy_id, lock=True)
        if current.direction is not Direction.PULL:
            raise MirrorInvalid("webhookSecret", "only pull policies take webhook calls")
        new = check_secret(secret) if secret is not None else generate_secret()
        self.store.set_webhook_secret(conn, current.id, self.box.seal(new))
        return new

    def check_webhook_secret(
        self,
        conn: Connection,
        policy_id: int,
        presented: str,
        body: bytes,
        signature: str | None = None,
    ) -> MirrorPolicyRecord:
        """The pull policy a hook call is for, when it presents the policy's secret (as a
        Bearer token: `presented`) or the body's signature under it; HookRefused otherwise,
        the same whatever the reason (no such policy, a push policy, no or a wrong secret)."""
        record = self.store.get(conn, policy_id)
        sealed = self.store.sealed_webhook_secret(conn, policy_id) if record else None
        if record is None or sealed is None or record.direction is not Direction.PULL:
            raise HookRefused(_REFUSED)
        try:
            secret = self.box.open(sealed)
        except SecretUnreadable:
            raise HookRefused(_REFUSED) from None
        token_ok = hmac.compare_digest((presented or "").encode(), secret.encode())
        expected = sign(secret, body)
        signed_ok = hmac.compare_digest((signature or "").strip().encode(), expected.encode())
        if not (token_ok or signed_ok):
            raise HookRefused(_REFUSED)
        return record

    # --- reads -------------------------------------------------------------------------------
    def get(
        self,
        conn: Connection,
        policy_id: int,
        repository_id: int | None = None,
        *,
        lock: bool = False,
    ) -> MirrorPolicyRecord:
        """The policy with this id (of `repository_id` when given): MirrorPolicyNotFound when
        there is none or it is another repository's."""
        found = self.store.lock(conn, policy_id) if lock else self.store.get(conn, policy_id)
        if found is None or (repository_id is not None and found.repository_id != repository_id):
            raise MirrorPolicyNotFound(policy_id)
        return found

    def list(
        self, conn: Connection, repository_id: int, direction: Direction | None = None
    ) -> list[MirrorPolicyRecord]:
        return self.store.of_repository(conn, repository_id, direction)

    def compiled(self, record: MirrorPolicyRecord) -> Condition | None:
        """The policy's condition (None: every tag), compiled once per (id, revision)."""
        key = (record.id, record.revision)
        with self._lock:
            if key in self._compiled:
                self._compiled.move_to_end(key)
                return self._compiled[key]
        if record.rules is None and record.expression is None:
            condition: Condition | None = None
        else:
            rules = [dict(rule) for rule in record.rules] if record.rules is not None else None
            condition = compile_condition(rules, record.expression, self.limits, self.order)
        with self._lock:
            self._compiled[key] = condition
            while len(self._compiled) > _CACHED:
                self._compiled.popitem(last=False)
        return condition

    # --- helpers -----------------------------------------------------------------------------
    def _read(self, conn: Connection, policy_id: int) -> MirrorPolicyRecord:
        found = self.store.get(conn, policy_id)
        assert found is not None  # written in this transaction
        return found
