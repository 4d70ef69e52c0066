"""The authorization seam: every request is decided by one function.

Until accounts exist the registry is open; the identity issue replaces `open_policy` with the
real permission model without touching the edges.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass


class Action(enum.Enum):
    PULL = "pull"
    PUSH = "push"
    DELETE = "delete"
    CATALOG = "catalog"


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
