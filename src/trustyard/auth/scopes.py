"""Docker token scopes: what a client asks for, what a token may do, what the server grants.

Grammar (the distribution token spec, narrowed to what trustyard serves):

    scopes := scope (" " scope)*
    scope  := "repository:" NAME ":" action ("," action)*  |  "registry:catalog:*"
    action := "pull" | "push" | "delete" | "*"

NAME is an OCI repository name without a registry host, so it never contains ':'. Anything
else (another resource type, an unknown action, a `host:port/` prefix) is refused with
`InvalidScope`.

A `TokenScope` limits a personal access token, a robot token, or a JWT's `access` claim. It uses
the same grammar, except that names may be patterns: an exact name, `acme/*` (every repository
below `acme/`), a prefix ending in `*` (`acme/app-*`), or `*` (every repository). A scope only
ever narrows what the principal's own roles allow; `*` as an action means every action,
repository administration included.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from trustyard.auth.authorize import Action
from trustyard.errors import Invalid
from trustyard.oci.names import MAX_NAME_LENGTH, is_valid_name

REPOSITORY = "repository"
REGISTRY = "registry"
CATALOG = "catalog"
ALL = "*"
# Canonical order, used when a scope is written back as text.
REPOSITORY_ACTIONS: tuple[str, ...] = ("pull", "push", "delete", ALL)

# The scope action a token endpoint checks for each requested action.
_REQUESTED: Mapping[str, Action] = {
    "pull": Action.PULL,
    "push": Action.PUSH,
    "delete": Action.DELETE,
    ALL: Action.ADMIN,
}
# The scope actions that let a token do each repository action.
_SATISFIED_BY: Mapping[Action, frozenset[str]] = {
    Action.PULL: frozenset({"pull", ALL}),
    Action.PUSH: frozenset({"push", ALL}),
    Action.DELETE: frozenset({"delete", ALL}),
    Action.SCAN: frozenset({"push", ALL}),  # starting a scan is write-level work
    Action.ADMIN: frozenset({ALL}),
}
_PREFIX_RE = re.compile(r"[a-z0-9][a-z0-9._/-]*")


class InvalidScope(Invalid):
    """A scope string does not follow the grammar above."""


@dataclass(frozen=True, slots=True)
class Scope:
    """One requested scope: `repository:acme/app:pull,push` or `registry:catalog:*`."""

    type: str
    name: str
    actions: tuple[str, ...]

    def __str__(self) -> str:
        return f"{self.type}:{self.name}:{','.join(self.actions)}"


@dataclass(frozen=True, slots=True)
class ScopeGrant:
    """What a token endpoint grants for one requested scope; `actions` may be empty."""

    type: str
    name: str
    actions: tuple[str, ...]

    def to_claim(self) -> dict[str, object]:
        """The entry of a JWT's `access` claim."""
        return {"type": self.type, "name": self.name, "actions": list(self.actions)}

    @classmethod
    def from_claim(cls, claim: object) -> ScopeGrant:
        if not isinstance(claim, dict) or set(claim) != {"type", "name", "actions"}:
            raise InvalidScope("an access entry has exactly the keys type, name and actions")
        kind, name, actions = claim["type"], claim["name"], claim["actions"]
        if not (isinstance(kind, str) and isinstance(name, str) and isinstance(actions, list)):
            raise InvalidScope("an access entry's type and name are strings, actions a list")
        if not all(isinstance(action, str) for action in actions):
            raise InvalidScope("an access entry's actions are strings")
        _check(kind, name, actions, patterns=False, empty_ok=True)
        return cls(kind, name, tuple(actions))


@dataclass(frozen=True, slots=True)
class ScopeEntry:
    """One line of a `TokenScope`: a resource type, a name pattern and the allowed actions."""

    type: str
    pattern: str
    actions: frozenset[str]

    def __str__(self) -> str:
        ordered = [action for action in REPOSITORY_ACTIONS if action in self.actions]
        return f"{self.type}:{self.pattern}:{','.join(ordered)}"

    def covers(self, name: str) -> bool:
        return name_matches(self.pattern, name)


@dataclass(frozen=True, slots=True)
class TokenScope:
    """What a token is limited to; it can only narrow what its principal may do."""

    entries: tuple[ScopeEntry, ...]
    # Repositories a registry token's endpoint was asked about, granted or not (a JWT's
    # `access` claim keeps refused scopes with no actions): `answered` tells a client that
    # never asked for a repository from one that asked and was refused.
    asked: frozenset[str] = frozenset()

    @classmethod
    def parse(cls, text: str) -> TokenScope:
        """Scopes separated by spaces; names may be patterns (`acme/*`)."""
        return cls(tuple(_entry(piece) for piece in text.split(" ") if piece))

    @classmethod
    def from_strings(cls, scopes: Iterable[str]) -> TokenScope:
        """One scope per string, as a token's scopes are stored."""
        return cls(tuple(_entry(scope) for scope in scopes))

    @classmethod
    def from_grants(cls, grants: Iterable[ScopeGrant]) -> TokenScope:
        """The scope a verified JWT's `access` claim stands for."""
        grants = tuple(grants)
        return cls(
            tuple(ScopeEntry(g.type, g.name, frozenset(g.actions)) for g in grants if g.actions),
            frozenset(g.name for g in grants if g.type == REPOSITORY),
        )

    def allows(self, action: Action, repository: str | None = None) -> bool:
        """True when this scope lets `action` happen on `repository` (None for the catalog)."""
        if action is Action.CATALOG:
            return any(e.type == REGISTRY and ALL in e.actions for e in self.entries)
        if repository is None:
            return False
        wanted = _SATISFIED_BY[action]
        return any(
            e.type == REPOSITORY and not e.actions.isdisjoint(wanted) and e.covers(repository)
            for e in self.entries
        )

    def answered(self, repository: str) -> bool:
        """True when this scope already says whether `repository` may be pulled: a token
        endpoint was asked about it (and granted pull or refused it), or pull is allowed."""
        return repository in self.asked or self.allows(Action.PULL, repository)

    def __str__(self) -> str:
        return " ".join(str(entry) for entry in self.entries)


def parse_scope(text: str) -> Scope:
    """One requested scope; raises `InvalidScope`."""
    kind, name, actions = _split(text)
    _check(kind, name, actions, patterns=False)
    return Scope(kind, name, tuple(dict.fromkeys(actions)))


def parse_scopes(text: str) -> list[Scope]:
    """Requested scopes separated by spaces (as in one `scope` query parameter)."""
    return [parse_scope(piece) for piece in text.split(" ") if piece]


def granted_subset(
    requested: Iterable[Scope], may_fn: Callable[[Action, str], bool]
) -> list[ScopeGrant]:
    """For each requested scope, the requested actions the principal may do (maybe none).

    `may_fn(action, repository_name)` answers for one action; for the catalog it is called with
    `Action.CATALOG` and the name "catalog". A requested `*` is granted only to whoever may
    administer the repository: it is never widened nor split into smaller actions.
    """
    granted: list[ScopeGrant] = []
    for scope in requested:
        if scope.type == REGISTRY:
            actions: tuple[str, ...] = (ALL,) if may_fn(Action.CATALOG, CATALOG) else ()
        else:
            actions = tuple(a for a in scope.actions if may_fn(_REQUESTED[a], scope.name))
        granted.append(ScopeGrant(scope.type, scope.name, actions))
    return granted


def name_matches(pattern: str, name: str) -> bool:
    """`acme/*` and `acme/app-*` match by prefix, `*` matches everything, else exact."""
    if pattern.endswith("*"):
        return name.startswith(pattern[:-1])
    return name == pattern


def is_valid_pattern(pattern: str) -> bool:
    if pattern == ALL:
        return True
    if pattern.endswith("/*"):
        return is_valid_name(pattern[:-2])
    if pattern.endswith("*"):
        prefix = pattern[:-1]
        return len(prefix) < MAX_NAME_LENGTH and _PREFIX_RE.fullmatch(prefix) is not None
    return is_valid_name(pattern)


def _entry(text: str) -> ScopeEntry:
    kind, pattern, actions = _split(text)
    _check(kind, pattern, actions, patterns=True)
    return ScopeEntry(kind, pattern, frozenset(actions))


def _split(text: str) -> tuple[str, str, list[str]]:
    parts = text.split(":")
    if len(parts) != 3:
        hint = " (a registry host or port is not part of the name)" if len(parts) > 3 else ""
        raise InvalidScope(f"a scope is TYPE:NAME:ACTIONS{hint}: {text[:100]!r}")
    kind, name, actions = parts
    return kind, name, actions.split(",")


def _check(
    kind: str, name: str, actions: list[str], *, patterns: bool, empty_ok: bool = False
) -> None:
    if kind == REGISTRY:
        if name != CATALOG or actions not in ([ALL], [] if empty_ok else [ALL]):
            raise InvalidScope("the only registry scope is registry:catalog:*")
        return
    if kind != REPOSITORY:
        raise InvalidScope(f"unknown resource type {kind[:50]!r}: use repository or registry")
    valid = is_valid_pattern(name) if patterns else is_valid_name(name)
    if not valid:
        raise InvalidScope(f"invalid repository name {name[:100]!r}")
    if not (actions or empty_ok):
        raise InvalidScope("a scope names at least one action")
    for action in actions:
        if action not in _REQUESTED:
            raise InvalidScope(f"unknown action {action[:50]!r}: use pull, push, delete or *")
