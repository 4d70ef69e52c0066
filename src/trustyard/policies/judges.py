"""How each kind of compiled rule judges an image: the string operators over one or several
subjects, numbers (counts, size), component versions in their ecosystem's order, and times.

rules.py reads a rule list once and builds these; `Rule.judge` is then a few comparisons per
image. `Facts` wraps one image's `ImageFacts` for all the rules of a list, so what several
rules read of its BOM (names, licenses, PyPI names) is gathered once.
"""

from __future__ import annotations

import operator as op
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from enum import Enum
from functools import cached_property, lru_cache
from itertools import chain
from operator import attrgetter
from typing import Any

import regex  # type: ignore[import-untyped]  # no stubs; typed by use here

from trustyard.policies.interfaces import ComponentFact, ImageFacts, Need, VersionOrder
from trustyard.policies.quantities import format_duration, format_time

SHOWN_VALUES = 5  # values named in one reason


class Kind(Enum):
    STRING = "string"
    NUMBER = "number"
    VERSION = "version"
    TIME = "time"


@dataclass(frozen=True, slots=True)
class FieldSpec:
    name: str  # canonical
    kind: Kind
    words: str  # how reasons name it
    need: Need | None = None
    many: bool = False  # several subjects per image (any / none)


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


def quote(text: str) -> str:
    return repr(text if len(text) <= 80 else text[:77] + "...")


def _listed(values: Sequence[str]) -> str:
    shown = ", ".join(quote(v) for v in values[:SHOWN_VALUES])
    more = len(values) - SHOWN_VALUES
    return shown + (f" and {more} more" if more > 0 else "")


PYPI = "pypi"
_PEP503 = re.compile(r"[-_.]+")


@lru_cache(maxsize=65536)  # the same names recur in every image
def pypi_name(name: str) -> str:
    """A PyPI project's name in PEP 503's form: pip reads `Django`, `django` and
    `DJANGO` (and `zope.interface`, `zope-interface`) as one project."""
    return _PEP503.sub("-", name).lower()


_NAME = attrgetter("name")
_LICENSES = attrgetter("licenses")


class Facts:
    """One image's facts as the rules of one list read them: what is derived from its BOM is
    gathered on first use and shared by the rules."""

    def __init__(self, image: ImageFacts) -> None:
        self.image = image
        # when the patterns of the list must be done with this image: they share one limit
        self.patterns_deadline: float | None = None

    @cached_property
    def names(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(map(_NAME, self.image.components or ())))

    @cached_property
    def pypi_names(self) -> dict[str, str]:
        """PyPI components' names in PEP 503's form -> as the BOM writes them (`Django`)."""
        written = [c.name for c in self.image.components or () if c.ecosystem == PYPI]
        return {pypi_name(name): name for name in written}

    @cached_property
    def licenses(self) -> tuple[str, ...]:
        each = map(_LICENSES, self.image.components or ())
        return tuple(dict.fromkeys(chain.from_iterable(each)))

    def named(self, name: str) -> list[ComponentFact]:
        return [c for c in self.image.components or () if c.name == name]


# --- compiled rules -----------------------------------------------------------------------


class Rule:
    """One compiled rule: its place, its stored form, what it needs, and its verdict."""

    __slots__ = ("index", "needs", "rule", "spec")

    def __init__(self, index: int, rule: dict[str, Any], spec: FieldSpec) -> None:
        self.index = index
        self.rule = rule
        self.spec = spec
        self.needs = spec.need

    def judge(self, facts: Facts, now: datetime) -> Verdict:
        raise NotImplementedError


class StringRule(Rule):
    __slots__ = (
        "base",
        "label",
        "patterns",
        "positive",
        "pypi_values",
        "timeout",
        "value_set",
        "values",
    )

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
        # a component name equal to a value in PEP 503's form, when the component is PyPI's
        by_pypi = spec.name == "component.name" and self.base in ("eq", "oneof")
        self.pypi_values = {pypi_name(v): v for v in self.values} if by_pypi else {}
        self.patterns = patterns
        self.timeout = timeout

    def _pypi_hit(self, facts: Facts) -> tuple[str, str] | None:
        for normal, written in facts.pypi_names.items():
            value = self.pypi_values.get(normal)
            if value is not None:
                return written, value
        return None

    def _subjects(self, facts: Facts) -> Sequence[str] | _Early:
        image, name = facts.image, self.spec.name
        if name == "tag":
            return (image.tag,) if image.tag is not None else _NO_TAG
        if name == "repository":
            return (image.repository,)
        if name == "digest":
            return (image.digest,)
        if name == "platform":
            return image.platforms
        if self.label is not None:
            value = image.labels.get(self.label)
            return () if value is None else (value,)
        if image.components is None:
            return _Early(_PENDING_SCAN)
        return facts.names if name == "component.name" else facts.licenses

    def _hit(self, subjects: Sequence[str], facts: Facts) -> tuple[str, str] | None:
        """The first (subject, value) that the base operator holds for."""
        base = self.base
        if base in ("eq", "oneof"):
            if self.value_set.isdisjoint(subjects):
                return self._pypi_hit(facts) if self.pypi_values else None
            for subject in subjects:
                if subject in self.value_set:
                    return subject, subject
            return None
        if base == "matches":
            return self._search(subjects, facts)
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

    def _search(self, subjects: Sequence[str], facts: Facts) -> tuple[str, str] | None:
        deadline = facts.patterns_deadline
        if deadline is None:
            deadline = facts.patterns_deadline = time.monotonic() + self.timeout
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

    def judge(self, facts: Facts, now: datetime) -> Verdict:
        subjects = self._subjects(facts)
        if isinstance(subjects, _Early):
            return subjects.verdict
        try:
            hit = self._hit(subjects, facts)
        except _Timeout as timeout:
            return False, (
                f"pattern {quote(str(timeout))} ran past its time limit "
                f"({self.timeout * 1000:g} ms)"
            )
        holds, holds_not = _PHRASES[self.base]
        words = self.spec.words if self.label is None else f"label {self.label!r}:"
        passed = (hit is not None) == self.positive
        if self.base == "oneof":
            wanted = _listed(self.values)
        elif hit is not None:
            wanted = quote(hit[1])
        else:
            wanted = (
                quote(self.values[0]) if len(self.values) == 1 else "any of " + _listed(self.values)
            )
        if hit is not None:
            return passed, f"{words} {quote(hit[0])} {holds} {wanted}"
        if self.spec.many or not subjects:
            if self.label is not None:
                return passed, f"no label {self.label!r}"
            return passed, f"no {words} {holds} {wanted}"
        return passed, f"{words} {quote(subjects[0])} {holds_not} {wanted}"


class NumberRule(Rule):
    __slots__ = ("number", "operator", "shown", "test")

    def __init__(self, index: int, rule: dict[str, Any], spec: FieldSpec, number: Decimal) -> None:
        super().__init__(index, rule, spec)
        self.operator: str = rule["operator"]
        self.test = _TESTS[self.operator]
        self.number = number
        value: str = rule["values"][0]
        plain = spec.name != "size" or value.strip().isdigit()
        self.shown = value.strip() if plain else f"{value.strip()} ({int(number)} bytes)"

    def judge(self, facts: Facts, now: datetime) -> Verdict:
        symbol = _SYMBOLS[self.operator]
        if self.spec.name == "size":
            measured = facts.image.size
            shown = f"size: {measured} bytes"
        else:
            counts = facts.image.vulnerabilities
            if counts is None:
                return _PENDING_VULNS
            measured = getattr(counts, self.spec.name.partition(".")[2])
            shown = f"{self.spec.words}: {measured}"
        if self.test(measured, self.number):
            return True, f"{shown}, {symbol} {self.shown}"
        return False, f"{shown}, not {symbol} {self.shown}"


class VersionRule(Rule):
    __slots__ = ("ecosystem", "name", "operator", "order", "pypi_name", "test", "version")

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
        self.pypi_name = pypi_name(name)
        self.ecosystem = ecosystem
        self.version = version
        self.order = order

    def judge(self, facts: Facts, now: datetime) -> Verdict:
        if facts.image.components is None:
            return _PENDING_SCAN
        name, ecosystem = self.name, self.ecosystem
        found = [
            c for c in facts.named(name) if ecosystem is None or c.ecosystem.casefold() == ecosystem
        ]
        if not found and ecosystem in (None, PYPI):  # `django` names PyPI's `Django`
            written = facts.pypi_names.get(self.pypi_name)
            found = [c for c in facts.named(written) if c.ecosystem == PYPI] if written else []
            name = written or name
        where = f" in {ecosystem}" if ecosystem else ""
        if not found:
            return False, f"no component named {quote(name)}{where}"
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
                return True, f"component {quote(name)} {described} {symbol} {self.version}"
            else:
                compared.append(described)
        if compared:
            return False, (
                f"component {quote(name)} {', '.join(compared[:SHOWN_VALUES])} is not "
                f"{symbol} {self.version}"
            )
        if unread:
            return False, (
                f"component {quote(name)} {', '.join(unread[:SHOWN_VALUES])}: "
                f"{quote(self.version)} is not a version of its ecosystem"
            )
        return False, (
            f"component {quote(name)} {', '.join(unordered[:SHOWN_VALUES])}: no known version "
            f"order compares it with {self.version}"
        )


class TimeRule(Rule):
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

    def judge(self, facts: Facts, now: datetime) -> Verdict:
        when = facts.image.pushed_at if self.spec.name == "pushed" else facts.image.created_at
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
