"""The pull webhook's body parser: trustyard's payloads and the reference registry's envelope."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from trustyard.events.model import tag_deleted, tag_pushed
from trustyard.mirroring.hooks import hook_targets
from trustyard.webhooks.interfaces import PayloadFormat
from trustyard.webhooks.payloads import document

DIGEST = "sha256:" + "a" * 64


def test_trustyard_formats_push_and_delete() -> None:
    for fmt in PayloadFormat:
        pushed = document(tag_pushed("acme/app", "v1", DIGEST, "m", "alice"), fmt)
        deleted = document(tag_deleted("acme/app", "v1", DIGEST, "alice"), fmt)
        assert hook_targets(pushed, "acme/app") == [("push", "v1", DIGEST)]
        assert hook_targets(deleted, "acme/app") == [("delete", "v1", DIGEST)]
        assert hook_targets(pushed, "acme/other") == []


def test_reference_envelope_keeps_pushes_and_deletes_of_the_repository() -> None:
    body = {
        "events": [
            {"action": "push", "target": {"repository": "lib/x", "tag": "1", "digest": DIGEST}},
            {"action": "pull", "target": {"repository": "lib/x", "tag": "1", "digest": DIGEST}},
            {"action": "push", "target": {"repository": "lib/y", "tag": "1", "digest": DIGEST}},
            {"action": "delete", "target": {"repository": "lib/x", "digest": DIGEST}},
            "junk",
        ]
    }
    assert hook_targets(body, "lib/x") == [("push", "1", DIGEST), ("delete", None, DIGEST)]


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=10),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)


@given(json_values)
def test_any_json_gives_a_list_of_targets(body: Any) -> None:
    result = hook_targets(body, "acme/app")
    assert isinstance(result, list)
    for action, tag, digest in result:
        assert action in ("push", "delete")
        assert tag is None or isinstance(tag, str)
        assert digest is None or isinstance(digest, str)
