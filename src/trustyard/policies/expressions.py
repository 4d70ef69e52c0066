"""A policy written as one CEL expression over an image's facts ("policy as code").

`compile_expression` parses the text with cel-python, checks it (expression_check.py: names,
types, bounded cost) and returns an `Expression`, a `Condition`. The variables are the facts
of `ImageFacts` (below, `VARIABLES`) plus `now`; `version_compare(ecosystem, a, b)` compares
two versions under the ecosystem's own order, and `matches` runs the `regex` module under
the policies' time limit. A variable reading a fact group (components, vulnerabilities,
labels...) makes the expression need it.

Evaluation converts only the variables the expression reads, once. A group not loaded yet
(`components` None: no finished scan) is left out of the activation: CEL's logical operators
absorb an error when the other side decides, so an expression that is false whatever the
scan says fails at once, and one that depends on the missing group is pending. A run-time
error or a result other than a bool fails the expression with the reason.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache, lru_cache
from typing import Any

import celpy
import lark
from celpy import celtypes
from celpy.celparser import CELParseError, CELParser
from celpy.evaluation import CELEvalError

from trustyard.config import PoliciesSettings
from trustyard.policies import expression_check as checks
from trustyard.policies.cel_runtime import LOGIC, Runner
from trustyard.policies.expression_check import (
    INT,
    STRING,
    TIMESTAMP,
    CelType,
    Signature,
    list_of,
    map_of,
    record,
)
from trustyard.policies.interfaces import (
    ComponentFact,
    Evaluation,
    ImageFacts,
    Need,
    PolicyInvalid,
    RuleResult,
    VersionOrder,
)
from trustyard.policies.patterns import PatternInvalid, compile_pattern

log = logging.getLogger(__name__)

WHERE = checks.WHERE

_NULLABLE_STRING = CelType("string", nullable=True)
_NULLABLE_TIMESTAMP = CelType("timestamp", nullable=True)
COMPONENT = record(
    ecosystem=STRING, name=STRING, version=STRING, licenses=list_of(STRING), purl=STRING
)
VULNERABILITIES = record(critical=INT, major=INT, minor=INT, unknown=INT, all=INT)

# name: (its type, the fact group it needs or None)
VARIABLES: dict[str, tuple[CelType, Need | None]] = {
    "repository": (STRING, None),
    "digest": (STRING, None),
    "media_type": (STRING, None),
    "tag": (_NULLABLE_STRING, None),
    "tags": (list_of(STRING), None),
    "size": (INT, None),
    "pushed_at": (_NULLABLE_TIMESTAMP, None),
    "created_at": (_NULLABLE_TIMESTAMP, Need.CONFIG),
    "labels": (map_of(STRING), Need.CONFIG),
    "platforms": (list_of(STRING), None),
    "components": (list_of(COMPONENT), Need.SCAN),
    "vulnerabilities": (VULNERABILITIES, Need.VULNERABILITIES),
    "signatures": (list_of(STRING), None),
    "now": (TIMESTAMP, None),
}
FUNCTIONS = {"version_compare": Signature((STRING, STRING, STRING), INT)}

# --- converting facts to CEL values -------------------------------------------------------

_S = celtypes.StringType
_COMPONENT_KEYS = tuple(_S(k) for k in ("ecosystem", "name", "version", "licenses", "purl"))
_VULN_KEYS = tuple(_S(k) for k in ("critical", "major", "minor", "unknown", "all"))


def _strings(values: tuple[str, ...]) -> celtypes.ListType:
    return celtypes.ListType([_S(v) for v in values])


def _time(value: datetime | None) -> celtypes.TimestampType | None:
    if value is None:
        return None
    return celtypes.TimestampType(value if value.tzinfo else value.replace(tzinfo=UTC))


def _component(c: ComponentFact) -> celtypes.MapType:
    m = celtypes.MapType()
    values = (_S(c.ecosystem), _S(c.name), _S(c.version), _strings(c.licenses), _S(c.purl))
    dict.update(m, zip(_COMPONENT_KEYS, values, strict=True))
    return m


def _components(facts: ImageFacts, now: datetime) -> Any:
    if facts.components is None:
        return None
    return celtypes.ListType([_component(c) for c in facts.components])


def _vulnerabilities(facts: ImageFacts, now: datetime) -> Any:
    v = facts.vulnerabilities
    if v is None:
        return None
    m = celtypes.MapType()
    counts = (v.critical, v.major, v.minor, v.unknown, v.all)
    dict.update(m, zip(_VULN_KEYS, map(celtypes.IntType, counts), strict=True))
    return m


def _labels(facts: ImageFacts, now: datetime) -> Any:
    m = celtypes.MapType()
    dict.update(m, ((_S(k), _S(v)) for k, v in facts.labels.items()))
    return m


_CONVERT: dict[str, Callable[[ImageFacts, datetime], Any]] = {
    "repository": lambda f, now: _S(f.repository),
    "digest": lambda f, now: _S(f.digest),
    "media_type": lambda f, now: _S(f.media_type),
    "tag": lambda f, now: None if f.tag is None else _S(f.tag),
    "tags": lambda f, now: _strings(f.tags),
    "size": lambda f, now: celtypes.IntType(f.size),
    "pushed_at": lambda f, now: _time(f.pushed_at),
    "created_at": lambda f, now: _time(f.created_at),
    "labels": _labels,
    "platforms": lambda f, now: _strings(f.platforms),
    "components": _components,
    "vulnerabilities": _vulnerabilities,
    "signatures": lambda f, now: _strings(f.signatures),
    "now": lambda f, now: _time(now),
}
_MISSING = {
    "components": "components are not known yet (no finished scan)",
    "vulnerabilities": "vulnerability counts are not known yet (not matched yet)",
}

# --- the extension functions --------------------------------------------------------------


def _version_compare(order: VersionOrder) -> Callable[..., Any]:
    def version_compare(ecosystem: Any, a: Any, b: Any) -> Any:
        if not all(isinstance(x, str) for x in (ecosystem, a, b)):
            return CELEvalError("version_compare() takes three strings", TypeError, ())
        result = order(str(ecosystem), str(a), str(b))
        if result is None:
            return CELEvalError(
                f"cannot compare versions '{a}' and '{b}' under ecosystem '{ecosystem}' "
                "(no known order, or a version that does not parse in it)",
                ValueError,
                (),
            )
        return celtypes.IntType((result > 0) - (result < 0))

    return version_compare


# the first pattern of this evaluation that ran past its time limit: every later `matches`
# of the same evaluation fails at once (over a BOM, one runaway pattern per component would
# otherwise spend the limit a thousand times)
_TIMED_OUT: ContextVar[list[str] | None] = ContextVar("policy_expression_timed_out", default=None)


def _matches(timeout: float) -> Callable[..., Any]:
    def matches(text: Any, pattern: Any) -> Any:
        if not isinstance(text, str) or not isinstance(pattern, str):
            return CELEvalError("matches() takes two strings", TypeError, ())
        timed_out = _TIMED_OUT.get()
        if timed_out:
            return CELEvalError(timed_out[0], TimeoutError, ())
        try:
            found = _pattern(pattern).search(text, timeout=timeout)
            return celtypes.BoolType(found is not None)
        except PatternInvalid as e:
            return CELEvalError(f"pattern '{pattern[:80]}' {e}", ValueError, ())
        except TimeoutError:
            message = f"pattern '{pattern}' ran past its time limit ({timeout * 1000:g} ms)"
            if timed_out is not None:
                timed_out.append(message)
            return CELEvalError(message, TimeoutError, ())

    return matches


@lru_cache(maxsize=32)
def _pattern(text: str) -> Any:
    """A pattern compiled once its size is known to be bounded (a literal one was checked
    at creation; one read from the facts, such as a label, is checked here)."""
    return compile_pattern(text)


# --- compiling ----------------------------------------------------------------------------


# cel-python's evaluator recurses over the parse tree (a few frames a level, MAX_DEPTH levels
# at most) and its Environment sets the interpreter's limit to 2500 when first made: raised
# here once, when the module loads, it does not change later under a running caller
_RECURSION_LIMIT = 2500
sys.setrecursionlimit(max(sys.getrecursionlimit(), _RECURSION_LIMIT))


@cache
def _environment() -> celpy.Environment:
    limit = sys.getrecursionlimit()
    environment = celpy.Environment()
    sys.setrecursionlimit(max(limit, _RECURSION_LIMIT))
    return environment


def _check_strings(text: str) -> None:
    """Refuse a string literal that does not end, before cel-python's lexer sees it: its
    string pattern lets a backslash be an escape or a character of its own, so over a string
    that never ends it tries every split of a run of backslashes (2**n). A short string ends
    on its line, a triple-quoted one may span lines; `//` starts a comment to the line's end."""
    i, n = 0, len(text)
    while i < n:
        if text.startswith("//", i):
            end = text.find("\n", i)
            i = n if end < 0 else end + 1
            continue
        if text[i] not in "\"'":
            i += 1
            continue
        start = i
        quote = text[i] * 3 if text.startswith(text[i] * 3, i) else text[i]
        i += len(quote)
        while not text.startswith(quote, i):
            line_end = text[i : i + 1] in ("\r", "\n") or text[i : i + 2] in ("\\\r", "\\\n")
            if i >= n or (line_end and len(quote) == 1):
                line = text.count("\n", 0, start) + 1
                column = start - (text.rfind("\n", 0, start) + 1) + 1
                raise PolicyInvalid(
                    WHERE,
                    f"does not parse: the string opened at line {line}, column {column} "
                    "does not end" + ("" if len(quote) == 3 else " on its line"),
                )
            i += 2 if text[i] == "\\" else 1
        i += len(quote)


def _parse(text: str) -> checks.Tree:
    _check_strings(text)
    try:
        return CELParser().parse(text)  # a parser per call: its instance keeps the text
    except CELParseError as e:
        near = text.splitlines()[e.line - 1] if e.line else ""
        column = (e.column or 1) - 1
        snippet = near[max(column - 20, 0) : column + 20]
        raise PolicyInvalid(
            WHERE,
            f"does not parse: unexpected input at line {e.line}, column {e.column} "
            f"(near '{snippet}')",
        ) from None
    except lark.exceptions.LarkError as e:  # pragma: no cover (the grammar's own errors)
        raise PolicyInvalid(WHERE, f"does not parse: {e}") from None
    except RecursionError:
        raise PolicyInvalid(WHERE, "nests too deeply to parse") from None


_PASS_THROUGH = frozenset(
    {"expr", "conditionalor", "conditionaland", "relation", "addition", "multiplication", "unary"}
)


def _collapse(tree: checks.Tree) -> checks.Tree:
    """The tree with its chains of one-child grammar levels (`expr` > `conditionalor` > ... >
    `unary` above every operand) cut out: the evaluator visits each level with several
    calls, and a comprehension's body is visited once per element (about 3 times faster)."""

    def skip(node: checks.Tree) -> checks.Tree:
        while (
            node.data in _PASS_THROUGH
            and len(node.children) == 1
            and isinstance(node.children[0], lark.Tree)
        ):
            node = node.children[0]
        return node

    root = skip(tree)
    stack = [root]
    while stack:
        node = stack.pop()
        for i, child in enumerate(node.children):
            if isinstance(child, lark.Tree):
                kept = skip(child)
                node.children[i] = kept
                stack.append(kept)
    return root


def compile_expression(text: str, limits: PoliciesSettings, order: VersionOrder) -> Expression:
    """Parse and check a CEL expression; PolicyInvalid("expression", why) when it cannot be
    evaluated (does not parse or check, too long, comprehensions nested...)."""
    if not isinstance(text, str) or not text.strip():
        raise PolicyInvalid(WHERE, "the expression is empty")
    if len(text) > limits.max_expression_chars:
        raise PolicyInvalid(
            WHERE,
            f"the expression is {len(text)} characters long, more than the "
            f"{limits.max_expression_chars} allowed",
        )
    tree = _parse(text)
    variables = {name: t for name, (t, _need) in VARIABLES.items()}
    checked = checks.check(tree, variables, FUNCTIONS)
    functions = {
        **LOGIC,
        "version_compare": _version_compare(order),
        "matches": _matches(limits.regex_timeout_ms / 1000),
    }
    runner = Runner(_environment(), _collapse(tree), functions)
    return Expression(text, runner, tuple(sorted(checked.identifiers)))


# --- evaluating ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, eq=False)
class Expression:
    """A checked CEL expression: a `Condition` with one result, index 0."""

    text: str
    runner: celpy.Runner
    identifiers: tuple[str, ...]  # the variables it reads

    @property
    def needs(self) -> frozenset[Need]:
        return frozenset(n for name in self.identifiers if (n := VARIABLES[name][1]) is not None)

    @property
    def canonical(self) -> str:
        return self.text

    def evaluate(self, facts: ImageFacts, now: datetime) -> Evaluation:
        activation: dict[str, Any] = {}
        missing: list[str] = []
        for name in self.identifiers:
            value = _CONVERT[name](facts, now)
            if value is None and name in _MISSING:
                missing.append(name)  # left out: reading it is an error CEL may absorb
            else:
                activation[name] = value
        passed: bool | None
        passed, reason = self._run(activation)
        if reason.startswith(_ERROR) and missing:
            passed, reason = None, "; ".join(_MISSING[name] for name in missing)
        return Evaluation.of([RuleResult(0, {"expression": self.text}, passed, reason)])

    def _run(self, activation: dict[str, Any]) -> tuple[bool, str]:
        token = _TIMED_OUT.set([])
        try:
            value: Any = self.runner.evaluate(activation)
        except CELEvalError as e:
            return False, _ERROR + describe_error(e)
        except RecursionError:
            return False, _ERROR + "it nests too deeply"
        except Exception as e:  # cel-python's own faults: one policy fails, not the worker
            log.exception("CEL expression %r failed in the evaluator", self.text)
            return False, _ERROR + f"the evaluator failed ({type(e).__name__}: {e})"[:300]
        finally:
            _TIMED_OUT.reset(token)
        if isinstance(value, CELEvalError):  # pragma: no cover (the runner raises them)
            return False, _ERROR + describe_error(value)
        if isinstance(value, celtypes.BoolType | bool):
            return bool(value), f"the expression is {'true' if value else 'false'}"
        return False, f"the expression gives {_cel_type(value)} {value!s:.80}, not true or false"

    def __repr__(self) -> str:
        return f"Expression({self.text!r})"


_ERROR = "the expression could not be evaluated: "


def _cel_type(value: Any) -> str:
    if value is None:
        return "null"
    name = type(value).__name__
    return name.removesuffix("Type").lower() if name.endswith("Type") else name


_CLASS = re.compile(r"<class '(?:celpy\.celtypes\.)?(\w+?)(?:Type)?'>")
_TOKEN = re.compile(r"Token\('RULE', '(\w+)'\)")
_OPERATOR_WORDS = checks.OPERATORS


def describe_error(error: CELEvalError) -> str:
    """A CEL run-time error in a user's words (cel-python's messages name Python classes)."""
    message = str(error.args[0]) if error.args else "evaluation error"
    details = error.args[2] if len(error.args) > 2 else ()
    if message == "no such overload" and details and isinstance(details, tuple):
        message = f"no such overload: {details[0]}"
    if message.startswith("undeclared reference to"):
        message = message.split(" (in activation", 1)[0]
    message = _TOKEN.sub(lambda m: f"`{_OPERATOR_WORDS.get(m.group(1), m.group(1))}`", message)
    message = _CLASS.sub(lambda m: _cel_class(m.group(1)), message)
    return message[:300]


def _cel_class(name: str) -> str:
    return {"None": "null", "NoneType": "null", "CELEvalError": "error"}.get(name, name.lower())
