"""plan_team_sync: LDAP groups decide linked team memberships, hand-made ones stay."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from trustyard.auth.ldap import TeamSyncPlan, plan_team_sync

LINKS = [
    ("developers", "acme/dev"),
    ("cn=developers,ou=groups,dc=example,dc=org", "acme/dev"),
    ("operators", "acme/ops"),
    ("auditors", "acme/audit"),
]


def test_joins_the_teams_of_the_users_groups() -> None:
    plan = plan_team_sync({"developers", "operators"}, LINKS, set())

    assert plan == TeamSyncPlan(add=frozenset({"acme/dev", "acme/ops"}), remove=frozenset())


def test_leaves_mapped_teams_whose_group_the_user_lost() -> None:
    plan = plan_team_sync({"developers"}, LINKS, {"acme/dev", "acme/ops", "acme/audit"})

    assert plan == TeamSyncPlan(add=frozenset(), remove=frozenset({"acme/ops", "acme/audit"}))


def test_never_touches_teams_no_link_names() -> None:
    plan = plan_team_sync(set(), LINKS, {"acme/handmade", "other/team"})

    assert plan.empty
    assert plan == TeamSyncPlan(add=frozenset(), remove=frozenset())


def test_a_team_stays_while_any_of_its_groups_remains() -> None:
    # Two groups (a name and a DN) map to acme/dev; the user keeps one of them.
    plan = plan_team_sync({"cn=developers,ou=groups,dc=example,dc=org"}, LINKS, {"acme/dev"})

    assert plan.empty


def test_groups_without_a_link_change_nothing() -> None:
    plan = plan_team_sync({"staff", "cn=staff,ou=groups,dc=example,dc=org"}, LINKS, set())

    assert plan.empty


def test_group_keys_are_compared_exactly() -> None:
    plan = plan_team_sync({"Developers"}, LINKS, {"acme/dev"})

    assert plan == TeamSyncPlan(add=frozenset(), remove=frozenset({"acme/dev"}))


def test_no_links_means_no_changes() -> None:
    assert plan_team_sync({"developers"}, [], {"acme/dev"}).empty


def test_one_group_can_feed_teams_of_several_organizations() -> None:
    links = [("developers", "acme/dev"), ("developers", "globex/dev"), ("ops", "acme/ops")]

    joined = plan_team_sync({"developers"}, links, {"acme/ops"})
    left = plan_team_sync(set(), links, {"acme/dev", "globex/dev", "acme/ops"})

    assert joined == TeamSyncPlan(
        add=frozenset({"acme/dev", "globex/dev"}), remove=frozenset({"acme/ops"})
    )
    assert left.remove == {"acme/dev", "globex/dev", "acme/ops"}
    assert not left.add


groups = st.sampled_from(["g1", "g2", "g3", "cn=g1,dc=x", "cn=g4,dc=x", "g5", "g6"])
teams = st.sampled_from(["o/a", "o/b", "o/c", "p/a", "p/d", "q/e"])


@given(
    identity_groups=st.sets(groups),
    links=st.lists(st.tuples(groups, teams)),
    current=st.sets(teams),
)
def test_applying_the_plan_gives_granted_teams_plus_unmapped_ones(
    identity_groups: set[str], links: list[tuple[str, str]], current: set[str]
) -> None:
    plan = plan_team_sync(identity_groups, links, current)

    granted = {team for group, team in links if group in identity_groups}
    unmapped_current = current - {team for _, team in links}
    assert (current - plan.remove) | plan.add == granted | unmapped_current


@given(
    identity_groups=st.sets(groups),
    links=st.lists(st.tuples(groups, teams)),
    current=st.sets(teams),
)
def test_the_plan_is_minimal(
    identity_groups: set[str], links: list[tuple[str, str]], current: set[str]
) -> None:
    plan = plan_team_sync(identity_groups, links, current)

    assert not plan.add & current  # never re-adds a membership the user has
    assert plan.remove <= current  # never removes one they lack
    assert plan.remove <= {team for _, team in links}  # only linked teams are ever removed
    assert not plan.add & plan.remove
    again = plan_team_sync(identity_groups, links, (current - plan.remove) | plan.add)
    assert again.empty  # applying the plan settles it
