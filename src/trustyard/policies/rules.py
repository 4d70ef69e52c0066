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
  ecosystem's own order.
- `vulnerability.critical|major|minor|unknown|all` (counts after triage) and `size` (bytes
  or with a unit): eq neq gt gte lt lte against one number.
- `pushed` and `created`: before / after an RFC 3339 time, olderthan / newerthan a duration.

`matches` searches (unanchored) with the `regex` module; one rule's searches over one image
share a time limit (settings.policies.regex_timeout_ms): a pattern that runs past it fails
its rule, saying so.
"""

from __future__ import annotations

import math
import operator as op
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from enum import Enum
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
from trustyard.policies.quantities import (
    format_duration,
    format_time,
    parse_duration,
    parse_size,
    parse_time,
)

MAX_VALUE_CHARS = 1024
MAX_LABEL_KEY_CHARS = 256
_SHOWN_VALUES = 5  # values named in one reason


class Kind(Enum):
    STRING = "string"
    NUMBER = "number"
    VERSION = "version"
    TIME = "time"


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


@dataclass(frozen=True, slots=True)
class FieldSpec:
    name: str  # canonical
    kind: Kind
    words: str  # how reasons name it
    need: Need | None = None
    many: bool = False  # several subjects per image (any / none)


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

Verdict = tuple[bool | None, str]  # passed (None: pending), reason
_PENDING_SCAN: Verdict = (None, "waiting for a scan of the image (no BOM yet)")
_PENDING_VULNS: Verdict = (None, "waiting for the image's vulnerability match")

_PHRASES = {  # operator -> (it holds, it does not)
    "eq": ("equals", "does not equal"),
    "sw": ("starts with", "does not start with"),
    "ew": ("ends with", "does not end with"),
    "c": ("contains", "does not contain"),
    "oneof": ("is one of", "is not one of"),
    "matches": ("matches", "does not match"),
}
_NEGATED = {"neq": "eq", "noneof": "oneof"}
_SYMBOLS = {"eq": "=", "neq": "!=", "gt": ">", "gte": ">=", "lt": "<", "lte": "<="}
_TESTS: dict[str, Callable[[Any, Any], bool]] = {
    "eq": op.eq, "neq": op.ne, "gt": op.gt, "gte": op.ge, "lt": op.lt, "lte": op.le,
}  # fmt: skip


class _Timeout(Exception):
    pass


@dataclass(frozen=True, slots=True)
class _Early:
    """A verdict reached before any comparison (pending, no tag)."""

    verdict: Verdict


_NO_TAG = _Early((False, "no tag (judged by digest)"))


def _quote(text: str) -> str:
    return repr(text if len(text) <= 80 else text[:77] + "...")


def _listed(values: Sequence[str]) -> str:
    shown = ", ".join(_quote(v) for v in values[:_SHOWN_VALUES])
    more = len(values) - _SHOWN_VALUES
    return shown + (f" and {more} more" if more > 0 else "")


# --- compiled rules -----------------------------------------------------------------------


class _Rule:
    """One compiled rule: its place, its stored form, what it needs, and its verdict."""

    __slots__ = ("index", "needs", "rule", "spec")

    def __init__(self, index: int, rule: dict[str, Any], spec: FieldSpec) -> None:
        self.index = index
        self.rule = rule
        self.spec = spec
        self.needs = spec.need

    def judge(self, facts: ImageFacts, now: datetime) -> Verdict:
        raise NotImplementedError


class _StringRule(_Rule):
    __slots__ = ("base", "label", "patterns", "positive", "timeout", "value_set", "values")

    def __init__(
        self,
        index: int,
        rule: dict[str, Any],
        spec: FieldSpec,
        label: str | None,
        patterns: tuple[regex.Pattern[str], ...],
        timeout: float,
    ) -> None:
        super().__init__(index, rule, spec)
        self.label = label
        operator: str = rule["operator"]
        self.positive = operator not in _NEGATED
        self.base = _NEGATED.get(operator, operator)
        self.values: tuple[str, ...] = tuple(rule["values"])
        self.value_set = frozenset(self.values)
        self.patterns = patterns
        self.timeout = timeout

    def _subjects(self, facts: ImageFacts) -> Sequence[str] | _Early:
        name = self.spec.name
        if name == "tag":
            return (facts.tag,) if facts.tag is not None else _NO_TAG
        if name == "repository":
            return (facts.repository,)
        if name == "digest":
            return (facts.digest,)
        if name == "platform":
            return facts.platforms
        if self.label is not None:
            value = facts.labels.get(self.label)
            return () if value is None else (value,)
        if facts.components is None:
            return _Early(_PENDING_SCAN)
        if name == "component.name":
            return tuple({c.name: None for c in facts.components})
        return tuple({lic: None for c in facts.components for lic in c.licenses})

    def _hit(self, subjects: Sequence[str]) -> tuple[str, str] | None:
        """The first (subject, value) that the base operator holds for."""
        base = self.base
        if base in ("eq", "oneof"):
            for subject in subjects:
                if subject in self.value_set:
                    return subject, subject
            return None
        if base == "matches":
            return self._search(subjects)
        for subject in subjects:
            if base == "sw":
                hit = subject.startswith(self.values)
            elif base == "ew":
                hit = subject.endswith(self.values)
            else:
                hit = any(v in subject for v in self.values)
            if hit:
                return subject, self._which(subject)
        return None

    def _which(self, subject: str) -> str:
        base = self.base
        for value in self.values:
            if (
                (base == "sw" and subject.startswith(value))
                or (base == "ew" and subject.endswith(value))
                or (base == "c" and value in subject)
            ):
                return value
        return self.values[0]

    def _search(self, subjects: Sequence[str]) -> tuple[str, str] | None:
        deadline = time.monotonic() + self.timeout
        for pattern in self.patterns:
            for subject in subjects:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise _Timeout(pattern.pattern)
                try:
                    found = pattern.search(subject, timeout=left)
                except TimeoutError:
                    raise _Timeout(pattern.pattern) from None
                if found is not None:
                    return subject, pattern.pattern
        return None

    def judge(self, facts: ImageFacts, now: datetime) -> Verdict:
        subjects = self._subjects(facts)
        if isinstance(subjects, _Early):
            return subjects.verdict
        try:
            hit = self._hit(subjects)
        except _Timeout as timeout:
            return False, (
                f"pattern {_quote(str(timeout))} ran past its time limit "
                f"({self.timeout * 1000:g} ms)"
            )
        holds, holds_not = _PHRASES[self.base]
        words = self.spec.words if self.label is None else f"label {self.label!r}:"
        passed = (hit is not None) == self.positive
        if self.base == "oneof":
            wanted = _listed(self.values)
        elif hit is not None:
            wanted = _quote(hit[1])
        else:
            wanted = (
                _quote(self.values[0])
                if len(self.values) == 1
                else "any of " + _listed(self.values)
            )
        if hit is not None:
            return passed, f"{words} {_quote(hit[0])} {holds} {wanted}"
        if self.spec.many or not subjects:
            if self.label is not None:
                return passed, f"no label {self.label!r}"
            return passed, f"no {words} {holds} {wanted}"
        return passed, f"{words} {_quote(subjects[0])} {holds_not} {wanted}"


class _NumberRule(_Rule):
    __slots__ = ("number", "operator", "shown", "test")

    def __init__(self, index: int, rule: dict[str, Any], spec: FieldSpec, number: Decimal) -> None:
        super().__init__(index, rule, spec)
        self.operator: str = rule["operator"]
        self.test = _TESTS[self.operator]
        self.number = number
        value: str = rule["values"][0]
        plain = spec.name != "size" or value.strip().isdigit()
        self.shown = value.strip() if plain else f"{value.strip()} ({int(number)} bytes)"

    def judge(self, facts: ImageFacts, now: datetime) -> Verdict:
        symbol = _SYMBOLS[self.operator]
        if self.spec.name == "size":
            measured = facts.size
            shown = f"size: {measured} bytes"
        else:
            counts = facts.vulnerabilities
            if counts is None:
                return _PENDING_VULNS
            measured = getattr(counts, self.spec.name.partition(".")[2])
            shown = f"{self.spec.words}: {measured}"
        if self.test(measured, self.number):
            return True, f"{shown}, {symbol} {self.shown}"
        return False, f"{shown}, not {symbol} {self.shown}"


class _VersionRule(_Rule):
    __slots__ = ("ecosystem", "name", "operator", "order", "test", "version")

    def __init__(
        self,
        index: int,
        rule: dict[str, Any],
        spec: FieldSpec,
        name: str,
        ecosystem: str | None,
        version: str,
        order: VersionOrder,
    ) -> None:
        super().__init__(index, rule, spec)
        self.operator: str = rule["operator"]
        self.test = _TESTS[self.operator]
        self.name = name
        self.ecosystem = ecosystem
        self.version = version
        self.order = order

    def judge(self, facts: ImageFacts, now: datetime) -> Verdict:
        if facts.components is None:
            return _PENDING_SCAN
        name, ecosystem = self.name, self.ecosystem
        found = [
            c
            for c in facts.components
            if c.name == name and (ecosystem is None or c.ecosystem.casefold() == ecosystem)
        ]
        where = f" in {ecosystem}" if ecosystem else ""
        if not found:
            return False, f"no component named {_quote(name)}{where}"
        symbol = _SYMBOLS[self.operator]
        compared: list[str] = []
        unordered: list[str] = []
        unread: list[str] = []  # ecosystems that order the component but cannot read the value
        for component in found:
            result = self.order(component.ecosystem, component.version, self.version)
            described = f"{component.version} ({component.ecosystem})"
            if result is None:
                own = self.order(component.ecosystem, component.version, component.version)
                (unordered if own is None else unread).append(described)
            elif self.test(result, 0):
                return True, f"component {_quote(name)} {described} {symbol} {self.version}"
            else:
                compared.append(described)
        if compared:
            return False, (
                f"component {_quote(name)} {', '.join(compared[:_SHOWN_VALUES])} is not "
                f"{symbol} {self.version}"
            )
        if unread:
            return False, (
                f"component {_quote(name)} {', '.join(unread[:_SHOWN_VALUES])}: "
                f"{_quote(self.version)} is not a version of its ecosystem"
            )
        return False, (
            f"component {_quote(name)} {', '.join(unordered[:_SHOWN_VALUES])}: no known version "
            f"order compares it with {self.version}"
        )


class _TimeRule(_Rule):
    __slots__ = ("age", "moment", "operator")

    def __init__(
        self,
        index: int,
        rule: dict[str, Any],
        spec: FieldSpec,
        moment: datetime | None,
        age: timedelta | None,
    ) -> None:
        super().__init__(index, rule, spec)
        self.operator: str = rule["operator"]
        self.moment = moment
        self.age = age

    def judge(self, facts: ImageFacts, now: datetime) -> Verdict:
        when = facts.pushed_at if self.spec.name == "pushed" else facts.created_at
        if when is None:
            if self.spec.name == "pushed":
                return False, "no push time"
            return False, "no creation time in the image config"
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        shown = f"{self.spec.words} {format_time(when)}"
        word = (
            self.operator
            if self.operator in ("before", "after")
            else ("older than" if self.operator == "olderthan" else "newer than")
        )
        if self.moment is not None:
            passed = when < self.moment if self.operator == "before" else when > self.moment
            told = format_time(self.moment)
        else:
            assert self.age is not None
            if now.tzinfo is None:
                now = now.replace(tzinfo=UTC)
            limit = now - self.age
            passed = when < limit if self.operator == "olderthan" else when > limit
            age = max(timedelta(0), now - when)
            shown += f" ({format_duration(timedelta(seconds=int(age.total_seconds())))} ago)"
            told = str(self.rule["values"][0]).strip()
        return passed, f"{shown}, {'' if passed else 'not '}{word} {told}"


class RuleList:
    """A compiled rule list: every rule must pass. A `Condition`."""

    __slots__ = ("_needs", "_rules")

    def __init__(self, rules: Sequence[_Rule]) -> None:
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
        for rule in self._rules:
            passed, reason = rule.judge(facts, now)
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
    return RuleList([_compile(i, item, limits, order) for i, item in enumerate(data)])


def _compile(index: int, item: object, limits: PoliciesSettings, order: VersionOrder) -> _Rule:
    where = f"rules[{index}]"
    if not isinstance(item, Mapping):
        raise PolicyInvalid(where, 'a rule is an object {"field", "operator", "values"}')
    keys = {str(k).strip().lower(): v for k, v in item.items()}
    unknown = sorted(set(keys) - {"field", "operator", "values"})
    if unknown:
        raise PolicyInvalid(
            where, f"unknown key {_quote(unknown[0])}: a rule has field, operator and values"
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
            patterns = tuple(_pattern(f"{vwhere}[{j}]", v) for j, v in enumerate(values))
        return _StringRule(index, rule, spec, label, patterns, limits.regex_timeout_ms / 1000)
    if spec.kind is Kind.NUMBER:
        _count(vwhere, values, 1)
        return _NumberRule(index, rule, spec, _number(f"{vwhere}[0]", values[0], spec))
    if spec.kind is Kind.VERSION:
        _count(vwhere, values, 2, "[name, version], such as ['openssl', '3.0.12']")
        name, ecosystem, version = _version_values(vwhere, values, order)
        return _VersionRule(index, rule, spec, name, ecosystem, version, order)
    _count(vwhere, values, 1)
    try:
        if operator in ("before", "after"):
            return _TimeRule(index, rule, spec, parse_time(values[0]), None)
        return _TimeRule(index, rule, spec, None, parse_duration(values[0]))
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
        raise PolicyInvalid(where, f"unknown field {_quote(text)} (known: {known})")
    return FIELDS[name], None


def _operator(where: str, value: object, spec: FieldSpec) -> str:
    if not isinstance(value, str):
        raise PolicyInvalid(where, "an operator is a name, such as 'eq' or 'gte'")
    key = "_".join(value.strip().lower().replace("-", " ").split())
    canonical = OPERATOR_ALIASES.get(key)
    if canonical is None:
        known = ", ".join(dict.fromkeys(OPERATOR_ALIASES.values()))
        raise PolicyInvalid(where, f"unknown operator {_quote(value)} (known: {known})")
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


def _pattern(where: str, text: str) -> regex.Pattern[str]:
    try:
        return regex.compile(text)
    except (regex.error, ValueError, OverflowError, RecursionError) as error:
        raise PolicyInvalid(where, f"{_quote(text)} is not a regular expression: {error}") from None


def _number(where: str, text: str, spec: FieldSpec) -> Decimal:
    if spec.name == "size":
        try:
            return parse_size(text)
        except ValueError as error:
            raise PolicyInvalid(where, str(error)) from None
    stripped = text.strip()
    if not (stripped.isascii() and stripped.isdigit() and len(stripped) <= 12):
        raise PolicyInvalid(where, f"{_quote(text)} is not a count: a whole number, such as 0")
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
                f"{where}[1]", f"{_quote(version)} is not a version of the {ecosystem} ecosystem"
            )
        return rest, ecosystem, version
    return written, None, version
