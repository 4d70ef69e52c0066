"""Docker token scopes: parsing, token-scope patterns, and what a token endpoint grants."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from trustyard.auth.authorize import Action
from trustyard.auth.scopes import (
    InvalidScope,
    Scope,
    ScopeGrant,
    TokenScope,
    granted_subset,
    parse_scope,
    parse_scopes,
)
from trustyard.errors import Invalid

ACTIONS = ["pull", "push", "delete", "*"]
component = st.from_regex(r"[a-z0-9]{1,6}((\.|_|__|-{1,2})[a-z0-9]{1,4}){0,2}", fullmatch=True)
names = st.lists(component, min_size=1, max_size=4).map("/".join)
repository_scopes = st.builds(
    lambda name, actions: f"repository:{name}:{','.join(actions)}",
    names,
    st.lists(st.sampled_from(ACTIONS), min_size=1, max_size=4, unique=True),
)
scope_texts = st.one_of(repository_scopes, st.just("registry:catalog:*"))


def test_repository_scope() -> None:
    assert parse_scope("repository:samalba/my-app:pull,push") == Scope(
        "repository", "samalba/my-app", ("pull", "push")
    )
    assert parse_scope("repository:a/b/c:*").actions == ("*",)
    assert parse_scope("repository:a:delete,pull,pull").actions == ("delete", "pull")


def test_several_scopes_separated_by_spaces() -> None:
    text = "repository:a/b:pull registry:catalog:*  repository:c:push,pull"
    assert [str(s) for s in parse_scopes(text)] == [
        "repository:a/b:pull",
        "registry:catalog:*",
        "repository:c:push,pull",
    ]
    assert parse_scopes("") == []


@pytest.mark.parametrize(
    "text",
    [
        "repository",
        "repository:a",
        "repository:a:",
        "repository:a:pull,",
        "repository:a:,pull",
        "repository:a:fly",
        "repository:a:PULL",
        "repository:A/b:pull",
        "repository::pull",
        "repository:a//b:pull",
        "repository:/a:pull",
        "repository:a/:pull",
        "repository:a/*:pull",  # patterns belong to token scopes, not to requests
        "repository:localhost:5000/a:pull",
        "repository:a:pull:push",
        "registry:catalog:pull",
        "registry:catalog:",
        "registry:other:*",
        "registry:catalog:*,pull",
        "repository(plugin):a:pull",
        "foo:a:pull",
        ":a:pull",
        "repository:a:pull\n",
        "repository:" + "a" * 256 + ":pull",
    ],
)
def test_malformed_scopes_are_refused(text: str) -> None:
    with pytest.raises(InvalidScope):
        parse_scope(text)
    with pytest.raises(InvalidScope):
        parse_scopes(f"repository:ok:pull {text}")


def test_invalid_scope_is_an_access_domain_error() -> None:
    assert issubclass(InvalidScope, Invalid)


@given(scope_texts)
def test_str_of_a_parsed_scope_round_trips(text: str) -> None:
    assert str(parse_scope(text)) == text


@given(st.lists(scope_texts, max_size=5))
def test_scope_lists_round_trip(texts: list[str]) -> None:
    assert [str(s) for s in parse_scopes(" ".join(texts))] == texts


@given(st.text(alphabet=st.characters(codec="utf-8"), max_size=80) | scope_texts.map(str))
def test_junk_raises_only_invalid_scope(text: str) -> None:
    check_junk(text)


def check_junk(text: str) -> None:
    """Junk either raises InvalidScope or parses to scopes whose text parses back the same."""
    try:
        scopes = parse_scopes(text)
    except InvalidScope:
        scopes = None
    if scopes is not None:
        assert parse_scopes(" ".join(map(str, scopes))) == scopes
    try:
        token_scope = TokenScope.parse(text)
    except InvalidScope:
        return
    assert TokenScope.parse(str(token_scope)) == token_scope


@given(st.text(alphabet="repositorycatalg:/*,-_.ab ", max_size=40))
def test_near_miss_junk_raises_only_invalid_scope(text: str) -> None:
    check_junk(text)


@pytest.mark.parametrize(
    ("pattern", "covered", "not_covered"),
    [
        ("acme/*", ["acme/a", "acme/a/b"], ["acme", "acmex/a", "x/acme/a"]),
        ("acme/app-*", ["acme/app-web", "acme/app-"], ["acme/app", "acme/ap"]),
        ("acme*", ["acme", "acme/a", "acmecorp/x"], ["acm", "x/acme"]),
        ("*", ["a", "acme/a/b/c"], []),
        ("acme/app", ["acme/app"], ["acme/app/x", "acme/ap", "acme/apps"]),
    ],
)
def test_token_scope_name_patterns(
    pattern: str, covered: list[str], not_covered: list[str]
) -> None:
    scope = TokenScope.parse(f"repository:{pattern}:pull")
    assert [scope.allows(Action.PULL, name) for name in covered] == [True] * len(covered)
    assert [scope.allows(Action.PULL, n) for n in not_covered] == [False] * len(not_covered)


@pytest.mark.parametrize(
    "text",
    [
        "repository:acme/**:pull",
        "repository:a*b:pull",
        "repository:*/x:pull",
        "repository:acme/:pull",
        "repository:**:pull",
        "repository:/*:pull",
        "repository:Acme/*:pull",
        "registry:cat*:*",
    ],
)
def test_invalid_token_scope_patterns_are_refused(text: str) -> None:
    with pytest.raises(InvalidScope):
        TokenScope.parse(text)


@pytest.mark.parametrize(
    ("actions", "allowed"),
    [
        ("pull", {Action.PULL}),
        ("push", {Action.PUSH, Action.SCAN}),
        ("delete", {Action.DELETE}),
        ("pull,push", {Action.PULL, Action.PUSH, Action.SCAN}),
        ("*", {Action.PULL, Action.PUSH, Action.DELETE, Action.SCAN, Action.ADMIN}),
    ],
)
def test_token_scope_actions(actions: str, allowed: set[Action]) -> None:
    scope = TokenScope.parse(f"repository:acme/*:{actions}")
    repository_actions = set(Action) - {Action.CATALOG}
    assert {a for a in repository_actions if scope.allows(a, "acme/app")} == allowed
    assert not scope.allows(Action.PULL, None)
    assert not scope.allows(Action.CATALOG)


def test_catalog_needs_the_registry_scope() -> None:
    scope = TokenScope.from_strings(["registry:catalog:*", "repository:a:pull"])
    assert scope.allows(Action.CATALOG)
    assert not scope.allows(Action.PULL, "b")
    assert str(scope) == "registry:catalog:* repository:a:pull"


def test_token_scope_text_is_canonical() -> None:
    scope = TokenScope.parse("repository:acme/*:*,delete,pull")
    assert str(scope) == "repository:acme/*:pull,delete,*"
    assert TokenScope.parse(str(scope)) == scope


def test_token_scope_from_granted_access() -> None:
    grants = [
        ScopeGrant("repository", "acme/app", ("pull", "push")),
        ScopeGrant("repository", "acme/other", ()),
        ScopeGrant("registry", "catalog", ("*",)),
    ]
    scope = TokenScope.from_grants(grants)
    assert scope.allows(Action.PUSH, "acme/app")
    assert not scope.allows(Action.DELETE, "acme/app")
    assert not scope.allows(Action.PULL, "acme/other")
    assert not scope.allows(Action.PULL, "acme/app/sub")
    assert scope.allows(Action.CATALOG)


def test_a_token_scope_remembers_what_its_endpoint_was_asked_about() -> None:
    """A refused scope stays in a JWT's access claim with no actions: the registry can tell a
    token that asked about a mount's source and was refused from one that never asked."""
    scope = TokenScope.from_grants(
        [
            ScopeGrant("repository", "acme/app", ("pull", "push")),
            ScopeGrant("repository", "acme/refused", ()),
            ScopeGrant("registry", "catalog", ()),
        ]
    )
    assert scope.answered("acme/app")
    assert scope.answered("acme/refused")
    assert not scope.allows(Action.PULL, "acme/refused")
    assert not scope.answered("acme/never-asked")
    assert not scope.answered("catalog")
    assert str(scope) == "repository:acme/app:pull,push"  # the text names granted actions only
    patterned = TokenScope.parse("repository:acme/*:pull")
    assert patterned.answered("acme/any")
    assert not patterned.answered("other/app")


def test_granted_subset_keeps_only_permitted_actions() -> None:
    permitted = {(Action.PULL, "acme/app"), (Action.PULL, "acme/base"), (Action.PUSH, "acme/app")}
    requested = parse_scopes(
        "repository:acme/app:pull,push,delete repository:acme/base:push,pull "
        "repository:globex/x:pull registry:catalog:* repository:acme/app:*"
    )
    assert granted_subset(requested, lambda a, n: (a, n) in permitted) == [
        ScopeGrant("repository", "acme/app", ("pull", "push")),
        ScopeGrant("repository", "acme/base", ("pull",)),
        ScopeGrant("repository", "globex/x", ()),
        ScopeGrant("registry", "catalog", ()),
        ScopeGrant("repository", "acme/app", ()),  # "*" needs ADMIN, it is never split
    ]


def test_granted_subset_asks_about_the_catalog_and_administration() -> None:
    asked: list[tuple[Action, str]] = []

    def may_fn(action: Action, name: str) -> bool:
        asked.append((action, name))
        return True

    granted = granted_subset(parse_scopes("registry:catalog:* repository:a:*"), may_fn)
    assert asked == [(Action.CATALOG, "catalog"), (Action.ADMIN, "a")]
    assert [g.actions for g in granted] == [("*",), ("*",)]


@given(
    st.lists(scope_texts, max_size=6),
    st.sets(st.tuples(st.sampled_from(list(Action)), names), max_size=10),
    st.booleans(),
)
def test_granted_actions_are_a_subset_of_the_requested_ones(
    texts: list[str], permitted: set[tuple[Action, str]], catalog: bool
) -> None:
    requested = parse_scopes(" ".join(texts))
    granted = granted_subset(
        requested, lambda a, n: (a is Action.CATALOG and catalog) or (a, n) in permitted
    )
    assert len(granted) == len(requested)
    for want, got in zip(requested, granted, strict=True):
        assert (got.type, got.name) == (want.type, want.name)
        assert set(got.actions) <= set(want.actions)


def test_access_claim_round_trip() -> None:
    grant = ScopeGrant("repository", "acme/app", ("pull", "push"))
    claim = grant.to_claim()
    assert claim == {"type": "repository", "name": "acme/app", "actions": ["pull", "push"]}
    assert ScopeGrant.from_claim(claim) == grant
    assert (
        ScopeGrant.from_claim({"type": "registry", "name": "catalog", "actions": []}).actions == ()
    )


@pytest.mark.parametrize(
    "claim",
    [
        None,
        [],
        "repository:a:pull",
        {"type": "repository", "name": "a"},
        {"type": "repository", "name": "a", "actions": "pull"},
        {"type": "repository", "name": "a", "actions": [1]},
        {"type": "repository", "name": "a", "actions": ["fly"]},
        {"type": "repository", "name": "a/*", "actions": ["pull"]},
        {"type": "repository", "name": 3, "actions": ["pull"]},
        {"type": "repository", "name": "a", "actions": ["pull"], "extra": 1},
        {"type": "registry", "name": "catalog", "actions": ["pull"]},
        {"type": "image", "name": "a", "actions": []},
    ],
)
def test_malformed_access_claims_are_refused(claim: object) -> None:
    with pytest.raises(InvalidScope):
        ScopeGrant.from_claim(claim)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=10),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=8,
)


@given(
    json_values
    | st.fixed_dictionaries({"type": json_values, "name": json_values, "actions": json_values})
)
def test_junk_access_claims_raise_only_invalid_scope(claim: object) -> None:
    try:
        grant = ScopeGrant.from_claim(claim)
    except InvalidScope:
        return
    assert grant.to_claim() == claim
