"""The authorization seam: every request is decided by one function.

`open_policy` lets everyone do everything (the registry without accounts); with accounts on,
the composition root installs a policy backed by `auth.access.AccessPolicy`.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from trustyard.auth.permissions import Principal
    from trustyard.auth.scopes import TokenScope


class Action(enum.Enum):
    """What a request wants to do; `permissions.REQUIRED_ROLE` says which role each one needs."""

    PULL = "pull"  # read manifests, blobs, tags; browse the repository
    PUSH = "push"  # write blobs, manifests, tags
    DELETE = "delete"  # delete manifests, tags, blobs (not the repository itself)
    CATALOG = "catalog"  # list repositories (the answer is filtered by visibility)
    SCAN = "scan"  # start a vulnerability scan
    ADMIN = "admin"  # edit description/visibility, grants, webhooks, policies; delete repository


@dataclass(frozen=True, slots=True)
class Subject:
    """Who is asking: a principal, maybe limited by a token scope.

    `bearer` subjects hold a registry token: its `access` claim (`scope`) is the whole answer,
    as in the Docker token flow; other subjects are judged by the access policy, narrowed by the
    scope of the personal access or robot token they logged in with.
    """

    name: str | None  # None: anonymous
    principal: Principal | None = None
    scope: TokenScope | None = None
    bearer: bool = False

    @property
    def anonymous(self) -> bool:
        return self.name is None


ANONYMOUS = Subject(None)


@dataclass(frozen=True, slots=True)
class Resource:
    kind: str  # "repository" or "registry"
    name: str


Authorizer = Callable[[Subject, Action, Resource], bool]


def open_policy(subject: Subject, action: Action, resource: Resource) -> bool:
    """Everyone may do everything: the registry before accounts exist."""
    return True
