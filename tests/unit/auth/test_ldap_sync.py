"""plan_team_sync: LDAP groups decide mapped team memberships, hand-made ones stay."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from trustyard.auth.ldap import TeamSyncPlan, plan_team_sync

MAPPINGS = {
    "developers": "acme/dev",
    "cn=developers,ou=groups,dc=example,dc=org": "acme/dev",
    "operators": "acme/ops",
    "auditors": "acme/audit",
}


def test_joins_the_teams_of_the_users_groups() -> None:
    plan = plan_team_sync({"developers", "operators"}, MAPPINGS, set())

    assert plan == TeamSyncPlan(add=frozenset({"acme/dev", "acme/ops"}), remove=frozenset())


def test_leaves_mapped_teams_whose_group_the_user_lost() -> None:
    plan = plan_team_sync({"developers"}, MAPPINGS, {"acme/dev", "acme/ops", "acme/audit"})

    assert plan == TeamSyncPlan(add=frozenset(), remove=frozenset({"acme/ops", "acme/audit"}))


def test_never_touches_teams_no_mapping_names() -> None:
    plan = plan_team_sync(set(), MAPPINGS, {"acme/handmade", "other/team"})

    assert plan.empty
    assert plan == TeamSyncPlan(add=frozenset(), remove=frozenset())


def test_a_team_stays_while_any_of_its_groups_remains() -> None:
    # Two groups (a name and a DN) map to acme/dev; the user keeps one of them.
    plan = plan_team_sync({"cn=developers,ou=groups,dc=example,dc=org"}, MAPPINGS, {"acme/dev"})

    assert plan.empty


def test_groups_without_a_mapping_change_nothing() -> None:
    plan = plan_team_sync({"staff", "cn=staff,ou=groups,dc=example,dc=org"}, MAPPINGS, set())

    assert plan.empty


def test_group_keys_are_compared_exactly() -> None:
    plan = plan_team_sync({"Developers"}, MAPPINGS, {"acme/dev"})

    assert plan == TeamSyncPlan(add=frozenset(), remove=frozenset({"acme/dev"}))


def test_no_mappings_means_no_changes() -> None:
    assert plan_team_sync({"developers"}, {}, {"acme/dev"}).empty


groups = st.sampled_from(["g1", "g2", "g3", "cn=g1,dc=x", "cn=g4,dc=x", "g5", "g6"])
teams = st.sampled_from(["o/a", "o/b", "o/c", "p/a", "p/d", "q/e"])


@given(
    identity_groups=st.sets(groups),
    mappings=st.dictionaries(groups, teams),
    current=st.sets(teams),
)
def test_applying_the_plan_gives_granted_teams_plus_unmapped_ones(
    identity_groups: set[str], mappings: dict[str, str], current: set[str]
) -> None:
    plan = plan_team_sync(identity_groups, mappings, current)

    granted = {team for group, team in mappings.items() if group in identity_groups}
    unmapped_current = current - set(mappings.values())
    assert (current - plan.remove) | plan.add == granted | unmapped_current


@given(
    identity_groups=st.sets(groups),
    mappings=st.dictionaries(groups, teams),
    current=st.sets(teams),
)
def test_the_plan_is_minimal(
    identity_groups: set[str], mappings: dict[str, str], current: set[str]
) -> None:
    plan = plan_team_sync(identity_groups, mappings, current)

    assert not plan.add & current  # never re-adds a membership the user has
    assert plan.remove <= current  # never removes one they lack
    assert plan.remove <= set(mappings.values())  # only mapped teams are ever removed
    assert not plan.add & plan.remove
    again = plan_team_sync(identity_groups, mappings, (current - plan.remove) | plan.add)
    assert again.empty  # applying the plan settles it
