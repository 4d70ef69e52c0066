"""The one door to the policy engine: a policy's condition, compiled from its rule list or
its CEL expression (exactly one of the two), refused at creation when it cannot evaluate.

Both forms are a `Condition` (interfaces.py): what facts they need and their verdict on one
image. Rule lists are rules.py's, expressions expressions.py's.
"""

from __future__ import annotations

from trustyard.config import PoliciesSettings
from trustyard.policies.expressions import Expression, compile_expression
from trustyard.policies.interfaces import PolicyInvalid, VersionOrder
from trustyard.policies.rules import RuleList, compile_rules


def compile_condition(
    rules: object | None,
    expression: str | None,
    limits: PoliciesSettings,
    order: VersionOrder,
) -> RuleList | Expression:
    """Compile `rules` (a list of {field, operator, values}, as sent or as stored) or
    `expression` (CEL text); None means "not given". PolicyInvalid when both or neither are
    given, or when the one given cannot be evaluated."""
    if rules is not None and expression is not None:
        raise PolicyInvalid("expression", "a policy has either rules or an expression, not both")
    if expression is not None:
        if not isinstance(expression, str):
            raise PolicyInvalid("expression", "a CEL expression is a string")
        return compile_expression(expression, limits, order)
    if rules is None:
        raise PolicyInvalid("rules", "a policy needs rules or an expression")
    return compile_rules(rules, limits, order)
