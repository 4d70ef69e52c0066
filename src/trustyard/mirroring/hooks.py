"""Reading the bodies a pull policy's webhook receives.

Two shapes are understood, both already parsed from JSON (the endpoint bounds the body):
- trustyard's own webhook payloads, any format of webhooks/payloads.py: `dtr`
  (`{"type": "TAG_PUSH", "contents": {...}}`) and `cloudevents`
  (`{"type": "trustyard.tag.push", "data": {...}}`);
- the reference registry's notification envelope
  (`{"events": [{"action": "push", "target": {"repository", "tag", "digest"}}]}`).

`hook_targets` keeps only pushes and deletes of the policy's remote repository, as
(action, tag, digest) with action "push" or "delete"; anything else yields nothing.
"""

from __future__ import annotations

from typing import Any

MAX_EVENTS = 1000

_TRUSTYARD_TYPES = {
    "TAG_PUSH": "push",
    "TAG_DELETE": "delete",
    "trustyard.tag.push": "push",
    "trustyard.tag.delete": "delete",
}
_ENVELOPE_ACTIONS = {"push": "push", "delete": "delete"}

Target = tuple[str, str | None, str | None]


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _trustyard(body: dict[str, Any], remote_repository: str) -> list[Target]:
    action = _TRUSTYARD_TYPES.get(_text(body.get("type")) or "")
    contents = body.get("contents", body.get("data"))
    if action is None or not isinstance(contents, dict):
        return []
    if contents.get("repository") != remote_repository:
        return []
    return [(action, _text(contents.get("tag")), _text(contents.get("digest")))]


def _envelope(events: list[Any], remote_repository: str) -> list[Target]:
    found: list[Target] = []
    for entry in events[:MAX_EVENTS]:
        if not isinstance(entry, dict):
            continue
        action = _ENVELOPE_ACTIONS.get(_text(entry.get("action")) or "")
        target = entry.get("target")
        if action is None or not isinstance(target, dict):
            continue
        if target.get("repository") != remote_repository:
            continue
        found.append((action, _text(target.get("tag")), _text(target.get("digest"))))
    return found


def hook_targets(body: Any, remote_repository: str) -> list[Target]:
    """The pushes and deletes of `remote_repository` named by a parsed webhook body."""
    if not isinstance(body, dict):
        return []
    events = body.get("events")
    if isinstance(events, list):
        return _envelope(events, remote_repository)
    return _trustyard(body, remote_repository)
