"""cel-python's interpreter with CEL's logic rebuilt where its own costs 2**n.

cel-python (0.5.0) combines two errors under `&&`, `||`, `all()` and `exists()` by raising a
TypeError whose message holds the repr of both; the next step quotes that message again, so
each error doubles the text (its quotes and backslashes escaped anew). Over a BOM where the
body fails for every component (`version_compare` of an ecosystem without an order, a label
that is missing) the 30th component already costs seconds, the 40th hours. Here the same
logic keeps the first error instead, CEL's commutative rules otherwise unchanged: a decisive
operand wins whatever the other is (`false && error` is false), else an error wins, else the
booleans combine. The quantifiers stop at the first decisive element, and `exists_one`,
`map` and `filter` fail on an element's error instead of counting or keeping it, as a map
literal does on an error in it. (An error must not turn into a value: over a fact group not
loaded yet, the expression is pending only while its result is an error.)
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import celpy
import lark
from celpy import celtypes
from celpy.evaluation import CELEvalError, Evaluator

_QUANTIFIERS = frozenset({"all", "exists", "exists_one", "map", "filter"})


def _logic(symbol: str, decisive: bool) -> Callable[[Any, Any], Any]:
    """`&&` (False decides) or `||` (True decides) over bools and errors."""

    def combine(x: Any, y: Any) -> Any:
        for value in (x, y):
            if isinstance(value, celtypes.BoolType) and bool(value) is decisive:
                return value
        for value in (x, y):
            if isinstance(value, CELEvalError):
                return value
        if isinstance(x, celtypes.BoolType) and isinstance(y, celtypes.BoolType):
            return celtypes.BoolType(not decisive)
        names = f"{_type_name(x)} and {_type_name(y)}"
        raise TypeError(f"no such overload: `{symbol}` takes bools, not {names}")

    return combine


LOGIC: dict[str, Callable[[Any, Any], Any]] = {
    "_&&_": _logic("&&", decisive=False),
    "_||_": _logic("||", decisive=True),
}


def _type_name(value: Any) -> str:
    return "null" if value is None else type(value).__name__.removesuffix("Type").lower()


def _not_bool(name: str, value: Any) -> CELEvalError:
    if isinstance(value, CELEvalError):
        return value
    return CELEvalError(
        f"no such overload: the body of {name}() gives {_type_name(value)}, not a bool",
        TypeError,
        (),
    )


def _comprehend(name: str, results: Iterable[tuple[Any, Any]]) -> Any:
    """The value of `name` over (element, body value) pairs, lazily: stops when decided."""
    error: CELEvalError | None = None
    kept: list[Any] = []
    count = 0
    for element, value in results:
        if name == "map":
            if isinstance(value, CELEvalError):
                return value
            kept.append(value)
            continue
        if not isinstance(value, celtypes.BoolType):
            if name in ("filter", "exists_one"):
                return _not_bool(name, value)
            error = error or _not_bool(name, value)
        elif name == "filter":
            kept.extend([element] if value else [])
        elif name == "exists_one":
            count += 1 if value else 0
        elif bool(value) is (name == "exists"):
            return celtypes.BoolType(name == "exists")  # decided: the rest cannot change it
    if name in ("map", "filter"):
        return celtypes.ListType(kept)
    if error is not None:
        return error
    if name == "exists_one":
        return celtypes.BoolType(count == 1)
    return celtypes.BoolType(name == "all")


class _Evaluator(Evaluator):
    def sub_evaluator(self, ast: lark.Tree) -> Evaluator:  # type: ignore[type-arg]
        return _Evaluator(ast, activation=self.activation)

    def member_dot_arg(self, tree: lark.Tree) -> Any:  # type: ignore[type-arg]
        name = str(tree.children[1])
        if name not in _QUANTIFIERS:
            return super().member_dot_arg(tree)
        over = self.visit(tree.children[0])
        if isinstance(over, CELEvalError):
            return over
        if not isinstance(over, celtypes.ListType | celtypes.MapType):
            return CELEvalError(
                f"no such overload: {name}() walks a list or a map, not {_type_name(over)}",
                TypeError,
                (),
            )
        body = self.build_ss_macro_eval(tree)  # an element's value, or its error
        return _comprehend(name, ((element, body(element)) for element in over))

    def mapinits(self, tree: lark.Tree) -> Any:  # type: ignore[type-arg]
        """A map literal: an error in a key or a value is the literal's (cel-python kept it
        as a value: `{"a": error}.size()` was 1)."""
        items: list[Any] = self.visit_children(tree)
        for item in items:
            if isinstance(item, CELEvalError):
                return item
        result = celtypes.MapType()
        for key, value in zip(items[0::2], items[1::2], strict=True):
            if key in result:
                raise ValueError(f"duplicate key {key!r} in a map literal")
            result[key] = value
        return result


class Runner(celpy.InterpretedRunner):
    """The interpreted runner with the evaluator above: a new one per evaluation, as
    cel-python's own, so that one compiled expression may run in several threads."""

    def evaluate(self, context: Any) -> Any:
        return _Evaluator(ast=self.ast, activation=self.new_activation()).evaluate(context)
