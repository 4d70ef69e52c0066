"""Promotion policies as managed objects: created, changed, deleted and read, each change
checked before it is stored.

A policy is refused (PolicyInvalid, naming where) when its rules or expression cannot be
evaluated, its tag template is not one `templates.render` can fill, or it would close a
cycle of promotions; a source repository holds at most `max_policies_per_repository`. Every
change bumps the revision, and `compiled` keeps the compiled condition of each (id, revision).
Whoever may do what is the edge's business; the caller's connection is used, never committed.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection

from trustyard.config import PoliciesSettings
from trustyard.content.interfaces import Repository
from trustyard.errors import StateConflict
from trustyard.kit.clock import Clock, utc_now
from trustyard.policies.engine import compile_condition
from trustyard.policies.interfaces import (
    Condition,
    PolicyInvalid,
    PolicyNotFound,
    PolicyRecord,
    PromotionCycle,
    VersionOrder,
)
from trustyard.policies.rules import RuleList
from trustyard.policies.stores import PolicyStore, PolicyValues
from trustyard.policies.templates import check_template

# Compiled conditions kept per process (policies are few; a compiled one is small).
_CACHED = 1024


@dataclass(frozen=True, slots=True)
class PolicyChange:
    """What an update changes: None leaves a field as it is. Giving `rules` drops the
    expression and the other way round (a policy has exactly one of them)."""

    target: Repository | None = None
    enabled: bool | None = None
    rules: Sequence[Mapping[str, Any]] | None = None
    expression: str | None = None
    tag_template: str | None = None


class PolicyService:
    def __init__(
        self,
        store: PolicyStore,
        limits: PoliciesSettings,
        order: VersionOrder,
        clock: Clock = utc_now,
    ) -> None:
        self.store = store
        self.limits = limits
        self.order = order
        self.clock = clock
        self._compiled: OrderedDict[tuple[int, int], Condition] = OrderedDict()
        self._lock = threading.Lock()

    # --- checks ------------------------------------------------------------------------------
    def condition(
        self, rules: Sequence[Mapping[str, Any]] | None, expression: str | None
    ) -> Condition:
        """Rules or an expression compiled as a policy's would be (a dry run's), or
        PolicyInvalid."""
        return compile_condition(
            list(rules) if rules is not None else None, expression, self.limits, self.order
        )

    def check(
        self,
        rules: Sequence[Mapping[str, Any]] | None,
        expression: str | None,
        tag_template: str,
    ) -> tuple[Condition, list[dict[str, Any]] | None]:
        """The compiled condition and the canonical rules (None for an expression); refused
        with PolicyInvalid naming the rule, the expression or the template at fault."""
        check_template(tag_template)
        condition = self.condition(rules, expression)
        canonical = condition.canonical if isinstance(condition, RuleList) else None
        return condition, canonical

    def check_cycle(
        self, conn: Connection, source: tuple[int, str], target: tuple[int, str]
    ) -> None:
        """Refuse a policy from `source` into `target` (each an (id, name) pair) when the
        enabled policies already lead from `target` back to `source`, so that this one would
        close a loop; the refusal names the loop (`a -> b -> c -> a`), a shortest one."""
        (source_id, source_name), (target_id, target_name) = source, target
        if source_id == target_id:
            raise PromotionCycle([source_name, source_name])
        came_from: dict[int, int] = {}  # repository id -> the one a policy leads from
        names = {target_id: target_name}
        frontier = {target_id}
        while frontier and source_id not in came_from:
            step: set[int] = set()
            for edge in self.store.successors(conn, frontier):
                if edge.target_id not in names:
                    names[edge.target_id] = edge.target
                    came_from[edge.target_id] = edge.source_id
                    step.add(edge.target_id)
            frontier = step
        if source_id not in came_from:
            return
        back = [source_id]
        while back[-1] != target_id:
            back.append(came_from[back[-1]])
        raise PromotionCycle([source_name, *(names[at] for at in reversed(back))])

    def _check_limit(self, conn: Connection, source: Repository) -> None:
        most = self.limits.max_policies_per_repository
        if self.store.count_of_source(conn, source.id) >= most:
            raise StateConflict(
                f"{source.name!r} has {most} promotion policies already (the most a "
                "repository may have): delete one first"
            )

    # --- changes -----------------------------------------------------------------------------
    def create(
        self,
        conn: Connection,
        source: Repository,
        target: Repository,
        *,
        rules: Sequence[Mapping[str, Any]] | None,
        expression: str | None,
        tag_template: str,
        enabled: bool = True,
        created_by: str | None,
    ) -> PolicyRecord:
        """A new policy of `source` (revision 1) promoting as `created_by`."""
        condition, canonical = self.check(rules, expression, tag_template)
        self.store.lock_graph(conn)
        self._check_limit(conn, source)
        if enabled:
            self.check_cycle(conn, (source.id, source.name), (target.id, target.name))
        values = PolicyValues(
            target_repository_id=target.id,
            enabled=enabled,
            rules=canonical,
            expression=expression if rules is None else None,
            tag_template=tag_template,
            needs=frozenset(condition.needs),
        )
        policy_id = self.store.insert(
            conn, source.id, values, created_by=created_by, now=self.clock()
        )
        return self._read(conn, policy_id)

    def update(
        self, conn: Connection, source: Repository, policy_id: int, change: PolicyChange
    ) -> PolicyRecord:
        """Apply `change` to the policy (locked first: a run holding it finishes before),
        checked as a new one is, with the next revision."""
        self.store.lock_graph(conn)
        current = self._of(source, self.store.lock(conn, policy_id), policy_id)
        if change.rules is not None and change.expression is not None:
            raise PolicyInvalid("rules", "give rules or an expression, not both")
        if change.rules is not None:
            rules, expression = change.rules, None
        elif change.expression is not None:
            rules, expression = None, change.expression
        else:
            rules, expression = current.rules, current.expression
        template = change.tag_template if change.tag_template is not None else current.tag_template
        condition, canonical = self.check(rules, expression, template)
        enabled = change.enabled if change.enabled is not None else current.enabled
        target_id = change.target.id if change.target is not None else current.target_repository_id
        target_name = change.target.name if change.target is not None else current.target_repository
        if enabled and (change.target is not None or not current.enabled):
            self.check_cycle(conn, (source.id, source.name), (target_id, target_name))
        values = PolicyValues(
            target_repository_id=target_id,
            enabled=enabled,
            rules=canonical,
            expression=expression if rules is None else None,
            tag_template=template,
            needs=frozenset(condition.needs),
        )
        self.store.update(conn, current.id, values, now=self.clock())
        return self._read(conn, current.id)

    def delete(self, conn: Connection, source: Repository, policy_id: int) -> PolicyRecord:
        current = self._of(source, self.store.lock(conn, policy_id), policy_id)
        self.store.delete(conn, current.id)
        return current

    # --- reads -------------------------------------------------------------------------------
    def get(self, conn: Connection, source: Repository, policy_id: int) -> PolicyRecord:
        """The policy of `source` with this id (PolicyNotFound: none, or another's)."""
        return self._of(source, self.store.get(conn, policy_id), policy_id)

    def list(
        self, conn: Connection, source: Repository, *, limit: int, after: int | None = None
    ) -> list[PolicyRecord]:
        return self.store.of_source(conn, source.id, limit=limit, after=after)

    def compiled(self, record: PolicyRecord) -> Condition:
        """The policy's condition, compiled once per (id, revision) in this process."""
        key = (record.id, record.revision)
        with self._lock:
            found = self._compiled.get(key)
            if found is not None:
                self._compiled.move_to_end(key)
                return found
        rules = [dict(rule) for rule in record.rules] if record.rules is not None else None
        condition = compile_condition(rules, record.expression, self.limits, self.order)
        with self._lock:
            self._compiled[key] = condition
            while len(self._compiled) > _CACHED:
                self._compiled.popitem(last=False)
        return condition

    # --- helpers -----------------------------------------------------------------------------
    @staticmethod
    def _of(source: Repository, found: PolicyRecord | None, policy_id: int) -> PolicyRecord:
        if found is None or found.source_repository_id != source.id:
            raise PolicyNotFound(policy_id)
        return found

    def _read(self, conn: Connection, policy_id: int) -> PolicyRecord:
        found = self.store.get(conn, policy_id)
        assert found is not None  # written in this transaction
        return found
