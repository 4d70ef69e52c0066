"""The run loop of mirroring: one run of one policy, for either direction.

A direction is a `Side`: `plan` writes the items a run has to do (in the caller's
transaction: no network transfer inside it beyond the listing/HEADs the plan needs), and
`transfer` moves one item (outside any transaction) and says how it went as an `ItemResult`.
`PushSide` (push.py) and `PullSide` (pull.py) implement it; the runner (to come) claims items,
calls `transfer`, records the result and publishes its event.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from sqlalchemy import Connection

from trustyard.events.model import Event
from trustyard.mirroring.interfaces import (
    ItemStatus,
    MirrorItemRecord,
    MirrorPolicyRecord,
    Trigger,
)
from trustyard.ociclient.client import RegistryClient
from trustyard.ociclient.interfaces import Progress


@dataclass(frozen=True, slots=True)
class ItemResult:
    """How one item's transfer ended.

    status: DONE, FAILED, SKIPPED or WAITING (PENDING is never a result).
    synced_digest: what the destination now holds under the target tag (DONE), the tombstone
        digest kept after a delete, or None when nothing changed.
    bytes_moved: blob bytes actually sent or received for this item.
    error: the reason (a RemoteError's diagnosis, a rule's refusal); never a credential.
    event: PUSH_MIRRORING / POLL_MIRRORING to publish when the item was mirrored.
    """

    status: ItemStatus
    synced_digest: str | None
    bytes_moved: int
    error: str | None = None
    event: Event | None = None


class Side(Protocol):
    """One direction of mirroring, as the runner drives it."""

    def plan(
        self,
        conn: Connection,
        policy: MirrorPolicyRecord,
        run_id: int,
        client: RegistryClient,
        trigger: Trigger,
    ) -> None:
        """Write (upsert) the items this run has to do, as PENDING (or delete items)."""

    def transfer(
        self,
        policy: MirrorPolicyRecord,
        item: MirrorItemRecord,
        client: RegistryClient,
        progress: Progress,
    ) -> ItemResult:
        """Move one item (no transaction held). A RemoteError that concerns the whole run
        (authentication, TLS, unreachable, denied on the repository) is raised, not returned."""
