"""policies/patterns.py: a pattern is measured before `regex` compiles it (a counted repeat is
written out in full when compiled), so one that would compile huge is refused at creation,
alone or with the other patterns of its policy."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from trustyard.config import PoliciesSettings
from trustyard.policies.interfaces import PolicyInvalid
from trustyard.policies.patterns import (
    MAX_PATTERN_STEPS,
    PatternInvalid,
    compile_pattern,
    steps,
)
from trustyard.policies.rules import compile_rules
from trustyard.vulnerabilities.ordering import component_version_order


@pytest.mark.parametrize(
    ("pattern", "size"),
    [
        ("abc", 3),
        (r"^\d{4}-\d{2}-\d{2}$", 10),
        ("[a-f0-9]{64}", 64),
        ("a{0,1000000}", 1),  # a range's rest is a loop
        ("a{,5}", 1),
        ("a{3,}", 3),
        ("(ab){3}", 6),
        ("(a{100}){100}", 10_000),
        ("((a{1000}){1000}){1000}", 10**9),
        ("(a{5}|b{5}){2}", 20),
        ("a{2}{3}", 6),
        ("[]{]{5}", 5),  # a ']' first is a member, the '{' in the set a literal
        (r"[\]]{7}", 7),
        ("x{y}", 4),  # not a repeat: literal braces
        ("(", 0),
        ("[", 1),
    ],
)
def test_steps(pattern: str, size: int) -> None:
    assert steps(pattern) == size


@pytest.mark.parametrize(
    "pattern",
    ["a{1000000}", "(a{1000}){1000}", "((a{1000}){1000}){1000}", "a{10001}", "(a{200}){51}"],
)
def test_a_pattern_that_would_compile_huge_is_refused_before_compiling(pattern: str) -> None:
    with pytest.raises(PatternInvalid, match="repeats too much: it would compile to more than"):
        compile_pattern(pattern)


def test_at_the_limit_a_pattern_compiles() -> None:
    assert compile_pattern(f"a{{{MAX_PATTERN_STEPS}}}").search("a" * MAX_PATTERN_STEPS)


def test_a_policy_refuses_a_huge_pattern_pointing_at_it() -> None:
    rules = [{"field": "tag", "operator": "matches", "values": ["ok", "x{1000000}"]}]
    with pytest.raises(PolicyInvalid) as refused:
        compile_rules(rules, PoliciesSettings(), component_version_order)
    assert refused.value.where == "rules[0].values[1]"
    assert refused.value.reason.startswith("'x{1000000}' repeats too much")


def test_a_policys_patterns_share_one_budget() -> None:
    big = "a{9000}"
    rules = [{"field": "tag", "operator": "matches", "values": [big] * 5}]
    compile_rules(rules, PoliciesSettings(), component_version_order)  # 45,000 steps
    rules.append({"field": "repository", "operator": "matches", "values": [big]})
    with pytest.raises(PolicyInvalid) as refused:
        compile_rules(rules, PoliciesSettings(), component_version_order)
    assert refused.value.where == "rules[1].values[0]"
    assert "patterns together would compile to more than 50000 steps" in refused.value.reason


_PIECES = st.sampled_from(["a", "b", "(", ")", "[", "]", "{", "}", "2", "9", ",", "|", "*", "?",
                           "\\", "^", "{3}", "{0,9}", "{9,}", "(?:", "[^]"])  # fmt: skip


@given(st.lists(_PIECES, max_size=30).map("".join))
def test_any_pattern_compiles_within_its_limit_or_is_refused(pattern: str) -> None:
    try:
        compiled = compile_pattern(pattern)
    except PatternInvalid:
        return
    with contextlib.suppress(TimeoutError):  # its run time is the timeout's business
        compiled.search("ab" * 20, timeout=0.05)
