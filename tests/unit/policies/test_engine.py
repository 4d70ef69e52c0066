"""compile_condition: a policy's condition from its rules or its expression, exactly one."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from trustyard.config import PoliciesSettings
from trustyard.policies.engine import compile_condition
from trustyard.policies.expressions import Expression
from trustyard.policies.interfaces import ImageFacts, Need, Outcome, PolicyInvalid, VulnCounts
from trustyard.policies.rules import RuleList
from trustyard.vulnerabilities.ordering import component_version_order

LIMITS = PoliciesSettings()
NOW = datetime(2026, 6, 1, tzinfo=UTC)
FACTS = ImageFacts(
    repository="dev/app",
    digest="sha256:" + "0" * 64,
    media_type="application/vnd.oci.image.manifest.v1+json",
    tag="1.2-stable",
    vulnerabilities=VulnCounts(critical=1),
)
RULES = [
    {"field": "tag", "operator": "ends_with", "values": ["stable"]},
    {"field": "vulnerability_critical", "operator": "<=", "values": [0]},
]


def test_rules_compile_to_a_rule_list() -> None:
    condition = compile_condition(RULES, None, LIMITS, component_version_order)
    assert isinstance(condition, RuleList)
    assert condition.needs == {Need.VULNERABILITIES}
    evaluation = condition.evaluate(FACTS, NOW)
    assert evaluation.outcome is Outcome.FAILED
    assert [r.passed for r in evaluation.results] == [True, False]


def test_an_expression_compiles_to_an_expression() -> None:
    text = 'tag.endsWith("stable") && vulnerabilities.critical <= 0'
    condition = compile_condition(None, text, LIMITS, component_version_order)
    assert isinstance(condition, Expression)
    assert condition.needs == {Need.VULNERABILITIES}
    assert condition.evaluate(FACTS, NOW).outcome is Outcome.FAILED


def test_both_are_refused() -> None:
    with pytest.raises(PolicyInvalid, match="either rules or an expression, not both") as e:
        compile_condition(RULES, "true", LIMITS, component_version_order)
    assert e.value.where == "expression"


def test_neither_is_refused() -> None:
    with pytest.raises(PolicyInvalid, match="needs rules or an expression") as e:
        compile_condition(None, None, LIMITS, component_version_order)
    assert e.value.where == "rules"


def test_an_expression_must_be_text() -> None:
    with pytest.raises(PolicyInvalid, match="a CEL expression is a string"):
        compile_condition(None, 42, LIMITS, component_version_order)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("rules", "expression", "where"),
    [
        ([{"field": "nope", "operator": "eq", "values": ["x"]}], None, "rules[0]"),
        (None, "tag ==", "expression"),
        (None, "vulnerabilities.high == 0", "expression"),
    ],
)
def test_what_cannot_evaluate_is_refused_where_it_is(
    rules: object, expression: str | None, where: str
) -> None:
    with pytest.raises(PolicyInvalid) as e:
        compile_condition(rules, expression, LIMITS, component_version_order)
    assert e.value.where.startswith(where)
