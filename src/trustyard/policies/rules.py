"""DTR's rule form: `{"field": F, "operator": O, "values": [...]}`, every rule required.

`compile_rules(data, limits, order)` checks a rule list once, when a policy is saved, and
answers a `RuleList` (a `Condition`): everything a rule's evaluation needs is prepared here
(patterns compiled, sizes, durations and times read, value sets built), so judging an image
is a few comparisons per rule. What cannot be evaluated is refused with PolicyInvalid naming
the rule (`rules[2].values[0]`) and what is wrong.

Fields (canonical names; names of fields and operators are read case-insensitively, DTR's
spellings as aliases):
- `tag` (no tag when judged by digest: the rule fails), `repository`, `digest`, `platform`
  (any of the image's), `component.name`, `license.name`, `label.<key>`: the string
  operators eq neq sw ew c oneof noneof matches. Over several subjects (platforms,
  components, licenses) a positive operator passes when ANY subject matches; `neq` and
  `noneof` pass when NONE does (`component.name neq openssl`: openssl is absent). A missing
  label fails the positive operators and passes `neq`/`noneof`.
- `component.version` `[name, version]` (the name may be prefixed `pypi:django`): eq neq gt
  gte lt lte, passing when a component of that name has a version that compares so under its
  ecosystem's own order. Names are compared exactly, a PyPI component's (for these, `eq`,
  `neq`, `oneof` and `noneof` of `component.name`) also in PEP 503's form as pip does:
  `django` is the BOM's `Django`.
- `vulnerability.critical|major|minor|unknown|all` (counts after triage) and `size` (bytes
  or with a unit): eq neq gt gte lt lte against one number.
- `pushed` and `created`: before / after an RFC 3339 time, olderthan / newerthan a duration.

Several values: a positive operator passes when any value holds (`sw ["v", "release-"]`),
`neq`/`noneof` when none does. An empty list passes every image (nothing is required).

`matches` searches (unanchored) with the `regex` module; all the searches of a rule list
over one image share one time limit (settings.policies.regex_timeout_ms), so a policy's
patterns cost at most that per image: a pattern that runs past it (or finds no time left)
fails its rule, saying so. A pattern that would compile huge is refused (patterns.py).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

import regex  # type: ignore[import-untyped]  # no stubs; typed by use here

from trustyard.config import PoliciesSettings
from trustyard.policies.interfaces import (
    Evaluation,
    ImageFacts,
    Need,
    PolicyInvalid,
    RuleResult,
    VersionOrder,
)
from trustyard.policies.judges import (
    Facts,
    FieldSpec,
    Kind,
    NumberRule,
    Rule,
    StringRule,
    TimeRule,
    VersionRule,
    quote,
)
from trustyard.policies.patterns import (
    MAX_LIST_STEPS,
    MAX_PATTERN_STEPS,
    PatternInvalid,
    compile_pattern,
    steps,
)
from trustyard.policies.quantities import parse_duration, parse_size, parse_time

MAX_VALUE_CHARS = 1024
_HUGE = 10**MAX_VALUE_CHARS
MAX_LABEL_KEY_CHARS = 256


STRING_OPERATORS = ("eq", "neq", "sw", "ew", "c", "oneof", "noneof", "matches")
NUMBER_OPERATORS = ("eq", "neq", "gt", "gte", "lt", "lte")
TIME_OPERATORS = ("before", "after", "olderthan", "newerthan")
_OPERATORS_OF = {
    Kind.STRING: STRING_OPERATORS,
    Kind.NUMBER: NUMBER_OPERATORS,
    Kind.VERSION: NUMBER_OPERATORS,
    Kind.TIME: TIME_OPERATORS,
}

OPERATOR_ALIASES: dict[str, str] = {
    **{name: name for name in (*STRING_OPERATORS, *NUMBER_OPERATORS, *TIME_OPERATORS)},
    "equals": "eq", "=": "eq", "==": "eq",
    "!=": "neq", "not_equals": "neq",
    "starts_with": "sw", "startswith": "sw",
    "ends_with": "ew", "endswith": "ew",
    "contains": "c",
    "one_of": "oneof", "in": "oneof",
    "not_one_of": "noneof", "not_in": "noneof", "none_of": "noneof",
    "regex": "matches",
    ">": "gt", ">=": "gte", "<": "lt", "<=": "lte",
    "older_than": "olderthan", "newer_than": "newerthan",
}  # fmt: skip


_SPECS: tuple[FieldSpec, ...] = (
    FieldSpec("tag", Kind.STRING, "tag"),
    FieldSpec("repository", Kind.STRING, "repository"),
    FieldSpec("digest", Kind.STRING, "digest"),
    FieldSpec("platform", Kind.STRING, "platform", many=True),
    FieldSpec("component.name", Kind.STRING, "component", Need.SCAN, many=True),
    FieldSpec("component.version", Kind.VERSION, "component", Need.SCAN),
    FieldSpec("license.name", Kind.STRING, "license", Need.SCAN, many=True),
    FieldSpec("size", Kind.NUMBER, "size"),
    FieldSpec("pushed", Kind.TIME, "pushed"),
    FieldSpec("created", Kind.TIME, "created", Need.CONFIG),
    *(
        FieldSpec(f"vulnerability.{b}", Kind.NUMBER, f"{b} vulnerabilities", Need.VULNERABILITIES)
        for b in ("critical", "major", "minor", "unknown", "all")
    ),
)  # fmt: skip
FIELDS: dict[str, FieldSpec] = {spec.name: spec for spec in _SPECS}
FIELD_ALIASES: dict[str, str] = {
    **{name: name for name in FIELDS},
    "component": "component.name",
    "license": "license.name", "licence": "license.name", "licence.name": "license.name",
    "pushed_at": "pushed", "last_pushed": "pushed", "created_at": "created",
    **{f"vulnerability_{f.partition('.')[2]}": f for f in FIELDS if f.startswith("vuln")},
}  # fmt: skip
LABEL_PREFIXES = ("label.", "labels.")
_LABEL = "label."

# Ecosystem names a `component.version` rule may prefix, as the BOM writes them.
_ECOSYSTEM_ALIASES = {
    "go": "golang", "python": "pypi", "debian": "deb", "ubuntu": "deb", "alpine": "apk",
    "crates.io": "cargo", "rust": "cargo", "rubygems": "gem", "packagist": "composer",
}  # fmt: skip
_PROBE_VERSIONS = ("1.0.0", "v1.0.0", "1.0", "1")


class RuleList:
    """A compiled rule list: every rule must pass. A `Condition`; every rule reports, and a
    result's `rule` is the rule's stored form (shared: read it, do not change it)."""

    __slots__ = ("_needs", "_rules")

    def __init__(self, rules: Sequence[Rule]) -> None:
        self._rules = tuple(rules)
        self._needs = frozenset(r.needs for r in self._rules if r.needs is not None)

    @property
    def needs(self) -> frozenset[Need]:
        return self._needs

    @property
    def canonical(self) -> list[dict[str, Any]]:
        """The rules as stored: canonical field and operator names, values as strings."""
        return [
            {
                "field": r.rule["field"],
                "operator": r.rule["operator"],
                "values": list(r.rule["values"]),
            }
            for r in self._rules
        ]

    def __len__(self) -> int:
        return len(self._rules)

    def evaluate(self, facts: ImageFacts, now: datetime) -> Evaluation:
        results = []
        view = Facts(facts)
        for rule in self._rules:
            passed, reason = rule.judge(view, now)
            results.append(RuleResult(rule.index, rule.rule, passed, reason))
        return Evaluation.of(results)


# --- compiling ----------------------------------------------------------------------------


def compile_rules(data: object, limits: PoliciesSettings, order: VersionOrder) -> RuleList:
    """The rule list `data` (as a client sent it, or as stored) compiled, or PolicyInvalid."""
    if isinstance(data, (str, bytes)) or not isinstance(data, Sequence):
        raise PolicyInvalid("rules", 'a list of rules, each {"field", "operator", "values"}')
    if len(data) > limits.max_rules:
        raise PolicyInvalid(
            "rules", f"{len(data)} rules; a policy holds at most {limits.max_rules}"
        )
    budget = [MAX_LIST_STEPS]  # what the list's patterns may still compile to
    return RuleList([_compile(i, item, limits, order, budget) for i, item in enumerate(data)])


def _compile(
    index: int, item: object, limits: PoliciesSettings, order: VersionOrder, budget: list[int]
) -> Rule:
    where = f"rules[{index}]"
    if not isinstance(item, Mapping):
        raise PolicyInvalid(where, 'a rule is an object {"field", "operator", "values"}')
    keys = {str(k).strip().lower(): v for k, v in item.items()}
    unknown = sorted(set(keys) - {"field", "operator", "values"})
    if unknown:
        raise PolicyInvalid(
            where, f"unknown key {quote(unknown[0])}: a rule has field, operator and values"
        )
    if len(keys) != len(item):
        raise PolicyInvalid(where, "a key is given twice (names are read case-insensitively)")
    for key in ("field", "operator", "values"):
        if key not in keys:
            raise PolicyInvalid(where, f"the rule has no {key!r}")
    spec, label = _field(f"{where}.field", keys["field"])
    operator = _operator(f"{where}.operator", keys["operator"], spec)
    values = _values(f"{where}.values", keys["values"], limits)
    field_name = spec.name if label is None else _LABEL + label
    rule: dict[str, Any] = {"field": field_name, "operator": operator, "values": values}
    vwhere = f"{where}.values"
    if spec.kind is Kind.STRING:
        patterns: tuple[regex.Pattern[str], ...] = ()
        if operator == "matches":
            patterns = tuple(_pattern(f"{vwhere}[{j}]", v, budget) for j, v in enumerate(values))
        return StringRule(index, rule, spec, label, patterns, limits.regex_timeout_ms / 1000)
    if spec.kind is Kind.NUMBER:
        _count(vwhere, values, 1)
        return NumberRule(index, rule, spec, _number(f"{vwhere}[0]", values[0], spec))
    if spec.kind is Kind.VERSION:
        _count(vwhere, values, 2, "[name, version], such as ['openssl', '3.0.12']")
        name, ecosystem, version = _version_values(vwhere, values, order)
        return VersionRule(index, rule, spec, name, ecosystem, version, order)
    _count(vwhere, values, 1)
    try:
        if operator in ("before", "after"):
            return TimeRule(index, rule, spec, parse_time(values[0]), None)
        return TimeRule(index, rule, spec, None, parse_duration(values[0]))
    except ValueError as error:
        raise PolicyInvalid(f"{vwhere}[0]", str(error)) from None


def _field(where: str, value: object) -> tuple[FieldSpec, str | None]:
    if not isinstance(value, str) or not value.strip():
        raise PolicyInvalid(where, "a field is a name, such as 'tag' or 'vulnerability.critical'")
    text = value.strip()
    lowered = text.lower()
    for prefix in LABEL_PREFIXES:
        if lowered.startswith(prefix):
            key = text[len(prefix) :]
            if not key or len(key) > MAX_LABEL_KEY_CHARS:
                raise PolicyInvalid(
                    where, f"'label.<key>' names a label of 1 to {MAX_LABEL_KEY_CHARS} characters"
                )
            return FieldSpec(_LABEL + key, Kind.STRING, "label", Need.CONFIG), key
    name = FIELD_ALIASES.get(lowered)
    if name is None:
        known = ", ".join([*FIELDS, "label.<key>"])
        raise PolicyInvalid(where, f"unknown field {quote(text)} (known: {known})")
    return FIELDS[name], None


def _operator(where: str, value: object, spec: FieldSpec) -> str:
    if not isinstance(value, str):
        raise PolicyInvalid(where, "an operator is a name, such as 'eq' or 'gte'")
    key = "_".join(value.strip().lower().replace("-", " ").split())
    canonical = OPERATOR_ALIASES.get(key)
    if canonical is None:
        known = ", ".join(dict.fromkeys(OPERATOR_ALIASES.values()))
        raise PolicyInvalid(where, f"unknown operator {quote(value)} (known: {known})")
    allowed = _OPERATORS_OF[spec.kind]
    if canonical not in allowed:
        raise PolicyInvalid(
            where,
            f"field {spec.name!r} does not take operator {canonical!r} "
            f"(it takes: {', '.join(allowed)})",
        )
    return canonical


def _values(where: str, value: object, limits: PoliciesSettings) -> list[str]:
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
        raise PolicyInvalid(where, "values is a list of strings, such as ['latest']")
    if not value:
        raise PolicyInvalid(where, "a rule needs at least one value")
    if len(value) > limits.max_values:
        raise PolicyInvalid(where, f"{len(value)} values; a rule holds at most {limits.max_values}")
    out: list[str] = []
    for j, item in enumerate(value):
        if isinstance(item, str):
            text = item
        elif isinstance(item, int) and not isinstance(item, bool):
            if abs(item) >= _HUGE:  # str() of a huge int is slow, or refused
                raise PolicyInvalid(f"{where}[{j}]", f"longer than {MAX_VALUE_CHARS} characters")
            text = str(item)
        elif isinstance(item, float) and math.isfinite(item):
            text = str(int(item)) if item.is_integer() and abs(item) < 2**63 else repr(item)
        else:
            raise PolicyInvalid(f"{where}[{j}]", "a value is a string or a number")
        if len(text) > MAX_VALUE_CHARS:
            raise PolicyInvalid(f"{where}[{j}]", f"longer than {MAX_VALUE_CHARS} characters")
        out.append(text)
    return out


def _count(where: str, values: Sequence[str], count: int, shape: str = "") -> None:
    if len(values) != count:
        wanted = "one value" if count == 1 else f"{count} values"
        raise PolicyInvalid(where, f"this rule takes {wanted}{': ' + shape if shape else ''}")


def _pattern(where: str, text: str, budget: list[int]) -> regex.Pattern[str]:
    size = steps(text)
    if size > budget[0] and size <= MAX_PATTERN_STEPS:
        raise PolicyInvalid(
            where,
            f"{quote(text)} is one pattern too many: this policy's patterns together would "
            f"compile to more than {MAX_LIST_STEPS} steps",
        )
    try:
        pattern = compile_pattern(text)
    except PatternInvalid as error:
        raise PolicyInvalid(where, f"{quote(text)} {error}") from None
    budget[0] -= size
    return pattern


def _number(where: str, text: str, spec: FieldSpec) -> Decimal:
    if spec.name == "size":
        try:
            return parse_size(text)
        except ValueError as error:
            raise PolicyInvalid(where, str(error)) from None
    stripped = text.strip()
    if not (stripped.isascii() and stripped.isdigit() and len(stripped) <= 12):
        raise PolicyInvalid(where, f"{quote(text)} is not a count: a whole number, such as 0")
    return Decimal(int(stripped))


def _version_values(
    where: str, values: Sequence[str], order: VersionOrder
) -> tuple[str, str | None, str]:
    written, version = values[0].strip(), values[1].strip()
    if not written:
        raise PolicyInvalid(f"{where}[0]", "the component's name is empty")
    if not version:
        raise PolicyInvalid(f"{where}[1]", "the version is empty")
    prefix, colon, rest = written.partition(":")
    ecosystem = _ECOSYSTEM_ALIASES.get(prefix.lower(), prefix.lower())
    if colon and rest and any(order(ecosystem, p, p) is not None for p in _PROBE_VERSIONS):
        if order(ecosystem, version, version) is None:
            raise PolicyInvalid(
                f"{where}[1]", f"{quote(version)} is not a version of the {ecosystem} ecosystem"
            )
        return rest, ecosystem, version
    return written, None, version
