"""The authorization seam: every request is decided by one function.

Until accounts exist the registry is open; the identity issue replaces `open_policy` with the
real permission model without touching the edges.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass


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
    name: str | None  # None: anonymous

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
